"""The bench's optional soft-labelled source (MAESTRO's format): scores, classes, files, determinism,
and the other sets unchanged by it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.data.tsv import read_durations_tsv, read_soft_tsv
from dcase_fpd_plugin.synth.bench import SoftSource, bench_sets, build_bench
from dcase_fpd_plugin.synth.generate import read_clip_labels
from dcase_fpd_plugin.synth.soft import (SOFT_COLUMNS, choose_soft_classes, segment_bounds, segment_scores,
                                         soft_rows)
from dcase_fpd_plugin.synth.toybank import make_toy_soundbank

FAST = dict(progress=False, reverb=None, pitch_shift=None)
TOY_SETS = (2, 1, 2, 2)  # synth_train, synth_val, weak, test
TOY_SOFT = SoftSource(n_train=6, n_val=2)
SOFT_PARTS = ("soft_train", "soft_val")


# ---------------------------------------------------------------------------------------------
# The scores, on hand-made events
# ---------------------------------------------------------------------------------------------


def test_scores_are_the_covered_share_of_each_segment():
    events = [
        (0.5, 1.5, "Cat"),        # crosses the 1-s boundary: half of segment 0, half of segment 1
        (1.1, 1.4, "Cat"),        # inside the first Cat event: segment 1 stays 0.5, not 0.8
        (3.0, 4.0, "Cat"),        # starts and ends exactly on boundaries: segment 3 only, 1.0
        (5.1, 5.5, "Cat_nOn"),    # overlapping events of one class (a variant label): union 5.1-5.6
        (5.3, 5.6, "Cat"),
        (2.25, 2.75, "Dog"),
        (2.5, 9.0, "Speech"),     # not annotated: never written
        (9.8, 10.7, "Dog_nOff"),  # past the clip end: clipped to 10 s
    ]
    got = segment_scores(events, 10.0, ["Cat", "Dog"], 1.0)
    assert got == [(0.0, 1.0, "Cat", 0.5), (1.0, 2.0, "Cat", 0.5), (2.0, 3.0, "Dog", 0.5),
                   (3.0, 4.0, "Cat", 1.0), (5.0, 6.0, "Cat", 0.5), (9.0, 10.0, "Dog", 0.2)]
    # an event ending exactly on a boundary adds no row to the next segment; classes keep their order
    assert segment_scores([(1.0, 2.0, "Dog"), (1.0, 2.0, "Cat")], 4.0, ["Dog", "Cat"]) == [
        (1.0, 2.0, "Dog", 1.0), (1.0, 2.0, "Cat", 1.0)]
    assert segment_scores([(0.0, 10.0, "Speech")], 10.0, ["Cat"]) == []


def test_segment_length_is_a_parameter_and_the_last_segment_may_be_short():
    assert segment_bounds(2.25, 0.5) == [(0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 2.25)]
    assert len(segment_bounds(10.0, 1.0)) == 10 and len(segment_bounds(10.0, 0.1)) == 100
    got = segment_scores([(0.25, 0.5, "Cat"), (2.1, 2.25, "Cat")], 2.25, ["Cat"], 0.5)
    assert got == [(0.0, 0.5, "Cat", 0.5), (2.0, 2.25, "Cat", 0.6)]
    with pytest.raises(ValueError, match="segment length"):
        segment_bounds(10.0, 0.0)


def test_soft_rows_are_formatted_and_skip_scores_that_round_to_zero():
    rows = soft_rows({"b.wav": [(0.0, 0.0004, "Cat")], "a.wav": [(0.0, 0.25, "Cat")]}, 10.0, ["Cat"])
    assert rows == [("a.wav", "0.000", "1.000", "Cat", "0.250")]


def test_choose_soft_classes():
    nine = ["Alarm_bell_ringing", "Blender", "Cat", "Dishes", "Dog", "Frying", "Running_water", "Speech",
            "Vacuum_cleaner"]
    assert choose_soft_classes(nine) == ["Alarm_bell_ringing", "Blender", "Dishes", "Frying", "Speech"]
    assert choose_soft_classes(list(reversed(nine)), 5) == list(reversed(
        ["Alarm_bell_ringing", "Blender", "Dishes", "Frying", "Speech"]))  # same classes, bench order
    assert choose_soft_classes(nine, ["Speech", "Cat"]) == ["Cat", "Speech"]
    assert choose_soft_classes(["Cat", "Dog"]) == ["Cat"]  # the default leaves one class unannotated
    assert choose_soft_classes(["Cat"]) == ["Cat"]
    with pytest.raises(ValueError, match="Purr"):
        choose_soft_classes(nine, ["Cat", "Purr"])
    with pytest.raises(ValueError, match="1 to 9"):
        choose_soft_classes(nine, 10)


# ---------------------------------------------------------------------------------------------
# The bench with and without it (a toy bank of DESED-named classes: runs without the soundbank)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_benches(tmp_path_factory):
    root = tmp_path_factory.mktemp("soft_bench")
    bank = make_toy_soundbank(root / "bank", classes=("Cat", "Dishes", "Dog", "Speech"), per_class=4,
                              n_backgrounds=4)
    built = {}
    for name, soft in (("plain", None), ("soft", TOY_SOFT), ("soft_again", TOY_SOFT)):
        built[name] = (root / name, build_bench(bank, root / name, sets=bench_sets(*TOY_SETS), soft=soft, **FAST))
    return built


def _files(out: Path) -> dict[str, bytes]:
    """Every file and link under ``out`` (links by their target), the folder's own path written as OUT;
    of each set's report.json all but its ``timing`` (seconds of this run)."""
    found = {}
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        if p.is_symlink():
            found[rel] = ("-> " + str(p.readlink()).replace(str(out), "OUT")).encode()
        elif p.name == "report.json":
            report = json.loads(p.read_text())
            assert report.pop("timing")
            found[rel] = json.dumps(report).replace(str(out), "OUT").encode()
        elif p.is_file():
            found[rel] = p.read_bytes().replace(str(out).encode(), b"OUT")
    return found


