"""A system's energy against a baseline run on the same hardware: kWh ratio per phase and EW-PSDS.

    dcase-fpd report EXP_DIR --baseline BASELINE [--allow-other-hardware] [--meta OUT.yaml [--force]]

**Why a baseline.** kWh depend on the hardware, so DCASE Task 4 asks every participant to also run
the baseline on their own machine and compares energy relative to it. The energy-weighted PSDS of
Ronchini & Serizel, "Performance and energy balance: a comprehensive study of state-of-the-art sound
event detection systems" (arXiv:2310.03455, 2023) is

    EW-PSDS = PSDS x kWh_baseline / kWh_system

and we compute it from the *training* energy (:data:`EW_PSDS_PHASE`): the DCASE 2024 Task 4
baseline README (DESED_task, ``recipes/dcase2024_task4_baseline/README.md``, section "Energy
Consumption (mandatory this year !)", commit c6bcb45) asks for the energy of the whole system
training and of the devtest inference, and of the baseline trained (10 epochs) and inferred on
the same hardware, "the baseline training and inference kWh energy consumption as a common
reference". (The 2023 README of the same repository names only the inference energy as the
reference; the ratio of every phase is printed, so either reading can be taken from the report.)

**The baseline** is one of our run folders (its ``energy.json`` and ``metrics.json``) or the official
baseline's codecarbon CSV files as DESED_task writes them, read by
:mod:`dcase_fpd_plugin.report.desed_task_baseline` into a :class:`BaselineEnergy` (no work, no PSDS).

**Same hardware.** The two runs' ``energy.json`` record, per segment, the CPU model, the GPU model
and the GPU count as codecarbon saw them (a DESED_task CSV: its ``cpu_model``, ``gpu_model`` and
``gpu_count`` columns); a phase whose records differ between the runs is refused
(:class:`HardwareMismatchError`, exit status 2) unless ``--allow-other-hardware``.

**Same work.** When the runs did different amounts of work in a phase (``work`` in energy.json:
training clips, else epochs; clips scored for devtest / evaluation), the baseline's kWh are scaled
to the system's amount (``kWh_baseline x work_system / work_baseline``) before dividing: the ratio
then compares energy per unit of work, and the report says so. Without work counts in one of the
files (energy.json written before they existed) the phase is not normalised, and the report says that.

**Measured or estimated.** Each phase's kWh split into the parts codecarbon read from power
counters (``sources`` of a segment: "measured (...)") and the parts it modelled; a figure is
``measured`` when all its kWh are read, ``estimated`` when none are, else ``mixed (N % measured)``
(on a GPU machine without RAPL: GPU measured by NVML, CPU and RAM estimated).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..energy.phase import PHASES
from ..energy.record import energy_json_path, read_energy

EW_PSDS_PHASE = "training"  # the phase whose kWh weigh the PSDS (see the module docstring)
HARDWARE_KEYS = ("cpu_model", "gpu_model", "gpu_count")
# Work units per phase, in order of preference (the first both runs have is used).
WORK_UNITS: dict[str, tuple[str, ...]] = {"training": ("clips", "epochs"), "devtest": ("clips",),
                                          "evaluation": ("clips",)}
_COMPONENTS = ("cpu", "gpu", "ram")


class ComparisonError(ValueError):
    """The two runs cannot be compared (a file missing or unreadable); the message names it."""


class HardwareMismatchError(ComparisonError):
    """The two runs were measured on different hardware; the message names both energy.json files."""


@dataclass
class BaselineEnergy:
    """A baseline's energy read from files other than a run's ``energy.json`` (DESED_task's codecarbon
    CSVs): ``data`` shaped as energy.json's content (``{"phases": {...}}``), ``files`` the file of each
    phase, ``notes`` what the report must say about them; no metrics (no PSDS)."""

    label: str  # the folder or file named, as the report calls the baseline
    data: dict[str, Any]
    files: dict[str, Path]
    source: str  # in words: "DESED_task's codecarbon CSV"
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- one run's phase
@dataclass(frozen=True)
class PhaseEnergy:
    """One phase of one run: kWh, the part of them read from power counters, work and hardware."""

    kwh: float
    measured_kwh: float
    work: Mapping[str, int] = field(default_factory=dict)
    hardware: tuple[tuple[Any, ...], ...] = ()  # distinct (cpu_model, gpu_model, gpu_count) of its segments

    @property
    def kind(self) -> str:
        return kind_label(self.measured_kwh, self.kwh)


def kind_label(measured_kwh: float, total_kwh: float) -> str:
    """``measured`` / ``estimated`` / ``mixed (N % measured)`` from the measured share of the kWh."""
    if total_kwh <= 0:
        return "measured" if measured_kwh > 0 else "estimated"
    share = measured_kwh / total_kwh
    if share >= 1 - 1e-9:
        return "measured"
    if share <= 1e-9:
        return "estimated"
    return f"mixed ({100 * share:.0f} % measured)"


def _measured_kwh(segment: Mapping[str, Any]) -> float:
    """kWh of a segment read from power counters: the components whose source says "measured"."""
    sources = segment.get("sources")
    if isinstance(sources, Mapping) and sources and all(f"{c}_kwh" in segment for c in _COMPONENTS):
        return float(sum(float(segment[f"{c}_kwh"]) for c in _COMPONENTS
                         if str(sources.get(c, "")).startswith("measured")))
    return float(segment["energy_kwh"]) if segment.get("method") == "measured" else 0.0


def hardware_signature(hardware: Mapping[str, Any] | None) -> tuple[Any, ...] | None:
    """``(cpu_model, gpu_model, gpu_count)`` of a segment's ``hardware`` record, None without one."""
    if not isinstance(hardware, Mapping):
        return None
    gpu_count = hardware.get("gpu_count") or 0
    return (hardware.get("cpu_model"), hardware.get("gpu_model") or None, int(gpu_count))


