"""DCASE Task 4 metrics from frame probabilities, and the output files of an evaluation.

One call, :func:`evaluate`, takes the raw model outputs of a set of clips and returns
:class:`EvaluationResult`: the metrics (a JSON-ready dict), the predicted events (DESED strong
format) and the median-filtered score frames; :func:`write_outputs` writes them into an
experiment folder. The conventions are DESED_task's (the DCASE Task 4 baseline):

* events: median filter (``median_window`` frames) -> frames strictly above ``threshold`` ->
  runs of active frames decoded with :meth:`LabelEncoder.decode_strong`, clipped to the clip
  duration. ``event_f1``, ``segment_f1`` and ``intersection_f1`` all score these same events.
* ``event_f1``: sed_eval ``EventBasedMetrics`` (t_collar 0.2 s, percentage_of_length 0.2,
  onset and offset evaluated, ``empty_system_output_handling="zero_score"`` as DESED_task),
  class-wise macro average; ``event_f1_micro`` the overall (micro) F.
* ``segment_f1``: sed_eval ``SegmentBasedMetrics`` (1 s segments), class-wise macro;
  ``segment_f1_micro`` the overall F.
* ``tagging_f1``: clip probability strictly above ``tagging_threshold`` vs the classes of the
  clip's reference events, F1 per class, macro average.
* ``intersection_f1``: sed_scores_eval intersection-based F1 at ``threshold``
  (dtc = gtc = 0.5), macro average.
* ``psds1`` (dtc = gtc = 0.7, alpha_ct = 0, alpha_st = 1, max_efpr = 100) and ``psds2``
  (dtc = gtc = 0.1, cttc = 0.3, alpha_ct = 0.5, alpha_st = 1, max_efpr = 100), sed_scores_eval,
  on the median-filtered scores; None when ``psds=False``. Clip set (``psds_clips``, in the
  metrics with ``n_psds_clips``): ``with_events`` (default) leaves the clips without reference
  events out, as DESED_task does ("drop audios without events"), so that the same scores give
  DESED_task's number; ``all`` keeps them (their detections are false positives, and their
  duration counts in the false-positive rate).

Which classes are scored: ``scored_classes`` (default: every class of the model). The other
classes' scores, events and clip probabilities are left out before every metric, as are their
reference events, so a model of 27 classes scored on DESED's 10 gives the numbers of a 10-class
model with the same scores; ``n_predicted_events`` and ``undetected_classes`` count the scored
classes only, while the result's ``predictions`` and ``scores`` (the files) keep every class.

Which classes count in a macro average (the same rule for every metric): the scored classes with at
least one reference event in the evaluated clips. A class without reference events has no
defined recall; sed_eval gives it F = nan and drops it from its macro (a nanmean), and we drop
it from the tagging, intersection-based and PSDS macros too (for sed_scores_eval, whose macros
would count it as 0, by leaving its column out). Such classes are listed in
``classes_without_reference``, and their per-class values are None; their false alarms count
nowhere except in the micro F of sed_eval.

The metric trap (DESIGN.md): sed_eval's macro is a nanmean, and a class with reference events
but no output event gets precision 0/0 = nan, hence F = nan, and silently leaves the macro.
DESED_task's event-based F1 escapes it through ``empty_system_output_handling="zero_score"``
(precision 0 -> F 0); its segment-based F1 does not. We keep sed_eval's numbers exactly as
DESED_task computes them (``event_f1``, ``segment_f1``) and add ``*_zero_filled`` macros in which
every class with reference events counts, nan as 0 (for events this equals ``event_f1``), plus
``n_undetected_classes`` / ``undetected_classes``: classes with reference events and no
predicted event at all.

Clip set: every clip of the durations TSV (which must cover the ground truth's clips), including
clips with no reference event (their detections are false positives), for every metric but PSDS
(see ``psds_clips`` above). DESED_task scores its F1s on the clips named in the ground-truth TSV;
the two agree whenever that TSV names every clip (empty ones with a blank row).

``metrics`` keys: event_f1, segment_f1, tagging_f1, intersection_f1, psds1, psds2,
psds_clips, n_psds_clips, event_f1_micro, segment_f1_micro, event_f1_zero_filled, segment_f1_zero_filled,
n_undetected_classes, undetected_classes, classes_without_reference, scored_classes,
per_class {event_f1, segment_f1, tagging_f1, intersection_f1: {class: F}}, n_clips,
n_missing_clips, n_predicted_events, threshold, median_window (frames), tagging_threshold,
ground_truth_repairs ``{tsv: {duplicates, clipped, dropped}}`` (empty unless ``ground_truth="repair"``
changed the reference: duplicate event rows and events past the clip's duration are refused otherwise).
Undefined values (nan) are None.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dcase_fpd_plugin.data.labels import LabelEncoder
from dcase_fpd_plugin.evaluation.postprocessing import decide, median_filter
from dcase_fpd_plugin.evaluation.scores import audio_id, scores_dataframe

# Imported through the shim in scores.py (pkg_resources trap), which ran above.
import sed_eval  # noqa: E402
import sed_scores_eval  # noqa: E402
from .outputs import EvaluationResult, is_nan, jsonable
from .reference import STRONG_COLUMNS, merge_spans
from .reference import Reference, read_reference


# DCASE Task 4 settings (DESIGN.md, DESED_task).
EVENT_T_COLLAR_S = 0.2
EVENT_PERCENTAGE_OF_LENGTH = 0.2
SEGMENT_RESOLUTION_S = 1.0
INTERSECTION_F1 = dict(dtc_threshold=0.5, gtc_threshold=0.5)
PSDS1 = dict(dtc_threshold=0.7, gtc_threshold=0.7, alpha_ct=0.0, alpha_st=1.0, max_efpr=100.0)
PSDS2 = dict(
    dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1.0, max_efpr=100.0
)
#: which clips a PSDS covers: those with reference events (DESED_task) | every evaluated clip.
PSDS_CLIPS = ("with_events", "all")



def predict_events(
    frame_probs: Mapping[str, np.ndarray],
    *,
    frame_hop_s: float,
    classes: Sequence[str],
    durations_s: Mapping[str, float],
    median_window: int | Sequence[int] = 7,
    threshold: float | Sequence[float] = 0.5,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Median filter, threshold and decode every clip named in ``durations_s``.

    Args:
        frame_probs: file name -> (T, C) raw frame probabilities.
        durations_s: file name -> clip duration (s); events and score frames are clipped to it.

    Returns:
        (predictions, scores): DESED strong-format events of all clips, and the median-filtered
        score frames keyed by audio id.
    """
    rows: list[tuple] = []
    scores: dict[str, pd.DataFrame] = {}
    encoders: dict[int, LabelEncoder] = {}
    for filename in sorted(durations_s):
        probs = np.asarray(frame_probs[filename])
        if probs.ndim != 2 or probs.shape[1] != len(classes):
            raise ValueError(f"frame_probs[{filename!r}] must be (T, {len(classes)}), got {probs.shape}")
        filtered = median_filter(probs, median_window)
        n_frames = filtered.shape[0]
        encoder = encoders.setdefault(n_frames, LabelEncoder(classes, frame_hop_s, n_frames))
        duration = durations_s[filename]
        for e in encoder.decode_strong(decide(filtered, threshold), filename, duration):
            rows.append((e.filename, e.onset, e.offset, e.event_label))
        scores[audio_id(filename)] = scores_dataframe(filtered, frame_hop_s, classes, duration_s=duration)
    if len(scores) != len(durations_s):
        raise ValueError("two clip file names map to the same audio id (same name, other extension)")
    return pd.DataFrame(rows, columns=STRONG_COLUMNS), scores


