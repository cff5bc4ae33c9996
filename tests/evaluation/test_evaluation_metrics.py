"""DCASE metrics: known values, the nanmean trap, clip bookkeeping, output files."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import sed_eval
import sed_scores_eval

from dcase_fpd_plugin.data.labels import LabelEncoder
from dcase_fpd_plugin.evaluation import evaluate, format_metrics_table, read_scores, write_outputs

HOP = 0.1  # seconds per frame: events on a 0.1 s grid decode exactly
T = 100  # frames: 10 s clips
AB = ["A", "B"]


def _gt(rows):
    return pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])


def _durations(filenames, seconds=10.0):
    return pd.DataFrame({"filename": list(filenames), "duration": seconds})


def _probs_from_events(events_by_clip, classes, noise=0.0, seed=0):
    """Frame probabilities equal to the frame labels of the given events (+ optional noise);
    clip probabilities = max over time."""
    rng = np.random.default_rng(seed)
    enc = LabelEncoder(classes, HOP, T)
    frame, clip = {}, {}
    for f, events in events_by_clip.items():
        y = enc.encode_strong(events)
        if noise:
            y = 1 / (1 + np.exp(-(3 * (2 * y - 1) + noise * rng.standard_normal(y.shape))))
        frame[f] = y.astype(np.float32)
        clip[f] = frame[f].max(0)
    return frame, clip


def _run(gt_rows, predicted, classes=AB, filenames=None, **kw):
    gt = _gt(gt_rows)
    filenames = filenames or sorted(set(gt["filename"]) | set(predicted))
    frame, clip = _probs_from_events(predicted, classes)
    kw.setdefault("median_window", 1)
    kw.setdefault("psds", False)
    return evaluate(
        frame, clip, frame_hop_s=HOP, classes=classes, ground_truth_tsv=gt,
        durations_tsv=_durations(filenames), **kw,
    )


GT_TWO_CLIPS = [
    ("c1.wav", 1.0, 6.0, "A"),
    ("c1.wav", 2.0, 3.0, "B"),
    ("c2.wav", 0.5, 4.5, "B"),
    ("c2.wav", 7.0, 9.0, "A"),
]


def _events_of(rows):
    out = {}
    for f, on, off, label in rows:
        out.setdefault(f, []).append((on, off, label))
    return out


def test_perfect_predictions_score_one():
    r = _run(GT_TWO_CLIPS, _events_of(GT_TWO_CLIPS), psds=True)
    m = r.metrics
    for key in ["event_f1", "segment_f1", "tagging_f1", "intersection_f1", "event_f1_micro",
                "segment_f1_micro", "event_f1_zero_filled", "segment_f1_zero_filled"]:
        assert m[key] == pytest.approx(1.0), key
    assert m["psds1"] > 0.99 and m["psds2"] > 0.99
    assert m["n_undetected_classes"] == 0 and m["n_clips"] == 2
    assert sorted(map(tuple, r.predictions.to_numpy().tolist())) == sorted(GT_TWO_CLIPS)
    assert set(r.scores) == {"c1", "c2"}


@pytest.mark.parametrize(
    "pred_a, pred_b, f_a, f_b",
    [
        ((1.1, 6.9), (2.1, 3.1), 1.0, 1.0),  # onsets within 0.2 s; A's offset within 20 % of 5 s
        ((1.1, 7.1), (2.1, 3.1), 0.0, 1.0),  # A's offset 1.1 s late > max(0.2, 20 % * 5 s)
        ((1.3, 6.0), (2.1, 3.1), 0.0, 1.0),  # A's onset 0.3 s late > 200 ms collar
        ((1.0, 6.0), (2.0, 3.3), 1.0, 0.0),  # 1 s event: offset tolerance is the 200 ms collar
        ((1.0, 6.0), (2.3, 3.0), 1.0, 0.0),  # B's onset 0.3 s late
    ],
)
def test_event_f1_honours_onset_collar_and_offset_tolerance(pred_a, pred_b, f_a, f_b):
    gt = [("c1.wav", 1.0, 6.0, "A"), ("c1.wav", 2.0, 3.0, "B")]
    r = _run(gt, {"c1.wav": [(*pred_a, "A"), (*pred_b, "B")]})
    assert r.metrics["per_class"]["event_f1"] == {"A": pytest.approx(f_a), "B": pytest.approx(f_b)}
    assert r.metrics["event_f1"] == pytest.approx((f_a + f_b) / 2)
    # micro: 2 predictions, 2 references, f_a + f_b hits
    assert r.metrics["event_f1_micro"] == pytest.approx((f_a + f_b) / 2)


def test_undetected_class_nanmean_trap_and_zero_filled_macro():
    gt = [("c1.wav", 1.0, 6.0, "A"), ("c1.wav", 2.0, 3.0, "B")]
    r = _run(gt, {"c1.wav": [(1.0, 6.0, "A")]})  # B never output
    m = r.metrics
    # sed_eval's segment-based macro is a nanmean: B (precision 0/0) silently leaves it
    assert m["segment_f1"] == pytest.approx(1.0)
    assert m["per_class"]["segment_f1"]["B"] is None
    assert m["segment_f1_zero_filled"] == pytest.approx(0.5)
    # event-based uses DESED_task's empty_system_output_handling="zero_score": B counts as 0
    assert m["event_f1"] == pytest.approx(0.5)
    assert m["event_f1_zero_filled"] == pytest.approx(0.5)
    assert m["n_undetected_classes"] == 1 and m["undetected_classes"] == ["B"]
    assert m["tagging_f1"] == pytest.approx(0.5)
    assert m["intersection_f1"] == pytest.approx(0.5)


def test_class_without_reference_events_is_left_out_of_every_macro():
    classes = ["A", "B", "C"]
    gt = [("c1.wav", 1.0, 6.0, "A"), ("c1.wav", 2.0, 3.0, "B")]
    pred = {"c1.wav": [(1.0, 6.0, "A"), (2.0, 3.0, "B"), (7.0, 8.0, "C")]}  # C: a false alarm
    r = _run(gt, pred, classes=classes, psds=True)
    m = r.metrics
    assert m["classes_without_reference"] == ["C"]
    for key in ["event_f1", "segment_f1", "tagging_f1", "intersection_f1",
                "event_f1_zero_filled", "segment_f1_zero_filled"]:
        assert m[key] == pytest.approx(1.0), key
    for key in ["event_f1", "segment_f1", "tagging_f1", "intersection_f1"]:
        assert m["per_class"][key]["C"] is None, key
    assert m["psds1"] > 0.99
    assert m["event_f1_micro"] == pytest.approx(0.8)  # 2 hits, 3 outputs, 2 references
    assert list(r.scores["c1"].columns) == ["onset", "offset", *classes]  # files keep every class


def test_clip_without_reference_events_counts_false_positives():
    gt = [("c1.wav", 1.0, 6.0, "A")]
    pred = {"c1.wav": [(1.0, 6.0, "A")], "empty.wav": [(2.0, 4.0, "A")]}
    r = _run(gt, pred, filenames=["c1.wav", "empty.wav"], classes=["A"])
    m = r.metrics
    assert m["n_clips"] == 2
    assert m["event_f1"] == pytest.approx(2 / 3)  # precision 1/2, recall 1
    assert m["tagging_f1"] == pytest.approx(2 / 3)
    assert m["intersection_f1"] == pytest.approx(2 / 3)
    # the same clip listed in the ground truth with an empty label row
    r2 = _run(gt + [("empty.wav", np.nan, np.nan, np.nan)], pred, classes=["A"])
    assert r2.metrics["event_f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("tagging_threshold, f_a, f_b", [(0.5, 2 / 3, 2 / 3), (0.3, 0.8, 1.0)])
def test_tagging_f1_hand_computed(tagging_threshold, f_a, f_b):
    gt = [("c1.wav", 1.0, 2.0, "A"), ("c2.wav", 1.0, 2.0, "A"), ("c2.wav", 3.0, 4.0, "B"),
          ("c4.wav", 1.0, 2.0, "B")]  # c3: no events
    filenames = ["c1.wav", "c2.wav", "c3.wav", "c4.wav"]
    frame, _ = _probs_from_events({f: [] for f in filenames}, AB)
    clip = {"c1.wav": [0.6, 0.2], "c2.wav": [0.4, 0.7], "c3.wav": [0.5, 0.1], "c4.wav": [0.2, 0.35]}
    r = evaluate(frame, clip, frame_hop_s=HOP, classes=AB, ground_truth_tsv=_gt(gt),
                 durations_tsv=_durations(filenames), tagging_threshold=tagging_threshold, psds=False)
    # 0.5: A tags c1 (c3's 0.5 is not above) -> TP 1, FN 1; B tags c2 -> TP 1, FN 1
    # 0.3: A tags c1, c2, c3 -> TP 2, FP 1; B tags c2, c4 -> TP 2
    assert r.metrics["per_class"]["tagging_f1"] == {"A": pytest.approx(f_a), "B": pytest.approx(f_b)}
    assert r.metrics["tagging_f1"] == pytest.approx((f_a + f_b) / 2)


def test_overlapping_reference_events_of_one_class_are_accepted():
    gt = [("c1.wav", 1.0, 4.0, "A"), ("c1.wav", 3.0, 6.0, "A"), ("c1.wav", 6.0, 7.0, "A")]
    r = _run(gt, {"c1.wav": [(1.0, 7.0, "A")]}, classes=["A"], psds=True)
    assert r.metrics["intersection_f1"] == pytest.approx(1.0)  # one merged stretch, found
    assert r.metrics["psds1"] > 0.99


def test_missing_and_extra_clips():
    pred = _events_of(GT_TWO_CLIPS)
    del pred["c2.wav"]
    with pytest.raises(ValueError, match=r"missing from frame_probs.*c2\.wav"):
        _run(GT_TWO_CLIPS, pred, filenames=["c1.wav", "c2.wav"])
    r = _run(GT_TWO_CLIPS, pred, filenames=["c1.wav", "c2.wav"], allow_missing=True)
    assert r.metrics["n_missing_clips"] == 1 and r.metrics["n_clips"] == 1
    assert r.metrics["event_f1"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"not in the ground truth.*stray\.wav"):
        _run(GT_TWO_CLIPS, {**_events_of(GT_TWO_CLIPS), "stray.wav": []}, filenames=["c1.wav", "c2.wav"])


def test_ground_truth_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown class"):
        _run([("c1.wav", 1.0, 2.0, "Z")], {"c1.wav": []})
    gt = _gt(GT_TWO_CLIPS)
    frame, clip = _probs_from_events(_events_of(GT_TWO_CLIPS), AB)
    with pytest.raises(ValueError, match=r"no duration.*c2\.wav"):
        evaluate(frame, clip, frame_hop_s=HOP, classes=AB, ground_truth_tsv=gt,
                 durations_tsv=_durations(["c1.wav"]), psds=False)


def test_ground_truth_file_errors_name_file_and_line(tmp_path):
    gt_tsv, dur_tsv = tmp_path / "gt.tsv", tmp_path / "dur.tsv"
    gt_tsv.write_text("filename\tonset\toffset\tevent_label\nc1.wav\t1.0\t2.0\tA\nc1.wav\t3.0\t4.0\tZ\n")
    dur_tsv.write_text("filename\tduration\nc1.wav\t10.0\n")
    frame, clip = _probs_from_events({"c1.wav": []}, AB)
    with pytest.raises(ValueError, match=r"gt\.tsv:3: unknown class 'Z'"):
        evaluate(frame, clip, frame_hop_s=HOP, classes=AB, ground_truth_tsv=gt_tsv,
                 durations_tsv=dur_tsv, psds=False)


def _random_set(n_clips=30, seed=0):
    rng = np.random.default_rng(seed)
    classes = ["Alarm", "Dog", "Speech", "Cat"]
    rows, events = [], {}
    for i in range(n_clips):
        f = f"Y{i:03d}_0.000_10.000.wav"
        events[f] = []
        for c in rng.choice(len(classes), size=rng.integers(0, 3), replace=False):
            on = round(rng.uniform(0, 7), 3)
            events[f].append((on, round(min(10.0, on + rng.uniform(0.3, 3)), 3), classes[c]))
        rows += [(f, *e) for e in events[f]] or [(f, np.nan, np.nan, np.nan)]
    return classes, rows, events


def test_output_files_rescore_to_the_same_metrics(tmp_path):
    classes, rows, events = _random_set()
    frame, clip = _probs_from_events(events, classes, noise=2.5)
    gt_tsv, dur_tsv = tmp_path / "gt.tsv", tmp_path / "dur.tsv"
    _gt(rows).to_csv(gt_tsv, sep="\t", index=False)
    _durations(events).to_csv(dur_tsv, sep="\t", index=False)
    r = evaluate(frame, clip, frame_hop_s=HOP, classes=classes, ground_truth_tsv=gt_tsv,
                 durations_tsv=dur_tsv, median_window=5)
    assert 0.05 < r.metrics["event_f1"] < 0.95  # a non-trivial case
    exp = tmp_path / "exp"
    write_outputs(r, exp)

    assert json.loads((exp / "metrics.json").read_text()) == r.metrics

    # event F1 from predictions.tsv with plain sed_eval, DCASE settings, equals metrics.json's
    pred = pd.read_csv(exp / "predictions.tsv", sep="\t")
    assert list(pred.columns) == ["filename", "onset", "offset", "event_label"]
    ref = pd.read_csv(gt_tsv, sep="\t").dropna()
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes, t_collar=0.2, percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    for f in events:
        metric.evaluate(ref[ref.filename == f].to_dict("records"), pred[pred.filename == f].to_dict("records"))
    sed_eval_f1 = metric.results()["class_wise_average"]["f_measure"]["f_measure"]
    assert sed_eval_f1 == pytest.approx(json.loads((exp / "metrics.json").read_text())["event_f1"], abs=1e-12)

    # PSDS1 from the score files and the TSVs, with sed_scores_eval alone, the clips without
    # reference events dropped as DESED_task's sed_trainer does ("drop audios without events")
    scores = read_scores(exp / "scores")
    assert scores.keys() == r.scores.keys()
    ground_truth = sed_scores_eval.io.read_ground_truth_events(str(gt_tsv))
    ground_truth = {k: v for k, v in ground_truth.items() if len(v) > 0}
    durations = sed_scores_eval.io.read_audio_durations(str(dur_tsv))
    durations = {k: durations[k] for k in ground_truth}
    assert len(ground_truth) < len(scores)  # the random set has clips without events
    psds1, *_ = sed_scores_eval.intersection_based.psds(
        {k: scores[k] for k in ground_truth}, ground_truth, durations,
        dtc_threshold=0.7, gtc_threshold=0.7, alpha_ct=0, alpha_st=1, max_efpr=100,
    )
    assert psds1 == pytest.approx(r.metrics["psds1"], abs=1e-9)
    # psds_clips: all scores every clip, as sed_scores_eval on the whole files
    psds1_all, *_ = sed_scores_eval.intersection_based.psds(
        str(exp / "scores"), str(gt_tsv), str(dur_tsv),
        dtc_threshold=0.7, gtc_threshold=0.7, alpha_ct=0, alpha_st=1, max_efpr=100,
    )
    r_all = evaluate(frame, clip, frame_hop_s=HOP, classes=classes, ground_truth_tsv=gt_tsv,
                     durations_tsv=dur_tsv, median_window=5, psds_clips="all")
    assert psds1_all == pytest.approx(r_all.metrics["psds1"], abs=1e-9)
    assert psds1_all != pytest.approx(psds1, abs=1e-6)

    # a second run on fewer clips replaces the scores folder whole: no stale clip files
    keep = sorted(events)[:5]
    r2 = evaluate({f: frame[f] for f in keep}, clip, frame_hop_s=HOP, classes=classes,
                  ground_truth_tsv=_gt([x for x in rows if x[0] in keep]),
                  durations_tsv=_durations(keep), psds=False)
    write_outputs(r2, exp)
    assert sorted(p.name for p in (exp / "scores").iterdir()) == sorted(f[:-4] + ".tsv" for f in keep)
    assert not [p for p in exp.iterdir() if p.name.startswith(".")]
    assert json.loads((exp / "metrics.json").read_text())["psds1"] is None


def test_metrics_are_strict_json_and_print_as_a_table():
    r = _run([("c1.wav", 1.0, 6.0, "A"), ("c1.wav", 2.0, 3.0, "B")], {"c1.wav": [(1.0, 6.0, "A")]})
    text = json.dumps(r.metrics, allow_nan=False)
    assert "NaN" not in text
    table = format_metrics_table(r.metrics)
    assert "PSDS1" in table and "event-based F1 (macro)" in table
    assert "classes never detected (1): B" in table
    line_b = next(line for line in table.splitlines() if line.startswith("B "))
    assert "0.000" in line_b and "-" in line_b  # event F1 0, segment F1 undefined
    assert math.isclose(r.metrics["threshold"], 0.5)


def test_per_class_threshold_and_median_window():
    r = _run(GT_TWO_CLIPS, _events_of(GT_TWO_CLIPS), threshold=[0.5, 1.0], median_window=[1, 3])
    m = r.metrics
    assert set(r.predictions["event_label"]) == {"A"}  # B's frames (p = 1) are not above 1.0
    assert m["per_class"]["intersection_f1"] == {"A": pytest.approx(1.0), "B": pytest.approx(0.0)}
    assert m["per_class"]["event_f1"] == {"A": pytest.approx(1.0), "B": pytest.approx(0.0)}
    assert m["threshold"] == [0.5, 1.0] and m["median_window"] == [1, 3]
    json.dumps(m, allow_nan=False)


def test_psds_leaves_clips_without_reference_events_out_as_desed_task():
    """Two clips with events, one without whose detection is a false positive: DESED_task's PSDS
    (clips without reference events dropped) does not see it, ``psds_clips: all`` does."""
    gt = [("c1.wav", 1.0, 6.0, "A"), ("c2.wav", 2.0, 5.0, "B")]
    pred = {"c1.wav": [(1.0, 6.0, "A")], "c2.wav": [(2.0, 5.0, "B")], "empty.wav": [(1.0, 9.0, "A")]}
    files = ["c1.wav", "c2.wav", "empty.wav"]
    default = _run(gt, pred, filenames=files, psds=True).metrics
    every = _run(gt, pred, filenames=files, psds=True, psds_clips="all").metrics
    without = _run(gt, {f: pred[f] for f in ("c1.wav", "c2.wav")}, filenames=["c1.wav", "c2.wav"], psds=True).metrics
    assert default["psds_clips"] == "with_events" and default["n_psds_clips"] == 2
    assert every["psds_clips"] == "all" and every["n_psds_clips"] == 3
    assert default["psds1"] == pytest.approx(without["psds1"]) and default["psds2"] == pytest.approx(without["psds2"])
    assert every["psds1"] < default["psds1"]
    # the other metrics still score every clip (the empty clip's detection is a false positive)
    assert default["event_f1"] == every["event_f1"] < without["event_f1"]
    with pytest.raises(ValueError, match="psds_clips"):
        _run(gt, pred, filenames=files, psds=True, psds_clips="some")
