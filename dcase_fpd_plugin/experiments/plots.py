"""Plots of a comparison: sorted event F1 per run, per-class F1, PSDS against energy."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..report.energy_comparison import (EW_PSDS_PHASE)
from ..atomic import atomic_write
from .records import RunRecord, float_or_none, recipe_order


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_sorted_event_f1(runs: Sequence[RunRecord], path: Path, metric: str = "event_f1") -> None:
    """Each recipe's ``metric`` over its seeds, sorted ascending: one line with markers per
    recipe (the paper's Fig. 3). Written atomically as PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    n_max = 1
    for name in recipe_order(runs):
        vals = sorted(v for v in (float_or_none(r.metrics.get(metric)) for r in runs if r.recipe == name)
                      if v is not None)
        if vals:
            ax.plot(range(1, len(vals) + 1), vals, marker="o", label=name)
            n_max = max(n_max, len(vals))
    ax.set_xlabel("run (sorted by event-based F1)")
    ax.set_ylabel("event-based F1" if metric == "event_f1" else metric)
    ax.set_title("All sorted event-based F1 results" if metric == "event_f1" else f"Sorted {metric}")
    ax.set_xticks(range(1, n_max + 1) if n_max <= 25 else ax.get_xticks())
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    _save_figure(fig, path)


def plot_per_class(per_class: pd.DataFrame, path: Path, metric_label: str = "event-based F1") -> None:
    """Grouped bars: mean per-class ``metric_label`` per recipe, sample-std error bars."""
    plt = _pyplot()
    classes = list(dict.fromkeys(per_class["class"]))
    recipes = list(dict.fromkeys(per_class["recipe"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(classes) * max(1, len(recipes)) ** 0.5 + 2), 4.5))
    width = 0.8 / max(1, len(recipes))
    x = np.arange(len(classes))
    for i, name in enumerate(recipes):
        rows = per_class[per_class["recipe"] == name].set_index("class").reindex(classes)
        ax.bar(x + (i - (len(recipes) - 1) / 2) * width, rows["mean"].fillna(0.0), width,
               yerr=rows["std"].fillna(0.0), capsize=2, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(classes, rotation=30, ha="right")
    ax.set_ylabel(f"mean {metric_label}")
    ax.set_ylim(0, 1)
    ax.set_title(f"Per-class {metric_label} (mean ± std over seeds)")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)


def plot_psds_vs_energy(runs: Sequence[RunRecord], path: Path, metric: str = "psds1",
                        phase: str = EW_PSDS_PHASE) -> int:
    """``metric`` against the ``phase`` kWh, one point per run, one colour per recipe; the figure
    says so when no run has both. Written atomically as PNG. Returns the number of points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    n, kinds, top = 0, set(), 0.0
    for name in recipe_order(runs):
        pts = [(r.energy.phases[phase], float_or_none(r.metrics.get(metric))) for r in runs
               if r.recipe == name and r.energy is not None and phase in r.energy.phases]
        pts = [(x, y) for x, y in pts if y is not None]
        kinds |= {r.energy.phase_kinds.get(phase, r.energy.kind) for r in runs
                  if r.recipe == name and r.energy is not None and phase in r.energy.phases}
        if pts:
            ax.scatter([x for x, _ in pts], [y for _, y in pts], alpha=0.8,
                       label=f"{name} ({len(pts)} run{'s' * (len(pts) != 1)})")
            n += len(pts)
            top = max(top, max(y for _, y in pts))
    kind = kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "not measured"
    ax.set_xlabel(f"{phase} energy per run (kWh, {kind})")
    ax.set_ylabel(metric.upper())
    ax.set_title(f"{metric.upper()} against {phase} energy (one point per run)")
    if n:
        ax.set_ylim(-0.01, max(0.05, 1.1 * top))  # PSDS lies in [0, 1]
        ax.legend()
    else:
        ax.text(0.5, 0.5, f"no run has both {metric} and {phase} kWh\n(eval.psds false or energy not measured)",
                ha="center", va="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path)
    return n


def _save_figure(fig, path: Path) -> None:
    plt = _pyplot()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    finally:
        plt.close(fig)
