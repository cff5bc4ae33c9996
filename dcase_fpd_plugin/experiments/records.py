"""What a comparison reads back from a run folder: its metrics, late-epoch metrics and energy, as :class:`RunRecord`."""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..energy.record import read_energy as read_energy_json
from ..report.energy_comparison import combined_kind, phase_energy


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
        "net.crnn_checkpoint_blocks",  # memory only: the same gradients (tests/models/test_crnn.py)
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


def float_or_none(value: Any) -> float | None:
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
        kwh = float_or_none(entry.get("energy_kwh")) if isinstance(entry, Mapping) else None
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
            wall_s = float_or_none(json.loads(info.read_text()).get("wall_s"))
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
    return {k: float_or_none(v) if v is not None else None
            for k, v in metrics.items()
            if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))}


def recipe_order(runs: Sequence[RunRecord]) -> list[str]:
    return list(dict.fromkeys(r.recipe for r in runs))


def run_values(run: RunRecord) -> dict[str, float | None]:
    """Scalar metrics of a run, ``late_<metric>`` (the headline metrics averaged over its late-epoch
    tests, when it has them) and its energy (total and per phase)."""
    values = scalar_metrics(run.metrics)
    if run.late_metrics:
        for metric, _, _ in HEADLINE_METRICS:
            vals = [v for v in (float_or_none(m.get(metric)) for m in run.late_metrics) if v is not None]
            values[f"{LATE_PREFIX}{metric}"] = float(np.mean(vals)) if vals else None
    if run.energy is not None:
        values[ENERGY_METRIC] = run.energy.total_kwh
        for phase, kwh in run.energy.phases.items():
            values[f"{ENERGY_METRIC}_{phase}"] = kwh
    return values
