"""Start-up work a warm run skips (issue 12, part 4): audio headers already read, the mel transform
when every clip is cached, the modules of other sub-commands, and codecarbon's hardware detection
done in a thread before the first training step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dcase_fpd_plugin.data import audio
from dcase_fpd_plugin.data.datamodule import SEDDataModule
from dcase_fpd_plugin.data.datasets import strong_records
from dcase_fpd_plugin.data.features import FeatureExtractor
from dcase_fpd_plugin.data.tsv import DataError
from dcase_fpd_plugin.recipe.schema import DEFAULTS
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.task import SEDTask

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def header_reads(monkeypatch):
    """Counts the audio headers read (soundfile.info calls) through the dataset indexing."""
    calls: list[str] = []
    info = audio.sf.info

    def counted(path, *a, **k):
        calls.append(str(path))
        return info(path, *a, **k)

    monkeypatch.setattr(audio.sf, "info", counted)
    return calls


def _datamodule(demo_overrides):
    recipe = load_recipe(REPO / "recipes" / "demo.yaml", demo_overrides)
    task = SEDTask(recipe)
    return SEDDataModule.from_recipe(recipe, task.n_frames, task.frame_hop_s), recipe


def test_second_setup_reads_no_audio_header(demo_overrides, header_reads):
    dm, recipe = _datamodule(demo_overrides)
    dm.setup("fit")
    first = len(header_reads)
    n_listed = sum(len(s) for s in dm.train_sets) + len(dm.val_set)
    assert first >= n_listed > 0
    index = Path(recipe["data"]["cache_dir"]) / "audio_headers.json"
    assert len(json.loads(index.read_text())) >= n_listed

    header_reads.clear()
    dm2, _ = _datamodule(demo_overrides)  # a new run, same data: every header is known
    dm2.setup("fit")
    assert header_reads == []
    assert [r.path for r in dm2.val_set.records] == [r.path for r in dm.val_set.records]


def test_changed_file_is_read_again_and_a_broken_one_refused(tmp_path, header_reads):
    folder = tmp_path / "audio"
    folder.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(folder / name, np.zeros(1600, np.float32), 16000)
    tsv = tmp_path / "strong.tsv"
    tsv.write_text("filename\tonset\toffset\tevent_label\na.wav\t0.0\t0.1\tx\nb.wav\t0.0\t0.1\tx\n")
    index = audio.HeaderIndex(tmp_path / "headers.json")
    strong_records(folder, tsv, ["x"], headers=index)
    index.save()
    assert len(header_reads) == 2

    header_reads.clear()
    sf.write(folder / "b.wav", np.zeros(3200, np.float32), 16000)  # changed: size and time differ
    index = audio.HeaderIndex(tmp_path / "headers.json")
    recs = strong_records(folder, tsv, ["x"], headers=index)
    assert [Path(p).name for p in header_reads] == ["b.wav"] and len(recs) == 2
    index.save()

    (folder / "a.wav").write_bytes(b"no longer audio")  # broken after it was indexed
    with pytest.raises(DataError, match="a.wav: unreadable audio"):
        strong_records(folder, tsv, ["x"], headers=audio.HeaderIndex(tmp_path / "headers.json"))
    (folder / "a.wav").unlink()
    with pytest.raises(DataError, match="a.wav: audio file not found"):
        strong_records(folder, tsv, ["x"], headers=audio.HeaderIndex(tmp_path / "headers.json"))


def test_corrupt_header_index_is_rebuilt(tmp_path):
    path = tmp_path / "headers.json"
    path.write_text("{not json")
    index = audio.HeaderIndex(path)
    assert index.known == {}
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(160, np.float32), 16000)
    index.check(wav)
    index.save()
    assert list(json.loads(path.read_text())) == [str(wav.absolute())]


def test_header_index_forgets_files_that_are_gone_when_it_saves(tmp_path):
    path = tmp_path / "headers.json"
    wavs = [tmp_path / f"{n}.wav" for n in ("a", "b", "c")]
    for wav in wavs[:2]:
        sf.write(wav, np.zeros(160, np.float32), 16000)
    index = audio.HeaderIndex(path)
    for wav in wavs[:2]:
        index.check(wav)
    index.save()
    wavs[1].unlink()  # a regenerated or temporary set
    sf.write(wavs[2], np.zeros(160, np.float32), 16000)
    index = audio.HeaderIndex(path)
    index.check(wavs[2])
    index.save()
    assert sorted(json.loads(path.read_text())) == sorted(str(w.absolute()) for w in (wavs[0], wavs[2]))


def test_cached_clips_need_no_mel_transform(tmp_path):
    wav = tmp_path / "a.wav"
    sf.write(wav, 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32), 16000)
    feats = dict(DEFAULTS["feats"], clip_s=1.0)
    first = FeatureExtractor(feats, tmp_path / "cache")
    mel, n_valid = first(wav)
    assert first._logmel is not None and first.misses == 1
    again = FeatureExtractor(feats, tmp_path / "cache")
    mel2, n_valid2 = again(wav)
    assert again.hits == 1 and again._logmel is None  # librosa never needed
    np.testing.assert_array_equal(mel, mel2)
    assert n_valid == n_valid2


def test_bad_window_refused_before_any_clip():
    with pytest.raises(ValueError, match="win_length 4096 > feats.n_fft 2048"):
        FeatureExtractor(dict(DEFAULTS["feats"], win_length=4096))


def test_train_command_imports_no_other_subcommand_module():
    code = ("import sys; from dcase_fpd_plugin.cli import build_parser; "
            "a = build_parser('train').parse_args(['train', 'r.yaml', 'training.seed=2', '--force']); "
            "assert a.overrides == ['training.seed=2'] and a.force; "
            "heavy = [m for m in ('dcase_fpd_plugin.experiments.command', 'dcase_fpd_plugin.report.command', "
            "'dcase_fpd_plugin.synth.command', 'dcase_fpd_plugin.training.runs', 'pandas', 'pytorch_lightning') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_existing_experiment_still_a_user_error(demo_overrides, capsys):
    from dcase_fpd_plugin.cli import main

    exp = next(o.split("=", 1)[1] for o in demo_overrides if o.startswith("training.exp_dir="))
    Path(exp, "checkpoints").mkdir(parents=True)
    Path(exp, "checkpoints", "last.ckpt").write_bytes(b"x")
    assert main(["train", "demo", *demo_overrides]) == 2
    assert "--resume" in capsys.readouterr().err


def test_hardware_probe_spares_the_tracker_its_detection(monkeypatch, tmp_path):
    pytest.importorskip("codecarbon.core.hardware_cache")  # codecarbon with its per-process cache
    from codecarbon.core import hardware_cache
    from codecarbon.core.resource_tracker import ResourceTracker

    from dcase_fpd_plugin.energy import phase as energy
    from dcase_fpd_plugin.energy import tracker as energy_tracker

    runs: list[int] = []
    detect_cpu = ResourceTracker.set_CPU_tracking  # run by a detection only, not by a cached plan

    def counted(self):
        runs.append(1)
        return detect_cpu(self)

    monkeypatch.setattr(ResourceTracker, "set_CPU_tracking", counted)
    monkeypatch.setattr(energy_tracker, "_probe", None)
    hardware_cache.clear_cache()
    cfg = energy.energy_config(None)
    probe = energy_tracker.start_hardware_probe(cfg)
    assert energy_tracker.start_hardware_probe(cfg) is probe  # once per process
    probe.join(timeout=60)
    assert runs == [1]
    tracker = energy._make_tracker("training", tmp_path / "energy", cfg)
    try:
        assert runs == [1]  # the started tracker reused the probe's detection
    finally:
        tracker.stop()


def test_hardware_probe_is_a_no_op_without_codecarbons_cache(monkeypatch):
    """A codecarbon without its hardware cache keeps no detection per process: the probe would only
    compete for the CPU."""
    pytest.importorskip("codecarbon.core.hardware_cache")
    import importlib.util

    from codecarbon.core import hardware_cache
    from codecarbon.core.resource_tracker import ResourceTracker

    from dcase_fpd_plugin.energy import phase as energy
    from dcase_fpd_plugin.energy import tracker as energy_tracker

    runs: list[int] = []
    monkeypatch.setattr(ResourceTracker, "set_CPU_GPU_ram_tracking", lambda self: runs.append(1))  # any set-up
    hardware_cache.clear_cache()  # else a plan left by an earlier test hides a probe that detects
    find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "codecarbon.core.hardware_cache" else find(name, *a))
    monkeypatch.setattr(energy_tracker, "_probe", None)
    energy_tracker.start_hardware_probe(energy.energy_config(None)).join(timeout=60)
    assert runs == []


def test_unstattable_file_is_named_as_unreadable_not_absent(tmp_path, monkeypatch):
    wav = tmp_path / "a.wav"
    sf.write(wav, np.zeros(160, np.float32), 16000)
    stat = Path.stat

    def denied(self, *a, **k):
        if self.name == "a.wav":
            raise PermissionError(13, "Permission denied")
        return stat(self, *a, **k)

    monkeypatch.setattr(Path, "stat", denied)
    with pytest.raises(DataError, match=r"a.wav: audio file cannot be read \(Permission denied\)"):
        audio.HeaderIndex().check(wav)


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["test", "--help"], ["infer", "--help"],
                                  ["demo", "--help"], ["recipes", "--help"], ["synth", "--help"],
                                  ["bench", "--help"], ["compare", "--help"], ["report", "--help"]])
def test_help_prints_without_torch_or_lightning(argv):
    """`dcase-fpd --help` and each command's --help: the usage, without importing torch or Lightning
    (~6 s on this machine's 2 cores); the top level imports no sub-command's module."""
    code = ("import sys; from dcase_fpd_plugin.cli import main\n"
            f"try:\n    main({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('torch', 'pytorch_lightning', 'lightning') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "usage: dcase-fpd" in out.stdout
    assert out.stdout.strip().endswith("HEAVY []"), out.stdout[-300:]
    if argv == ["--help"]:
        assert "compare" in out.stdout and "report" in out.stdout and "FPD" in out.stdout
