"""Segment-based metrics from score frames, as DESED_task scores MAESTRO (DCASE 2024 Task 4).

Every file is cut into segments of ``segment_length`` seconds (1 s) from its start to its duration; a
segment is active for a class when a reference event of that class overlaps it, and its score for the
class is the highest score of the frames that overlap it (sed_scores_eval's ``segment_based``). Over
all segments of all files, per class:

* ``mauc``: the area under the ROC curve (true positive rate against false positive rate);
* ``mpauc``: the partial area up to a false positive rate of ``max_fpr`` = 0.1, divided by 0.1 (so 1
  is perfect): the **mpAUC** DCASE 2024 Task 4 reports for MAESTRO;
* ``segment_f1_best``: the segment F1 at the class's best threshold (DESED_task's ``fmo``,
  ``segment_f1_macro_thresopt``); ``best_threshold`` is that threshold.

Each is also averaged over the classes (the means DESED_task logs). Classes without reference events
in the files have no true positive rate: they are left out of the means and listed in
``classes_without_reference`` (sed_scores_eval refuses them). DESED_task's test scores MAESTRO on
score frames pooled to one value per segment by a time-weighted mean (:func:`segment_mean_scores`);
its validation on the frames themselves.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..compat import import_sed_libraries
from .outputs import jsonable

import_sed_libraries()

from sed_scores_eval.base_modules.precision_recall import best_fscore_from_intermediate_statistics  # noqa: E402
from sed_scores_eval.base_modules.roc import auroc_from_intermediate_statistics  # noqa: E402
from sed_scores_eval.base_modules.scores import create_score_dataframe  # noqa: E402
from sed_scores_eval.segment_based import accumulated_intermediate_statistics  # noqa: E402

SEGMENT_LENGTH_S = 1.0
#: the false positive rate up to which the partial AUROC is taken (DCASE 2024 Task 4's mpAUC)
MAX_FPR = 0.1
#: the segment metrics' names, each a mean over classes and per class
SEGMENT_METRICS = ("mpauc", "mauc", "segment_f1_best")


def segment_metrics(
    scores: Mapping[str, pd.DataFrame],
    reference: Mapping[str, Sequence[tuple[float, float, str]]],
    durations: Mapping[str, float] | None,
    classes: Sequence[str],
    segment_length: float = SEGMENT_LENGTH_S,
    *,
    max_fpr: float = MAX_FPR,
) -> dict:
    """mpAUC, mAUC and best-threshold segment F1 of ``classes``, per class and their mean.

    Args:
        scores: audio id -> sed_scores_eval score frame (columns ``onset, offset, <class>...``,
            seconds; :func:`dcase_fpd_plugin.evaluation.scores.scores_dataframe`), with a column for each
            of ``classes`` (other columns are ignored); files not in ``reference`` are ignored.
        reference: audio id -> ``[(onset_s, offset_s, event_label), ...]``
            (:attr:`SegmentReference.events <dcase_fpd_plugin.evaluation.soft_reference.SegmentReference>`);
            the files scored. Events of classes not in ``classes`` are left out.
        durations: audio id -> duration in seconds, for every file of ``reference``; None: each file
            lasts until its last event of ``classes`` ends and a file without such an event is left out
            (DESED_task's validation).
        classes: the classes to score.
        segment_length: seconds per segment (1.0 in DCASE 2024).
        max_fpr: false positive rate up to which ``mpauc`` is taken.

    Returns:
        JSON-ready dict: ``mpauc``, ``mauc``, ``segment_f1_best`` (means over the classes with reference
        events; None when there is none), ``per_class`` ``{mpauc, mauc, segment_f1_best, best_threshold:
        {class: value}}`` (None for classes without reference events, and for a threshold that is not
        finite), ``scored_classes``, ``classes_without_reference``, ``n_clips``, ``segment_length_s``,
        ``max_fpr``.

    Raises:
        ValueError: files of ``reference`` without score frames or without a duration, score frames
            lacking a column of ``classes``, a segment length or ``max_fpr`` out of range.
    """
    classes = list(classes)
    if not segment_length > 0:
        raise ValueError(f"segment_length must be > 0 s, got {segment_length}")
    if not 0 < max_fpr <= 1:
        raise ValueError(f"max_fpr must lie in (0, 1], got {max_fpr}")
    wanted = set(classes)
    gt = {key: [(float(on), float(off), label) for on, off, label in events if label in wanted]
          for key, events in reference.items()}
    if durations is None:
        gt = {key: events for key, events in gt.items() if events}
        durations_s = {key: max(off for _, off, _ in events) for key, events in gt.items()}
    else:
        no_duration = sorted(set(gt) - set(durations))
        if no_duration:
            raise ValueError(f"{len(no_duration)} file(s) of the reference have no duration: {no_duration[:10]}")
        durations_s = {key: float(durations[key]) for key in gt}
    no_scores = sorted(set(gt) - set(scores))
    if no_scores:
        raise ValueError(f"{len(no_scores)} file(s) of the reference have no score frames: {no_scores[:10]}")
    for key in gt:
        lacking = [c for c in classes if c not in scores[key].columns]
        if lacking:
            raise ValueError(f"score frame of {key!r} lacks the class column(s) {lacking}")
    referenced = {label for events in gt.values() for _, _, label in events}
    evaluated = [c for c in classes if c in referenced]

    per_class: dict[str, dict[str, float]] = {m: {c: math.nan for c in classes}
                                              for m in (*SEGMENT_METRICS, "best_threshold")}
    if evaluated:
        columns = ["onset", "offset", *evaluated]
        stats, _ = accumulated_intermediate_statistics(
            {key: scores[key][columns] for key in gt}, gt, durations_s, segment_length=segment_length)
        pauc, _ = auroc_from_intermediate_statistics(stats, max_fpr=max_fpr)
        auc, _ = auroc_from_intermediate_statistics(stats)
        f1, _, _, thresholds, _ = best_fscore_from_intermediate_statistics(stats)
        for c in evaluated:
            per_class["mpauc"][c] = float(pauc[c])
            per_class["mauc"][c] = float(auc[c])
            per_class["segment_f1_best"][c] = float(f1[c])
            threshold = float(thresholds[c])
            per_class["best_threshold"][c] = threshold if math.isfinite(threshold) else math.nan
    means = {m: (float(np.mean([per_class[m][c] for c in evaluated])) if evaluated else math.nan)
             for m in SEGMENT_METRICS}
    return jsonable({
        **means,
        "per_class": per_class,
        "scored_classes": classes,
        "classes_without_reference": [c for c in classes if c not in referenced],
        "n_clips": len(gt),
        "segment_length_s": float(segment_length),
        "max_fpr": float(max_fpr),
    })


def segment_mean_scores(
    scores: Mapping[str, pd.DataFrame],
    durations: Mapping[str, float],
    segment_length: float = SEGMENT_LENGTH_S,
) -> dict[str, pd.DataFrame]:
    """Score frames pooled to one row per segment: each class's mean over the segment of the frame
    scores, weighted by how long each frame overlaps it (seconds), as DESED_task's test scores MAESTRO.

    Args:
        scores: audio id -> score frame (``onset, offset, <class>...``, seconds); files not in
            ``durations`` are ignored.
        durations: audio id -> duration in seconds: segments ``[k L, min((k + 1) L, duration))``,
            ``k = 0, 1, ...`` while ``k L < duration`` (L = ``segment_length``).

    Returns:
        audio id -> score frame with one row per segment (the last one ends at the duration).

    Raises:
        ValueError: a file of ``durations`` without score frames, or a segment no frame overlaps.
    """
    if not segment_length > 0:
        raise ValueError(f"segment_length must be > 0 s, got {segment_length}")
    out = {}
    for key, duration in durations.items():
        if key not in scores:
            raise ValueError(f"no score frames for {key!r}")
        frame = scores[key]
        classes = [c for c in frame.columns if c not in ("onset", "offset")]
        onsets = frame["onset"].to_numpy(dtype=float)
        offsets = frame["offset"].to_numpy(dtype=float)
        values = frame[classes].to_numpy(dtype=float)
        seg_on = np.arange(0.0, float(duration), float(segment_length))
        seg_off = np.minimum(seg_on + segment_length, float(duration))
        overlap = np.clip(np.minimum(offsets[None, :], seg_off[:, None])
                          - np.maximum(onsets[None, :], seg_on[:, None]), 0.0, None)  # (segments, frames), s
        weight = overlap.sum(1)
        if not (weight > 0).all():
            first = float(seg_on[np.argmin(weight > 0)])
            raise ValueError(f"{key!r}: no score frame overlaps the segment starting at {first} s "
                             f"(frames end at {offsets[-1] if len(offsets) else 0.0} s, duration {duration} s)")
        timestamps = np.append(seg_on, seg_off[-1])
        out[key] = create_score_dataframe(overlap @ values / weight[:, None], timestamps, classes)
    return out


def soft_set_metrics(frame_probs: Mapping[str, np.ndarray], segments: Mapping[str, Sequence[tuple]],
                     model_classes: Sequence[str], frame_hop_s: float, classes: Sequence[str] | None = None,
                     *, pooling: str = "max", segment_length: float = SEGMENT_LENGTH_S) -> dict | None:
    """:func:`segment_metrics` of soft-labelled clips (MAESTRO-style) from a model's frame probabilities.

    Args:
        frame_probs: file name -> (T, C) frame probabilities over ``model_classes``.
        segments: file name -> ``[(onset_s, offset_s, label, score), ...]`` soft labels (files not in
            ``frame_probs`` are ignored); the reference is their :func:`~.soft_reference.hard_reference`
            (scores above 0.5, segments merged, each file lasting until its last event, DESED_task's).
        model_classes: the columns of ``frame_probs``.
        frame_hop_s: seconds per frame.
        classes: the classes scored (those of them with a reference event); None: ``model_classes``.
        pooling: ``max`` (each segment's highest frame score: DESED_task's validation) or ``mean`` (the
            time-weighted mean, :func:`segment_mean_scores`: its test).
    Returns:
        :func:`segment_metrics`' dict, or None when no file has a reference event.
    """
    from .scores import audio_id, scores_dataframe
    from .soft_reference import hard_reference

    classes = list(model_classes if classes is None else classes)
    ref = hard_reference({n: segs for n, segs in segments.items() if n in frame_probs}, classes=classes)
    if not ref.events:
        return None
    scores = {audio_id(n): scores_dataframe(p, frame_hop_s, list(model_classes)) for n, p in frame_probs.items()}
    if pooling == "mean":
        scores = segment_mean_scores(scores, ref.durations_s, segment_length)
    present = [c for c in classes if any(e[2] == c for events in ref.events.values() for e in events)]
    return segment_metrics(scores, ref.events, ref.durations_s, present, segment_length)
