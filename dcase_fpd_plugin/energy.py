"""Energy per phase with codecarbon: training, devtest inference, evaluation inference.

DCASE submissions report the energy (kWh) of training and of inference. We measure it with
codecarbon's :class:`OfflineEmissionsTracker` (no network), one tracker per phase:

* ``training``   -- Lightning ``fit`` start to ``fit`` end (:class:`EnergyCallback`);
* ``devtest``    -- a ``trainer.test`` run on the test (or validation) set (:func:`track_energy`);
* ``evaluation`` -- ``infer`` on a folder of audio (:func:`track_energy`).

Files, in the experiment folder ``EXP_DIR``::

    energy.json                 kWh per phase (segments + totals), see below
    energy/<phase>.csv          codecarbon's own CSV, one row per tracked segment (written when its
                                tracker stops: a killed run leaves no row there)
    energy/training.live.json   the running training segment's figures so far (rewritten atomically
                                about every ``measure_power_secs``; removed when the segment is recorded)

**Measured or estimated.** codecarbon reads power counters where the machine exposes them
(CPU: Intel RAPL, Intel Power Gadget, Windows EMI, Apple powermetrics; GPU: NVML / AMD SMI).
Without them (as on most VMs and containers) it falls back to a *model*: CPU power = TDP x load
(or a constant), so the kWh are then duration x modelled power. RAM power is always codecarbon's
model. Every figure therefore carries ``method``: ``"measured"`` when the CPU -- and the GPU, if
one is tracked -- are read from power counters, else ``"estimated"``; ``sources`` says what each
component used. Print a kWh figure only together with its method (see :func:`format_kwh`).

``energy.json`` (``format`` 1)::

    {"format": 1, "unit": "kWh",
     "phases": {"training": {"energy_kwh": 0.0123, "duration_s": 3600.0, "method": "estimated",
                             "n_segments": 2, "segments": [SEGMENT, SEGMENT],
                             "unmeasured_s": 0.0, "unmeasured": [SPAN, ...]},
                "devtest": {...}, "evaluation": {...}},
     "total_kwh": 0.0150, "method": "estimated", "unmeasured_s": 0.0, "updated": "2026-...Z"}

    SEGMENT = {"started": ISO time (UTC), "duration_s": s, "energy_kwh": kWh,
               "cpu_kwh", "gpu_kwh", "ram_kwh": kWh, "emissions_kg_co2eq": kg,
               "method": "measured" | "estimated", "sources": {"cpu": ..., "gpu": ..., "ram": ...},
               "tracking_mode": "machine" | "process", "country_iso_code": "FRA",
               "hardware": {cpu_model, cpu_count, ram_total_gib, gpu_model, gpu_count, torch, ...},
               "codecarbon_version": "3.x", "csv": "energy/training.csv", "interrupted": false,
               "work": {"clips": n, "epochs": n, "steps": n}}
              (a segment recovered after a kill: + "recovered": "killed", "id", "measured_until"; "csv": null;
              no "work")

    SPAN = {"id", "from": ISO, "to": ISO, "duration_s": s, "ran_at_least_s": s (when known), "reason": ...}

``duration_s`` of a phase is the measured time (the sum of its segments); ``energy_kwh`` is None and
``method`` ``"unmeasured"`` for a phase with no measured segment.

**Work.** ``work`` says how much the segment did, so that two runs that did different amounts can
be compared per unit of work (``dcase-fpd report --baseline``): ``training``: clips trained on
(summed over the processes of a multi-process run), completed epochs and optimiser steps;
``devtest`` and ``evaluation``: clips scored / inferred. A phase's ``work`` is the sum over its
segments, present only when every segment says it (files written before it existed, and segments
recovered after a kill, have none).

A resumed training adds a segment to ``training`` (the phase total is the sum of its segments);
a fresh training (``fit`` without a checkpoint to resume) starts a new ``energy.json``. Inference
phases keep only their latest segment unless ``accumulate=True`` (e.g. an evaluation set inferred
folder by folder). Only the global-zero process tracks (``tracking_mode: machine`` measures the
whole computer; on several nodes only node 0 is measured).

**A killed training** (SIGKILL, out of memory, power cut) cannot stop its tracker. It leaves
``energy/training.live.json``: what codecarbon had measured up to its latest power reading. The
``--resume`` (a fit from a checkpoint) adds that as a segment marked ``"recovered": "killed"``, and
the span from that reading to the resume, in which the process died, as an *unmeasured* SPAN (no
kWh; ``duration_s`` an upper bound of the unmeasured running time, ``ran_at_least_s`` a lower bound
from the resumed checkpoint's time): the phase's kWh is then a lower bound, and the report says so
(:func:`recover_killed_segment`).

A tracker that cannot start or stop (codecarbon missing, an exception inside it) warns with
:class:`EnergyWarning` and the run goes on without that figure.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytorch_lightning as pl

from .atomic import atomic_write_text
from .energy_tracker import quiet_codecarbon, start_hardware_probe, tracker_kwargs

PHASES = ("training", "devtest", "evaluation")
ENERGY_JSON = "energy.json"
FORMAT_VERSION = 1
ACCUMULATE_BY_DEFAULT = {"training": True, "devtest": False, "evaluation": False}
TRACKING_MODES = ("machine", "process")

# codecarbon power sources read from hardware counters (everything else is a model)
_MEASURED_CPU_MODES = {"intel_rapl": "RAPL", "intel_power_gadget": "Intel Power Gadget",
                       "windows_emi": "Windows EMI"}


class EnergyWarning(UserWarning):
    """Energy tracking failed or was skipped; the run itself goes on."""


# (experiment folder, phase) pairs being tracked in this process: a nested tracker of the same pair
# (two EnergyCallbacks, track_energy inside track_energy) is a no-op instead of counting twice.
_ACTIVE: set[tuple[str, str]] = set()


# --------------------------------------------------------------------------- configuration
def energy_config(recipe_or_section: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``energy`` settings: recipe defaults <- ``recipe['energy']`` (or the section itself).

    Accepts a whole recipe, its ``energy`` section, or None (defaults). A checkpoint trained
    before the section existed gets the defaults.
    """
    from .recipe import DEFAULTS, RecipeError

    cfg = dict(DEFAULTS["energy"])
    if recipe_or_section:
        section = recipe_or_section["energy"] if "energy" in recipe_or_section else recipe_or_section
        cfg.update({k: v for k, v in (section or {}).items() if k in cfg})  # a recipe's other sections: ignored
    if cfg["tracking_mode"] not in TRACKING_MODES:
        raise RecipeError(f"'energy.tracking_mode' must be one of {TRACKING_MODES}, got {cfg['tracking_mode']!r}")
    if not cfg["measure_power_secs"] > 0:
        raise RecipeError(f"'energy.measure_power_secs' must be > 0 seconds, got {cfg['measure_power_secs']!r}")
    return cfg


