"""Post-processing tuned on validation (evaluation.tuning, evaluation.csebb): per-class median windows and
thresholds, events decoded from score frames as the LabelEncoder decodes them, the optional sebbs extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from dcase_fpd_plugin.data.labels import LabelEncoder
from dcase_fpd_plugin.evaluation.csebb import EXTRA_INSTALL, sebbs_missing
from dcase_fpd_plugin.evaluation.scores import scores_dataframe
from dcase_fpd_plugin.evaluation.tuning import (apply_class_median, events_from_frames, frames_from_events,
                                                tune_class_median)

HOP = 0.064
CLASSES = ["spiky", "clean", "absent"]


def _set(n: int, seed: int, dropout: float = 0.05):
    """Clips of 62 frames: class 'spiky' has one event (0.9) whose frames drop to ``dropout`` every third frame
    (a median window of 3+ frames joins them), 'clean' one clean event, 'absent' none (noise below 0.3)."""
    rng = np.random.default_rng(seed)
    scores, gt, names = {}, {}, {}
    for i in range(n):
        x = rng.random((62, 3)) * 0.3
        a, b = rng.integers(3, 20), rng.integers(35, 58)
        x[a:b, 0] = 0.9
        x[a + 1:b - 1:3, 0] = dropout  # dropouts inside the event
        c, d = rng.integers(3, 25), rng.integers(30, 58)
        x[c:d, 1] = 0.8
        key = f"clip{i}"
        scores[key] = scores_dataframe(x, HOP, CLASSES, duration_s=62 * HOP)
        gt[key] = [(round(a * HOP, 6), round(b * HOP, 6), "spiky"), (round(c * HOP, 6), round(d * HOP, 6), "clean")]
        names[key] = f"{key}.wav"
    return scores, gt, names


def test_class_median_chooses_per_class_on_validation_and_keeps_the_recipe_values_of_untunable_classes():
    scores, gt, _ = _set(8, 0)
    params = tune_class_median(scores, gt, CLASSES, default_window=7, default_threshold=[0.5, 0.5, 0.42])
    assert params["median_window"]["spiky"] > 1  # the dropouts need a filter
    assert params["val_event_f1"]["spiky"] == pytest.approx(1.0)
    assert params["val_event_f1"]["clean"] == pytest.approx(1.0)
    assert 0.3 <= params["threshold"]["clean"] < 0.8
    # no reference event of 'absent' on validation: the recipe's window and threshold, listed as untuned
    assert params["untuned"] == ["absent"]
    assert params["median_window"]["absent"] == 7 and params["threshold"]["absent"] == 0.42
    assert 7 in params["windows_tried"] and 1 in params["windows_tried"]


def test_tuned_parameters_carry_over_to_other_clips():
    val, val_gt, _ = _set(8, 0)
    test, test_gt, names = _set(6, 1)
    params = tune_class_median(val, val_gt, CLASSES, 7, 0.5)
    events, frames = apply_class_median(test, params, CLASSES, names)
    assert set(events["event_label"]) == {"spiky", "clean"}
    assert len(events) == 12  # one event of each class per clip: the dropouts were filtered away
    for key, frame in frames.items():  # the frames' times are those of the raw scores
        assert frame["onset"].tolist() == test[key]["onset"].tolist()


def test_events_from_frames_are_the_label_encoders_events():
    rng = np.random.default_rng(3)
    probs = rng.random((40, 3))
    duration = 39.5 * HOP  # the last frame is cut by the clip's end
    frame = scores_dataframe(probs, HOP, CLASSES, duration_s=duration)
    thresholds = [0.5, 0.3, 0.8]
    ours = events_from_frames({"a": frame}, CLASSES, thresholds, {"a": "a.wav"})
    encoder = LabelEncoder(CLASSES, HOP, 40)
    theirs = encoder.decode_strong(probs > np.asarray(thresholds), "a.wav", duration)
    assert [tuple(r) for r in ours.itertuples(index=False, name=None)] == [
        (e.filename, e.onset, e.offset, e.event_label) for e in theirs]


def test_frames_from_events_mark_the_events_extent():
    import pandas as pd

    events = pd.DataFrame([("a.wav", 0.5, 1.5, "clean"), ("a.wav", 2.0, 4.0, "spiky")],
                          columns=["filename", "onset", "offset", "event_label"])
    frames = frames_from_events(events, CLASSES, {"a": 4.0, "b": 3.0}, {"a": "a.wav", "b": "b.wav"})
    a = frames["a"]
    assert a["onset"].tolist() == [0.0, 0.5, 1.5, 2.0] and a["offset"].iloc[-1] == 4.0
    assert a["clean"].tolist() == [0, 1, 0, 0] and a["spiky"].tolist() == [0, 0, 0, 1]
    assert frames["b"][CLASSES].to_numpy().sum() == 0 and frames["b"]["offset"].iloc[-1] == 3.0


def test_sebbs_missing_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sebbs", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "sebbs.csebbs", None)
    message = sebbs_missing()
    assert message is not None and "\n" not in message
    assert EXTRA_INSTALL in message and "pip install 'dcase-fpd-plugin[sebbs]'" in message
    assert "'sebbs'" in message


def test_the_recipe_refuses_csebb_without_the_extra(monkeypatch):
    from dcase_fpd_plugin.recipe.loading import load_recipe
    from dcase_fpd_plugin.recipe.schema import RecipeError

    monkeypatch.setitem(sys.modules, "sebbs", None)
    monkeypatch.setitem(sys.modules, "sebbs.csebbs", None)
    with pytest.raises(RecipeError, match=r"eval.postprocessing: csebb.*pip install 'dcase-fpd-plugin\[sebbs\]'"):
        load_recipe(None, ["eval.postprocessing=csebb"])
    assert load_recipe(None, ["eval.postprocessing=class_median"])["eval"]["postprocessing"] == "class_median"
    assert load_recipe(None)["eval"]["postprocessing"] == "median"  # today's behaviour by default
    with pytest.raises(RecipeError, match="postprocessing"):
        load_recipe(None, ["eval.postprocessing=mean"])


def test_the_core_never_imports_sebbs():
    import subprocess

    code = ("import sys, dcase_fpd_plugin.evaluation, dcase_fpd_plugin.evaluation.rescoring, "
            "dcase_fpd_plugin.evaluation.csebb, dcase_fpd_plugin.training.postprocess; "
            "print(any(m == 'sebbs' or m.startswith('sebbs.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(sebbs_missing() is not None, reason="the optional sebbs extra is not installed")
def test_csebb_tunes_on_validation_and_detects_the_events():
    from dcase_fpd_plugin.evaluation.csebb import apply_csebb, tune_csebb

    # shallow dropouts (0.9 -> 0.75): within the merge thresholds, the boxes join across them
    val, val_gt, _ = _set(8, 0, dropout=0.75)
    test, _, names = _set(4, 1, dropout=0.75)
    durations = {k: 62 * HOP for k in val}
    params = tune_csebb(val, val_gt, durations, CLASSES, 0.5)
    assert params["untuned"]["cbf"] == ["absent"]
    assert params["val_values"]["cbf"]["clean"] == pytest.approx(1.0)
    assert params["val_values"]["cbf"]["spiky"] == pytest.approx(1.0)
    assert set(params["cbf"]) == {"step_filter_length", "merge_threshold_abs", "merge_threshold_rel",
                                  "detection_threshold"}
    events, boxes = apply_csebb(test, params, CLASSES, {k: 62 * HOP for k in test}, names)
    assert boxes == {}  # no PSDS asked for
    assert set(events["event_label"]) == {"spiky", "clean"} and (events["offset"] > events["onset"]).all()
    assert len(events) == 8  # one box of each class per clip