def phase_energy(data: Mapping[str, Any] | None, phase: str) -> PhaseEnergy | None:
    """A phase of an ``energy.json`` content (see :mod:`dcase_fpd_plugin.energy`); None if absent."""
    entry = ((data or {}).get("phases") or {}).get(phase)
    if not isinstance(entry, Mapping) or entry.get("energy_kwh") is None:
        return None
    segments = [s for s in entry.get("segments") or [] if isinstance(s, Mapping)]
    kwh = float(entry["energy_kwh"])
    if segments:
        measured = sum(_measured_kwh(s) for s in segments)
    else:
        measured = kwh if entry.get("method") == "measured" else 0.0
    signatures = tuple(dict.fromkeys(sig for sig in (hardware_signature(s.get("hardware")) for s in segments)
                                     if sig is not None))
    if any(hardware_signature(s.get("hardware")) is None for s in segments):
        signatures = ()  # a segment without a record: the phase's hardware is not known
    work = {k: int(v) for k, v in (entry.get("work") or {}).items() if isinstance(v, (int, float))}
    return PhaseEnergy(kwh, measured, work, signatures)


# --------------------------------------------------------------------------- two runs
@dataclass(frozen=True)
class WorkNormalisation:
    """How the baseline's kWh were brought to the system's amount of work in one phase.

    ``scale`` multiplies the baseline's kWh (1.0: not scaled); ``unit`` is the work unit compared
    (None: not known for both runs); ``note`` says it in words.
    """

    unit: str | None
    system_work: int | None
    baseline_work: int | None
    scale: float
    note: str


def normalise_work(phase: str, system_work: Mapping[str, float] | None,
                   baseline_work: Mapping[str, float] | None) -> WorkNormalisation:
    """The work unit both runs report for ``phase`` (:data:`WORK_UNITS`) and the baseline's scale."""
    system_work, baseline_work = system_work or {}, baseline_work or {}
    for unit in WORK_UNITS.get(phase, ("clips",)):
        s, b = system_work.get(unit), baseline_work.get(unit)
        if s is None or b is None:
            continue
        if b <= 0 or s <= 0:
            return WorkNormalisation(unit, s, b, 1.0, f"not normalised: {unit} system {s:g}, baseline {b:g}")
        if s == b:
            return WorkNormalisation(unit, s, b, 1.0, f"same work ({s:g} {unit})")
        return WorkNormalisation(unit, s, b, s / b,
                                 f"normalised by {unit}: baseline {b:g}, system {s:g}; "
                                 f"baseline kWh x {s / b:.4g}")
    return WorkNormalisation(None, None, None, 1.0, "not normalised: work not recorded in both runs")