def _is_global_zero() -> bool:
    try:
        from pytorch_lightning.utilities.rank_zero import rank_zero_only

        return int(getattr(rank_zero_only, "rank", 0) or 0) == 0
    except Exception:  # pragma: no cover
        return True


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _iso(time.time())


def _warn(msg: str) -> None:
    warnings.warn(msg, EnergyWarning, stacklevel=3)


# --------------------------------------------------------------------------- one tracker
def _component_sources(tracker: Any) -> dict[str, str]:
    """What codecarbon used per component: ``{"cpu": "measured (RAPL)", "ram": "estimated (...)"}``."""
    sources: dict[str, str] = {}
    for hw in getattr(tracker, "_hardware", None) or []:
        kind = type(hw).__name__
        mode = getattr(hw, "_mode", None)
        if kind == "CPU":
            if mode in _MEASURED_CPU_MODES:
                sources["cpu"] = f"measured ({_MEASURED_CPU_MODES[mode]})"
            elif mode == "cpu_load":
                sources["cpu"] = "estimated (TDP x CPU load model)"
            else:
                sources["cpu"] = f"estimated (constant power model, mode {mode})"
        elif kind == "GPU":
            sources["gpu"] = "measured (NVML / AMD SMI)"
        elif kind == "AppleSiliconChip":
            part = str(getattr(hw, "chip_part", "CPU")).lower()
            sources[part] = "measured (Apple powermetrics)"
        elif kind == "RAM":
            forced = getattr(hw, "_force_ram_power", None)
            sources["ram"] = f"estimated (forced {forced} W)" if forced is not None else "estimated (RAM power model)"
        elif kind == "Raspberry":
            part = str(getattr(hw, "chip_part", "CPU")).lower()
            sources[part] = "measured (Raspberry Pi PMIC)"
        else:  # pragma: no cover - a hardware class added by a later codecarbon
            sources[kind.lower()] = f"unknown ({hw!r})"
    return sources