def test_other_sets_are_byte_identical_with_and_without_the_soft_source(toy_benches):
    (plain_dir, plain), (soft_dir, soft) = toy_benches["plain"], toy_benches["soft"]
    before, after = _files(plain_dir), _files(soft_dir)
    del before["bench.json"]
    assert before and {k: after[k] for k in before} == before
    new = {k.split("/")[0] for k in set(after) - set(before) - {"bench.json"}}
    assert new == {"soft_train", "soft_val", "soft_classes.txt"}
    assert "soft" not in plain and set(plain["sets"]) == {"synth_train", "synth_val", "weak", "test"}
    same = ("overrides", "strong_reference_overrides", "strong_train", "classes", "seed")
    assert {k: json.dumps(plain[k]).replace(str(plain_dir), "OUT") for k in same} == {
        k: json.dumps(soft[k]).replace(str(soft_dir), "OUT") for k in same}


def test_soft_source_is_deterministic(toy_benches):
    (a_dir, a), (b_dir, b) = toy_benches["soft"], toy_benches["soft_again"]
    fa, fb = _files(a_dir), _files(b_dir)
    soft_files = [k for k in fa if k.startswith(SOFT_PARTS) or k == "soft_classes.txt"]
    assert any(k.endswith(".wav") for k in soft_files)
    assert {k: fa[k] for k in soft_files} == {k: fb.get(k) for k in soft_files}
    assert a["soft"]["classes"] == b["soft"]["classes"] == ["Cat", "Dishes", "Dog"]


def test_soft_files_on_the_toy_bench(toy_benches):
    out, info = toy_benches["soft"]
    soft = info["soft"]
    assert (out / "soft_classes.txt").read_text().split() == soft["classes"] == soft["source_entry"]["classes"]
    assert soft["segment_s"] == 1.0 and soft["source_entry"]["kind"] == "soft"
    assert {info["sets"][p]["n_clips"] for p in SOFT_PARTS} == {6, 2}
    assert all(info["sets"][p]["bank"] == "weak" for p in SOFT_PARTS)  # never the test bank's recordings
    for part in SOFT_PARTS:
        assert soft[part]["tsv"] == str((out / part / "soft.tsv").absolute())
        assert len(read_durations_tsv(out / part / "durations.tsv")) == info["sets"][part]["n_clips"]


