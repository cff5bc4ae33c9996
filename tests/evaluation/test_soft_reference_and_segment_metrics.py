"""MAESTRO-style soft-label TSVs, the hard reference DESED_task builds from them, segment-based metrics
(mpAUC, mAUC, best-threshold F1) and the DCASE 2024 objective and test figures."""

import json
import math

import numpy as np
import pytest
import sed_scores_eval

from dcase_fpd_plugin.data.tsv import DataError
from dcase_fpd_plugin.evaluation import (dcase2024_objective, dcase2024_test_metrics, hard_reference,
                                         read_hard_reference, read_soft_tsv, scores_dataframe, segment_mean_scores,
                                         segment_metrics)

CLASSES = ["people talking", "footsteps", "car", "birds_singing"]


def _write(path, text):
    path.write_text(text.replace("|", "\t"))
    return path


SOFT = """filename|onset|offset|event_label|score
rec_a.wav|0|1|people talking|0.9
rec_a.wav|1|2|people talking|0.6
rec_a.wav|2|3|people talking|0.5
rec_a.wav|3|4|people talking|0.75
rec_a.wav|3.5|5|people talking|1.0
rec_a.wav|0|1|footsteps|0.2
rec_a.wav|6|7|car|1
rec_b.wav|2|3|footsteps|0.8
rec_c.wav|0|1|footsteps|0.4
rec_d.wav||||
"""


def test_read_soft_tsv_with_either_score_column(tmp_path):
    soft = read_soft_tsv(_write(tmp_path / "s.tsv", SOFT), CLASSES)
    assert list(soft) == ["rec_a.wav", "rec_b.wav", "rec_c.wav", "rec_d.wav"]
    assert soft["rec_a.wav"][0] == (0.0, 1.0, "people talking", 0.9) and len(soft["rec_a.wav"]) == 7
    assert soft["rec_d.wav"] == []
    # DESED_task's column name, columns in another order
    other = _write(tmp_path / "c.tsv", "event_label|filename|onset|offset|confidence\ncar|x.wav|1.5|2|0.25\n")
    assert read_soft_tsv(other, CLASSES) == {"x.wav": [(1.5, 2.0, "car", 0.25)]}