def _method(sources: Mapping[str, str]) -> str:
    """``"measured"`` if the CPU (and the GPU, when tracked) read power counters, else ``"estimated"``."""
    cpu = sources.get("cpu", "")
    gpu = sources.get("gpu", "measured")
    return "measured" if cpu.startswith("measured") and gpu.startswith("measured") else "estimated"


def _torch_hardware() -> dict[str, Any]:
    try:
        import torch

        out: dict[str, Any] = {"torch": torch.__version__}
        if torch.cuda.is_available():
            out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return out
    except Exception:  # pragma: no cover
        return {}


def _make_tracker(phase: str, out_dir: Path, cfg: Mapping[str, Any]):
    """A started :class:`OfflineEmissionsTracker` writing ``out_dir/<phase>.csv`` (may raise)."""
    from codecarbon import OfflineEmissionsTracker

    quiet_codecarbon()
    out_dir.mkdir(parents=True, exist_ok=True)  # codecarbon needs it to exist
    tracker = OfflineEmissionsTracker(output_dir=str(out_dir), output_file=f"{phase}.csv", experiment_name=phase,
                                      **tracker_kwargs(cfg))
    tracker.start()
    if getattr(tracker, "_start_time", None) is None:  # codecarbon swallows its own exceptions
        raise RuntimeError("codecarbon's tracker did not start (an error inside codecarbon)")
    return tracker


@dataclass
class PhaseTracker:
    """Tracks one segment of one phase; :meth:`start`/:meth:`stop` never raise, they warn.

    ``stop`` returns the segment dict (see the module docstring) or None if tracking failed.
    """

    phase: str
    exp_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    _tracker: Any = None
    _started: str | None = None
    _started_unix: float = 0.0
    _key: tuple[str, str] | None = None
    _snapshot_failed: bool = False

    def __post_init__(self) -> None:
        self.exp_dir = Path(self.exp_dir)
        self.config = energy_config(self.config)

    @property
    def out_dir(self) -> Path:
        return self.exp_dir / self.config["output_subdir"]

    @property
    def running(self) -> bool:
        return self._tracker is not None

    @property
    def already_tracked(self) -> bool:
        """This phase of this experiment is being tracked by another tracker of this process."""
        return (str(self.exp_dir.resolve()), self.phase) in _ACTIVE

    def start(self) -> bool:
        """Start codecarbon; False if it cannot (with an :class:`EnergyWarning`) or if this
        phase of this experiment is already being tracked in this process (silently)."""
        self._tracker = None
        key = (str(self.exp_dir.resolve()), self.phase)
        if self.already_tracked:
            return False
        try:
            self._tracker = _make_tracker(self.phase, self.out_dir, self.config)
        except ImportError as exc:
            _warn(f"energy tracking of phase {self.phase!r} disabled: codecarbon cannot be imported "
                  f"({exc}; pip install 'codecarbon>=3'); the run goes on without its kWh figure")
            return False
        except Exception as exc:  # energy is optional, the run is not
            _warn(f"energy tracking of phase {self.phase!r} disabled: codecarbon could not start "
                  f"({type(exc).__name__}: {exc}); the run goes on without its kWh figure")
            return False
        self._started_unix = time.time()
        self._started = _iso(self._started_unix)
        self._key = key
        _ACTIVE.add(key)
        return True

    def stop(self, interrupted: bool = False, work: Mapping[str, int] | None = None) -> dict[str, Any] | None:
        """Stop codecarbon and return this segment's figures (None, with a warning, on failure);
        ``work``: what the segment did (see the module docstring), stored when given."""
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            return None
        _ACTIVE.discard(self._key)
        try:
            tracker.stop()
            data = getattr(tracker, "final_emissions_data", None)
            if data is None:
                raise RuntimeError("codecarbon returned no figures (an error inside codecarbon)")
            segment = self._segment(tracker, data, interrupted, float(data.duration))
            if work:
                segment["work"] = {k: int(v) for k, v in work.items()}
            return segment
        except Exception as exc:
            _warn(f"energy tracking of phase {self.phase!r} failed when stopping codecarbon "
                  f"({type(exc).__name__}: {exc}); no kWh figure recorded for it")
            return None

    def measured_s(self) -> float:
        """Seconds from the start to codecarbon's latest power reading (0 when not running): the span
        that the figures of :meth:`snapshot` cover."""
        tracker = self._tracker
        if tracker is None:
            return 0.0
        return max(0.0, float(tracker._last_measured_time - tracker._start_time))

    def snapshot(self) -> dict[str, Any] | None:
        """The figures measured so far, without stopping: a segment (``interrupted: true``) whose
        ``duration_s`` ends at codecarbon's latest power reading, which its kWh cover; None when
        nothing was measured yet or codecarbon cannot say (a warning the first time)."""
        tracker = self._tracker
        if tracker is None:
            return None
        try:
            measured_s = self.measured_s()  # codecarbon's private clock: checked by the except below
            if measured_s <= 0.0:
                return None
            return self._segment(tracker, tracker._prepare_emissions_data(), True, measured_s)
        except Exception as exc:
            if not self._snapshot_failed:
                self._snapshot_failed = True
                _warn(f"energy of phase {self.phase!r}: codecarbon's running figures cannot be read "
                      f"({type(exc).__name__}: {exc}); a killed run's energy will be recorded as unmeasured")
            return None

    def _segment(self, tracker: Any, data: Any, interrupted: bool, duration_s: float) -> dict[str, Any]:
        """The segment dict (module docstring) of codecarbon's ``EmissionsData``."""
        sources = _component_sources(tracker)
        energy = float(data.energy_consumed)
        if not math.isfinite(energy) or energy < 0:
            raise RuntimeError(f"codecarbon reported an invalid energy {energy!r} kWh")
        return {
            "started": self._started,
            "duration_s": duration_s,
            "energy_kwh": energy,
            "cpu_kwh": float(data.cpu_energy),
            "gpu_kwh": float(data.gpu_energy),
            "ram_kwh": float(data.ram_energy),
            "emissions_kg_co2eq": float(data.emissions),
            "method": _method(sources),
            "sources": sources,
            "tracking_mode": data.tracking_mode,
            "country_iso_code": data.country_iso_code,
            "hardware": {
                "cpu_model": data.cpu_model,
                "cpu_count": data.cpu_count,
                "ram_total_gib": round(float(data.ram_total_size), 2),  # codecarbon's "GB" = 2**30 bytes
                "gpu_model": data.gpu_model or None,
                "gpu_count": data.gpu_count,
                "os": data.os,
                **_torch_hardware(),
            },
            "codecarbon_version": data.codecarbon_version,
            "csv": f"{self.config['output_subdir']}/{self.phase}.csv",
            "interrupted": bool(interrupted),
        }