# ---------------------------------------------------------------------------------------------
# On the real recordings
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_bench(soundbank, tmp_path_factory):
    out = tmp_path_factory.mktemp("soft_real")
    info = build_bench(soundbank, out, sets=bench_sets(2, 1, 2, 2), soft=SoftSource(n_train=12, n_val=4), **FAST)
    return out, info


def test_soft_tsv_on_real_recordings(real_bench):
    out, info = real_bench
    classes, soft_classes = info["classes"], info["soft"]["classes"]
    assert soft_classes == choose_soft_classes(classes) and len(soft_classes) == 5
    for part in SOFT_PARTS:
        path = out / part / "soft.tsv"
        with open(path, newline="") as f:
            header = next(csv.reader(f, delimiter="\t"))
        assert tuple(header) == SOFT_COLUMNS
        parsed = read_soft_tsv(path, soft_classes)  # only annotated classes, scores in [0, 1]
        durations = read_durations_tsv(out / part / "durations.tsv")
        assert set(parsed) <= set(durations) and info["soft"][part]["rows"] == sum(map(len, parsed.values()))
        for name, duration in durations.items():
            raw = read_clip_labels(out / part / "soundscapes" / name.replace(".wav", ".txt"))
            want = segment_scores(raw, duration, soft_classes)
            assert [(round(a, 3), round(b, 3), c, s) for a, b, c, s in parsed.get(name, [])] == want
            assert all(0 < s <= 1 and round(b - a, 3) == 1.0 for a, b, _, s in parsed.get(name, []))
    # the clips also hold events of the classes the source does not annotate (as MAESTRO's clips do)
    strong = (out / "soft_train" / "soundscapes.tsv").read_text().splitlines()[1:]
    assert {line.split("\t")[3] for line in strong if line.split("\t")[3]} - set(soft_classes)


def test_bench_command_soft_options_are_checked_first(tmp_path, capsys, soundbank):
    assert main(["bench", "build", str(tmp_path / "a"), "--n-soft", "12", "--soundbank", str(soundbank)]) == 2
    assert "--n-soft need(s) --soft" in capsys.readouterr().err
    assert main(["bench", "build", str(tmp_path / "b"), "--soft", "--soft-classes", "Cat,Purr",
                 "--soundbank", str(soundbank)]) == 2
    assert "Purr" in capsys.readouterr().err
    assert main(["bench", "build", str(tmp_path / "c"), "--soft", "--soft-segment", "0",
                 "--soundbank", str(soundbank)]) == 2
    assert "--soft-segment must be > 0" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_bench_command_builds_the_soft_source(toy_benches, tmp_path, capsys):
    bank = toy_benches["plain"][0].parent / "bank"
    out = tmp_path / "b"
    assert main(["bench", "build", str(out), "--soundbank", str(bank), "--n-synth", "1", "--n-synth-val", "1",
                 "--n-weak", "2", "--n-test", "1", "--soft", "--n-soft", "3", "--n-soft-val", "1",
                 "--soft-classes", "Speech,Cat", "--soft-segment", "0.5", "--no-progress"]) == 0
    assert "soft source (0.5-s segments; classes Cat, Speech" in capsys.readouterr().out
    info = json.loads((out / "bench.json").read_text())
    assert info["soft"]["segment_s"] == 0.5 and (out / "soft_classes.txt").read_text() == "Cat\nSpeech\n"
    assert {info["sets"][p]["n_clips"] for p in SOFT_PARTS} == {3, 1}
    rows = read_soft_tsv(out / "soft_train" / "soft.tsv", ["Cat", "Speech"])
    assert rows and all(round(b - a, 3) == 0.5 for segs in rows.values() for a, b, _, _ in segs)