# --------------------------------------------------------------------------- sed_eval


def _event_lists(events: pd.DataFrame, filenames: Sequence[str]) -> dict[str, list[dict]]:
    """File name -> list of event dicts, as sed_eval expects (every file, maybe empty)."""
    lists: dict[str, list[dict]] = {f: [] for f in filenames}
    for f, on, off, label in events[STRONG_COLUMNS].itertuples(index=False, name=None):
        if f in lists:
            lists[f].append({"filename": f, "onset": float(on), "offset": float(off), "event_label": label})
    return lists


def sed_eval_metrics(
    reference_events: pd.DataFrame,
    predicted_events: pd.DataFrame,
    filenames: Sequence[str],
    classes: Sequence[str],
) -> tuple["sed_eval.sound_event.EventBasedMetrics", "sed_eval.sound_event.SegmentBasedMetrics"]:
    """sed_eval event-based and segment-based metrics with DCASE Task 4 settings.

    Args:
        reference_events, predicted_events: strong-format DataFrames (seconds).
        filenames: every clip to evaluate (clips without events included).
        classes: class list given to sed_eval.

    Returns:
        The two sed_eval metric objects, all clips evaluated.
    """
    event_metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(classes),
        t_collar=EVENT_T_COLLAR_S,
        percentage_of_length=EVENT_PERCENTAGE_OF_LENGTH,
        evaluate_onset=True,
        evaluate_offset=True,
        empty_system_output_handling="zero_score",
    )
    segment_metrics = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=list(classes), time_resolution=SEGMENT_RESOLUTION_S
    )
    ref = _event_lists(reference_events, filenames)
    est = _event_lists(predicted_events, filenames)
    for f in filenames:
        event_metrics.evaluate(reference_event_list=ref[f], estimated_event_list=est[f])
        segment_metrics.evaluate(reference_event_list=ref[f], estimated_event_list=est[f])
    return event_metrics, segment_metrics