# --------------------------------------------------------------------------- energy.json
def energy_json_path(exp_dir: str | Path) -> Path:
    """``EXP_DIR/energy.json``."""
    return Path(exp_dir) / ENERGY_JSON


def read_energy(exp_dir: str | Path) -> dict[str, Any] | None:
    """The experiment's ``energy.json`` as a dict, or None if there is none.

    Raises:
        ValueError: the file exists but is not valid energy JSON (the message names the file).
    """
    path = energy_json_path(exp_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("phases"), dict):
        raise ValueError(f"{path}: not a dcase-fpd energy file (no 'phases' mapping)")
    return data


def _phase_summary(segments: list[dict[str, Any]], unmeasured: list[dict[str, Any]]) -> dict[str, Any]:
    summary = {
        "energy_kwh": float(sum(s["energy_kwh"] for s in segments)) if segments else None,
        "duration_s": float(sum(s["duration_s"] for s in segments)),
        "method": ("measured" if all(s["method"] == "measured" for s in segments) else "estimated")
                  if segments else "unmeasured",
        "n_segments": len(segments),
        "segments": segments,
        "unmeasured_s": float(sum(g["duration_s"] for g in unmeasured)),
        "unmeasured": unmeasured,
    }
    works = [s.get("work") or {} for s in segments]
    common = set.intersection(*(set(w) for w in works)) if works else set()
    if common:  # a count only when every segment says it
        summary["work"] = {k: int(sum(w[k] for w in works)) for k in sorted(common)}
    return summary


def record_segment(exp_dir: str | Path, phase: str, segment: Mapping[str, Any],
                   accumulate: bool | None = None) -> dict[str, Any]:
    """Merge one segment into ``EXP_DIR/energy.json`` (atomic rewrite); returns the new content.

    ``accumulate`` (default: True for ``training``, False otherwise) appends the segment to the
    phase's list; False replaces the list. An unreadable energy.json is replaced, with a warning.
    """
    return _update_phase(exp_dir, phase, [segment], [], accumulate)