def energy_ratio(system_kwh: float | None, baseline_kwh: float | None, scale: float = 1.0) -> float | None:
    """``baseline_kwh x scale / system_kwh``; None when a figure is missing or the system's is 0."""
    if system_kwh is None or baseline_kwh is None or not system_kwh > 0:
        return None
    return baseline_kwh * scale / system_kwh


def ew_psds(psds: float | None, ratio: float | None) -> float | None:
    """``PSDS x kWh_baseline / kWh_system`` (Ronchini & Serizel 2023); None if either is unknown."""
    if psds is None or ratio is None or (isinstance(psds, float) and math.isnan(psds)):
        return None
    return float(psds) * ratio


def combined_kind(*parts: PhaseEnergy) -> str:
    """The kind of a figure made of several phases' kWh (a ratio: both runs')."""
    return kind_label(sum(p.measured_kwh for p in parts), sum(p.kwh for p in parts))


@dataclass
class PhaseComparison:
    """One phase of the system against the baseline."""

    phase: str
    system: PhaseEnergy | None
    baseline: PhaseEnergy | None
    work: WorkNormalisation
    ratio: float | None  # baseline kWh (scaled to the system's work) / system kWh
    raw_ratio: float | None  # without the work scaling
    kind: str | None  # of the ratio: measured / estimated / mixed (...)


def compare_phase(phase: str, system: PhaseEnergy | None, baseline: PhaseEnergy | None) -> PhaseComparison:
    """Ratio of one phase, normalised by work where the runs differ in it."""
    work = normalise_work(phase, system.work if system else None, baseline.work if baseline else None)
    if system is None or baseline is None:
        return PhaseComparison(phase, system, baseline, work, None, None, None)
    return PhaseComparison(phase, system, baseline, work, energy_ratio(system.kwh, baseline.kwh, work.scale),
                           energy_ratio(system.kwh, baseline.kwh), combined_kind(system, baseline))


def _file_of(files: Path | Mapping[str, Path], phase: str) -> Path:
    return files[phase] if isinstance(files, Mapping) else files


def hardware_differences(system: Mapping[str, Any], system_file: Path | Mapping[str, Path],
                         baseline: Mapping[str, Any], baseline_file: Path | Mapping[str, Path],
                         phases: Sequence[str] = PHASES) -> list[str]:
    """Phases where the two energy.json contents do not record the same hardware, in words.

    ``system_file`` / ``baseline_file``: the file named for a run, or one per phase (a DESED_task baseline)."""
    out = []
    for phase in phases:
        s, b = phase_energy(system, phase), phase_energy(baseline, phase)
        if s is None or b is None:
            continue
        s_file, b_file = _file_of(system_file, phase), _file_of(baseline_file, phase)
        for pe, path in ((s, s_file), (b, b_file)):
            if not pe.hardware:
                out.append(f"{phase}: {path} has no hardware record (cpu_model, gpu_model, gpu_count) "
                           "for some of its segments")
        if not s.hardware or not b.hardware or set(s.hardware) == set(b.hardware):
            continue
        for i, key in enumerate(HARDWARE_KEYS):
            sv = sorted({str(sig[i]) for sig in s.hardware})
            bv = sorted({str(sig[i]) for sig in b.hardware})
            if sv != bv:
                out.append(f"{phase}: {key} {', '.join(sv)} in {s_file} vs {', '.join(bv)} in {b_file}")
    return out


def _read_energy_file(exp_dir: Path) -> dict[str, Any]:
    path = energy_json_path(exp_dir)
    try:
        data = read_energy(exp_dir)
    except ValueError as exc:
        raise ComparisonError(str(exc)) from None
    if data is None:
        raise ComparisonError(f"{path} not found: the run has no energy figures (train with energy.enabled: true)")
    return data


