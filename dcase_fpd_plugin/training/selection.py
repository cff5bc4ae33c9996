"""Checkpoint selection: the validation scalars and the objective ``val/obj`` (``training.monitor``)."""

from __future__ import annotations

import math
from typing import Any

EVAL_METRICS = ("event_f1", "segment_f1", "tagging_f1", "intersection_f1")


def validation_scores(metrics: dict[str, Any], prefix: str, weak_tagging_f1: float | None = None,
                      soft_metrics: dict[str, Any] | None = None) -> dict[str, float]:
    """Scalars to log after validation, and the checkpoint-selection objective ``<prefix>/obj``.

    ``obj`` = tagging F1 + intersection F1 on the strong validation clips; with held-out weak clips
    (``weak_tagging_f1``, logged as ``<prefix>/weak_tagging_f1``) their tagging F1 replaces the
    strong clips' one, as DESED_task's ``weak F1 + synthetic intersection F1``; with held-out soft
    clips (``soft_metrics``: :func:`~dcase_fpd_plugin.evaluation.segment_based.segment_metrics`) + their
    best-threshold segment macro F1, as DESED_task 2024's ``obj_metric_maestro_type: fmo`` (logged as
    ``<prefix>/maestro_segment_f1_best``, with ``<prefix>/maestro_mpauc``).
    A metric that is undefined (None or nan: e.g. the model detected nothing, so sed_eval's
    class-wise averages are all NaN) is logged as 0.0, so that selection treats it as the worst score.
    """
    def value(x: Any) -> float:
        return 0.0 if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    logs = {f"{prefix}/{k}": value(metrics.get(k)) for k in EVAL_METRICS}
    tagging = logs[f"{prefix}/tagging_f1"]
    if weak_tagging_f1 is not None:
        tagging = logs[f"{prefix}/weak_tagging_f1"] = value(weak_tagging_f1)
    logs[f"{prefix}/obj"] = tagging + logs[f"{prefix}/intersection_f1"]
    if soft_metrics is not None:
        logs[f"{prefix}/maestro_segment_f1_best"] = value(soft_metrics.get("segment_f1_best"))
        logs[f"{prefix}/maestro_mpauc"] = value(soft_metrics.get("mpauc"))
        logs[f"{prefix}/obj"] += logs[f"{prefix}/maestro_segment_f1_best"]
    return logs
