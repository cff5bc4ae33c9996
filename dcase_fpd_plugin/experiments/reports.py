"""A comparison's report files: summary.md, the CSV tables and the plots, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from ..atomic import atomic_write, atomic_write_text
from .learning_curves import curve_table, late_epoch_table, plot_learning_curves
from .plots import plot_per_class, plot_psds_vs_energy, plot_sorted_event_f1
from .records import RunRecord
from .tables import energy_table, format_summary_markdown, per_class_table, runs_table, summarise


def write_reports(runs: Sequence[RunRecord], out: Path, title: str = "Comparison") -> dict[str, Path]:
    """Write summary.csv, summary.md, runs.csv, per_class_f1.csv, energy.csv and the three plots
    (sorted event F1, per-class F1, PSDS1 against training kWh) into ``out``, and
    learning_curves.csv / .png when the runs' folders hold validation logs."""
    out = Path(out)
    summary = summarise(runs)
    energy = energy_table(runs)
    per_class = per_class_table(runs, "event_f1")
    files = {name: out / name for name in ("summary.csv", "summary.md", "runs.csv", "per_class_f1.csv",
                                            "energy.csv", "event_f1_sorted.png", "per_class_f1.png",
                                            "psds1_vs_training_kwh.png")}
    _write_csv(files["summary.csv"], summary)
    _write_csv(files["energy.csv"], energy)
    _write_csv(files["runs.csv"], runs_table(runs))
    _write_csv(files["per_class_f1.csv"], per_class)
    atomic_write_text(files["summary.md"], format_summary_markdown(summary, energy, runs, title))
    plot_sorted_event_f1(runs, files["event_f1_sorted.png"])
    plot_per_class(per_class, files["per_class_f1.png"])
    plot_psds_vs_energy(runs, files["psds1_vs_training_kwh.png"])
    logged = [(r.recipe, r.exp_dir) for r in runs if r.exp_dir is not None]  # runs with Lightning logs
    curves = curve_table(logged)
    if not curves.empty:
        files["learning_curves.csv"] = out / "learning_curves.csv"
        files["learning_curves.png"] = out / "learning_curves.png"
        files["late_epochs.csv"] = out / "late_epochs.csv"
        _write_csv(files["learning_curves.csv"], curves)
        _write_csv(files["late_epochs.csv"], late_epoch_table(logged))
        plot_learning_curves(curves, files["learning_curves.png"])
    return files


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))
