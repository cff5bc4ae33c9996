"""N-seed comparisons of recipes: ``dcase-fpd compare``, its tables and plots.

    dcase-fpd compare weak weak_fpd_ip --seeds 20 --out exp/cmp \\
        [--jobs 4] training.n_epochs=30

Each recipe is trained and tested once per seed (``--seed-start`` .. ``--seed-start + N - 1``);
the command-line overrides apply to every recipe, and compare itself sets ``training.seed`` and
``training.exp_dir``. Output folder::

    OUT/<recipe name>/seed_<s>/     one experiment folder per run (see training.py), plus
                                    compare_run.json (wall time of the run, written by compare)
    OUT/summary.csv                 one row per recipe x metric (see summarise())
    OUT/summary.md                  the paper's Tables 1-3 layout, plus intersection F1, PSDS1,
                                    PSDS2 and the mean energy per recipe
    OUT/runs.csv                    one row per run: recipe, seed, every scalar metric, energy, wall time
    OUT/per_class_f1.csv            mean / std per-class event F1 per recipe (the bar chart's numbers)
    OUT/event_f1_sorted.png         each recipe's event F1 over the seeds, sorted (the paper's Fig. 3)
    OUT/per_class_f1.png            mean per-class event F1 per recipe, std error bars
    OUT/learning_curves.csv, .png   validation F1s per epoch, mean +- std per recipe (see
                                    learning_curves.py; only when the runs logged validations)
    OUT/late_epochs.csv             validation F1s averaged over each run's last 5 epochs, mean +- std
    OUT/energy.csv                  mean kWh per recipe and phase, the training-energy ratio against the
                                    first recipe (normalised by work) and EW-PSDS (see energy_table())
    OUT/psds1_vs_training_kwh.png   PSDS1 against training kWh, one point per run, a colour per recipe

Resuming: a run folder that already holds ``metrics.json`` is skipped when its ``recipe.yaml``
is the same resolved recipe (its location and display-only keys aside, see ``IDENTITY_IGNORED``);
a folder holding ``checkpoints/last.ckpt`` but no ``metrics.json`` continues with
``train(..., resume=True)``. A folder made by a different recipe, or trained before 0.2's fidelity
fixes (no ``dcase_fpd_fidelity`` in its metrics.json or last checkpoint), is refused (before anything
is trained) unless ``--force``, which redoes every run. The reports are rebuilt from the run folders
each time (cheap; no training).

Energy against the first recipe: ``kWh_first / kWh_recipe`` of the training phase, the first
recipe's kWh scaled to the recipe's amount of work (training clips, else epochs) where they differ,
and EW-PSDS = PSDS x that ratio, as ``dcase-fpd report --baseline`` does for two runs
(:mod:`dcase_fpd_plugin.energy_comparison`).

Statistics: mean, *sample* standard deviation (ddof = 1; undefined, written empty / "n/a", with one
seed), best (maximum; minimum for energy) over the seeds whose value is defined (a metric that was
not computed, e.g. PSDS with ``eval.psds=false``, is None in metrics.json and left out). The gain
is the difference of the means, recipe minus the first recipe given, in the metric's own units.

The aggregation (``summarise``, ``runs_table``, ``per_class_table``, ``energy_table``,
``format_summary_markdown``) is pure: it takes :class:`RunRecord` values and needs no training.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from .energy import read_energy as read_energy_json
from .energy_comparison import (EW_PSDS_PHASE, WORK_UNITS, combined_kind, energy_ratio, ew_psds,
                                normalise_work, phase_energy)
from .atomic import atomic_write, atomic_write_text
from .learning_curves import curve_table, late_epoch_table, plot_learning_curves

# (metrics.json key, table title, column label) in the order of summary.md.
HEADLINE_METRICS: tuple[tuple[str, str, str], ...] = (
    ("event_f1", "Event-based F1 score", "F1"),
    ("segment_f1", "Segment-based F1 score", "F1"),
    ("tagging_f1", "Audio tagging F1 score", "F1"),
    ("intersection_f1", "Intersection-based F1 score", "F1"),
    ("psds1", "PSDS1", "PSDS1"),
    ("psds2", "PSDS2", "PSDS2"),
)
# Further scalar metrics aggregated into summary.csv (not tabulated in summary.md).
EXTRA_METRICS: tuple[str, ...] = (
    "event_f1_micro",
    "segment_f1_micro",
    "event_f1_zero_filled",
    "segment_f1_zero_filled",
    "n_undetected_classes",
)
LATE_PREFIX = "late_"  # late_<metric>: the run's test metric averaged over its last epochs
LATE_EPOCHS_DIR = "late_epochs"  # training.LATE_EPOCHS_DIR (not imported: training pulls in Lightning)
ENERGY_METRIC = "energy_kwh"  # total over phases; per phase: energy_kwh_<phase>
LOWER_IS_BETTER_PREFIX = "energy_kwh"

# Resolved-recipe keys that do not change what a run computes (training.max_train_s: only how far
# it trains); ignored when a run folder's recipe.yaml is compared with the recipe about to run there.
IDENTITY_IGNORED: frozenset[str] = frozenset(
    {
        "training.exp_dir",
        "training.progress_bar",
        "training.num_threads",
        "training.log_every_n_steps",
        "data.num_workers",
        "data.cache_dir",
        "data.feature_store",  # speed only: the store gives the disk path's batches
        "data.feature_store_max_gb",
        "net.crnn_checkpoint_blocks",  # memory only: the same gradients (tests/test_crnn.py)
        "training.gpu_memory_limit_gb",  # where a run's memory may grow to, not what it computes
        "training.max_train_s",  # a budget, so it may change on resume (it changes how far a run trains: metrics.json says epochs_trained)
    }
)
RUN_INFO_FILE = "compare_run.json"


class CompareError(ValueError):
    """The comparison's input is unusable (recipes, seeds, overrides), nothing was trained."""


