"""The energy record of a run: ``energy.json`` (segments and totals per phase), the live record of a running training, a killed training's recovery."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping


from ..atomic import atomic_write_text
from .phase import ACCUMULATE_BY_DEFAULT, ENERGY_JSON, FORMAT_VERSION, PHASES, PhaseTracker, _iso, _now, _warn, energy_config


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
    measured_until = tracker.started_unix + (segment["duration_s"] if segment else 0.0)
    record = {
        "format": FORMAT_VERSION, "phase": tracker.phase, "id": record_id, "pid": os.getpid(),
        "started": tracker.started, "started_unix": tracker.started_unix,
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