@pytest.mark.parametrize("text, message", [
    ("filename|onset|offset|event_label|prob\n", r"s.tsv:1: a soft-label TSV needs one 'score' \(or 'confidence'\) column.*'prob'"),
    ("filename|onset|offset|event_label\n", r"s.tsv:1: a soft-label TSV needs one 'score'"),
    ("filename|onset|offset|event_label|score|confidence\n", r"s.tsv:1: a soft-label TSV needs one 'score'"),
    ("", r"s.tsv:1: empty file"),
    ("filename|onset|offset|event_label|score\na.wav|0|1|car|0.5\na.wav|2|1|car|0.5\n",
     r"s.tsv:3: onset 2.0 >= offset 1.0 for 'a.wav'"),
    ("filename|onset|offset|event_label|score\na.wav|0|1|car|1.5\n", r"s.tsv:2: score 1.5 outside \[0, 1\]"),
    ("filename|onset|offset|event_label|confidence\na.wav|0|1|car|-0.1\n", r"s.tsv:2: confidence -0.1 outside"),
    ("filename|onset|offset|event_label|score\na.wav|0|1|tram|0.5\n", r"s.tsv:2: unknown class 'tram'"),
    ("filename|onset|offset|event_label|score\na.wav|0|x|car|0.5\n", r"s.tsv:2: offset 'x' is not a number"),
    ("filename|onset|offset|event_label|score\na.wav|-1|1|car|0.5\n", r"s.tsv:2: negative onset"),
    ("filename|onset|offset|event_label|score\na.wav|0|1|car|nan\n", r"s.tsv:2: score 'nan' is not finite"),
    ("filename|onset|offset|event_label|score\n|0|1|car|0.5\n", r"s.tsv:2: empty filename"),
    ("filename|onset|offset|event_label|score\na.wav|0|1|car|0.5|extra\n", r"s.tsv:2: 6 fields"),
])
def test_bad_soft_tsvs_are_refused_naming_file_and_line(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_soft_tsv(_write(tmp_path / "s.tsv", text), CLASSES)


def test_hard_reference_as_desed_task_builds_it(tmp_path):
    soft = read_soft_tsv(_write(tmp_path / "s.tsv", SOFT), CLASSES)
    ref = hard_reference(soft)
    # score > 0.5 only (the 0.5 segment is out), touching and overlapping segments of a class merged,
    # keyed by audio id, files without an event above 0.5 left out, durations = the last offset
    assert ref.events == {"rec_a": [(6.0, 7.0, "car"), (0.0, 2.0, "people talking"), (3.0, 5.0, "people talking")],
                          "rec_b": [(2.0, 3.0, "footsteps")]}
    assert ref.durations_s == {"rec_a": 7.0, "rec_b": 3.0}
    assert ref.clips_without_events == ["rec_c.wav", "rec_d.wav"]
    assert ref.classes == ["car", "footsteps", "people talking"]
    # only some classes (DESED_task scores 11 of MAESTRO's 17)
    sub = hard_reference(soft, classes=["people talking", "birds_singing"])
    assert sub.events == {"rec_a": [(0.0, 2.0, "people talking"), (3.0, 5.0, "people talking")]}
    assert sub.durations_s == {"rec_a": 5.0} and sub.classes == ["people talking", "birds_singing"]
    # durations given: every file kept with clips="all", events cut at the end
    dur = _write(tmp_path / "d.tsv", "filename|duration\nrec_a.wav|6.5\nrec_b.wav|30\nrec_c.wav|30\nrec_d.wav|12\n")
    every = read_hard_reference(tmp_path / "s.tsv", CLASSES, durations_tsv=dur, clips="all")
    assert every.durations_s == {"rec_a": 6.5, "rec_b": 30.0, "rec_c": 30.0, "rec_d": 12.0}
    assert every.events["rec_a"][0] == (6.0, 6.5, "car") and every.clipped == 1 and every.events["rec_c"] == []
    with pytest.raises(ValueError, match=r"1 file\(s\) of the reference have no duration: \['rec_b.wav'\]"):
        hard_reference(soft, durations_s={"rec_a.wav": 10.0})
    with pytest.raises(ValueError, match="clips='all' needs durations_s"):
        hard_reference(soft, clips="all")
    with pytest.raises(ValueError, match=r"scored_classes \['tram'\]"):
        read_hard_reference(tmp_path / "s.tsv", CLASSES, scored_classes=["tram"])


def _random_case(seed=0, n_files=4, duration=20.0, hop=0.25):
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"]
    reference, scores = {}, {}
    n = int(duration / hop)
    for i in range(n_files):
        events = []
        for c in classes:
            on = float(rng.integers(0, 15))
            events.append((on, on + float(rng.integers(1, 5)) + 0.5, c))
        reference[f"f{i}"] = events
        truth = np.zeros((n, len(classes)))
        for on, off, c in events:
            truth[int(on / hop):int(off / hop), classes.index(c)] = 1
        scores[f"f{i}"] = scores_dataframe(0.3 * truth + 0.7 * rng.random(truth.shape), hop, classes)  # overlapping: imperfect
    return classes, reference, scores, {k: duration for k in reference}


def test_segment_metrics_are_sed_scores_evals_segment_based_numbers():
    classes, reference, scores, durations = _random_case()
    m = segment_metrics(scores, reference, durations, classes)
    kw = dict(segment_length=1.0)
    pauc = sed_scores_eval.segment_based.auroc(scores, reference, durations, max_fpr=0.1, **kw)[0]
    auc = sed_scores_eval.segment_based.auroc(scores, reference, durations, **kw)[0]
    f1 = sed_scores_eval.segment_based.best_fscore(scores, reference, durations, **kw)[0]
    assert m["mpauc"] == pytest.approx(pauc["mean"]) and m["mauc"] == pytest.approx(auc["mean"])
    assert m["segment_f1_best"] == pytest.approx(f1["macro_average"])
    for c in classes:
        assert m["per_class"]["mpauc"][c] == pytest.approx(pauc[c])
        assert m["per_class"]["segment_f1_best"][c] == pytest.approx(f1[c])
    assert 0.3 < m["mpauc"] < m["mauc"] < 1.0  # an imperfect system: the numbers mean something
    assert m["n_clips"] == 4 and m["max_fpr"] == 0.1 and m["segment_length_s"] == 1.0
    json.dumps(m, allow_nan=False)

    # perfect scores give 1; durations from the last offsets when none are given (DESED_task)
    perfect = {k: scores_dataframe(np.stack([[1.0 if on <= t * 0.5 < off else 0.0 for on, off, _ in ev]
                                             for t in range(40)]), 0.5, classes) for k, ev in reference.items()}
    best = segment_metrics(perfect, reference, None, classes)
    assert best["mpauc"] == pytest.approx(1.0) and best["segment_f1_best"] == pytest.approx(1.0)


def test_segment_metrics_score_the_given_classes_only():
    classes, reference, scores, durations = _random_case(seed=1)
    # a class without reference events is left out of the means (sed_scores_eval would refuse it)
    scores = {k: v.assign(d=0.3) for k, v in scores.items()}
    with_d = segment_metrics(scores, reference, durations, [*classes, "d"])
    plain = segment_metrics(scores, reference, durations, classes)
    assert with_d["classes_without_reference"] == ["d"] and with_d["per_class"]["mpauc"]["d"] is None
    assert with_d["mpauc"] == plain["mpauc"] and with_d["segment_f1_best"] == plain["segment_f1_best"]
    # a subset: the other classes' events and score columns are left out; files not in the reference ignored
    only_a = segment_metrics({**scores, "other": scores["f0"]}, reference, durations, ["a"])
    assert only_a["mpauc"] == pytest.approx(plain["per_class"]["mpauc"]["a"])
    assert list(only_a["per_class"]["mauc"]) == ["a"]
    with pytest.raises(ValueError, match=r"1 file\(s\) of the reference have no score frames: \['f3'\]"):
        segment_metrics({k: v for k, v in scores.items() if k != "f3"}, reference, durations, classes)
    with pytest.raises(ValueError, match=r"lacks the class column\(s\) \['e'\]"):
        segment_metrics(scores, reference, durations, ["a", "e"])
    with pytest.raises(ValueError, match="no duration"):
        segment_metrics(scores, reference, {"f0": 20.0}, classes)
    nothing = segment_metrics(scores, reference, durations, ["d"])
    assert nothing["mpauc"] is None and nothing["classes_without_reference"] == ["d"]


def test_segment_mean_scores_weight_frames_by_their_time_in_the_segment():
    # 0.4 s frames: segment [0, 1) holds frames 0, 1 and half of frame 2
    frame = scores_dataframe(np.array([[0.0], [1.0], [0.5], [0.2], [0.8]]), 0.4, ["a"])
    seg = segment_mean_scores({"x": frame, "unused": frame}, {"x": 1.5})["x"]
    assert list(seg["onset"]) == [0.0, 1.0] and list(seg["offset"]) == [1.0, 1.5]
    np.testing.assert_allclose(seg["a"], [(0.4 * 0 + 0.4 * 1 + 0.2 * 0.5) / 1.0, (0.2 * 0.5 + 0.3 * 0.2) / 0.5])
    with pytest.raises(ValueError, match="no score frame overlaps the segment starting at 2.0 s"):
        segment_mean_scores({"x": frame}, {"x": 3.0})


def test_dcase2024_objective_sums_its_three_parts():
    desed = {"intersection_f1": 0.6, "psds1": 0.4, "event_f1": 0.3, "n_psds_clips": 10}
    maestro = {"segment_f1_best": 0.5, "mpauc": 0.7, "mauc": 0.9}
    o = dcase2024_objective(0.8, desed, maestro)
    assert o["obj"] == pytest.approx(0.8 + 0.6 + 0.5)
    assert (o["weak_tagging_f1"], o["synth"], o["maestro"]) == (0.8, 0.6, 0.5)
    assert (o["synth_type"], o["maestro_type"]) == ("intersection", "fmo")
    assert dcase2024_objective(0.8, desed, maestro, synth_type="psds", maestro_type="mpauc")["obj"] == \
        pytest.approx(0.8 + 0.4 + 0.7)
    assert dcase2024_objective(0.8, desed, maestro, synth_type="collar", maestro_type="mauc")["obj"] == \
        pytest.approx(0.8 + 0.3 + 0.9)
    # an absent set is left out; an undefined value counts as 0
    o = dcase2024_objective(None, {**desed, "intersection_f1": None}, None)
    assert o["obj"] == 0.0 and o["weak_tagging_f1"] is None and o["synth"] == 0.0 and o["maestro"] is None
    assert dcase2024_objective(math.nan, desed, maestro)["obj"] == pytest.approx(1.1)
    with pytest.raises(ValueError, match="maestro_type must be one of"):
        dcase2024_objective(0.8, desed, maestro, maestro_type="auc")
    with pytest.raises(ValueError, match="psds=True"):
        dcase2024_objective(0.8, {**desed, "n_psds_clips": None}, maestro, synth_type="psds")


def test_dcase2024_test_metrics_psds1_and_mpauc(tmp_path):
    classes, reference, scores, durations = _random_case(seed=2)
    ref = hard_reference({f"{k}.wav": [(*e, 1.0) for e in ev] for k, ev in reference.items()},
                         durations_s={f"{k}.wav": d for k, d in durations.items()})
    out = dcase2024_test_metrics({"psds1": 0.42}, scores, ref, ["a", "b"])
    pooled = segment_metrics(segment_mean_scores(scores, durations), reference, durations, ["a", "b"])
    assert out["psds1"] == 0.42 and out["mpauc"] == pytest.approx(pooled["mpauc"])
    assert out["maestro"]["scored_classes"] == ["a", "b"]
    raw = dcase2024_test_metrics(None, scores, ref, pooling="max")
    assert raw["psds1"] is None and raw["mpauc"] == pytest.approx(segment_metrics(scores, reference, durations,
                                                                                  classes)["mpauc"])
    assert dcase2024_test_metrics({"psds1": 0.1}, None, None) == {"psds1": 0.1, "mpauc": None, "mauc": None,
                                                                  "segment_f1_best": None, "maestro": None}