class RecipeMismatchError(RuntimeError):
    """A run folder holds a run of a different recipe than the one about to run there."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class EnergyRecord:
    """Energy of one run, read from its ``energy.json``.

    Attributes:
        phases: phase name (training, devtest, eval, ...) -> kWh.
        kind: ``"measured"``, ``"estimated"``, ``"mixed (N % measured)"`` or ``"unknown"`` (the file
            did not say), as ``dcase-fpd report`` labels it.
        work: phase -> the work it did (``{"clips": n, "epochs": n, ...}``), where recorded.
        hardware: phase -> its segments' distinct ``(cpu_model, gpu_model, gpu_count)``, where recorded.
        phase_kinds: phase -> the kind of that phase's figure alone (same labels as ``kind``).
    """

    phases: Mapping[str, float]
    kind: str = "unknown"
    work: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    hardware: Mapping[str, tuple] = field(default_factory=dict)
    phase_kinds: Mapping[str, str] = field(default_factory=dict)

    @property
    def total_kwh(self) -> float:
        return float(sum(self.phases.values()))


@dataclass(frozen=True)
class RunRecord:
    """One finished run of a comparison: what the aggregation needs.

    Attributes:
        recipe: the recipe's name (its file stem).
        seed: ``training.seed`` of the run.
        metrics: the run's metrics.json content.
        energy: its energy.json figures, or None when the run has none.
        wall_s: seconds the run took (the last invocation that trained it), None if unknown.
        exp_dir: the run folder, None for hand-made records.
        late_metrics: test metrics.json of each of the run's last epochs
            (``late_epochs/epoch_NNN``, ``training.test_last_n_epochs``), oldest first.
    """

    recipe: str
    seed: int
    metrics: Mapping[str, Any]
    energy: EnergyRecord | None = None
    wall_s: float | None = None
    exp_dir: Path | None = None
    late_metrics: tuple[Mapping[str, Any], ...] = ()


@dataclass
class PlannedRun:
    """One (recipe, seed) of a comparison, resolved and placed.

    ``action``: ``"skip"`` (complete), ``"resume"`` (checkpoint, no metrics), ``"restart"`` (a
    partial folder without a checkpoint), ``"new"``, or ``"redo"`` (``--force``).
    """

    name: str
    recipe_path: Path
    seed: int
    exp_dir: Path
    recipe: dict[str, Any]
    action: str = "new"


@dataclass
class ComparisonResult:
    """What :func:`run_comparison` returns: the runs and the report files written."""

    runs: list[RunRecord]
    files: dict[str, Path] = field(default_factory=dict)
    n_trained: int = 0


# --------------------------------------------------------------------------- reading run folders


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return None if math.isnan(value) else value


def parse_energy(data: Any) -> EnergyRecord | None:
    """Energy figures from the content of an ``energy.json`` written by :mod:`dcase_fpd_plugin.energy`
    (``phases: {name: {"energy_kwh": x, "method": "measured" | "estimated", ...}}``); None when no
    phase holds a kWh figure. The kind is the report's (``dcase-fpd report``): ``"measured"``,
    ``"estimated"`` or ``"mixed (N % measured)"`` from the measured share of the kWh over all phases;
    ``"unknown"`` when no phase says how its figure was obtained."""
    raw = data.get("phases") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping):
        return None
    phases: dict[str, float] = {}
    kinds: set[str] = set()
    parts: list[Any] = []  # PhaseEnergy of each phase with a figure
    phase_kinds: dict[str, str] = {}
    work: dict[str, dict[str, int]] = {}
    hardware: dict[str, tuple] = {}
    for name, entry in raw.items():
        kwh = _float_or_none(entry.get("energy_kwh")) if isinstance(entry, Mapping) else None
        if kwh is None:
            continue
        phases[str(name)] = kwh
        if entry.get("method") in ("measured", "estimated"):
            kinds.add(entry["method"])
        pe = phase_energy(data, name)
        if pe is not None:
            parts.append(pe)
            phase_kinds[str(name)] = pe.kind if entry.get("method") in ("measured", "estimated") else "unknown"
        if pe is not None and pe.work:
            work[str(name)] = dict(pe.work)
        if pe is not None and pe.hardware:
            hardware[str(name)] = pe.hardware
    if not phases:
        return None
    return EnergyRecord(phases, combined_kind(*parts) if kinds else "unknown", work, hardware, phase_kinds)


def read_energy(exp_dir: Path) -> EnergyRecord | None:
    """The run's ``energy.json`` figures, None if the file is absent, unreadable or empty."""
    try:
        return parse_energy(read_energy_json(exp_dir))
    except ValueError as exc:  # the message names the file
        warnings.warn(f"{exc}; its run counts as not measured", stacklevel=2)
        return None


def load_run_record(exp_dir: Path, recipe: str, seed: int) -> RunRecord:
    """Read a finished run folder (metrics.json, energy.json, compare_run.json)."""
    exp_dir = Path(exp_dir)
    metrics = json.loads((exp_dir / "metrics.json").read_text())
    wall_s = None
    info = exp_dir / RUN_INFO_FILE
    if info.is_file():
        try:
            wall_s = _float_or_none(json.loads(info.read_text()).get("wall_s"))
        except (OSError, ValueError, AttributeError):
            wall_s = None
    return RunRecord(recipe, seed, metrics, read_energy(exp_dir), wall_s, exp_dir, read_late_metrics(exp_dir))


