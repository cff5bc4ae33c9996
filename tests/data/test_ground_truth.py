"""Ground truth checked (#27 item 4): a duplicated event row and an event past its clip's duration
are refused naming the file and line (``data.ground_truth: refuse``, the default), or repaired
(deduplicated, clipped, dropped) and counted (``repair``), in the training labels, the validation
and test sets, and the metrics' reference (tests/evaluation/test_ground_truth_reference.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dcase_fpd_plugin.data.datamodule import Batches, SEDDataModule
from dcase_fpd_plugin.data.datasets import strong_records
from dcase_fpd_plugin.data import tsv
from dcase_fpd_plugin.data.tsv import DataError, read_strong_tsv
from dcase_fpd_plugin.recipe.schema import DEFAULTS

CLASSES = ["Dog", "Cat", "Speech"]
HEADER = "filename\tonset\toffset\tevent_label\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _audio(folder: Path, names, seconds=10.0, sr=8000) -> Path:
    folder.mkdir(exist_ok=True)
    for name in names:
        sf.write(folder / name, np.zeros(int(seconds * sr), np.float32), sr)
    return folder


# --------------------------------------------------------------------------- the TSV readers


def test_a_duplicated_row_is_refused_naming_the_file_and_its_line(tmp_path):
    f = write(tmp_path / "strong.tsv", HEADER + "a.wav\t1\t2\tDog\na.wav\t3\t4\tCat\na.wav\t1.000\t2.0\tDog\n")
    with pytest.raises(DataError, match=r"strong\.tsv:4: bad ground truth, 1 duplicate event row\(s\): "
                                        r"line 4 repeats line 2 \(a\.wav 1 2 Dog\).*data\.ground_truth=repair"):
        read_strong_tsv(f, CLASSES)


def test_a_duplicated_row_is_counted_once_with_repair(tmp_path):
    f = write(tmp_path / "strong.tsv", HEADER + "a.wav\t1\t2\tDog\na.wav\t3\t4\tCat\na.wav\t1\t2\tDog\nb.wav\t\t\t\n")
    with pytest.warns(UserWarning, match=r"strong\.tsv: ground truth repaired.*1 duplicate.*line 4 repeats line 2"):
        events, repairs = tsv.read_ground_truth(f, CLASSES, ground_truth="repair")
    assert [(e.onset, e.offset, e.event_label) for e in events["a.wav"]] == [(1.0, 2.0, "Dog"), (3.0, 4.0, "Cat")]
    assert events["b.wav"] == []
    assert repairs == {"duplicates": 1, "clipped": 0, "dropped": 0}


@pytest.mark.parametrize("row,pattern", [
    ("a.wav\t8\t12.5\tDog", r"strong\.tsv:3: bad ground truth, 1 event\(s\) ending after the clip's duration: "
                            r"line 3: a\.wav Dog ends at 12\.5 s, after the clip's end \(10 s\)"),
    ("a.wav\t10\t11\tCat", r"strong\.tsv:3: bad ground truth, 1 event\(s\) starting at or after the clip's end: "
                           r"line 3: a\.wav Cat starts at 10 s"),
])
def test_an_event_past_the_duration_is_refused_naming_the_file_and_its_line(tmp_path, row, pattern):
    f = write(tmp_path / "strong.tsv", HEADER + f"a.wav\t0\t1\tDog\n{row}\n")
    with pytest.raises(DataError, match=pattern):
        read_strong_tsv(f, CLASSES, durations={"a.wav": 10.0})
    with pytest.raises(DataError, match=pattern):  # no duration listed: the clip length (feats.clip_s)
        read_strong_tsv(f, CLASSES, clip_s=10.0)


def test_an_event_past_the_duration_is_clipped_or_dropped_with_repair(tmp_path):
    f = write(tmp_path / "strong.tsv", HEADER + "a.wav\t0\t1\tDog\na.wav\t8\t12.5\tDog\na.wav\t10\t11\tCat\n"
                                                "a.wav\t2\t10.0005\tSpeech\n")
    with pytest.warns(UserWarning, match=r"strong\.tsv: ground truth repaired.*1 event\(s\) clipped.*1 dropped"):
        events, repairs = tsv.read_ground_truth(f, CLASSES, durations={"a.wav": 10.0}, ground_truth="repair")
    # within the 1 ms tolerance: kept as written
    assert [(e.onset, e.offset, e.event_label) for e in events["a.wav"]] == [
        (0.0, 1.0, "Dog"), (8.0, 10.0, "Dog"), (2.0, 10.0005, "Speech")]
    assert repairs == {"duplicates": 0, "clipped": 1, "dropped": 1}


def test_every_problem_is_counted_and_the_first_line_named(tmp_path):
    rows = "".join(f"a.wav\t{i}\t{i + 0.5}\tDog\n" for i in range(3)) * 2 + "b.wav\t9\t13\tCat\n"
    f = write(tmp_path / "strong.tsv", HEADER + rows)
    with pytest.raises(DataError) as e:
        read_strong_tsv(f, CLASSES, durations={"a.wav": 10.0, "b.wav": 10.0})
    msg = str(e.value)
    assert msg.startswith(f"{f}:5: bad ground truth, 3 duplicate event row(s)")
    assert "line 5 repeats line 2" in msg and "line 7 repeats line 4" in msg
    assert "1 event(s) ending after the clip's duration: line 8" in msg and "\n" not in msg  # one line for the CLI


def test_a_good_tsv_is_unchanged(tmp_path):
    f = write(tmp_path / "strong.tsv", HEADER + "a.wav\t0\t1\tDog\na.wav\t0\t1\tCat\na.wav\t9\t10\tDog\n")
    events, repairs = tsv.read_ground_truth(f, CLASSES, durations={"a.wav": 10.0})
    assert len(events["a.wav"]) == 3 and repairs == {"duplicates": 0, "clipped": 0, "dropped": 0}


# --------------------------------------------------------------------------- the training labels


def test_strong_records_refuse_or_repair_against_the_durations_tsv(tmp_path):
    audio = _audio(tmp_path / "audio", ["a.wav", "b.wav"])
    s = write(tmp_path / "val.tsv", HEADER + "a.wav\t1\t2\tDog\na.wav\t1\t2\tDog\nb.wav\t8\t12.5\tCat\n")
    d = write(tmp_path / "val_dur.tsv", "filename\tduration\na.wav\t10\nb.wav\t10\n")
    with pytest.raises(DataError, match=r"val\.tsv:3: bad ground truth, 1 duplicate event row\(s\): line 3 repeats "
                                        r"line 2.*1 event\(s\) ending after the clip's duration: line 4"):
        strong_records(audio, s, CLASSES, d)
    with pytest.warns(UserWarning, match=r"val\.tsv: ground truth repaired"):
        recs = strong_records(audio, s, CLASSES, d, ground_truth="repair")
    assert {r.path.name: [(e.onset, e.offset) for e in r.events] for r in recs} == {
        "a.wav": [(1.0, 2.0)], "b.wav": [(8.0, 10.0)]}


def _data_module(tmp_path, **data) -> SEDDataModule:
    audio = _audio(tmp_path / "audio", ["a.wav", "b.wav"], seconds=4.0)
    val = write(tmp_path / "val.tsv", HEADER + "a.wav\t0\t1\tDog\n")
    dur = write(tmp_path / "val_dur.tsv", "filename\tduration\na.wav\t4\nb.wav\t4\n")
    d = dict(DEFAULTS["data"], classes=CLASSES, synth_folder=str(audio), val_folder=str(audio), val_tsv=str(val),
             val_dur=str(dur), feature_store="off", **data)
    feats = dict(DEFAULTS["feats"], clip_s=4.0, sample_rate=8000)
    return SEDDataModule(d, feats, Batches((2, 0, 0), 2, 0, progress_bar=False), 16, 0.25)


def test_the_data_module_refuses_a_bad_training_tsv_in_setup_before_training(tmp_path):
    synth = write(tmp_path / "synth.tsv", HEADER + "a.wav\t0\t1\tDog\nb.wav\t2\t3\tCat\nb.wav\t2\t3\tCat\n"
                                                   "a.wav\t3.5\t6\tSpeech\n")
    dm = _data_module(tmp_path, synth_tsv=str(synth))
    with pytest.raises(DataError, match=r"synth\.tsv:4: bad ground truth, 1 duplicate.*line 4 repeats line 3.*"
                                        r"line 5: a\.wav Speech ends at 6 s, after the clip's end \(4 s\)"):
        dm.setup("fit")
    assert dm.ground_truth_repairs() == {}  # refuse: nothing is ever repaired


def test_the_data_module_repairs_the_training_labels_with_repair(tmp_path):
    synth = write(tmp_path / "synth.tsv", HEADER + "a.wav\t0\t1\tDog\nb.wav\t2\t3\tCat\nb.wav\t2\t3\tCat\n"
                                                   "a.wav\t3.5\t6\tSpeech\n")
    dm = _data_module(tmp_path, synth_tsv=str(synth), ground_truth="repair")
    with pytest.warns(UserWarning, match=r"synth\.tsv: ground truth repaired"):
        dm.setup("fit")
    events = {r.path.name: [(e.onset, e.offset, e.event_label) for e in r.events] for r in dm.train_sets[0].records}
    assert events == {"a.wav": [(0.0, 1.0, "Dog"), (3.5, 4.0, "Speech")], "b.wav": [(2.0, 3.0, "Cat")]}
    labels = dm.train_sets[0].encoder.encode_strong((e.onset, e.offset, e.event_label)
                                                   for e in dm.train_sets[0].records[1].events)
    assert labels[:, CLASSES.index("Cat")].sum() == 4  # 1 s of 0.25 s frames, once
    assert dm.ground_truth_repairs() == {str(synth): {"duplicates": 1, "clipped": 1, "dropped": 0}}


# --------------------------------------------------------------------------- end to end: the CLI


def _demo_tsv_rows(path) -> list[str]:
    return Path(path).read_text().splitlines()


def _first_event_line(lines: list[str]) -> int:
    """1-based line of the first row with an event."""
    return next(i for i, line in enumerate(lines, start=1) if i > 1 and line.split("\t")[-1].strip())


def test_cli_train_refuses_bad_ground_truth_before_training_and_repairs_it_on_request(
        demo_data, demo_overrides, tmp_path, capsys):
    from dcase_fpd_plugin.cli import main

    val = _demo_tsv_rows(demo_data["val_tsv"])
    k = _first_event_line(val)
    name, onset, _, label = val[k - 1].split("\t")
    bad_val = write(tmp_path / "bad_val.tsv", "\n".join([*val[:k - 1], f"{name}\t{onset}\t12.5\t{label}",
                                                         *val[k:]]) + "\n")
    test = _demo_tsv_rows(demo_data["test_tsv"])
    j = _first_event_line(test)
    bad_test = write(tmp_path / "bad_test.tsv", "\n".join([*test, test[j - 1]]) + "\n")
    clean_test = write(tmp_path / "clean_test.tsv", "\n".join(test) + "\n")
    overrides = [o for o in demo_overrides if not o.startswith(("data.val_tsv=", "data.test_tsv="))]
    overrides += [f"data.val_tsv={bad_val}", f"data.test_tsv={bad_test}", "data.feature_store=off"]

    assert main(["train", "demo", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"dcase-fpd train: error: {bad_val}:{k}: bad ground truth") and "\n" not in err
    assert "12.5 s, after the clip's end (4 s)" in err and "Traceback" not in err
    exp = tmp_path / "exp"
    assert not (exp / "checkpoints").exists()

    with pytest.warns(UserWarning, match="ground truth repaired"):
        assert main(["train", "demo", *overrides, "data.ground_truth=repair"]) == 0
    m = json.loads((exp / "metrics.json").read_text())
    assert m["ground_truth_repairs"] == {str(bad_val): {"duplicates": 0, "clipped": 1, "dropped": 0},
                                         str(bad_test): {"duplicates": 1, "clipped": 0, "dropped": 0}}
    # the repaired test set scores as the clean one
    out = tmp_path / "clean"
    assert main(["test", "demo", *overrides, f"data.test_tsv={clean_test}", "data.ground_truth=repair",
                 "--ckpt", str(exp / "checkpoints" / "best.ckpt"), "--out", str(out)]) == 0
    clean = json.loads((out / "metrics.json").read_text())
    for key in ("event_f1", "segment_f1", "tagging_f1", "intersection_f1", "n_clips", "per_class"):
        assert m[key] == clean[key], key
    assert clean["ground_truth_repairs"] == {str(bad_val): {"duplicates": 0, "clipped": 1, "dropped": 0}}


@pytest.mark.parametrize("duration", [1.0, 7.342, 9.998, 10.0, 23.456, 59.999])
def test_an_offset_exactly_the_tolerance_past_the_end_is_accepted(tmp_path, duration):
    """1 ms past the duration is within the tolerance whatever the float rounding (9.999 after 9.998
    used to be refused)."""
    gt = write(tmp_path / "gt.tsv", HEADER + f"a.wav\t0.5\t{duration + 0.001:.3f}\tDog\n")
    events = tsv.read_ground_truth(gt, CLASSES, durations={"a.wav": duration}, ground_truth="refuse")[0]
    assert len(events["a.wav"]) == 1


@pytest.mark.parametrize("name", ["weak", "dcase2023_baseline", "dcase2023_baseline_fpd", "weak_fpd_ip"])
def test_the_desed_recipes_repair_desed_validation_ground_truth(name):
    """DESED's own validation.tsv (their test set) has 4 events ending after their 10 s clip
    (10.003-10.115 s): refused by default, they would stop the DESED recipes before training."""
    from dcase_fpd_plugin.recipe import load_recipe

    recipe = load_recipe(name)
    assert recipe["data"]["test_tsv"].endswith("validation/validation.tsv")
    assert recipe["data"]["ground_truth"] == "repair"