def _update_phase(exp_dir: str | Path, phase: str, segments_added: list[Mapping[str, Any]],
                  unmeasured_added: list[Mapping[str, Any]], accumulate: bool | None) -> dict[str, Any]:
    """Add segments and unmeasured spans to one phase of ``EXP_DIR/energy.json`` in one atomic rewrite."""
    if accumulate is None:
        accumulate = ACCUMULATE_BY_DEFAULT.get(phase, False)
    try:
        data = read_energy(exp_dir)
    except ValueError as exc:
        _warn(f"{exc}; starting a new energy file")
        data = None
    phases: dict[str, Any] = dict((data or {}).get("phases", {}))
    old = phases.get(phase, {}) if accumulate else {}
    segments = [*old.get("segments", []), *map(dict, segments_added)]
    unmeasured = [*old.get("unmeasured", []), *map(dict, unmeasured_added)]
    phases[phase] = _phase_summary(segments, unmeasured)
    ordered = {p: phases[p] for p in PHASES if p in phases}
    ordered.update({p: v for p, v in phases.items() if p not in ordered})
    with_kwh = [v for v in ordered.values() if v.get("energy_kwh") is not None]
    out = {
        "format": FORMAT_VERSION,
        "unit": "kWh",
        "phases": ordered,
        "total_kwh": float(sum(v["energy_kwh"] for v in with_kwh)),
        "method": ("measured" if all(v["method"] == "measured" for v in with_kwh) else "estimated")
                  if with_kwh else "unmeasured",
        "unmeasured_s": float(sum(v.get("unmeasured_s", 0.0) for v in ordered.values())),
        "updated": _now(),
    }
    atomic_write_text(energy_json_path(exp_dir), json.dumps(out, indent=2) + "\n")
    return out


# --------------------------------------------------------------------------- a killed run
def live_record_path(exp_dir: str | Path, phase: str, config: Mapping[str, Any] | None = None) -> Path:
    """``EXP_DIR/energy/<phase>.live.json``: the running segment's figures so far (see :class:`EnergyCallback`)."""
    return Path(exp_dir) / energy_config(config)["output_subdir"] / f"{phase}.live.json"


def write_live_record(path: Path, tracker: PhaseTracker, record_id: str,
                      work: Mapping[str, int] | None = None) -> None:
    """Write (atomically) what ``tracker`` has measured so far, for :func:`recover_killed_segment`;
    ``work``: what the segment has done by now (counted at this writing, so up to one power reading
    past the figures: the work of a recovered segment is that much over its kWh's)."""
    segment = tracker.snapshot()
    measured_until = tracker._started_unix + (segment["duration_s"] if segment else 0.0)
    record = {
        "format": FORMAT_VERSION, "phase": tracker.phase, "id": record_id, "pid": os.getpid(),
        "started": tracker._started, "started_unix": tracker._started_unix,
        "measured_until": _iso(measured_until), "measured_until_unix": measured_until,
        "written": _now(), "segment": segment,
    }
    if work:
        record["work"] = {k: int(v) for k, v in work.items()}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")


