"""``dcase-fpd embeddings extract`` (embeddings/extract.py, command.py): DESED_task's files from a tiny
BEATs in the released format, read back by EmbeddingFile; resuming an interrupted extraction gives the
file of an uninterrupted one; finished sets are kept; the energy phase; user errors exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.data.embeddings import EmbeddingFile, check_clips
from dcase_fpd_plugin.data.tsv import DataError
from dcase_fpd_plugin.embeddings.extract import extract_embeddings, partial_path, read_first_seconds
from dcase_fpd_plugin.models.beats import BEATs, load_beats
from dcase_fpd_plugin.recipe.loading import load_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, save_tiny_beats) -> Path:
    return save_tiny_beats(tmp_path_factory.mktemp("beats") / "tiny_beats.pt", encoder_layers=1)


def _only(demo_data: dict, **folders) -> list[str]:
    """Overrides: the demo recipe with only the given data.*_folder keys set, energy off."""
    keys = ("synth_folder", "weak_folder", "val_folder", "test_folder")
    return [f"data.{k}={folders.get(k) or 'null'}" for k in keys] + ["energy.enabled=false"]


def _arrays(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("frame_embeddings", "global_embeddings", "filenames")} | {"attrs": dict(f.attrs)}


def test_the_command_writes_desed_task_files_that_embedding_file_reads(demo_data, ckpt, tmp_path, capsys):
    out = tmp_path / "beats"
    args = ["embeddings", "extract", "demo", "--checkpoint", str(ckpt), "--out", str(out), "--no-progress",
            *[f"data.{k}={v}" for k, v in demo_data.items()], "--batch-size", "16", "energy.measure_power_secs=1"]
    assert main(args) == 0  # the overrides may follow the options
    printed = capsys.readouterr().out
    folders = {"synth_train": "synth_folder", "weak_train": "weak_folder", "weak_val": "weak_folder",
               "synth_val": "val_folder", "devtest": "test_folder"}
    assert sorted(p.name for p in out.glob("*.hdf5")) == sorted(f"{s}.hdf5" for s in folders)
    assert not list(out.glob("*.partial"))
    for name, key in folders.items():
        wavs = sorted(Path(demo_data[key]).glob("*.wav"))
        f = EmbeddingFile(out / f"{name}.hdf5")
        assert (len(f), f.dim, f.n_frames) == (len(wavs), 32, 496)  # 496 frames per 10 s, as DESED_task
        assert f.stems == [w.stem for w in wavs]  # stems, no extension
        raw = _arrays(out / f"{name}.hdf5")
        assert raw["frame_embeddings"].dtype == np.float32 and raw["global_embeddings"].shape == (len(wavs), 32)
        assert all(isinstance(s, bytes) for s in raw["filenames"])  # read back as DESED_task reads them
    assert os.path.samefile(out / "weak_train.hdf5", out / "weak_val.hdf5")  # the same folder: one file
    assert "weak_val" in printed and "a hard link to its file" in printed and "data.embeddings_dir=" in printed

    # the rows are the model applied to the clip padded to 10 s
    clip = sorted(Path(demo_data["test_folder"]).glob("*.wav"))[3]
    wave = read_first_seconds(clip)
    assert wave.shape == (160000,) and not wave[4 * 16000:].any()  # a 4 s clip, zero-padded
    with torch.inference_mode():
        direct = load_beats(ckpt)(torch.from_numpy(wave)[None])
    f = EmbeddingFile(out / "devtest.hdf5")
    np.testing.assert_allclose(f.frames(clip), direct["frame"][0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(f.global_(clip.name), direct["global"][0].numpy(), rtol=1e-4, atol=1e-5)

    # the energy, as a phase of DIR/energy.json, with the clips it extracted
    energy = json.loads((out / "energy.json").read_text())
    phase = energy["phases"]["embeddings"]
    assert phase["n_segments"] == 1 and phase["energy_kwh"] >= 0 and phase["method"] in ("estimated", "measured")
    assert phase["segments"][0]["work"] == {"clips": 24 + 24 + 12 + 12}
    assert "energy (phase embeddings):" in printed and "kWh (" in printed

    # a second run keeps the finished files
    assert main(args) == 0
    assert capsys.readouterr().out.count("kept (finished before") == 5

    # a clip the file lacks is reported like missing audio
    listed = [*sorted(Path(demo_data["test_folder"]).glob("*.wav")), Path(demo_data["test_folder"]) / "new.wav"]
    with pytest.raises(DataError, match=r"test\.tsv: 1 of 13 listed clips have no embeddings in .*devtest\.hdf5:\n  new\.wav"):
        check_clips(out / "devtest.hdf5", listed, "test.tsv", 0.0)


def test_an_interrupted_extraction_resumes_to_the_same_file(demo_data, ckpt, tmp_path, monkeypatch):
    recipe = load_recipe("demo", _only(demo_data, synth_folder=demo_data["synth_folder"]))
    whole = extract_embeddings(recipe, ckpt, tmp_path / "whole", batch_size=5, progress=False)
    assert [(s.name, s.status, s.extracted) for s in whole.sets] == [("synth_train", "extracted", 24)]

    calls = {"n": 0}
    forward = BEATs.forward

    def stop_after_two(self, wave):
        if calls["n"] == 2:
            raise KeyboardInterrupt
        calls["n"] += 1
        return forward(self, wave)

    monkeypatch.setattr(BEATs, "forward", stop_after_two)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        extract_embeddings(recipe, ckpt, out, batch_size=5, progress=False)
    final = out / "synth_train.hdf5"
    assert not final.exists()
    assert _arrays(partial_path(final))["attrs"]["rows_done"] == 10  # two batches of 5

    calls["n"] = -100  # no more interruptions; count the batches run
    resumed = extract_embeddings(recipe, ckpt, out, batch_size=5, progress=False)
    assert [(s.status, s.extracted) for s in resumed.sets] == [("resumed", 14)] and calls["n"] == -100 + 3
    assert not partial_path(final).exists()
    a, b = _arrays(tmp_path / "whole" / "synth_train.hdf5"), _arrays(final)
    for key in ("frame_embeddings", "global_embeddings", "filenames"):
        np.testing.assert_array_equal(a[key], b[key])
    assert "rows_done" not in b["attrs"] and b["attrs"]["checkpoint_sha256"] == a["attrs"]["checkpoint_sha256"]


def test_a_partial_file_of_another_checkpoint_starts_over(demo_data, ckpt, tmp_path, monkeypatch, save_tiny_beats):
    recipe = load_recipe("demo", _only(demo_data, test_folder=demo_data["test_folder"]))
    out = tmp_path / "out"
    monkeypatch.setattr(BEATs, "forward", lambda self, wave: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        extract_embeddings(recipe, save_tiny_beats(tmp_path / "other.pt", 1, encoder_layers=1), out, batch_size=4, progress=False)
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="starting set devtest over: it was written with another checkpoint"):
        result = extract_embeddings(recipe, ckpt, out, batch_size=4, progress=False)
    assert [(s.status, s.extracted) for s in result.sets] == [("extracted", 12)]
    # --force extracts a finished set again
    again = extract_embeddings(recipe, ckpt, out, batch_size=4, progress=False, force=True)
    assert [(s.status, s.extracted) for s in again.sets] == [("extracted", 12)]


def test_user_errors_exit_2_naming_the_cause_and_write_nothing(demo_data, ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["embeddings", "extract", "demo", "--out", str(out), "--no-progress"]
    synth = _only(demo_data, synth_folder=demo_data["synth_folder"])
    bad = tmp_path / "bad.pt"
    torch.save({"model": {}}, bad)
    cases = [
        ([*synth, "--checkpoint", str(bad)], f"{bad}: not a BEATs checkpoint in the released format"),
        ([*synth, "--checkpoint", str(tmp_path / "absent.pt")], "BEATs checkpoint not found"),
        ([*_only(demo_data, weak_folder=str(tmp_path / "nowhere")), "--checkpoint", str(ckpt)],
         "nowhere (data.weak_folder, set weak_train): folder not found"),
        ([*_only(demo_data), "--checkpoint", str(ckpt)], "the recipe names no folder for any embeddings set"),
        ([*synth, "--checkpoint", str(ckpt), "--batch-size", "0"], "--batch-size must be a whole number >= 1"),
    ]
    if not torch.cuda.is_available():
        cases.append(([*synth, "--checkpoint", str(ckpt), "--device", "cuda"], "torch sees no CUDA device"))
    for extra, expected in cases:
        assert main([*base, *extra]) == 2, expected
        err = capsys.readouterr().err
        assert err.startswith("dcase-fpd embeddings extract: error: ") and expected in err, (expected, err)
        assert not out.exists()


def test_help_prints_without_torch():
    """`dcase-fpd embeddings extract --help` imports neither torch nor h5py (the command imports them when it runs)."""
    import subprocess
    import sys

    code = ("import sys; from dcase_fpd_plugin.cli import main\n"
            "try:\n    main(['embeddings', 'extract', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('HEAVY', [m for m in ('torch', 'h5py', 'pytorch_lightning') if m in sys.modules])")
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo,
                         env={**os.environ, "PYTHONPATH": str(repo)}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--checkpoint FILE" in out.stdout and out.stdout.strip().endswith("HEAVY []")