def read_late_metrics(exp_dir: Path) -> tuple[dict[str, Any], ...]:
    """The run's ``late_epochs/epoch_NNN/metrics.json`` contents, by epoch (empty when none)."""
    found = []
    for path in sorted(Path(exp_dir).glob(f"{LATE_EPOCHS_DIR}/epoch_*/metrics.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            warnings.warn(f"{path}: unreadable ({exc}); left out of the late-epoch average", stacklevel=2)
    return tuple(found)


# --------------------------------------------------------------------------- pure aggregation


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The numeric top-level entries of a metrics dict (lists, dicts and strings left out)."""
    return {k: _float_or_none(v) if v is not None else None
            for k, v in metrics.items()
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}


def _recipe_order(runs: Sequence[RunRecord]) -> list[str]:
    return list(dict.fromkeys(r.recipe for r in runs))


def _run_values(run: RunRecord) -> dict[str, float | None]:
    """Scalar metrics of a run, ``late_<metric>`` (the headline metrics averaged over its late-epoch
    tests, when it has them) and its energy (total and per phase)."""
    values = scalar_metrics(run.metrics)
    if run.late_metrics:
        for metric, _, _ in HEADLINE_METRICS:
            vals = [v for v in (_float_or_none(m.get(metric)) for m in run.late_metrics) if v is not None]
            values[f"{LATE_PREFIX}{metric}"] = float(np.mean(vals)) if vals else None
    if run.energy is not None:
        values[ENERGY_METRIC] = run.energy.total_kwh
        for phase, kwh in run.energy.phases.items():
            values[f"{ENERGY_METRIC}_{phase}"] = kwh
    return values


def describe(values: Iterable[float | None], lower_is_better: bool = False) -> dict[str, float]:
    """mean, std (sample, ddof=1; NaN with fewer than 2 values), best, n of the defined values."""
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = int(arr.size)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "best": math.nan, "n_seeds": 0}
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if n > 1 else math.nan,
        "best": float(arr.min() if lower_is_better else arr.max()),
        "n_seeds": n,
    }


def summarise(runs: Sequence[RunRecord], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per recipe x metric: ``recipe, metric, mean, std, best, n_seeds, gain``.

    ``std`` is the sample standard deviation (ddof = 1), NaN with one seed; ``best`` the maximum
    (the minimum for energy); ``gain`` the recipe's mean minus the first recipe's mean (recipes
    in the order they first appear in ``runs``). ``metrics`` defaults to the headline metrics,
    :data:`EXTRA_METRICS` and, when any run has energy figures, ``energy_kwh`` and
    ``energy_kwh_<phase>``. Values that are None (not computed) are left out of the statistics.
    """
    if not runs:
        raise ValueError("summarise: no runs to summarise")
    order = _recipe_order(runs)
    values = [(_run_values(r), r) for r in runs]
    if metrics is None:
        metrics = [m for m, _, _ in HEADLINE_METRICS] + list(EXTRA_METRICS)
        if any(r.late_metrics for r in runs):
            metrics += [f"{LATE_PREFIX}{m}" for m, _, _ in HEADLINE_METRICS]
        energy_keys = sorted({k for v, _ in values for k in v if k.startswith(ENERGY_METRIC)},
                             key=lambda k: (k != ENERGY_METRIC, k))
        metrics += energy_keys
    rows = []
    for name in order:
        for metric in metrics:
            stats = describe((v.get(metric) for v, r in values if r.recipe == name),
                             lower_is_better=metric.startswith(LOWER_IS_BETTER_PREFIX))
            rows.append({"recipe": name, "metric": metric, **stats})
    table = pd.DataFrame(rows, columns=["recipe", "metric", "mean", "std", "best", "n_seeds"])
    first = table[table["recipe"] == order[0]].set_index("metric")["mean"]
    table["gain"] = table["mean"] - table["metric"].map(first)
    return table


def runs_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run: recipe, seed, every scalar metric, energy (kWh, kind), wall_s, exp_dir."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {"recipe": r.recipe, "seed": r.seed}
        row.update(_run_values(r))
        row["energy_kind"] = r.energy.kind if r.energy is not None else "not measured"
        row["wall_s"] = r.wall_s
        row["exp_dir"] = str(r.exp_dir) if r.exp_dir is not None else None
        rows.append(row)
    rank = {name: i for i, name in enumerate(_recipe_order(runs))}
    rows.sort(key=lambda row: (rank[row["recipe"]], row["seed"]))
    table = pd.DataFrame(rows)
    tail = ["energy_kind", "wall_s", "exp_dir"]
    energy_cols = [c for c in table.columns if c.startswith(ENERGY_METRIC)]
    head = [c for c in table.columns if c not in tail and c not in energy_cols]
    return table[head + energy_cols + tail]


def per_class_table(runs: Sequence[RunRecord], metric: str = "event_f1") -> pd.DataFrame:
    """Mean and sample std (ddof=1) of ``per_class[metric][class]`` per recipe and class.

    Columns ``recipe, class, mean, std, n_seeds``; classes in the order they first appear.
    A class whose value is None (no reference events) in a run is left out for that run.
    """
    classes: list[str] = []
    for r in runs:
        for c in (r.metrics.get("per_class") or {}).get(metric, {}) or {}:
            if c not in classes:
                classes.append(c)
    rows = []
    for name in _recipe_order(runs):
        mine = [r for r in runs if r.recipe == name]
        for c in classes:
            stats = describe(((r.metrics.get("per_class") or {}).get(metric, {}) or {}).get(c) for r in mine)
            rows.append({"recipe": name, "class": c, "mean": stats["mean"], "std": stats["std"],
                         "n_seeds": stats["n_seeds"]})
    return pd.DataFrame(rows, columns=["recipe", "class", "mean", "std", "n_seeds"])


def energy_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """Per recipe: mean kWh (total and per phase) over the runs with energy figures, and the
    training energy against the first recipe.

    Columns ``recipe, n_runs, n_with_energy, kind, mean_kwh, <phase>_kwh ..., kwh_ratio,
    normalised_by, ew_psds1, ew_psds2, same_hardware``. ``kind`` is measured / estimated / mixed /
    unknown over the recipe's runs, or ``not measured`` (then every kWh is NaN). ``kwh_ratio`` is
    the first recipe's mean training kWh, scaled to this recipe's mean work (training clips, else
    epochs, when every run of both recorded it and they differ), over this recipe's mean training
    kWh; ``normalised_by`` says how; ``ew_psds1/2`` = mean PSDS x ``kwh_ratio``; ``same_hardware``:
    whether the recipe's training runs recorded the hardware of the first recipe's (None: unknown).
    """
    phases: list[str] = []
    for r in runs:
        for p in (r.energy.phases if r.energy else {}):
            if p not in phases:
                phases.append(p)
    order = _recipe_order(runs)
    rows = []
    for name in order:
        mine = [r for r in runs if r.recipe == name]
        with_energy = [r.energy for r in mine if r.energy is not None]
        kinds = {e.kind for e in with_energy}
        kind = "not measured" if not with_energy else kinds.pop() if len(kinds) == 1 else "mixed"
        row: dict[str, Any] = {"recipe": name, "n_runs": len(mine), "n_with_energy": len(with_energy),
                               "kind": kind,
                               "mean_kwh": describe(e.total_kwh for e in with_energy)["mean"]}
        for p in phases:
            row[f"{p}_kwh"] = describe(e.phases.get(p) for e in with_energy)["mean"]
        rows.append(row)
    first = _weighting_inputs(runs, order[0])
    for row in rows:
        mine = _weighting_inputs(runs, row["recipe"])
        work = normalise_work(EW_PSDS_PHASE, mine["work"], first["work"])
        ratio = energy_ratio(mine["kwh"], first["kwh"], work.scale)
        row["kwh_ratio"] = math.nan if ratio is None else ratio
        row["normalised_by"] = work.note if ratio is not None else f"no {EW_PSDS_PHASE} kWh"
        for metric in ("psds1", "psds2"):
            value = ew_psds(mine[metric], ratio)
            row[f"ew_{metric}"] = math.nan if value is None else value
        known = mine["hardware"] is not None and first["hardware"] is not None
        row["same_hardware"] = (mine["hardware"] == first["hardware"]) if known else None
    return pd.DataFrame(rows)


def _weighting_inputs(runs: Sequence[RunRecord], recipe: str) -> dict[str, Any]:
    """A recipe's mean training kWh, mean work per unit (when every such run recorded it), mean
    PSDS1/2 and the set of training hardware (None when a run did not record it)."""
    mine = [r for r in runs if r.recipe == recipe]
    measured = [r for r in mine if r.energy is not None and EW_PSDS_PHASE in r.energy.phases]
    kwh = describe(r.energy.phases[EW_PSDS_PHASE] for r in measured)["mean"]
    work = {}
    for unit in WORK_UNITS[EW_PSDS_PHASE]:
        counts = [(r.energy.work.get(EW_PSDS_PHASE) or {}).get(unit) for r in measured]
        if counts and all(c is not None for c in counts):
            work[unit] = float(np.mean(counts))
    hardware = [r.energy.hardware.get(EW_PSDS_PHASE) for r in measured]
    out: dict[str, Any] = {"kwh": None if math.isnan(kwh) else kwh, "work": work,
                           "hardware": frozenset(h for hs in hardware for h in hs)
                           if hardware and all(hardware) else None}
    for metric in ("psds1", "psds2"):
        mean = describe(_float_or_none(r.metrics.get(metric)) for r in mine)["mean"]
        out[metric] = None if math.isnan(mean) else mean
    return out


# --------------------------------------------------------------------------- markdown


def _num(x: float, digits: int) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f} ± {_num(std, 4)}"


def _gain(gain: float, is_first: bool) -> str:
    if is_first:
        return "(reference)"
    return "n/a" if math.isnan(gain) else f"{gain:+.3f}"


def _bold_if(text: str, flag: bool) -> str:
    return f"**{text}**" if flag else text


def format_metric_table(summary: pd.DataFrame, metric: str, label: str) -> str:
    """Markdown table ``Model | Average <label> | Best <label> | Gain over <first>`` for a metric,
    the best mean and the best single run in bold (as in the paper)."""
    rows = summary[summary["metric"] == metric].reset_index(drop=True)
    first = rows["recipe"].iloc[0]
    # bold only where it singles something out: several recipes that do not all tie
    bold_mean, bold_best = rows["mean"].nunique() > 1, rows["best"].nunique() > 1
    top_mean = rows["mean"].max() if rows["mean"].notna().any() else math.nan
    top_best = rows["best"].max() if rows["best"].notna().any() else math.nan
    lines = [f"| Model | Average {label} | Best {label} | Gain over {first} (mean) |", "|---|---|---|---|"]
    for i, row in rows.iterrows():
        mean_cell = _bold_if(_mean_std(row["mean"], row["std"]), bold_mean and row["mean"] == top_mean)
        best_cell = _bold_if(_num(row["best"], 3), bold_best and row["best"] == top_best)
        lines.append(f"| {row['recipe']} | {mean_cell} | {best_cell} | {_gain(row['gain'], i == 0)} |")
    return "\n".join(lines)


def format_energy_section(energy: pd.DataFrame) -> str:
    """Markdown table of the mean energy per recipe, each figure marked estimated / measured, and
    the training energy against the first recipe (ratio, normalisation, EW-PSDS)."""
    phases = [c[: -len("_kwh")] for c in energy.columns if c.endswith("_kwh") and c != "mean_kwh"]
    first = energy["recipe"].iloc[0]
    head = ("| Model | Mean energy per run (kWh) | " + "".join(f"{p} (kWh) | " for p in phases)
            + f"{EW_PSDS_PHASE} kWh of {first} / of this | normalised | EW-PSDS1 | EW-PSDS2 | Runs with figures |")
    lines = [head, "|---|---|" + "---|" * len(phases) + "---|---|---|---|---|"]
    for _, row in energy.iterrows():
        if row["kind"] == "not measured":
            total = "not measured"
        else:
            total = f"{_num(row['mean_kwh'], 6)} ({row['kind']})"
        cells = "".join(f"{_num(row[f'{p}_kwh'], 6)} | " for p in phases)
        lines.append(f"| {row['recipe']} | {total} | {cells}{_num(row['kwh_ratio'], 3)} | {row['normalised_by']} | "
                     f"{_num(row['ew_psds1'], 4)} | {_num(row['ew_psds2'], 4)} | "
                     f"{row['n_with_energy']} of {row['n_runs']} |")
    note = ("Energy from each run's energy.json (codecarbon). \"estimated\": codecarbon had no power "
            "counters (RAPL / NVML) and modelled power x duration; \"measured\": read from the counters. "
            f"Ratio: the {EW_PSDS_PHASE} kWh of {first} over this recipe's (means over the seeds), {first}'s "
            "scaled to this recipe's work where they differ; EW-PSDS = mean PSDS x ratio (Ronchini & Serizel "
            "2023), as `dcase-fpd report --baseline`.")
    other = [str(r) for r, same in zip(energy["recipe"], energy["same_hardware"]) if same is False]
    if other:
        note += f" **Warning: {', '.join(other)} trained on other hardware than {first}: their ratios compare machines too.**"
    return note + "\n\n" + "\n".join(lines)


def format_summary_markdown(summary: pd.DataFrame, energy: pd.DataFrame | None,
                            runs: Sequence[RunRecord], title: str = "Comparison") -> str:
    """summary.md: one table per headline metric (the paper's Tables 1-3 layout), then energy."""
    order = _recipe_order(runs)
    seeds = {name: sorted(r.seed for r in runs if r.recipe == name) for name in order}
    lines = [f"# {title}", ""]
    lines.append("Recipes (in order; the first is the reference for the gain): "
                 + ", ".join(f"{n} ({len(seeds[n])} seeds: {_seed_span(seeds[n])})" for n in order) + ".")
    lines.append("")
    lines.append("Average = mean ± sample standard deviation (ddof = 1; n/a with one seed) over the seeds; "
                 "Best = the best single seed; Gain = difference of the means, recipe minus "
                 f"{order[0]}. Bold: the highest average and the highest best.")
    lines += ["", format_protocol(runs)]
    for i, (metric, title_text, label) in enumerate(HEADLINE_METRICS, start=1):
        lines += ["", f"## Table {i}: {title_text} (`{metric}`)", ""]
        rows = summary[summary["metric"] == metric]
        if rows.empty or rows["n_seeds"].sum() == 0:
            lines.append(f"Not computed in these runs (`{metric}` is null in metrics.json"
                         + (", e.g. eval.psds=false)." if metric.startswith("psds") else ")."))
            continue
        lines.append(format_metric_table(summary, metric, label))
    late = format_late_table(summary, runs)
    if late:
        lines += ["", late]
    lines += ["", "## Energy", ""]
    if energy is None or energy.empty:
        lines.append("not measured")
    else:
        lines.append(format_energy_section(energy))
    lines += ["", "Files: summary.csv (all statistics), runs.csv (one row per run), per_class_f1.csv, energy.csv, "
              "event_f1_sorted.png, per_class_f1.png, psds1_vs_training_kwh.png, learning_curves.csv/.png "
              "(validation per epoch).", ""]
    return "\n".join(lines)


def format_protocol(runs: Sequence[RunRecord]) -> str:
    """Which clips chose each run's checkpoint and which were scored (from metrics.json), with a
    warning when any run was scored on the clips that chose its checkpoint."""
    sets = sorted({(str(r.metrics.get("validation_set", "?")), str(r.metrics.get("test_set", "?"))) for r in runs})
    flagged = [f"{r.recipe} seed {r.seed}" for r in runs if r.metrics.get("selection_on_test") is not False]
    text = "; ".join(f"checkpoint chosen on `{v}`, metrics on `{t}`" for v, t in sets) + "."
    if flagged:
        text = (f"**Warning: {len(flagged)} of {len(runs)} runs were scored on the clips that chose their "
                f"checkpoint (selection_on_test true or unknown: {', '.join(flagged[:6])}"
                f"{', ...' if len(flagged) > 6 else ''}); their figures are flattered.** " + text)
    stopped = [f"{r.recipe} seed {r.seed} after {r.metrics.get('epochs_trained', '?')} epochs" for r in runs
               if r.metrics.get("stopped_by_time_limit") is True]
    if stopped:
        text += (f" {len(stopped)} of {len(runs)} runs stopped at their time limit (training.max_train_s) before "
                 f"training.n_epochs: {', '.join(stopped[:6])}{', ...' if len(stopped) > 6 else ''}.")
    return "Protocol: " + text


def format_late_table(summary: pd.DataFrame, runs: Sequence[RunRecord]) -> str:
    """Markdown table of the test metrics averaged over each run's last epochs, then over the seeds
    (empty string when no run has late-epoch tests)."""
    n_late = sorted({len(r.late_metrics) for r in runs if r.late_metrics})
    if not n_late:
        return ""
    names = [(m, label) for m, _, label in HEADLINE_METRICS]
    lines = [f"## Test metrics over each run's last {'/'.join(map(str, n_late))} epochs",
             "", "Each run's test metrics averaged over the checkpoints of its last epochs (no selection), "
             "then mean ± std over the seeds; the gain is against the first recipe.", "",
             "| Model | " + " | ".join(f"{m}" for m, _ in names) + " |", "|---|" + "---|" * len(names)]
    for recipe in _recipe_order(runs):
        cells = []
        for m, _ in names:
            row = summary[(summary["recipe"] == recipe) & (summary["metric"] == f"{LATE_PREFIX}{m}")]
            if row.empty or row["n_seeds"].iloc[0] == 0:
                cells.append("n/a")
                continue
            r = row.iloc[0]
            gain = "" if recipe == _recipe_order(runs)[0] or math.isnan(r["gain"]) else f" ({r['gain']:+.3f})"
            cells.append(_mean_std(r["mean"], r["std"]) + gain)
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _seed_span(seeds: Sequence[int]) -> str:
    if seeds and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


# --------------------------------------------------------------------------- plots


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
    for name in _recipe_order(runs):
        vals = sorted(v for v in (_float_or_none(r.metrics.get(metric)) for r in runs if r.recipe == name)
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
    for name in _recipe_order(runs):
        pts = [(r.energy.phases[phase], _float_or_none(r.metrics.get(metric))) for r in runs
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


# --------------------------------------------------------------------------- writing reports


def _write_csv(path: Path, table: pd.DataFrame) -> None:
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False, float_format="%.6g"))


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


# --------------------------------------------------------------------------- planning and running


def _normalised(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe as recipe.yaml stores it (YAML round trip), for comparisons."""
    from .recipe import dump_recipe

    return yaml.safe_load(dump_recipe(dict(recipe)))


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        path = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            flat.update(_flatten(v, path))
        else:
            flat[path] = v
    return flat


def _current_defaults(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Flat default values of every key of ``recipe``: the recipe defaults and, for each of its
    branches, the branch plugin's ``default_config()`` (unknown plugins contribute nothing)."""
    from . import registry
    from .recipe import DEFAULTS

    defaults = dict(DEFAULTS)
    branches = {}
    for name in (recipe.get("branches") or {}):
        try:
            branches[name] = registry.get("branches", name).default_config()
        except registry.UnknownPluginError:  # an uninstalled plugin: its keys have no known default
            continue
    defaults["branches"] = branches
    return _flatten(_normalised(defaults))


def recipe_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any],
                       ignored: Iterable[str] = IDENTITY_IGNORED) -> list[str]:
    """Key paths whose values differ between two resolved recipes, as ``key: old -> new``.

    A key missing from ``stored`` whose wanted value is its current default is no difference:
    the run predates the key, and a new key's default keeps the old behaviour.
    """
    a, b = _flatten(_normalised(stored)), _flatten(_normalised(wanted))
    defaults = _current_defaults(wanted)
    ignored = set(ignored)
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignored:
            continue
        if key not in a and key in defaults and b.get(key, "<absent>") == defaults[key]:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return out


