"""Per-class median windows on every post-processing path, refused at load when they do not fit the
classes; metrics on a subset of the model's classes (a 27-class model scored on DESED's 10)."""

import json

import numpy as np
import pandas as pd
import pytest

from dcase_fpd_plugin.evaluation import evaluate
from dcase_fpd_plugin.evaluation.metrics import predict_events
from dcase_fpd_plugin.evaluation.postprocessing import StitchedProbs
from dcase_fpd_plugin.recipe import load_recipe
from dcase_fpd_plugin.recipe.schema import RecipeError, TYPES

HOP = 0.1  # seconds per frame


def _blips(n_frames, n_classes, starts, length):
    """(T, C) probabilities: 1.0 on ``length`` frames from each start, in every class."""
    x = np.zeros((n_frames, n_classes), np.float32)
    for s in starts:
        x[s:s + length] = 1.0
    return x


def _events(predictions):
    return sorted((f, round(on, 3), round(off, 3), c) for f, on, off, c in predictions.itertuples(index=False))


def test_each_class_gets_its_own_window():
    """A 2-frame blip in both classes: window 1 keeps it (A), window 5 removes it (B). One window for
    both would keep it in both or in neither."""
    probs = {"c.wav": _blips(100, 2, [40], 2)}
    predictions, scores = predict_events(probs, frame_hop_s=HOP, classes=["A", "B"], durations_s={"c.wav": 10.0},
                                         median_window=[1, 5])
    assert _events(predictions) == [("c.wav", 4.0, 4.2, "A")]
    assert scores["c"]["A"].max() == 1.0 and scores["c"]["B"].max() == 0.0


def test_per_class_windows_reach_the_metrics_and_the_windowed_long_file_path():
    """evaluate() with a long file stitched from overlapping windows (the validation/test path of files
    longer than a clip): the per-class windows are applied to the whole file, each class its own."""
    store = StitchedProbs({"long.wav#0": ("long.wav", 0, 150), "long.wav#1": ("long.wav", 50, 150)})
    whole = _blips(150, 2, [30, 120], 2)  # 2-frame blips at 3.0 s (first window only) and 12.0 s (second only)
    whole[60:90, :] = 1.0                  # and a 3 s event where the windows overlap, kept by every window
    store.add("long.wav#0", whole[:100], whole[:100].max(0))
    store.add("long.wav#1", whole[50:], whole[50:].max(0))
    files = store.files()
    np.testing.assert_array_equal(files["long.wav"]["frame"], whole)
    gt = pd.DataFrame([("long.wav", 6.0, 9.0, "A"), ("long.wav", 6.0, 9.0, "B")],
                      columns=["filename", "onset", "offset", "event_label"])
    durations = pd.DataFrame({"filename": ["long.wav"], "duration": [15.0]})
    result = evaluate({k: v["frame"] for k, v in files.items()}, {k: v["clip"] for k, v in files.items()},
                      frame_hop_s=HOP, classes=["A", "B"], ground_truth_tsv=gt, durations_tsv=durations,
                      median_window=[5, 1], psds=False)
    assert _events(result.predictions) == [("long.wav", 3.0, 3.2, "B"), ("long.wav", 6.0, 9.0, "A"),
                                           ("long.wav", 6.0, 9.0, "B"), ("long.wav", 12.0, 12.2, "B")]
    m = result.metrics
    assert m["per_class"]["event_f1"]["A"] == pytest.approx(1.0)
    assert m["per_class"]["event_f1"]["B"] == pytest.approx(0.5)  # 1 hit, 2 false alarms
    assert m["median_window"] == [5, 1]


def test_recipe_takes_one_window_per_class_and_refuses_a_wrong_list():
    assert set(TYPES["eval.median_window"]) == {int, list}
    ten = [3, 9, 9, 5, 5, 5, 9, 7, 11, 9]
    assert load_recipe(None, [f"eval.median_window={ten}"])["eval"]["median_window"] == ten
    three = ["data.classes=[a, b, c]", "eval.median_window=[1, 3, 5]"]
    assert load_recipe(None, three)["eval"]["median_window"] == [1, 3, 5]
    assert load_recipe(None, ["eval.median_window=9"])["eval"]["median_window"] == 9
    with pytest.raises(RecipeError, match=r"'eval.median_window' lists 9 windows for the 10 classes of 'data.classes'"):
        load_recipe(None, [f"eval.median_window={ten[:9]}"])
    with pytest.raises(RecipeError, match=r"'eval.median_window' lists 3 windows for the 2 classes"):
        load_recipe(None, ["data.classes=[a, b]", "eval.median_window=[1, 3, 5]"])
    for bad, shown in (("0", "0"), ("-3", "-3"), ("4", "4"), ("true", "True"), ("2.5", "2.5")):
        with pytest.raises(RecipeError, match=rf"'eval.median_window': the window of class 'b' must be an odd "
                                              rf"number of frames >= 1, got {shown}"):
            load_recipe(None, ["data.classes=[a, b, c]", f"eval.median_window=[1, {bad}, 3]"])
    with pytest.raises(RecipeError, match=r"'eval.median_window' must be int or list"):
        load_recipe(None, ["eval.median_window=abc"])


# --------------------------------------------------------------------------- scored classes

GT = [("c1.wav", 1.0, 4.0, "A"), ("c1.wav", 5.0, 7.0, "B"), ("c2.wav", 0.5, 3.0, "B"),
      ("c2.wav", 6.0, 9.5, "A"), ("c3.wav", 2.0, 8.0, "A")]