def _read_metrics(exp_dir: Path, notes: list[str]) -> dict[str, Any]:
    path = Path(exp_dir) / "metrics.json"
    if not path.is_file():
        notes.append(f"{path} not found: no PSDS from this run")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ComparisonError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ComparisonError(f"{path}: not a metrics file (a JSON object with psds1, psds2, ...)")
    return data


def _psds(metrics: Mapping[str, Any], key: str, path: Path, notes: list[str], consequence: str) -> float | None:
    if not metrics:
        return None
    value = metrics.get(key)
    if value is None:
        notes.append(f"{path}: '{key}' is {'null' if key in metrics else 'missing'} (eval.psds: false?): {consequence}")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ComparisonError(f"{path}: '{key}' is not a number ({value!r})")
    return float(value)


def compare_runs(system_dir: str | Path, baseline_dir: str | Path | BaselineEnergy,
                 allow_other_hardware: bool = False) -> dict[str, Any]:
    """Both runs' energy per phase, the ratio kWh_baseline / kWh_system, EW-PSDS1 / EW-PSDS2.

    ``baseline_dir``: the baseline's run folder, or its energy read from other files
    (:class:`BaselineEnergy`: DESED_task's codecarbon CSVs), which hold no PSDS.

    Raises:
        ComparisonError: an energy.json is missing or unreadable, a metrics.json unreadable.
        HardwareMismatchError: the hardware differs and ``allow_other_hardware`` is false.
    """
    system_dir = Path(system_dir)
    external = baseline_dir if isinstance(baseline_dir, BaselineEnergy) else None
    for d in (system_dir,) if external else (system_dir, Path(baseline_dir)):
        if not d.is_dir():
            raise ComparisonError(f"experiment folder not found: {d}")
    sys_file, sys_data = energy_json_path(system_dir), _read_energy_file(system_dir)
    if external is not None:
        baseline_label, base_data = external.label, external.data
        base_file: Path | dict[str, Path] = dict(external.files)
        base_energy = "; ".join(f"{p}: {f}" for p, f in external.files.items()) or "no file"
    else:
        baseline_dir = Path(baseline_dir)
        baseline_label, base_file = str(baseline_dir), energy_json_path(baseline_dir)
        base_data, base_energy = _read_energy_file(baseline_dir), str(base_file)
    diffs = hardware_differences(sys_data, sys_file, base_data, base_file)
    if diffs and not allow_other_hardware:
        named = base_energy if external is None else f"{external.label} ({external.source})"
        raise HardwareMismatchError(
            "the system and the baseline were not measured on the same hardware, so their kWh do not "
            f"compare ({sys_file} vs {named}): " + "; ".join(diffs)
            + ". Run the baseline on the system's machine, or pass --allow-other-hardware")
    notes: list[str] = list(external.notes) if external is not None else []
    phases = [compare_phase(p, phase_energy(sys_data, p), phase_energy(base_data, p)) for p in PHASES]
    sys_metrics = _read_metrics(system_dir, notes)
    base_metrics = {} if external is not None else _read_metrics(baseline_dir, notes)
    weight = next(c for c in phases if c.phase == EW_PSDS_PHASE)
    ew = {}
    for key in ("psds1", "psds2"):
        s = _psds(sys_metrics, key, system_dir / "metrics.json", notes, f"no EW-{key.upper()}")
        b = None if external is not None else _psds(base_metrics, key, baseline_dir / "metrics.json", notes,
                                                     f"the baseline's {key.upper()} unknown")
        ew[key] = {"system": s, "baseline": b, "ew_system": ew_psds(s, weight.ratio),
                   "ew_baseline": b,  # the baseline's ratio to itself is 1
                   "kind": weight.kind}
    if weight.system is None or weight.baseline is None:
        missing = sys_file if weight.system is None else (
            base_energy if external is None else f"the baseline ({external.label})")
        notes.append(f"no EW-PSDS: {missing} has no {EW_PSDS_PHASE} phase")
    elif weight.ratio is None:
        notes.append(f"no EW-PSDS: the system's {EW_PSDS_PHASE} kWh is 0 in {sys_file}")
    return {"system": str(system_dir), "baseline": baseline_label, "system_energy": str(sys_file),
            "baseline_energy": base_energy, "baseline_source": external.source if external else "dcase-fpd run",
            "baseline_files": {p: str(f) for p, f in external.files.items()} if external else None,
            "phases": phases, "ew_psds": ew, "ew_phase": EW_PSDS_PHASE,
            "hardware_differences": diffs, "notes": notes}