def run_action(planned: PlannedRun, force: bool = False) -> str:
    """What to do with a run folder: skip / resume / restart / new / redo (see PlannedRun).

    Raises:
        RecipeMismatchError: the folder holds a run of another recipe (or one whose recipe
            cannot be told), or one trained before 0.2's fidelity fixes, and ``force`` is false.
    """
    exp = planned.exp_dir
    has_metrics = (exp / "metrics.json").is_file()
    has_last = (exp / "checkpoints" / "last.ckpt").is_file()
    has_any = has_metrics or has_last or (exp / "checkpoints").is_dir() or (exp / "recipe.yaml").is_file()
    if not has_any:
        return "new"
    if force:
        return "redo"
    stored_path = exp / "recipe.yaml"
    if not stored_path.is_file():
        raise RecipeMismatchError(
            f"{exp} holds a run but no recipe.yaml, so it cannot be told whether it is a run of "
            f"{planned.recipe_path} (seed {planned.seed}); move it away or pass --force to redo it"
        )
    try:
        stored = yaml.safe_load(stored_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeMismatchError(f"{stored_path}: not valid YAML ({exc}); pass --force to redo the run") from None
    diffs = recipe_differences(stored, planned.recipe)
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; ... ({len(diffs)} keys in all)" if len(diffs) > 8 else "")
        raise RecipeMismatchError(
            f"{exp} holds a run of a different recipe than {planned.recipe_path} with these overrides "
            f"(seed {planned.seed}): {shown}. Use another --out, or pass --force to redo every run"
        )
    if has_metrics or has_last:
        _refuse_pre_fidelity_run(exp, has_metrics)
    if has_metrics:
        return "skip"
    return "resume" if has_last else "restart"


def _refuse_pre_fidelity_run(exp: Path, has_metrics: bool) -> None:
    """A run trained before 0.2's fidelity fixes (no fidelity mark in its metrics.json, or in its
    last checkpoint when unfinished) gives other numbers than the same recipe now: never reused."""
    from .task import FIDELITY, FIDELITY_KEY, read_checkpoint

    if has_metrics:
        try:
            fidelity = json.loads((exp / "metrics.json").read_text()).get(FIDELITY_KEY, 1)
        except (ValueError, AttributeError):
            raise RecipeMismatchError(f"{exp / 'metrics.json'}: not a JSON object, so it cannot be told which "
                                      "code trained the run; pass --force to redo it") from None
        where = "metrics.json"
    else:
        fidelity = read_checkpoint(exp / "checkpoints" / "last.ckpt")[0].get(FIDELITY_KEY, 1)
        where = "checkpoints/last.ckpt"
    if fidelity < FIDELITY:
        raise RecipeMismatchError(
            f"{exp} holds a run trained before 0.2's fidelity fixes (no {FIDELITY_KEY} in its {where}; "
            "docs/results.md): its numbers are not comparable with new runs. Use another --out, or pass "
            "--force to redo every run")


def plan_runs(recipe_paths: Sequence[str | Path], seeds: Sequence[int], out: str | Path,
              overrides: Sequence[str] = (), force: bool = False) -> list[PlannedRun]:
    """Resolve and validate every (recipe, seed) run before anything is trained.

    Checks: at least one recipe and seed, distinct recipe names (file stems), no override of
    ``training.seed`` / ``training.exp_dir`` (compare sets them), every recipe loads with the
    overrides, its data paths exist, and every existing run folder matches (see run_action).

    Raises:
        CompareError, RecipeError, RecipeMismatchError: with the recipe and key named.
    """
    from .recipe import RecipeError, check_data_paths, load_recipe, parse_override, recipe_name

    if not recipe_paths:
        raise CompareError("compare needs at least one recipe")
    if not seeds:
        raise CompareError("compare needs --seeds >= 1")
    for text in overrides:
        key, _ = parse_override(text)
        if key in ("training.seed", "training.exp_dir"):
            raise CompareError(f"override {text!r}: compare sets {key} itself "
                               "(use --seeds / --seed-start and --out)")
    paths = [Path(p) for p in recipe_paths]
    names = [recipe_name(p) for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CompareError(f"recipes must have distinct file names (they name the run folders and the "
                           f"table rows); given twice: {', '.join(dupes)}")
    out = Path(out)
    planned: list[PlannedRun] = []
    for path, name in zip(paths, names):
        for seed in seeds:
            run_ov = list(overrides) + [f"training.seed={seed}", f"training.exp_dir={out / name / f'seed_{seed}'}"]
            try:
                recipe = load_recipe(path, run_ov)
            except RecipeError as exc:
                msg = str(exc)
                raise RecipeError(msg if str(path) in msg else f"{path}: {msg}") from None
            if seed == seeds[0]:
                check_data_paths(recipe, ["synth", "weak", "unlabeled", "val"])
                if recipe["data"]["test_tsv"]:
                    check_data_paths(recipe, ["test"])
            planned.append(PlannedRun(name, path, seed, Path(recipe["training"]["exp_dir"]), recipe))
    for p in planned:
        p.action = run_action(p, force)
    return planned


def _silent(_: str) -> None:
    """A log that prints nothing."""


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(index: int, total: int, planned: PlannedRun, elapsed_s: float,
                  trained_s: Sequence[float], to_train_left: int) -> str:
    """``[3/8] weak seed 1: training (elapsed 0:01:05, ~0:02:10 left)``; the estimate is the mean
    time of the runs trained so far x the runs still to train (unknown before the first)."""
    verb = {"skip": "complete, skipped", "resume": "resuming from its last checkpoint",
            "restart": "restarting (partial run without a checkpoint)", "new": "training",
            "redo": "redoing (--force)"}[planned.action]
    if trained_s:
        left = f"~{_clock(float(np.mean(trained_s)) * to_train_left)} left"
    else:
        left = "time left unknown yet" if to_train_left else "nothing left to train"
    return f"[{index}/{total}] {planned.name} seed {planned.seed}: {verb} (elapsed {_clock(elapsed_s)}, {left})"


def _is_rank_zero() -> bool:
    """False in the extra processes of a multi-process (DDP) run, which only help train: the
    process of global rank 0 tests, writes metrics.json and the reports."""
    import os

    return all(int(os.environ.get(var, "0") or 0) == 0 for var in ("RANK", "LOCAL_RANK", "NODE_RANK"))


RUN_LOG_FILE = "compare.log"


def _train_in_subprocesses(planned: Sequence[PlannedRun], out: Path, overrides: Sequence[str], jobs: int,
                           force: bool, log: Callable[[str], None]) -> list[float]:
    """Train the runs that need it, ``jobs`` at a time, each in its own ``dcase-fpd compare`` process
    (one recipe, one seed; its output in ``<run folder>/compare.log``). The feature cache is shared
    (content-keyed, atomic writes). Returns the wall seconds of each trained run; raises CompareError
    naming the runs that failed and their logs."""
    import os
    import subprocess
    import sys
    import threading

    todo = [p for p in planned if p.action != "skip"]
    queue = list(reversed(todo))
    lock = threading.Lock()
    walls: list[float] = []
    failed: list[str] = []
    threads_per_run = max(1, (os.cpu_count() or 1) // jobs)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                p = queue.pop()
            extra = [f"training.num_threads={threads_per_run}"] if not p.recipe["training"]["num_threads"] else []
            cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "compare", str(p.recipe_path), "--out", str(out),
                   "--seeds", "1", "--seed-start", str(p.seed), "--run-only", *(["--force"] if force else []),
                   *overrides, *extra]
            p.exp_dir.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            with open(p.exp_dir / RUN_LOG_FILE, "a") as f:
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
            wall = time.monotonic() - t0
            with lock:
                if rc:
                    failed.append(f"{p.name} seed {p.seed} (exit {rc}; see {p.exp_dir / RUN_LOG_FILE})")
                else:
                    walls.append(wall)
                log(f"  {p.name} seed {p.seed}: {'failed' if rc else 'done'} in {_clock(wall)} "
                    f"({len(walls) + len(failed)}/{len(todo)})")

    pool = [threading.Thread(target=worker) for _ in range(min(jobs, len(todo)))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if failed:
        raise CompareError("runs failed: " + "; ".join(failed) + " (rerun the same command to resume)")
    return walls


def run_comparison(recipe_paths: Sequence[str | Path], n_seeds: int, out: str | Path,
                   overrides: Sequence[str] = (), *, seed_start: int = 0, force: bool = False,
                   log: Callable[[str], None] = print, jobs: int = 1, reports: bool = True) -> ComparisonResult:
    """Train and test every recipe with ``n_seeds`` seeds, then write the reports into ``out``.

    Everything is validated first (:func:`plan_runs`); complete runs are skipped, interrupted
    ones resumed. ``jobs > 1`` trains that many runs at once, each in its own process (one GPU is
    shared; on CPU each gets ``cpu_count // jobs`` torch threads unless its recipe sets
    ``training.num_threads``). ``reports=False`` only trains. Returns the run records and the
    report files.
    """
    from . import training

    if n_seeds < 1:
        raise CompareError(f"--seeds must be >= 1, got {n_seeds}")
    if seed_start < 0:
        raise CompareError(f"--seed-start must be >= 0, got {seed_start}")
    out = Path(out)
    seeds = list(range(seed_start, seed_start + n_seeds))
    planned = plan_runs(recipe_paths, seeds, out, overrides, force)
    rank_zero = _is_rank_zero()
    if not rank_zero:
        log = _silent
    to_train = sum(p.action != "skip" for p in planned)
    log(f"compare: {len(planned)} runs ({len(set(p.name for p in planned))} recipes x {n_seeds} seeds), "
        f"{len(planned) - to_train} already complete, {to_train} to train; output in {out}")
    if jobs < 1:
        raise CompareError(f"--jobs must be >= 1, got {jobs}")
    start = time.monotonic()
    trained_s: list[float] = []
    records: list[RunRecord] = []
    if jobs > 1 and to_train and rank_zero:
        log(f"compare: {to_train} runs, {min(jobs, to_train)} at a time")
        trained_s = _train_in_subprocesses(planned, out, overrides, jobs, force, log)
        planned = [PlannedRun(p.name, p.recipe_path, p.seed, p.exp_dir, p.recipe, "skip") for p in planned]
    for i, p in enumerate(planned, start=1):
        left = to_train - len(trained_s)
        if p.action != "skip" or jobs == 1:
            log(progress_line(i, len(planned), p, time.monotonic() - start, trained_s, left))
        if p.action != "skip":
            t0 = time.monotonic()
            training.train(p.recipe, resume=p.action == "resume", force=p.action in ("restart", "redo"))
            wall = time.monotonic() - t0
            trained_s.append(wall)
            info = {"recipe": str(p.recipe_path), "name": p.name, "seed": p.seed, "wall_s": round(wall, 3),
                    "action": p.action}
            if rank_zero:
                atomic_write_text(p.exp_dir / RUN_INFO_FILE, json.dumps(info, indent=2) + "\n")
        if not rank_zero:
            continue
        if not (p.exp_dir / "metrics.json").is_file():
            raise RuntimeError(f"{p.exp_dir}: training finished but wrote no metrics.json")
        records.append(load_run_record(p.exp_dir, p.name, p.seed))
    if not rank_zero or not reports:
        return ComparisonResult(records if rank_zero else [], {}, len(trained_s))
    files = write_reports(records, out, title=f"Comparison of {', '.join(dict.fromkeys(p.name for p in planned))}")
    log(f"compare: done in {_clock(time.monotonic() - start)} ({len(trained_s)} runs trained); "
        f"{files['summary.md']}, {files['summary.csv']}, {files['runs.csv']}, plots in {out}")
    return ComparisonResult(records, files, len(trained_s))


# --------------------------------------------------------------------------- command line


def split_recipes_and_overrides(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Positional words: ``key.path=value`` overrides vs recipe files (an existing file whose name
    holds '=' counts as a recipe)."""
    recipes, overrides = [], []
    for item in items:
        (overrides if "=" in item and not Path(item).is_file() else recipes).append(item)
    return recipes, overrides


def cmd_compare(args: argparse.Namespace) -> int:
    recipes, overrides = split_recipes_and_overrides(args.items)
    if not recipes:
        raise CompareError("compare needs at least one recipe (file or bundled name) before the key=value overrides")
    result = run_comparison(recipes, args.seeds, args.out, overrides, seed_start=args.seed_start,
                            force=args.force, jobs=args.jobs, reports=not args.run_only)
    if "summary.md" in result.files:  # absent in the helper processes of a DDP run
        print()
        print(result.files["summary.md"].read_text())
    return 0


def _compare_main(args: argparse.Namespace) -> int:
    """cmd_compare, with the comparison's own refusals reported as user errors (exit 2)."""
    import sys

    try:
        return cmd_compare(args)
    except (CompareError, RecipeMismatchError) as exc:
        print(f"dcase-fpd compare: error: {exc}", file=sys.stderr)
        return 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dcase-fpd compare`` on the ``dcase-fpd`` sub-command parsers."""
    p = subparsers.add_parser(
        "compare",
        help="train and test several recipes with N seeds each; write the paper's tables and plots",
        description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from .cli import IntermixedArgumentParser

    p.__class__ = IntermixedArgumentParser
    p.add_argument("items", nargs="+", metavar="RECIPE|key=value",
                   help="recipe YAML files or bundled names, then key.path=value overrides applied to every recipe")
    p.add_argument("--seeds", type=int, required=True, metavar="N", help="seeds per recipe")
    p.add_argument("--seed-start", type=int, default=0, metavar="S", help="first seed (default 0): seeds S .. S+N-1")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (run folders, summary.md, ...)")
    p.add_argument("--force", action="store_true",
                   help="redo every run, even complete ones or ones made by a different recipe")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs trained at once, each in its own process (one GPU shared, or the CPU cores "
                        "split between them); default 1")
    p.add_argument("--run-only", action="store_true", help=argparse.SUPPRESS)  # the --jobs workers
    p.set_defaults(func=_compare_main)
    return p


__all__ = [
    "RunRecord", "EnergyRecord", "PlannedRun", "ComparisonResult", "CompareError", "RecipeMismatchError",
    "summarise", "runs_table", "per_class_table", "energy_table", "describe", "parse_energy", "read_energy",
    "format_summary_markdown", "format_metric_table", "format_energy_section", "write_reports",
    "plot_sorted_event_f1", "plot_per_class", "plot_psds_vs_energy", "plan_runs", "run_action", "run_comparison",
    "recipe_differences", "load_run_record", "add_parser",
]
