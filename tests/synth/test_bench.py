"""The DESED-size bench (``dcase-fpd bench build``): disjoint recordings, determinism, the target."""

import json
import os
from pathlib import Path

import pytest

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.synth.bench import BANK_FRACTIONS, bench_sets, build_bench, read_bench
from dcase_fpd_plugin.synth.target import BUNDLED_TARGETS, resolve_match

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
SIZES = dict(n_synth=10, n_synth_val=4, n_weak=8, n_test=8)


def _sources(set_dir: Path) -> set[str]:
    """The real recordings (symlinks resolved) that the clips of a set were mixed from."""
    found = set()
    for jams in (set_dir / "soundscapes").glob("*.jams"):
        for ann in json.loads(jams.read_text())["annotations"]:
            for obs in ann["data"]:
                found.add(os.path.realpath(obs["value"]["source_file"]))
    return found


@pytest.fixture(scope="module")
def bench(soundbank, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    info = build_bench(soundbank, out, sets=bench_sets(**SIZES), workers=1, progress=False,
                       reverb=None, pitch_shift=None)
    return out, info


def test_bundled_desed_validation_target():
    t = resolve_match("desed_validation")
    assert t.n_clips == 1168 and t.total_occurrences() == 4224
    assert t.occurrences["Speech"] == 1752 and t.occurrences["Dishes"] == 559  # turpaultn/DESED @ af3a5d5
    nine = resolve_match("desed_validation", [c for c in t.classes if c != "Electric_shaver_toothbrush"])
    assert nine.total_occurrences() == 4224 - 65 and "Electric_shaver_toothbrush" not in nine.classes
    assert set(BUNDLED_TARGETS) == {"desed_validation"}


def test_bench_splits_share_no_recording(bench, soundbank):
    out, info = bench
    by_bank = {}
    for name in ("synth_train", "synth_val", "weak", "test"):
        used = _sources(out / name)
        assert used and all(p.startswith(str(Path(soundbank).resolve())) for p in used)
        by_bank.setdefault(info["sets"][name]["bank"], set()).update(used)
    assert set(by_bank) == set(BANK_FRACTIONS)
    banks = list(by_bank.values())
    for i in range(len(banks)):
        for j in range(i + 1, len(banks)):
            assert not banks[i] & banks[j]  # foregrounds and backgrounds alike
    # the sub-banks themselves are disjoint, not only what this small build happened to draw
    linked = {b: {os.path.realpath(p) for p in (out / "banks" / b).rglob("*.flac")} for b in BANK_FRACTIONS}
    assert not linked["synth"] & linked["weak"] and not linked["synth"] & linked["test"]
    assert not linked["weak"] & linked["test"]


def test_bench_sizes_overrides_and_resume(bench, soundbank):
    out, info = bench
    assert {k: v["n_clips"] for k, v in info["sets"].items()} == {
        "synth_train": 10, "synth_val": 4, "weak": 8, "test": 8}
    assert read_bench(out)["overrides"] == info["overrides"]
    recipe = load_recipe(DEMO, info["overrides"])  # the overrides make a valid recipe
    assert recipe["data"]["weak_val_fraction"] == 0.1 and recipe["data"]["test_tsv"].endswith("test/soundscapes.tsv")
    # a rebuild renders nothing and gives the same labels (deterministic, resumable)
    before = (out / "test" / "soundscapes.tsv").read_text()
    again = build_bench(soundbank, out, sets=bench_sets(**SIZES), progress=False, reverb=None, pitch_shift=None)
    assert all(v["rendered"] == 0 for v in again["sets"].values())
    assert (out / "test" / "soundscapes.tsv").read_text() == before


def test_bench_build_command_refuses_bad_size(tmp_path, capsys):
    assert main(["bench", "build", str(tmp_path / "b"), "--n-test", "0"]) == 2
    assert "--n-test must be >= 1" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_bench_refuses_a_split_of_another_seed(bench, soundbank):
    out, _ = bench
    with pytest.raises(FileExistsError, match="seed 0, not .* with seed 1"):
        build_bench(soundbank, out, seed=1, sets=bench_sets(**SIZES), progress=False)


def test_bench_strong_reference_set(bench):
    """strong_train: every synthetic training clip and every weak clip that training sees (not the
    held-out 10 %), each with its own strong labels; the overrides make a valid recipe on it."""
    from dcase_fpd_plugin.data.datamodule import split_weak_validation
    from dcase_fpd_plugin.data.datasets import weak_records
    from dcase_fpd_plugin.data.tsv import read_strong_tsv

    out, info = bench
    classes = info["classes"]
    weak_train, held = split_weak_validation(
        weak_records(out / "weak" / "soundscapes", out / "weak" / "weak.tsv", classes), 0.1, 0)
    assert held  # the bench's 8 weak clips hold one out
    links = sorted((out / "strong_train" / "soundscapes").iterdir())
    assert [p.name for p in links] == sorted(
        [f"synth_{p.name}" for p in (out / "synth_train" / "soundscapes").glob("*.wav")]
        + [f"weak_{r.path.name}" for r in weak_train])
    assert all(p.is_symlink() and not os.path.isabs(os.readlink(p)) and p.resolve().is_file() for p in links)
    labels = read_strong_tsv(out / "strong_train" / "soundscapes.tsv", classes)
    for source in ("synth_train", "weak"):
        own = read_strong_tsv(out / source / "soundscapes.tsv", classes)
        prefix = "synth_" if source == "synth_train" else "weak_"
        for name, events in own.items():
            if prefix == "weak_" and name in {r.path.name for r in held}:
                assert prefix + name not in labels
            else:
                def key(evs):
                    return [(round(e.onset, 3), round(e.offset, 3), e.event_label) for e in evs]
                assert key(labels[prefix + name]) == key(events)
    assert info["strong_train"] == {"n_clips": len(links), "occurrences": sum(map(len, labels.values()))}
    recipe = load_recipe(DEMO, info["strong_reference_overrides"])
    assert recipe["training"]["batch_size"][1:] == [0, 0]
    assert recipe["data"]["synth_tsv"].endswith("strong_train/soundscapes.tsv")
    assert recipe["data"]["test_tsv"].endswith("test/soundscapes.tsv") and recipe["data"]["weak_val_seed"] == 0


def test_bench_strong_train_rebuild_drops_links_it_no_longer_makes(bench):
    from dcase_fpd_plugin.synth.bench import build_strong_train

    out, info = bench
    folder = out / "strong_train" / "soundscapes"
    stale = folder / "weak_9999.wav"
    stale.symlink_to(os.path.relpath(next(folder.iterdir()).resolve(), folder))
    assert build_strong_train(out, info["classes"]) == info["strong_train"]
    assert not stale.is_symlink() and len(list(folder.iterdir())) == info["strong_train"]["n_clips"]
