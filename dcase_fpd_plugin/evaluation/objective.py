"""The DCASE 2024 Task 4 baseline's checkpoint-selection objective and test metrics (DESED_task's
``recipes/dcase2024_task4_baseline``), as pure functions of metrics computed elsewhere.

Validation (:func:`dcase2024_objective`): ``obj`` = tagging macro F1 of the held-out weak clips + a
metric of the synthetic validation set (``synth_type``; DESED_task's ``obj_metric_synth_type``, its
recipe: ``intersection``) + a MAESTRO segment-based metric (``maestro_type``; its
``obj_metric_maestro_type``, its recipe: ``fmo``). Test (:func:`dcase2024_test_metrics`): DESED's
PSDS1 and MAESTRO's segment-based mpAUC (with mAUC and the best-threshold segment F1).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import pandas as pd

from .segment_based import MAX_FPR, SEGMENT_LENGTH_S, segment_mean_scores, segment_metrics
from .soft_reference import SegmentReference

#: ``synth_type`` -> the key of :func:`dcase_fpd_plugin.evaluation.metrics.evaluate`'s metrics it reads.
#: DESED_task's ``collar`` is sed_scores_eval's collar-based F1 (0.2 s collars, 20 % offset rate); ours
#: is sed_eval's event-based F1 with the same collars, the DCASE number.
SYNTH_OBJECTIVES = {"intersection": "intersection_f1", "psds": "psds1", "collar": "event_f1"}
#: ``maestro_type`` -> the key of :func:`dcase_fpd_plugin.evaluation.segment_based.segment_metrics`'
#: result it reads (``fmo``: DESED_task's best-threshold segment macro F1)
MAESTRO_OBJECTIVES = {"fmo": "segment_f1_best", "mpauc": "mpauc", "mauc": "mauc"}


def _value(x: Any) -> float:
    """A metric as a float; undefined (None, nan) counts as 0, the worst score."""
    return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def dcase2024_objective(
    weak_tagging_f1: float | None,
    synth_metrics: Mapping[str, Any] | None,
    maestro_metrics: Mapping[str, Any] | None,
    *,
    synth_type: str = "intersection",
    maestro_type: str = "fmo",
) -> dict[str, Any]:
    """The 2024 baseline's validation objective: its three parts and their sum.

    Args:
        weak_tagging_f1: tagging macro F1 of the held-out weak clips
            (:func:`dcase_fpd_plugin.evaluation.metrics.tagging_f1_from_labels`); None: no such clips.
        synth_metrics: ``evaluate(...).metrics`` of the synthetic (DESED) validation set (scored on
            DESED's classes); None: no such set.
        maestro_metrics: :func:`segment_metrics` of the MAESTRO validation clips; None: no such clips.
        synth_type: ``intersection`` (intersection-based F1 at the threshold, DESED_task 2024's
            recipe), ``psds`` (PSDS1; needs ``evaluate(..., psds=True)``) or ``collar`` (event-based F1).
        maestro_type: ``fmo`` (best-threshold segment macro F1, DESED_task 2024's recipe), ``mpauc`` or
            ``mauc``. (DESED_task's own code reads its ``fmo`` number for ``mpauc`` too, and mpAUC when the
            key is unset; here each name reads its own metric.)

    Returns:
        ``{"obj", "weak_tagging_f1", "synth", "maestro", "synth_type", "maestro_type"}``: a part whose set
        is absent (None given) is None and left out of ``obj``; a part whose value is undefined (None or
        nan in the metrics: e.g. nothing detected) counts as 0.0, the worst score, as for ``val/obj``.

    Raises:
        ValueError: an unknown type, or ``psds`` for metrics computed without PSDS.
    """
    if synth_type not in SYNTH_OBJECTIVES:
        raise ValueError(f"synth_type must be one of {list(SYNTH_OBJECTIVES)}, got {synth_type!r}")
    if maestro_type not in MAESTRO_OBJECTIVES:
        raise ValueError(f"maestro_type must be one of {list(MAESTRO_OBJECTIVES)}, got {maestro_type!r}")
    synth = maestro = None
    if synth_metrics is not None:
        key = SYNTH_OBJECTIVES[synth_type]
        if synth_type == "psds" and synth_metrics.get("n_psds_clips") is None:
            raise ValueError("synth_type 'psds' needs the synthetic set's PSDS1: evaluate it with psds=True")
        synth = _value(synth_metrics.get(key))
    if maestro_metrics is not None:
        maestro = _value(maestro_metrics.get(MAESTRO_OBJECTIVES[maestro_type]))
    weak = None if weak_tagging_f1 is None else _value(weak_tagging_f1)
    parts = [x for x in (weak, synth, maestro) if x is not None]
    return {"obj": float(sum(parts)), "weak_tagging_f1": weak, "synth": synth, "maestro": maestro,
            "synth_type": synth_type, "maestro_type": maestro_type}


def dcase2024_test_metrics(
    desed_metrics: Mapping[str, Any] | None,
    maestro_scores: Mapping[str, pd.DataFrame] | None,
    maestro_reference: SegmentReference | None,
    maestro_classes: Sequence[str] | None = None,
    *,
    segment_length: float = SEGMENT_LENGTH_S,
    max_fpr: float = MAX_FPR,
    pooling: str = "mean",
) -> dict[str, Any]:
    """The 2024 baseline's test figures: DESED's PSDS1 and MAESTRO's segment-based mpAUC.

    Args:
        desed_metrics: ``evaluate(..., psds=True).metrics`` of the DESED test set, scored on DESED's
            classes (``scored_classes``); None: no DESED set.
        maestro_scores: audio id -> score frame (post-processed, seconds) of every MAESTRO test file,
            long files stitched from their windows; None: no MAESTRO set.
        maestro_reference: the MAESTRO test set's hard reference
            (:func:`dcase_fpd_plugin.evaluation.soft_reference.read_hard_reference`, with the durations TSV).
        maestro_classes: the classes scored (DESED_task: the 11 of ``classes_labels_maestro_real_eval``);
            None: the reference's classes.
        pooling: ``mean``: the frame scores averaged over each segment, weighted by time
            (:func:`segment_mean_scores`), as DESED_task's test; ``max``: the frames as they are (each
            segment then takes its highest frame score), as its validation.

    Returns:
        ``{"psds1", "mpauc", "mauc", "segment_f1_best", "maestro"}``: DESED's PSDS1 (None without a DESED
        set or PSDS), MAESTRO's means (None without a MAESTRO set), and ``maestro`` the full
        :func:`segment_metrics` result (None without a MAESTRO set).
    """
    if pooling not in ("mean", "max"):
        raise ValueError(f"pooling must be 'mean' or 'max', got {pooling!r}")
    psds1 = None
    if desed_metrics is not None:
        psds1 = desed_metrics.get("psds1")
    maestro = None
    if maestro_scores is not None:
        if maestro_reference is None:
            raise ValueError("maestro_scores need maestro_reference")
        classes = maestro_reference.classes if maestro_classes is None else list(maestro_classes)
        durations = maestro_reference.durations_s
        scores = maestro_scores
        if pooling == "mean":
            scores = segment_mean_scores(maestro_scores, durations, segment_length)
        maestro = segment_metrics(scores, maestro_reference.events, durations, classes, segment_length,
                                  max_fpr=max_fpr)
    out = {"psds1": psds1}
    for key in ("mpauc", "mauc", "segment_f1_best"):
        out[key] = None if maestro is None else maestro[key]
    out["maestro"] = maestro
    return out