def recover_killed_segment(exp_dir: str | Path, phase: str = "training", config: Mapping[str, Any] | None = None,
                           *, resumed_unix: float | None = None, alive_unix: float | None = None
                           ) -> dict[str, Any] | None:
    """Record in ``energy.json`` the segment of a run that died without stopping its tracker (SIGKILL,
    out of memory, power cut), from the live record it left (``energy/<phase>.live.json``), then
    remove that record. Returns ``{"segment": SEGMENT | None, "unmeasured": SPAN}``, or None when
    there is no live record (the previous run stopped its tracker) or it was already recovered.

    * ``segment``: the figures codecarbon had measured up to its latest power reading before the
      kill, added to the phase like any segment with ``"interrupted": true, "recovered": "killed"``
      (None when nothing had been measured yet);
    * ``unmeasured``: the span from that reading to ``resumed_unix`` (now by default), with no kWh:
      the process died somewhere inside it, so its ``duration_s`` is an upper bound of the
      unmeasured running time; ``ran_at_least_s`` (when ``alive_unix``, e.g. the time of the
      checkpoint being resumed, falls inside it) a lower bound. It goes into the phase's
      ``unmeasured`` list and ``unmeasured_s``, never into its kWh.
    """
    path = live_record_path(exp_dir, phase, config)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        since = float(record["measured_until_unix"])
        record_id = str(record["id"])
        segment = record.get("segment")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _warn(f"{path}: unreadable ({type(exc).__name__}: {exc}); the energy of the killed run that "
              f"wrote it is not recorded")
        path.unlink(missing_ok=True)
        return None
    try:
        previous = read_energy(exp_dir) or {}
    except ValueError:
        previous = {}
    entry = previous.get("phases", {}).get(phase, {})
    if any(x.get("id") == record_id for x in [*entry.get("segments", []), *entry.get("unmeasured", [])]):
        path.unlink(missing_ok=True)  # recovered by a resume that died before removing the record
        return None
    resumed = time.time() if resumed_unix is None else float(resumed_unix)
    span = {"id": record_id, "from": _iso(since), "to": _iso(resumed), "duration_s": max(0.0, resumed - since),
            "reason": "the run was killed after its last energy reading; no kWh for this span "
                      "(duration_s: until the resume, an upper bound of the time it still ran)"}
    if alive_unix is not None and since < alive_unix <= resumed:
        span["ran_at_least_s"] = alive_unix - since
    if segment:
        segment = {**segment, "id": record_id, "interrupted": True, "recovered": "killed",
                   "measured_until": record.get("measured_until"), "csv": None}  # codecarbon wrote no row
        work = record.get("work")  # what the run had done when it wrote the record
        if isinstance(work, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          for v in work.values()):
            segment["work"] = {str(k): int(v) for k, v in work.items()}
    _update_phase(exp_dir, phase, [segment] if segment else [], [span], accumulate=True)
    path.unlink(missing_ok=True)
    return {"segment": segment or None, "unmeasured": span}


def reset_energy(exp_dir: str | Path, config: Mapping[str, Any] | None = None) -> None:
    """Remove ``energy.json``, the phases' codecarbon CSVs and live records (a fresh training starts over)."""
    cfg = energy_config(config)
    energy_json_path(exp_dir).unlink(missing_ok=True)
    for phase in PHASES:
        (Path(exp_dir) / cfg["output_subdir"] / f"{phase}.csv").unlink(missing_ok=True)
        live_record_path(exp_dir, phase, cfg).unlink(missing_ok=True)


def format_kwh(kwh: float | None, method: str | None) -> str:
    """``"0.000123 kWh (estimated)"``; ``"not measured"`` for None. Never a bare kWh figure."""
    if kwh is None:
        return "not measured"
    value = f"{kwh:.6f}" if kwh == 0 or kwh >= 1e-4 else f"{kwh:.2e}"
    return f"{value} kWh ({method or 'estimated'})"


def experiment_dir_of(ckpt: str | Path, fallback: str | Path) -> Path:
    """The experiment folder of ``EXP_DIR/checkpoints/x.ckpt``; ``fallback`` for a checkpoint elsewhere."""
    ckpt = Path(ckpt)
    if ckpt.parent.name == "checkpoints":
        return ckpt.parent.parent
    return Path(fallback)


def batch_size_of(batch: Any) -> int | None:
    """Clips in a batch: ``len`` of a batch object, the first dimension of a tensor (or of the
    first tensor of a tuple, list or dict); None when it cannot be told."""
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    if isinstance(batch, (list, tuple)) and batch:
        return batch_size_of(batch[0])
    if isinstance(batch, Mapping) and batch:
        return batch_size_of(next(iter(batch.values())))
    try:
        return int(len(batch))
    except TypeError:
        return None


# --------------------------------------------------------------------------- public trackers
@dataclass
class EnergyMeasurement:
    """What :func:`track_energy` yields; ``segment`` is filled when the block ends (None if not tracked).

    The block may fill ``work`` (e.g. ``{"clips": 1168}``): it is stored in the segment.
    """

    phase: str
    exp_dir: Path
    segment: dict[str, Any] | None = None
    work: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def track_energy(phase: str, exp_dir: str | Path, config: Mapping[str, Any] | None = None, *,
                 accumulate: bool | None = None) -> Iterator[EnergyMeasurement]:
    """Measure the energy of the ``with`` block as one segment of ``phase`` in ``EXP_DIR/energy.json``.

    ``config``: a recipe, its ``energy`` section, or None (defaults); ``enabled: false`` makes this
    a no-op. If the block raises, a ``training`` segment (accumulating) is still recorded with
    ``interrupted: true``; other phases record nothing. Tracking failures only warn. Only the
    global-zero process tracks, and a block nested in a tracker of the same phase and folder is
    not tracked again::

        with track_energy("devtest", exp_dir, recipe):
            trainer.test(task, datamodule=dm)
    """
    cfg = energy_config(config)
    result = EnergyMeasurement(phase, Path(exp_dir))
    if accumulate is None:
        accumulate = ACCUMULATE_BY_DEFAULT.get(phase, False)
    if not cfg["enabled"] or not _is_global_zero():
        yield result
        return
    tracker = PhaseTracker(phase, Path(exp_dir), cfg)
    tracker.start()
    try:
        yield result
    except BaseException:
        segment = tracker.stop(interrupted=True, work=result.work)
        if segment is not None and accumulate:
            _safe_record(exp_dir, phase, segment, accumulate)
        raise
    segment = tracker.stop(work=result.work)
    if segment is not None:
        result.segment = segment
        _safe_record(exp_dir, phase, segment, accumulate)


