"""Validation curves of N-seed comparisons: which recipe learns faster, and where each one ends.

Every training run logs its validation metrics once per epoch to Lightning's CSV log,
``EXP_DIR/logs/version_<N>/metrics.csv`` (see training/runs.py). A resumed run writes a new
``version_<N+1>``; for an epoch logged in more than one version, the latest version wins.

    read_validation_curve(exp_dir)    one run: (epoch, val/...) rows, epochs counted from 0
    curve_table(runs)                 recipe x epoch: mean / sample std / n over the seeds
    late_epoch_table(runs, n_last)    per run the mean over its last n_last epochs, then mean / std
                                      over the seeds (a reading that no checkpoint selection flatters)
    plot_learning_curves(table, path) one panel per metric, mean line and +-std band per recipe

``compare`` writes ``learning_curves.csv``, ``late_epochs.csv`` and ``learning_curves.png`` next to its other reports.
The curves are the *student* model's validation metrics at the recipe's fixed threshold and
median filter (``eval``), the numbers ``training.monitor`` selects the checkpoint on; they are not
the final test metrics.
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..atomic import atomic_write

VAL_PREFIX = "val/"
CURVE_METRICS = ("val/event_f1", "val/segment_f1", "val/tagging_f1", "val/intersection_f1")
_VERSION = re.compile(r"version_(\d+)$")


def _log_files(exp_dir: Path) -> list[Path]:
    """``logs/version_<N>/metrics.csv`` files, oldest version first."""
    found = []
    for d in (Path(exp_dir) / "logs").glob("version_*"):
        m = _VERSION.search(d.name)
        if m and (d / "metrics.csv").is_file():
            found.append((int(m.group(1)), d / "metrics.csv"))
    return [p for _, p in sorted(found)]


def read_validation_curve(exp_dir: str | Path) -> pd.DataFrame:
    """One run's validation metrics per epoch.

    Returns:
        DataFrame with an int ``epoch`` column (0-based, as Lightning counts) and one float column
        per ``val/...`` metric, student metrics only (``val/teacher/...`` left out); one row per
        epoch, sorted. Empty (no rows) when the run has no CSV log or logged no validation.
    """
    frames = []
    for version, path in enumerate(_log_files(Path(exp_dir))):
        try:
            log = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.EmptyDataError) as exc:
            warnings.warn(f"{path}: unreadable training log ({exc}); its epochs are left out", stacklevel=2)
            continue
        cols = [c for c in log.columns if c.startswith(VAL_PREFIX) and not c.startswith(VAL_PREFIX + "teacher/")]
        if "epoch" not in log.columns or not cols:
            continue
        rows = log.loc[log[cols].notna().any(axis=1), ["epoch", *cols]].copy()
        rows["_version"] = version
        frames.append(rows)
    if not frames:
        return pd.DataFrame(columns=["epoch"])
    rows = pd.concat(frames, ignore_index=True).dropna(subset=["epoch"])
    rows["epoch"] = rows["epoch"].astype(int)
    # One validation per epoch; a repeated epoch (resume) keeps its latest value.
    rows = rows.sort_values(["epoch", "_version"], kind="stable").groupby("epoch", as_index=False).last()
    return rows.drop(columns="_version").reset_index(drop=True)


def curve_table(runs: Iterable[tuple[str, str | Path]], metrics: Sequence[str] = CURVE_METRICS) -> pd.DataFrame:
    """Mean curves over the seeds.

    Args:
        runs: (recipe name, run folder) pairs, any number of seeds per recipe.
        metrics: the ``val/...`` columns to aggregate; missing ones are skipped.

    Returns:
        Long table with columns ``recipe, metric, epoch, mean, std, n``: per recipe, metric and epoch
        the mean, the sample std (ddof 1; NaN with one seed) and the number of seeds that logged that
        epoch. Recipes keep their first-seen order.
    """
    curves: dict[str, list[pd.DataFrame]] = {}
    for recipe, exp_dir in runs:
        curve = read_validation_curve(exp_dir)
        curves.setdefault(recipe, [])
        if len(curve):
            curves[recipe].append(curve)
    out = []
    for recipe, seeds in curves.items():
        if not seeds:
            continue
        stacked = pd.concat(seeds, ignore_index=True)
        for metric in metrics:
            if metric not in stacked.columns:
                continue
            g = stacked.dropna(subset=[metric]).groupby("epoch")[metric]
            stats = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.count()}).reset_index()
            stats.insert(0, "metric", metric)
            stats.insert(0, "recipe", recipe)
            out.append(stats)
    if not out:
        return pd.DataFrame(columns=["recipe", "metric", "epoch", "mean", "std", "n"])
    return pd.concat(out, ignore_index=True)


def late_epoch_table(runs: Iterable[tuple[str, str | Path]], n_last: int = 5,
                     metrics: Sequence[str] = CURVE_METRICS) -> pd.DataFrame:
    """Each run's validation metrics averaged over its last ``n_last`` logged epochs, then
    aggregated over the seeds.

    Returns:
        Long table ``recipe, metric, mean, std, n``: mean and sample std (ddof 1; NaN with one seed)
        over the runs of the recipe, ``n`` the number of runs that logged the metric.
    """
    if n_last < 1:
        raise ValueError(f"n_last must be >= 1, got {n_last}")
    per_run: dict[str, list[pd.Series]] = {}
    for recipe, exp_dir in runs:
        curve = read_validation_curve(exp_dir)
        if len(curve):
            last = curve[curve["epoch"] > curve["epoch"].max() - n_last]
            per_run.setdefault(recipe, []).append(last.drop(columns="epoch").mean())
    out = []
    for recipe, rows in per_run.items():
        table = pd.DataFrame(rows)
        for metric in metrics:
            if metric in table.columns:
                vals = table[metric].dropna()
                out.append({"recipe": recipe, "metric": metric, "mean": vals.mean(),
                            "std": vals.std(ddof=1), "n": int(vals.count())})
    return pd.DataFrame(out, columns=["recipe", "metric", "mean", "std", "n"])


def _label(metric: str) -> str:
    name = metric.removeprefix(VAL_PREFIX)
    return {"event_f1": "event-based F1", "segment_f1": "segment-based F1", "tagging_f1": "tagging F1",
            "intersection_f1": "intersection-based F1"}.get(name, name)


def plot_learning_curves(table: pd.DataFrame, path: str | Path) -> None:
    """One panel per metric in ``table`` (from :func:`curve_table`): each recipe's mean over the
    seeds against the epoch (1-based on the axis), with a +-1 std band. Written atomically as PNG.

    Raises:
        ValueError: ``table`` is empty (no run logged a validation).
    """
    if table.empty:
        raise ValueError("no validation curves to plot (no run has a logs/version_*/metrics.csv with val/ metrics)")
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg, without touching pyplot's state
    from matplotlib.figure import Figure

    metrics = list(dict.fromkeys(table["metric"]))
    recipes = list(dict.fromkeys(table["recipe"]))
    n_cols = 2 if len(metrics) > 1 else 1
    n_rows = math.ceil(len(metrics) / n_cols)
    fig = Figure(figsize=(5.2 * n_cols, 3.4 * n_rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, metric in zip(axes, metrics):
        for i, recipe in enumerate(recipes):
            rows = table[(table["recipe"] == recipe) & (table["metric"] == metric)].sort_values("epoch")
            if rows.empty:
                continue
            x = rows["epoch"].to_numpy() + 1
            mean = rows["mean"].to_numpy(dtype=float)
            std = np.nan_to_num(rows["std"].to_numpy(dtype=float))
            n = int(rows["n"].max())
            colour = f"C{i}"
            ax.plot(x, mean, color=colour, label=f"{recipe} (n={n})")
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
        ax.set_title(f"validation {_label(metric)}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean ± std over seeds")
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=110))


__all__ = ["CURVE_METRICS", "read_validation_curve", "curve_table", "late_epoch_table", "plot_learning_curves"]