def _sed_eval_summary(metrics, classes: Sequence[str], evaluated: Sequence[str]) -> dict:
    """Macro, micro, zero-filled macro and per-class F from a sed_eval metrics object."""
    with warnings.catch_warnings():
        # all classes nan (nothing detected): sed_eval's nanmean warns and returns nan (-> None)
        warnings.filterwarnings("ignore", message="Mean of empty slice", category=RuntimeWarning)
        results = metrics.results()
    per_class = {c: results["class_wise"][c]["f_measure"]["f_measure"] for c in classes}
    zero_filled = [0.0 if is_nan(per_class[c]) else per_class[c] for c in evaluated]
    return {
        "macro": results["class_wise_average"]["f_measure"]["f_measure"],
        "micro": results["overall"]["f_measure"]["f_measure"],
        "zero_filled": float(np.mean(zero_filled)) if zero_filled else math.nan,
        "per_class": {c: (per_class[c] if c in evaluated else math.nan) for c in classes},
    }


# --------------------------------------------------------------------------- tagging


def tagging_f1(
    clip_probs: Mapping[str, np.ndarray],
    reference_events: pd.DataFrame,
    filenames: Sequence[str],
    classes: Sequence[str],
    *,
    tagging_threshold: float = 0.5,
) -> tuple[float, dict[str, float]]:
    """Audio tagging F1: a class is tagged when its (C,) clip probability is strictly above
    ``tagging_threshold``; the truth is the set of classes of the clip's reference events.

    Returns:
        (macro F1 over classes with at least one positive clip, per-class F1; nan for classes
        without positive clips, as sed_eval does for classes without references).
    """
    c_index = {c: i for i, c in enumerate(classes)}
    truth = np.zeros((len(filenames), len(classes)), dtype=bool)
    row = {f: i for i, f in enumerate(filenames)}
    for f, label in zip(reference_events["filename"], reference_events["event_label"]):
        if f in row:
            truth[row[f], c_index[label]] = True
    probs = np.stack([np.asarray(clip_probs[f], dtype=float).reshape(-1) for f in filenames])
    return tagging_f1_from_labels(probs, truth, classes, tagging_threshold=tagging_threshold)


def tagging_f1_from_labels(
    clip_probs: np.ndarray,
    weak_labels: np.ndarray,
    classes: Sequence[str],
    *,
    tagging_threshold: float = 0.5,
) -> tuple[float, dict[str, float]]:
    """Audio tagging F1 of (N, C) clip probabilities against (N, C) {0, 1} clip (weak) labels:
    a class is tagged when its probability is strictly above ``tagging_threshold``.

    Used directly for held-out weakly-labelled clips (DESED_task's weak validation F1).

    Returns:
        (macro F1 over classes with at least one positive clip, per-class F1; nan for classes
        without positive clips).
    """
    probs = np.asarray(clip_probs, dtype=float)
    truth = np.asarray(weak_labels) > 0.5
    if probs.ndim != 2 or probs.shape[1] != len(classes) or truth.shape != probs.shape:
        raise ValueError(f"clip_probs and weak_labels must both be (N, {len(classes)}), got "
                         f"{probs.shape} and {truth.shape}")
    tagged = probs > tagging_threshold
    tp = (tagged & truth).sum(0)
    fp = (tagged & ~truth).sum(0)
    fn = (~tagged & truth).sum(0)
    per_class = {
        c: (2.0 * tp[i] / (2 * tp[i] + fp[i] + fn[i]) if truth[:, i].any() else math.nan)
        for i, c in enumerate(classes)
    }
    values = [v for v in per_class.values() if not is_nan(v)]
    return (float(np.mean(values)) if values else math.nan), per_class


# --------------------------------------------------------------------------- sed_scores_eval