def _safe_record(exp_dir: str | Path, phase: str, segment: Mapping[str, Any], accumulate: bool) -> None:
    try:
        record_segment(exp_dir, phase, segment, accumulate)
    except Exception as exc:
        _warn(f"could not write {energy_json_path(exp_dir)} ({type(exc).__name__}: {exc}); "
              f"phase {phase!r}: {format_kwh(segment['energy_kwh'], segment['method'])}")


class EnergyCallback(pl.Callback):
    """Lightning callback: codecarbon energy of the Trainer's stages, into ``EXP_DIR/energy.json``.

    ``phases`` maps a Trainer stage (``fit``, ``test``, ``predict``) to a phase name; by default
    only ``fit`` is tracked, as ``training`` (``on_fit_start`` to ``on_fit_end``: training and
    validation epochs, checkpointing; not the data set-up before it). A fit that does not resume
    from a checkpoint starts a new energy.json (:func:`reset_energy`); a resumed one adds a segment,
    after the segment of a killed predecessor (:func:`recover_killed_segment`). During fit, a live
    record of the figures so far is rewritten about every ``measure_power_secs`` (on batch and epoch
    ends). A fit that raises records its segment with ``interrupted: true``. Only global zero tracks;
    a second tracker of the same phase and folder in this process (another EnergyCallback, an
    enclosing :func:`track_energy`) does nothing, so nothing is counted twice. Each segment
    records its ``work``: clips (global zero's batches x the number of processes), completed
    epochs and steps for ``fit``; clips for ``test`` and ``predict``.
    """

    def __init__(self, exp_dir: str | Path, config: Mapping[str, Any] | None = None,
                 phases: Mapping[str, str] | None = None, reset_on_fresh_fit: bool = True):
        super().__init__()
        self.exp_dir = Path(exp_dir)
        self.config = energy_config(config)
        self.phases = dict(phases or {"fit": "training"})
        unknown = set(self.phases) - {"fit", "test", "predict"}
        if unknown:
            raise ValueError(f"EnergyCallback phases: unknown Trainer stages {sorted(unknown)} (fit, test, predict)")
        self.reset_on_fresh_fit = reset_on_fresh_fit
        self._trackers: dict[str, PhaseTracker] = {}
        self._work: dict[str, dict[str, int]] = {}  # per tracked stage: clips, epochs, steps
        self.segments: list[dict[str, Any]] = []  # recorded in this process, for callers and tests
        self.recovered: list[dict[str, Any]] = []  # killed runs' figures recorded on resume (recover_killed_segment)
        self._live: tuple[Path, str] | None = None  # the running fit's live record and its id
        self._last_beat = 0.0
        self._beat_failed = False

    def prepare(self) -> threading.Thread | None:
        """Start codecarbon's hardware detection now, if not yet started in this process
        (:func:`~dcase_fpd_plugin.energy_tracker.start_hardware_probe`), so that it overlaps the data
        and model set-up before fit; None when this callback will track nothing here."""
        if not self.config["enabled"] or not _is_global_zero():
            return None
        return start_hardware_probe(self.config)

    def _start(self, trainer: pl.Trainer, stage: str) -> None:
        if stage not in self.phases or not self.config["enabled"] or not trainer.is_global_zero:
            return
        tracker = PhaseTracker(self.phases[stage], self.exp_dir, self.config)
        if tracker.already_tracked:  # e.g. a second EnergyCallback on the same Trainer
            return
        if stage == "fit" and trainer.ckpt_path:
            self._recover(tracker.phase, trainer.ckpt_path)
        elif stage == "fit" and self.reset_on_fresh_fit:
            reset_energy(self.exp_dir, self.config)
        if tracker.start():
            self._trackers[stage] = tracker
            self._work[stage] = {"clips": 0, "epochs": 0, "steps": 0} if stage == "fit" else {"clips": 0}
            if stage == "fit":
                self._live = (live_record_path(self.exp_dir, tracker.phase, self.config), uuid.uuid4().hex)
                self._beat(force=True)

    def _recover(self, phase: str, ckpt_path: Any) -> None:
        """A resumed fit: record the segment of a run that was killed (:func:`recover_killed_segment`)."""
        try:
            alive = Path(str(ckpt_path)).stat().st_mtime
        except OSError:
            alive = None
        try:
            found = recover_killed_segment(self.exp_dir, phase, self.config, alive_unix=alive)
        except Exception as exc:
            _warn(f"could not record the energy of the killed run in {energy_json_path(self.exp_dir)} "
                  f"({type(exc).__name__}: {exc})")
            return
        if found is not None:
            self.recovered.append(found)

    def _beat(self, force: bool = False) -> None:
        """Write the live record of the running fit (at most once per ``measure_power_secs``, the
        interval of codecarbon's readings), so that a killed run leaves its figures behind."""
        tracker = self._trackers.get("fit")
        if tracker is None or self._live is None:
            return
        now = time.monotonic()
        if not force and now - self._last_beat < float(self.config["measure_power_secs"]):
            return
        self._last_beat = now
        try:
            write_live_record(self._live[0], tracker, self._live[1], self._work.get("fit"))
        except Exception as exc:
            if not self._beat_failed:
                self._beat_failed = True
                _warn(f"could not write {self._live[0]} ({type(exc).__name__}: {exc}); if this run is "
                      f"killed, its energy will be recorded as unmeasured from its last record")

    def _count(self, stage: str, batch: Any, processes: int = 1) -> None:
        """One batch of a tracked stage: its clips (x ``processes``), and a step for ``fit``."""
        work = self._work.get(stage)
        if work is None:
            return
        if stage == "fit":
            work["steps"] += 1
        if "clips" in work:
            n = batch_size_of(batch)
            if n is None:  # a batch we cannot size: the segment says nothing about its clips
                del work["clips"]
            else:
                work["clips"] += n * processes

    def _stop(self, stage: str, interrupted: bool = False) -> None:
        tracker = self._trackers.pop(stage, None)
        work = self._work.pop(stage, None)
        if tracker is None:
            return
        segment = tracker.stop(interrupted=interrupted, work=work)
        live, self._live = (self._live, None) if stage == "fit" else (None, self._live)
        if segment is None:
            return  # the live record stays: a resume recovers what it holds
        accumulate = stage == "fit" or ACCUMULATE_BY_DEFAULT.get(tracker.phase, False)
        if interrupted and not accumulate:
            return  # an interrupted inference run must not replace a complete one
        self.segments.append(segment)
        _safe_record(self.exp_dir, tracker.phase, segment, accumulate)
        if live is not None:  # stopped and recorded, not killed: the live record is done with
            live[0].unlink(missing_ok=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._count("fit", batch, processes=max(1, int(getattr(trainer, "world_size", 1) or 1)))
        self._beat()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._beat()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if "fit" in self._work:
            self._work["fit"]["epochs"] += 1
        self._beat()

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start(trainer, "fit")

    def on_fit_end(self, trainer, pl_module) -> None:
        self._stop("fit")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._count("test", batch)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._count("predict", batch)

    def on_test_start(self, trainer, pl_module) -> None:
        self._start(trainer, "test")

    def on_test_end(self, trainer, pl_module) -> None:
        self._stop("test")

    def on_predict_start(self, trainer, pl_module) -> None:
        self._start(trainer, "predict")

    def on_predict_end(self, trainer, pl_module) -> None:
        self._stop("predict")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        for stage in list(self._trackers):
            self._stop(stage, interrupted=True)


__all__ = [
    "PHASES", "EnergyCallback", "EnergyMeasurement", "EnergyWarning", "PhaseTracker", "batch_size_of",
    "energy_config", "energy_json_path", "experiment_dir_of", "format_kwh", "live_record_path", "quiet_codecarbon",
    "read_energy", "record_segment", "recover_killed_segment", "reset_energy", "track_energy", "write_live_record",
]