def _noisy(n_classes, seed=0):
    """Frame probabilities of the reference events plus noise (both extra and missed detections)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in ("c1.wav", "c2.wav", "c3.wav"):
        y = np.zeros((100, n_classes))
        for f, on, off, label in GT:
            if f == name:
                y[int(on / HOP):int(off / HOP), "AB".index(label)] = 1.0
        out[name] = (1 / (1 + np.exp(-(3 * (2 * y - 1) + 2.2 * rng.standard_normal(y.shape))))).astype(np.float32)
    return out


def test_a_subset_of_classes_scores_as_a_model_of_those_classes():
    """A 3-class model (A, B and X, X's scores high everywhere) scored on A and B gives the numbers of a
    2-class model with the same A and B scores: with a reference of A and B only (DESED's validation set
    for a 27-class model) and with one that also holds X's events (left out)."""
    three = _noisy(3)
    for p in three.values():
        p[:, 2] = 0.9
    two = {f: p[:, :2].copy() for f, p in three.items()}
    columns = ["filename", "onset", "offset", "event_label"]
    gt, gt_x = pd.DataFrame(GT, columns=columns), pd.DataFrame([*GT, ("c1.wav", 8.0, 9.0, "X")], columns=columns)
    durations = pd.DataFrame({"filename": ["c1.wav", "c2.wav", "c3.wav"], "duration": 10.0})
    common = dict(frame_hop_s=HOP, durations_tsv=durations, psds=True)
    ref = evaluate(two, {f: p.max(0) for f, p in two.items()}, classes=["A", "B"], ground_truth_tsv=gt,
                   median_window=[3, 5], threshold=[0.5, 0.6], **common)
    three_kw = dict(classes=["A", "B", "X"], median_window=[3, 5, 7], threshold=[0.5, 0.6, 0.5], **common)
    clip3 = {f: p.max(0) for f, p in three.items()}
    keys = ("event_f1", "segment_f1", "tagging_f1", "intersection_f1", "psds1", "psds2", "event_f1_micro",
            "segment_f1_micro", "event_f1_zero_filled", "segment_f1_zero_filled", "n_predicted_events",
            "per_class", "classes_without_reference", "undetected_classes", "n_undetected_classes", "n_psds_clips",
            "n_clips")
    for reference in (gt, gt_x):
        sub = evaluate(three, clip3, ground_truth_tsv=reference, scored_classes=["B", "A"], **three_kw)
        assert sub.metrics["scored_classes"] == ["A", "B"]
        for key in keys:
            assert sub.metrics[key] == ref.metrics[key], key
        # the outputs keep the model's every class
        assert "X" in set(sub.predictions["event_label"]) and "X" in sub.scores["c1"].columns
        json.dumps(sub.metrics, allow_nan=False)
    m = ref.metrics
    assert 0.2 < m["event_f1"] < 0.9 and 0.2 < m["intersection_f1"] < 1 and m["psds1"] > 0.2  # real numbers
    # scored, X changes the numbers: its false alarms, and with its events its own F1s in every macro
    full = evaluate(three, clip3, ground_truth_tsv=gt, **three_kw).metrics
    assert full["scored_classes"] == ["A", "B", "X"] and full["event_f1_micro"] < m["event_f1_micro"]
    full_x = evaluate(three, clip3, ground_truth_tsv=gt_x, **three_kw).metrics
    for key in ("event_f1", "segment_f1", "tagging_f1", "intersection_f1", "psds1"):
        assert full_x[key] != m[key], key


def test_scored_classes_must_be_classes_of_the_model():
    frame = {"c.wav": np.zeros((100, 2), np.float32)}
    kw = dict(frame_hop_s=HOP, classes=["A", "B"], psds=False,
              ground_truth_tsv=pd.DataFrame([("c.wav", 1.0, 2.0, "A")], columns=["filename", "onset", "offset",
                                                                                  "event_label"]),
              durations_tsv=pd.DataFrame({"filename": ["c.wav"], "duration": [10.0]}))
    with pytest.raises(ValueError, match=r"scored_classes \['Z'\] are not classes of the model"):
        evaluate(frame, {"c.wav": np.zeros(2)}, scored_classes=["A", "Z"], **kw)
    with pytest.raises(ValueError, match="non-empty"):
        evaluate(frame, {"c.wav": np.zeros(2)}, scored_classes=[], **kw)
    with pytest.raises(ValueError, match=r"clip_probs\['c.wav'\] must hold 2 values"):
        evaluate(frame, {"c.wav": np.zeros(3)}, scored_classes=["A"], **kw)
    # a reference event of a class not scored is left out (B not scored: A's F1 only)
    gt = pd.DataFrame([("c.wav", 1.0, 2.0, "A"), ("c.wav", 3.0, 4.0, "B")],
                      columns=["filename", "onset", "offset", "event_label"])
    probs = np.zeros((100, 2), np.float32)
    probs[10:20, 0] = 1.0
    m = evaluate({"c.wav": probs}, {"c.wav": probs.max(0)}, scored_classes=["A"],
                 **{**kw, "ground_truth_tsv": gt}, median_window=1).metrics
    assert m["event_f1"] == pytest.approx(1.0) and m["event_f1_micro"] == pytest.approx(1.0)
    assert list(m["per_class"]["event_f1"]) == ["A"]