def _ground_truth_by_audio_id(reference: Reference) -> dict[str, list[tuple[float, float, str]]]:
    """sed_scores_eval ground truth: audio id -> [(onset_s, offset_s, label)], every clip.

    sed_scores_eval refuses overlapping or touching events of one class in a clip (an
    assertion); such events describe one stretch of activity, so they are merged here (the
    intersection-based criteria only see activity). sed_eval gets the events unmerged.
    """
    by_clip_class: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for f, on, off, label in reference.events[STRONG_COLUMNS].itertuples(index=False, name=None):
        by_clip_class.setdefault((audio_id(f), label), []).append((float(on), float(off)))
    gt: dict[str, list] = {audio_id(f): [] for f in reference.filenames}
    for (key, label), spans in by_clip_class.items():
        gt[key] += [(on, off, label) for on, off in merge_spans(spans)]
    return gt


def _restrict(scores: Mapping[str, pd.DataFrame], classes: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Score frames with only the given class columns (new frames; inputs untouched)."""
    columns = ["onset", "offset", *classes]
    return {key: frame[columns] for key, frame in scores.items()}


def _select_clips(
    reference: Reference,
    frame_probs: Mapping[str, np.ndarray],
    clip_probs: Mapping[str, np.ndarray],
    allow_missing: bool,
) -> tuple[Reference, list[str]]:
    """The reference restricted to the clips that have outputs, and the missing clip names.

    Raises ValueError for ground-truth clips without frame probabilities (unless
    ``allow_missing``), for outputs of clips not in the ground truth, and for clips without
    clip probabilities.
    """
    missing = sorted(set(reference.durations_s) - set(frame_probs))
    if missing and not allow_missing:
        raise ValueError(f"{len(missing)} ground-truth clip(s) missing from frame_probs: {missing[:20]}")
    extra = sorted(set(frame_probs) - set(reference.durations_s))
    if extra:
        raise ValueError(f"{len(extra)} clip(s) in frame_probs are not in the ground truth: {extra[:20]}")
    if missing:
        reference = Reference(
            reference.events[~reference.events["filename"].isin(missing)].reset_index(drop=True),
            {f: d for f, d in reference.durations_s.items() if f not in missing},
        )
    no_clip_probs = sorted(set(reference.durations_s) - set(clip_probs))
    if no_clip_probs:
        raise ValueError(f"{len(no_clip_probs)} clip(s) missing from clip_probs: {no_clip_probs[:20]}")
    return reference, missing


def _sed_scores_eval_metrics(
    scores: Mapping[str, pd.DataFrame],
    reference: Reference,
    classes: Sequence[str],
    evaluated: Sequence[str],
    *,
    threshold: float | Sequence[float],
    psds: bool,
    timings: dict[str, float],
    psds_files: Sequence[str],
) -> tuple[float, dict[str, float], float | None, float | None]:
    """(intersection F1 macro, per class, PSDS1, PSDS2) on the classes in ``evaluated``.

    PSDS values are None when ``psds`` is False, nan when no class has reference events; they
    cover the clip file names ``psds_files`` (:func:`psds_clip_set`). Stage times are added to
    ``timings``.
    """
    per_class = {c: math.nan for c in classes}
    if not evaluated:
        return math.nan, per_class, (math.nan if psds else None), (math.nan if psds else None)
    t = time.perf_counter()
    gt = _ground_truth_by_audio_id(reference)
    evaluated_scores = _restrict(scores, evaluated)
    if np.isscalar(threshold):
        th = float(threshold)
    else:
        th = {c: float(x) for c, x in zip(classes, threshold) if c in evaluated}
    f, *_ = sed_scores_eval.intersection_based.fscore(evaluated_scores, gt, th, **INTERSECTION_F1)
    per_class.update({c: f[c] for c in evaluated})
    timings["intersection_f1"] = time.perf_counter() - t
    if not psds:
        return f["macro_average"], per_class, None, None

    kept = set(psds_files)
    durations = {audio_id(k): v for k, v in reference.durations_s.items() if k in kept}
    gt = {k: v for k, v in gt.items() if k in durations}
    evaluated_scores = {k: v for k, v in evaluated_scores.items() if k in durations}
    values = []
    for name, settings in (("psds1", PSDS1), ("psds2", PSDS2)):
        if len(evaluated) == 1 and "cttc_threshold" in settings:
            # One class has no other class to cross-trigger; sed_scores_eval 0.0.4 crashes on
            # the empty cross-trigger statistics, so leave the (empty) term out.
            settings = {**settings, "cttc_threshold": None, "alpha_ct": 0.0}
        t = time.perf_counter()
        value, *_ = sed_scores_eval.intersection_based.psds(evaluated_scores, gt, durations, **settings)
        timings[name] = time.perf_counter() - t
        values.append(value)
    return f["macro_average"], per_class, values[0], values[1]


def psds_clip_set(reference: Reference, psds_clips: str = "with_events") -> list[str]:
    """The clip file names a PSDS covers: ``with_events``, those with at least one reference event
    (DESED_task's "drop audios without events"); ``all``, every clip of ``reference``."""
    if psds_clips not in PSDS_CLIPS:
        raise ValueError(f"eval.psds_clips must be one of {list(PSDS_CLIPS)}, got {psds_clips!r}")
    if psds_clips == "all":
        return list(reference.filenames)
    with_events = set(reference.events["filename"])
    return [f for f in reference.filenames if f in with_events]


# --------------------------------------------------------------------------- evaluate


def evaluate(
    frame_probs: Mapping[str, np.ndarray],
    clip_probs: Mapping[str, np.ndarray],
    *,
    frame_hop_s: float,
    classes: Sequence[str],
    ground_truth_tsv: str | os.PathLike | pd.DataFrame,
    durations_tsv: str | os.PathLike | pd.DataFrame,
    median_window: int | Sequence[int] = 7,
    threshold: float | Sequence[float] = 0.5,
    tagging_threshold: float = 0.5,
    psds: bool = True,
    allow_missing: bool = False,
    psds_clips: str = "with_events",
    ground_truth: str = "refuse",
    scored_classes: Sequence[str] | None = None,
) -> EvaluationResult:
    """All DCASE Task 4 metrics of one set of clips.

    Args:
        frame_probs: clip file name (as in the TSVs, e.g. ``Y00aB_0.000_10.000.wav``) ->
            (T, C) raw frame probabilities, before the median filter.
        clip_probs: clip file name -> (C,) clip probabilities.
        frame_hop_s: seconds between output frames.
        classes: class names, column order of the probabilities.
        ground_truth_tsv: DESED strong TSV (path or DataFrame).
        durations_tsv: DESED durations TSV (path or DataFrame); lists every clip.
        median_window: median filter length in frames (odd; 1 = off), or one per class.
        threshold: frame decision threshold (scalar or one per class), events and
            intersection-based F1.
        tagging_threshold: clip decision threshold for tagging F1.
        psds: compute PSDS1/PSDS2 (the slow part); None in the metrics when False.
        psds_clips: ``with_events`` (DESED_task: clips without reference events left out of
            PSDS) or ``all`` (module docstring).
        allow_missing: when True, ground-truth clips absent from ``frame_probs`` are left out
            of the evaluation and counted in ``n_missing_clips``; when False they are an error.
        ground_truth: ``refuse`` (DataError naming the file and lines) or ``repair`` (deduplicated,
            clipped to the duration, counted in ``ground_truth_repairs``) for duplicate event rows
            and events past their clip's duration (the recipe's ``data.ground_truth``).
        scored_classes: the classes every metric covers, a subset of ``classes`` (default: all of
            them). A model of 27 classes (DESED's 10 + MAESTRO's 17) scored on DESED's validation
            set, whose reference holds DESED's 10 only, gives DCASE metrics over those 10: the
            other classes' scores, decoded events, clip probabilities and reference events (if any)
            are left out before every metric (event, segment, intersection and tagging F1, PSDS),
            so the numbers equal those of a model of the scored classes alone with the same scores.
            Post-processing still runs on all ``classes`` (``median_window`` and ``threshold`` lists
            are one per class of ``classes``), and the result's ``predictions`` and ``scores`` keep
            every class (the model's output); ``metrics["scored_classes"]`` names the classes scored.

    Raises:
        ValueError: ground-truth clips missing from ``frame_probs`` (named), clips of
            ``frame_probs`` not in the ground truth, bad shapes or TSVs, ``scored_classes`` not in
            ``classes``.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    model_classes = list(classes)
    scored = _scored_classes(model_classes, scored_classes)
    full_reference = read_reference(ground_truth_tsv, durations_tsv, model_classes, ground_truth)
    reference, missing = _select_clips(full_reference, frame_probs, clip_probs, allow_missing)
    reference = _reference_of(reference, scored)
    psds_files = psds_clip_set(reference, psds_clips)  # checks psds_clips before the work
    filenames = reference.filenames

    all_predictions, all_scores = predict_events(
        frame_probs,
        frame_hop_s=frame_hop_s,
        classes=model_classes,
        durations_s=reference.durations_s,
        median_window=median_window,
        threshold=threshold,
    )
    timings["postprocessing"] = time.perf_counter() - t0
    # From here on only the scored classes: their columns, events, clip probabilities, thresholds.
    classes = scored
    columns = [model_classes.index(c) for c in scored]
    predictions = all_predictions[all_predictions["event_label"].isin(scored)].reset_index(drop=True)
    scores = _restrict(all_scores, scored) if scored != model_classes else all_scores
    clip_probs = {f: _clip_columns(f, clip_probs[f], len(model_classes), columns) for f in filenames}
    scored_threshold = threshold if np.isscalar(threshold) else [threshold[i] for i in columns]
    referenced = set(reference.events["event_label"])
    evaluated = [c for c in classes if c in referenced]

    t = time.perf_counter()
    event_metrics, segment_metrics = sed_eval_metrics(reference.events, predictions, filenames, classes)
    event = _sed_eval_summary(event_metrics, classes, evaluated)
    segment = _sed_eval_summary(segment_metrics, classes, evaluated)
    timings["sed_eval"] = time.perf_counter() - t

    tag_macro, tag_per_class = tagging_f1(
        clip_probs, reference.events, filenames, classes, tagging_threshold=tagging_threshold
    )
    inter_macro, inter_per_class, psds1, psds2 = _sed_scores_eval_metrics(
        scores, reference, classes, evaluated, threshold=scored_threshold, psds=psds, timings=timings,
        psds_files=psds_files,
    )

    predicted_classes = set(predictions["event_label"])
    undetected = [c for c in evaluated if c not in predicted_classes]
    metrics = {
        "event_f1": event["macro"],
        "segment_f1": segment["macro"],
        "tagging_f1": tag_macro,
        "intersection_f1": inter_macro,
        "psds1": psds1,
        "psds2": psds2,
        "psds_clips": psds_clips,
        "n_psds_clips": len(psds_files) if psds else None,
        "event_f1_micro": event["micro"],
        "segment_f1_micro": segment["micro"],
        "event_f1_zero_filled": event["zero_filled"],
        "segment_f1_zero_filled": segment["zero_filled"],
        "n_undetected_classes": len(undetected),
        "undetected_classes": undetected,
        "classes_without_reference": [c for c in classes if c not in evaluated],
        "scored_classes": list(classes),
        "per_class": {
            "event_f1": event["per_class"],
            "segment_f1": segment["per_class"],
            "tagging_f1": tag_per_class,
            "intersection_f1": inter_per_class,
        },
        "n_clips": len(filenames),
        "n_missing_clips": len(missing),
        "n_predicted_events": int(len(predictions)),
        "threshold": threshold if np.isscalar(threshold) else [float(x) for x in threshold],
        "median_window": median_window if np.isscalar(median_window) else [int(w) for w in median_window],
        "tagging_threshold": tagging_threshold,
        "ground_truth_repairs": full_reference.repairs,
    }
    timings["total"] = time.perf_counter() - t0
    return EvaluationResult(jsonable(metrics), all_predictions, all_scores, timings)


def _scored_classes(model_classes: list[str], scored_classes: Sequence[str] | None) -> list[str]:
    """The classes to score, in the model's column order; ValueError for names the model lacks,
    repeats or an empty list."""
    if scored_classes is None:
        return list(model_classes)
    wanted = list(scored_classes)
    unknown = [c for c in wanted if c not in model_classes]
    if unknown:
        raise ValueError(f"scored_classes {unknown} are not classes of the model; its classes are {model_classes}")
    if not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(f"scored_classes must be a non-empty list of distinct classes, got {wanted}")
    return [c for c in model_classes if c in wanted]


def _clip_columns(filename: str, probs, n_classes: int, columns: list[int]) -> np.ndarray:
    """The scored classes' entries of one clip's (C,) clip probabilities."""
    x = np.asarray(probs, dtype=float).reshape(-1)
    if x.shape[0] != n_classes:
        raise ValueError(f"clip_probs[{filename!r}] must hold {n_classes} values, got shape {np.shape(probs)}")
    return x[columns]


def _reference_of(reference: Reference, scored: Sequence[str]) -> Reference:
    """``reference`` without the events of classes outside ``scored`` (every clip kept)."""
    keep = reference.events["event_label"].isin(list(scored))
    if keep.all():
        return reference
    return Reference(reference.events[keep].reset_index(drop=True), reference.durations_s, reference.repairs)