# --------------------------------------------------------------------------- printing
def _kwh(pe: PhaseEnergy | None) -> str:
    if pe is None:
        return "not measured"
    value = f"{pe.kwh:.6f}" if pe.kwh == 0 or pe.kwh >= 1e-4 else f"{pe.kwh:.3e}"
    work = ", ".join(f"{v} {k}" for k, v in sorted(pe.work.items())) or "work not recorded"
    return f"{value} kWh ({pe.kind}); {work}"


def _num(x: float | None, fmt: str = ".4f") -> str:
    return "n/a" if x is None else format(x, fmt)


def format_comparison(cmp: Mapping[str, Any]) -> str:
    """The comparison as plain text: energy of both runs per phase, ratios, work, EW-PSDS."""
    source = cmp.get("baseline_source") or "dcase-fpd run"
    lines = [f"Against the baseline {cmp['baseline']} (energy from {cmp['baseline_energy']}"
             + ("" if source == "dcase-fpd run" else f"; {source}") + ")"]
    if cmp["hardware_differences"]:
        lines.append("  WARNING: other hardware (--allow-other-hardware): " + "; ".join(cmp["hardware_differences"]))
    else:
        both = "both energy.json" if source == "dcase-fpd run" else "energy.json and the baseline's codecarbon CSV"
        lines.append(f"  same hardware (CPU model, GPU model and count in {both})")
    for c in cmp["phases"]:
        lines.append(f"  {c.phase}")
        lines.append(f"    {'system':<10}{_kwh(c.system)}")
        lines.append(f"    {'baseline':<10}{_kwh(c.baseline)}")
        if c.ratio is None:
            lines.append(f"    {'ratio':<10}n/a")
            continue
        raw = f"; raw ratio {c.raw_ratio:.4g}" if c.work.scale != 1.0 else ""
        lines.append(f"    {'ratio':<10}kWh_baseline / kWh_system = {c.ratio:.4g} ({c.kind}); {c.work.note}{raw}")
    lines.append("")
    lines.append(f"EW-PSDS = PSDS x kWh_baseline / kWh_system ({cmp['ew_phase']} energy; Ronchini & Serizel 2023)")
    for key, v in cmp["ew_psds"].items():
        name = key.upper()
        lines.append(f"  EW-{name} {_num(v['ew_system'])}  (system {name} {_num(v['system'])}, "
                     f"baseline {name} {_num(v['baseline'])}; energy {v['kind'] or 'n/a'})")
    for note in cmp["notes"]:
        lines.append(f"  note: {note}")
    return "\n".join(lines)


def comparison_json(cmp: Mapping[str, Any]) -> dict[str, Any]:
    """The comparison as plain JSON-able data (``--json``)."""
    def pe(p: PhaseEnergy | None):
        return None if p is None else {"kwh": p.kwh, "measured_kwh": p.measured_kwh, "kind": p.kind,
                                       "work": dict(p.work), "hardware": [list(h) for h in p.hardware]}

    out = {k: v for k, v in cmp.items() if k != "phases"}
    out["phases"] = {c.phase: {"system": pe(c.system), "baseline": pe(c.baseline), "ratio": c.ratio,
                               "raw_ratio": c.raw_ratio, "kind": c.kind,
                               "work": {"unit": c.work.unit, "system": c.work.system_work,
                                        "baseline": c.work.baseline_work, "scale": c.work.scale,
                                        "note": c.work.note}}
                     for c in cmp["phases"]}
    return out


__all__ = ["EW_PSDS_PHASE", "BaselineEnergy", "ComparisonError", "HardwareMismatchError", "PhaseEnergy",
           "PhaseComparison", "WorkNormalisation", "compare_phase", "compare_runs", "comparison_json", "energy_ratio", "ew_psds",
           "format_comparison", "hardware_differences", "kind_label", "normalise_work", "phase_energy"]
