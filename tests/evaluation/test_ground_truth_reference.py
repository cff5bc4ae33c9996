"""The metrics' reference checked (#27 item 4): a duplicated event row and an event past its clip's
duration used to change the metrics without a word; they are refused naming the file and line, or
(``ground_truth="repair"``) scored as the deduplicated / clipped ground truth and counted in
``ground_truth_repairs``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dcase_fpd_plugin.data.labels import LabelEncoder
from dcase_fpd_plugin.data.tsv import DataError
from dcase_fpd_plugin.evaluation import evaluate
from dcase_fpd_plugin.evaluation.reference import read_reference

HOP = 0.1
T = 100  # 10 s clips
AB = ["A", "B"]
HEADER = "filename\tonset\toffset\tevent_label\n"
GT = [("c1.wav", 1.0, 6.0, "A"), ("c1.wav", 2.0, 3.0, "B"), ("c2.wav", 0.5, 4.5, "B"), ("c2.wav", 7.0, 9.0, "A")]
# detections: c1's B event missed, an extra A in c2, so no metric is 0 or 1
PREDICTED = {"c1.wav": [(1.0, 6.0, "A")], "c2.wav": [(0.5, 4.5, "B"), (7.0, 9.5, "A"), (1.0, 2.0, "A")]}
SCORES = ("event_f1", "segment_f1", "tagging_f1", "intersection_f1", "event_f1_micro", "segment_f1_micro",
          "per_class", "n_clips")


def _tsv(path, rows):
    path.write_text(HEADER + "".join(f"{f}\t{on}\t{off}\t{label}\n" for f, on, off, label in rows))
    return path


def _durations(path):
    path.write_text("filename\tduration\nc1.wav\t10.0\nc2.wav\t10.0\n")
    return path


def _probs():
    enc = LabelEncoder(AB, HOP, T)
    frame = {f: enc.encode_strong(ev).astype(np.float32) for f, ev in PREDICTED.items()}
    return frame, {f: y.max(0) for f, y in frame.items()}


def _evaluate(gt, dur, **kw):
    frame, clip = _probs()
    return evaluate(frame, clip, frame_hop_s=HOP, classes=AB, ground_truth_tsv=gt, durations_tsv=dur,
                    median_window=1, psds=False, **kw)


def test_a_duplicated_reference_row_is_refused_naming_the_file_and_its_line(tmp_path):
    gt = _tsv(tmp_path / "gt.tsv", [*GT[:3], GT[1], GT[3]])
    dur = _durations(tmp_path / "dur.tsv")
    with pytest.raises(DataError, match=r"gt\.tsv:5: bad ground truth, 1 duplicate event row\(s\): "
                                        r"line 5 repeats line 3"):
        _evaluate(gt, dur)
    with pytest.raises(DataError, match=r"gt\.tsv:5: "):
        read_reference(gt, dur, AB)


def test_a_duplicated_reference_row_is_counted_once_with_repair(tmp_path):
    dur = _durations(tmp_path / "dur.tsv")
    clean = _evaluate(_tsv(tmp_path / "clean.tsv", GT), dur).metrics
    gt = _tsv(tmp_path / "gt.tsv", [*GT[:3], GT[1], GT[3]])
    with pytest.warns(UserWarning, match=r"gt\.tsv: ground truth repaired.*line 5 repeats line 3"):
        repaired = _evaluate(gt, dur, ground_truth="repair").metrics
    for key in SCORES:
        assert repaired[key] == clean[key], key
    assert repaired["ground_truth_repairs"] == {str(gt): {"duplicates": 1, "clipped": 0, "dropped": 0}}
    assert clean["ground_truth_repairs"] == {}


def test_an_event_past_the_duration_is_refused_naming_the_file_and_its_line(tmp_path):
    gt = _tsv(tmp_path / "gt.tsv", [*GT[:3], ("c2.wav", 7.0, 12.5, "A")])
    dur = _durations(tmp_path / "dur.tsv")
    with pytest.raises(DataError, match=r"gt\.tsv:5: bad ground truth, 1 event\(s\) ending after the clip's "
                                        r"duration: line 5: c2\.wav A ends at 12\.5 s, after the clip's end \(10 s\)"):
        _evaluate(gt, dur)


def test_an_event_past_the_duration_is_clipped_with_repair(tmp_path):
    dur = _durations(tmp_path / "dur.tsv")
    clipped = [*GT[:3], ("c2.wav", 7.0, 10.0, "A")]
    clean = _evaluate(_tsv(tmp_path / "clean.tsv", clipped), dur).metrics
    gt = _tsv(tmp_path / "gt.tsv", [*GT[:3], ("c2.wav", 7.0, 12.5, "A"), ("c1.wav", 10.0, 11.0, "B")])
    with pytest.warns(UserWarning, match=r"gt\.tsv: ground truth repaired.*1 event\(s\) clipped.*1 dropped"):
        repaired = _evaluate(gt, dur, ground_truth="repair").metrics
    for key in SCORES:
        assert repaired[key] == clean[key], key
    assert repaired["ground_truth_repairs"] == {str(gt): {"duplicates": 0, "clipped": 1, "dropped": 1}}


def test_a_dataframe_reference_is_checked_too(tmp_path):
    gt = pd.DataFrame([*GT, GT[0]], columns=["filename", "onset", "offset", "event_label"])
    dur = pd.DataFrame({"filename": ["c1.wav", "c2.wav"], "duration": 10.0})
    with pytest.raises(DataError, match=r"ground truth DataFrame row 4: bad ground truth, 1 duplicate event "
                                        r"row\(s\): row 4 repeats row 0"):
        read_reference(gt, dur, AB)
    with pytest.warns(UserWarning, match="ground truth DataFrame: ground truth repaired"):
        ref = read_reference(gt, dur, AB, ground_truth="repair")
    assert len(ref.events) == 4 and ref.repairs == {"<DataFrame>": {"duplicates": 1, "clipped": 0, "dropped": 0}}
