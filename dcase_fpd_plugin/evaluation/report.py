"""A metrics dict (from :func:`dcase_fpd_plugin.evaluation.metrics.evaluate`) as a terminal table."""

from __future__ import annotations

from typing import Mapping

# (key in metrics, label shown)
_HEADLINE = [
    ("psds1", "PSDS1"),
    ("psds2", "PSDS2"),
    ("event_f1", "event-based F1 (macro)"),
    ("event_f1_zero_filled", "event-based F1 (macro, undetected = 0)"),
    ("event_f1_micro", "event-based F1 (micro)"),
    ("segment_f1", "segment-based F1 (macro)"),
    ("segment_f1_zero_filled", "segment-based F1 (macro, undetected = 0)"),
    ("segment_f1_micro", "segment-based F1 (micro)"),
    ("intersection_f1", "intersection-based F1 (macro)"),
    ("tagging_f1", "audio tagging F1 (macro)"),
]
_PER_CLASS = [("event_f1", "event"), ("segment_f1", "segment"), ("intersection_f1", "inter."), ("tagging_f1", "tagging")]


def _value(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def format_metrics_table(metrics: Mapping) -> str:
    """Plain-text table: headline metrics, then per-class F1, then the settings and the
    undetected classes. ``None`` (not computed, or undefined) prints as ``-``."""
    width = max(len(label) for _, label in _HEADLINE)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -----"]
    lines += [f"{label:<{width}}  {_value(metrics.get(key))}" for key, label in _HEADLINE]

    per_class = metrics.get("per_class") or {}
    classes = list(next(iter(per_class.values()), {}).keys())
    if classes:
        cw = max(len("class"), *(len(c) for c in classes))
        lines += ["", f"{'class':<{cw}}  " + "  ".join(f"{label:>7}" for _, label in _PER_CLASS)]
        for c in classes:
            cells = "  ".join(f"{_value(per_class.get(key, {}).get(c)):>7}" for key, _ in _PER_CLASS)
            lines.append(f"{c:<{cw}}  {cells}")

    lines.append("")
    lines.append(
        f"clips: {metrics.get('n_clips')}  threshold: {metrics.get('threshold')}  "
        f"median window: {metrics.get('median_window')} frames  "
        f"tagging threshold: {metrics.get('tagging_threshold')}"
    )
    if "test_set" in metrics:
        lines.append(f"scored on: {metrics['test_set']}  (checkpoint chosen on: {metrics.get('validation_set')})")
    if metrics.get("selection_on_test"):
        lines.append("warning: these clips also chose the checkpoint (selection_on_test): the figures are flattered")
    if metrics.get("n_missing_clips"):
        lines.append(f"missing clips left out: {metrics['n_missing_clips']}")
    if metrics.get("n_undetected_classes"):
        lines.append(
            f"classes never detected ({metrics['n_undetected_classes']}): "
            + ", ".join(metrics.get("undetected_classes", []))
        )
    if metrics.get("classes_without_reference"):
        lines.append(
            "classes without reference events (left out of every macro): "
            + ", ".join(metrics["classes_without_reference"])
        )
    return "\n".join(lines)
