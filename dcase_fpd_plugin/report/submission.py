"""The figures a DCASE submission asks for: energy (kWh) per phase, parameters, MACs per 10 s, hardware.

    dcase-fpd report EXP_DIR [--json] [--ckpt CKPT]
    dcase-fpd report EXP_DIR --baseline BASELINE_EXP_DIR [--allow-other-hardware] [--meta OUT.yaml [--force]]

reads ``EXP_DIR/recipe.yaml``, a checkpoint (``checkpoints/best.ckpt``, else ``last.ckpt``) and
``EXP_DIR/energy.json`` (written by :mod:`dcase_fpd_plugin.energy`) and prints a table (or, with
``--json``, the dict of :func:`submission_figures`). With ``--baseline``, also the comparison with a
baseline run on the same hardware (:mod:`dcase_fpd_plugin.report.energy_comparison`: kWh ratio per phase,
EW-PSDS) and, with ``--meta``, the submission meta file's block (:mod:`dcase_fpd_plugin.report.meta`).

**Parameters** are those of the detection model (``task.model``): weights used at inference.
Training-only branches (e.g. the FPD projection) are reported separately and a mean-teacher copy
is not counted.

**MACs** (multiply-accumulates) are for one clip of 10 s (batch 1) in the recipe's feature shape
``(1, n_mels, 1 + 10 s * sample_rate // hop_length)``: convolutions, linear layers and matmuls as
counted by :class:`torch.utils.flop_counter.FlopCounterMode` (MACs = FLOPs / 2); recurrent layers
(GRU, LSTM, RNN) analytically, because FlopCounterMode sees them only where they run as
decomposed matmuls (CPU) and not as fused kernels (cuDNN): per time step, layer and direction
``gates * (in * h + h * h)`` MACs, gates = 3 for a GRU (4 LSTM, 1 RNN), ``in`` the layer's input
width, ``h`` the hidden size. Bias additions, normalisation, activations, pooling, GLU gating
products and the log-mel front-end are not counted (the usual convention of MAC counters).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch

from ..energy.phase import PHASES
from ..energy.record import format_kwh, read_energy
from .energy_comparison import combined_kind, phase_energy
from .complexity import CLIP_SECONDS, ReportError, count_parameters, measure_macs_for_clip


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def hardware_info() -> dict[str, Any]:
    """This machine: CPU model, logical/physical cores, RAM (GiB), GPU names (if any), versions."""
    info: dict[str, Any] = {"cpu_model": _cpu_model(), "cpu_logical_cores": os.cpu_count()}
    try:
        import psutil

        info["cpu_physical_cores"] = psutil.cpu_count(logical=False)
        info["ram_total_gib"] = round(psutil.virtual_memory().total / 2**30, 2)
    except Exception:  # psutil comes with codecarbon; without it, /proc/meminfo
        try:
            kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal:"))
            info["ram_total_gib"] = round(kb / 2**20, 2)
        except (OSError, StopIteration, ValueError):
            info["ram_total_gib"] = None
    gpus = []
    if torch.cuda.is_available():
        gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    info["gpus"] = gpus
    info["torch"] = torch.__version__
    info["python"] = platform.python_version()
    info["os"] = platform.platform()
    return info


# --------------------------------------------------------------------------- the figures
def _find_checkpoint(exp_dir: Path) -> Path | None:
    ckpts = exp_dir / "checkpoints"
    for name in ("best.ckpt", "last.ckpt"):
        if (ckpts / name).is_file():
            return ckpts / name
    others = sorted(ckpts.glob("*.ckpt")) if ckpts.is_dir() else []
    return others[0] if others else None


def _energy_section(exp_dir: Path, notes: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    path = exp_dir / "energy.json"
    try:
        data = read_energy(exp_dir)
    except ValueError as exc:
        notes.append(f"energy not reported: {exc}")
        data = None
    else:
        if data is None:
            notes.append(f"energy not measured: {path} not found (run with energy.enabled: true)")
    phases: dict[str, Any] = {}
    parts = []
    for phase in PHASES:
        entry = (data or {}).get("phases", {}).get(phase)
        pe = phase_energy(data, phase)
        if entry is None:
            phases[phase] = {"kwh": None, "method": None, "kind": None, "duration_s": None, "n_segments": 0,
                             "work": None, "label": format_kwh(None, None), "recovered_segments": 0,
                             "unmeasured_s": 0.0}
            continue
        segments = entry.get("segments", [])
        spans = entry.get("unmeasured", [])
        if pe is not None:  # kind: measured / estimated / mixed (N % measured), from the components' sources
            parts.append(pe)
        phases[phase] = {"kwh": entry["energy_kwh"], "method": entry["method"],
                         "kind": pe.kind if pe is not None else None,
                         "duration_s": entry["duration_s"], "n_segments": entry["n_segments"],
                         "work": (dict(pe.work) or None) if pe is not None else None,
                         "label": format_kwh(entry["energy_kwh"], pe.kind if pe is not None else entry["method"]),
                         "recovered_segments": sum(1 for s in segments if s.get("recovered")),
                         "unmeasured_s": float(entry.get("unmeasured_s", 0.0))}
        notes.extend(_killed_run_notes(phase, segments, spans))
    section = {
        "file": str(path),
        "available": data is not None,
        "phases": phases,
        "total_kwh": sum(p.kwh for p in parts) if parts else None,
        "method": (data or {}).get("method"),
        "unmeasured_s": sum(p["unmeasured_s"] for p in phases.values()),
        "kind": combined_kind(*parts) if parts else None,
    }
    if data is not None:
        segs = [s for v in data["phases"].values() for s in v.get("segments", [])]
        if segs:
            last = segs[-1]
            section["sources"] = last.get("sources")
            section["codecarbon_version"] = last.get("codecarbon_version")
            section["country_iso_code"] = last.get("country_iso_code")
            section["tracking_mode"] = last.get("tracking_mode")
    return section, data


def _killed_run_notes(phase: str, segments: list[Mapping[str, Any]], spans: list[Mapping[str, Any]]) -> list[str]:
    """What a killed run left out of a phase's kWh (see :func:`dcase_fpd_plugin.energy.record.recover_killed_segment`)."""
    notes = []
    for seg in segments:
        if seg.get("recovered"):
            notes.append(f"{phase}: a segment started {seg.get('started')} was {seg['recovered']}; its "
                         f"{format_kwh(seg['energy_kwh'], seg['method'])} over {seg['duration_s']:.1f} s "
                         f"were recovered up to codecarbon's last reading before the kill ({seg.get('measured_until')})")
    for span in spans:
        at_least = (f", of which it ran at least {span['ran_at_least_s']:.1f} s" if "ran_at_least_s" in span else "")
        notes.append(f"{phase}: {span['duration_s']:.1f} s unmeasured ({span['from']} to {span['to']}): the run "
                     f"was killed in this span{at_least}; no kWh for it, so the {phase} kWh is a lower bound")
    return notes


def _training_hardware(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    for phase in PHASES:
        segs = (data or {}).get("phases", {}).get(phase, {}).get("segments") or []
        if segs and segs[-1].get("hardware"):
            return {"source": f"the {phase} run, as codecarbon saw it (energy.json)", **segs[-1]["hardware"]}
    return None


def submission_figures(exp_dir: str | Path, ckpt: str | Path | None = None) -> dict[str, Any]:
    """Energy per phase, parameter count, MACs per 10 s and hardware of an experiment folder.

    Raises:
        ReportError: ``exp_dir`` is missing, or holds neither a checkpoint nor ``recipe.yaml``.
    """
    from ..recipe.loading import load_recipe
    from ..training.task import SEDTask, load_task

    exp_dir = Path(exp_dir)
    if not exp_dir.is_dir():
        raise ReportError(f"experiment folder not found: {exp_dir}")
    notes: list[str] = []
    recipe_path = exp_dir / "recipe.yaml"
    ckpt_path = Path(ckpt) if ckpt else _find_checkpoint(exp_dir)
    if ckpt is not None and not ckpt_path.is_file():
        raise ReportError(f"checkpoint not found: {ckpt_path}")
    if ckpt_path is not None:
        try:
            task = load_task(ckpt_path)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise ValueError(f"{ckpt_path}: cannot build the model from this checkpoint "
                             f"({type(exc).__name__}: {exc})") from exc
        model_source = str(ckpt_path)
    elif recipe_path.is_file():
        task = SEDTask(load_recipe(recipe_path))
        model_source = f"{recipe_path} (no checkpoint)"
        notes.append(f"no checkpoint found in {exp_dir / 'checkpoints'}: model built from {recipe_path} "
                     "(parameter and MAC counts do not depend on the weights)")
    else:
        raise ReportError(f"{exp_dir}: not an experiment folder (no {recipe_path.name}, no "
                          f"checkpoints/best.ckpt or checkpoints/last.ckpt)")
    recipe = task.recipe
    feats = recipe["feats"]
    macs = measure_macs_for_clip(task.model, feats, CLIP_SECONDS)
    energy, data = _energy_section(exp_dir, notes)
    hardware = _training_hardware(data)
    if hardware is None:
        hardware = {"source": "this machine (the hardware of the training run is unknown without energy.json)",
                    **hardware_info()}
    return {
        "exp_dir": str(exp_dir),
        "model_source": model_source,
        "net": recipe["net"].get("name"),
        "energy": energy,
        "parameters": count_parameters(task.model),
        "branch_parameters": count_parameters(task.branches) if hasattr(task, "branches") else 0,
        "macs_per_10s": macs.total,
        "macs": {**asdict(macs), "input_shape": list(macs.input_shape), "seconds": CLIP_SECONDS},
        "hardware": hardware,
        "report_machine": hardware_info(),
        "notes": notes,
    }


# --------------------------------------------------------------------------- printing
def _si(n: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.4g} {unit}"
    return f"{n:.0f}"


def _duration(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_report(fig: Mapping[str, Any]) -> str:
    """The figures of :func:`submission_figures` as a plain-text table."""
    e = fig["energy"]
    lines = [f"DCASE submission figures: {fig['exp_dir']}  (net: {fig['net']}; model from {fig['model_source']})", ""]
    head = "Energy (codecarbon"
    if e.get("codecarbon_version"):
        head += f" {e['codecarbon_version']}, country {e.get('country_iso_code')}, tracking {e.get('tracking_mode')}"
    lines.append(head + ")")
    lines.append(f"  {'phase':<12}{'energy':<40}{'measured':>10}  {'unmeasured':>10}  segments")
    for phase, p in e["phases"].items():
        segs = f"{p['n_segments'] or '-'}" + (f" ({p['recovered_segments']} recovered after a kill)"
                                              if p.get("recovered_segments") else "")
        unmeasured = _duration(p["unmeasured_s"]) if p.get("unmeasured_s") else "-"
        lines.append(f"  {phase:<12}{p['label']:<40}{_duration(p['duration_s']):>10}  {unmeasured:>10}  {segs}")
    if e["total_kwh"] is not None:
        bound = (f"  (a lower bound: {e['unmeasured_s']:.1f} s unmeasured, see the notes)"
                 if e.get("unmeasured_s") else "")
        lines.append(f"  {'total':<12}{format_kwh(e['total_kwh'], e['kind'])}{bound}")
    elif e.get("unmeasured_s"):  # killed before codecarbon's first reading: time, but no kWh at all
        lines.append(f"  {'total':<12}not measured ({e['unmeasured_s']:.1f} s ran unmeasured, see the notes)")
    if e.get("sources"):
        lines.append("  sources: " + "; ".join(f"{k}: {v}" for k, v in e["sources"].items()))
        if e.get("kind") != "measured":
            lines.append("  estimated = codecarbon's power model (no RAPL/NVML counters): duration x modelled power; "
                         "mixed = part of the kWh read from counters (e.g. the GPU by NVML), the rest modelled")
    lines.append("")
    m = fig["macs"]
    lines.append("Model")
    lines.append(f"  {'parameters':<24}{fig['parameters']:>15,}  ({_si(fig['parameters'])})")
    if fig.get("branch_parameters"):
        lines.append(f"  {'training-only branches':<24}{fig['branch_parameters']:>15,}  (not in the count above)")
    lines.append(f"  {'MACs per 10 s audio':<24}{fig['macs_per_10s']:>15,}  ({_si(fig['macs_per_10s'])})")
    shape = " x ".join(str(d) for d in m["input_shape"])
    lines.append(f"  {'':<24}input {shape} log-mel; conv/linear/matmul {m['counted']:,} via FlopCounterMode, "
                 f"recurrent {m['recurrent']:,} analytic")
    lines.append("")
    hw = fig["hardware"]
    lines.append(f"Hardware ({hw['source']})")
    cpu = hw.get("cpu_model")
    cores = hw.get("cpu_count", hw.get("cpu_logical_cores"))
    lines.append(f"  {'CPU':<8}{cpu} ({cores} logical cores)")
    if hw.get("ram_total_gib") is not None:
        lines.append(f"  {'RAM':<8}{hw['ram_total_gib']} GiB")
    gpu = hw.get("gpu_model") or ", ".join(hw.get("cuda_devices") or hw.get("gpus") or []) or "none"
    lines.append(f"  {'GPU':<8}{gpu}")
    lines.append(f"  {'torch':<8}{hw.get('torch', '?')}")
    for note in fig["notes"]:
        lines.append(f"\nnote: {note}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- command
def cmd_report(args: argparse.Namespace) -> int:
    from .energy_comparison import compare_runs, comparison_json, format_comparison
    from .meta import write_meta

    def fail(msg: Any) -> int:
        print(f"dcase-fpd report: error: {msg}", file=sys.stderr)
        return 2

    baseline = getattr(args, "baseline", None)
    meta = getattr(args, "meta", None)
    if meta and not baseline:
        return fail("--meta needs --baseline BASELINE_EXP_DIR (the meta file holds the baseline's energy "
                    "on the same hardware)")
    if meta and Path(meta).exists() and not args.force:
        return fail(f"{meta} exists; pass --force to replace it (nothing written)")
    try:
        fig = submission_figures(args.exp_dir, ckpt=args.ckpt)
        cmp = compare_runs(args.exp_dir, baseline, args.allow_other_hardware) if baseline else None
    except (ReportError, FileNotFoundError, ValueError) as exc:  # ComparisonError is a ValueError
        return fail(exc)
    if args.json:
        print(json.dumps({**fig, **({"baseline": comparison_json(cmp)} if cmp else {})}, indent=2, default=str))
    else:
        print(format_report(fig))
        if cmp is not None:
            print()
            print(format_comparison(cmp))
    if meta:
        try:
            written = write_meta(meta, fig, cmp, force=args.force)
        except (FileExistsError, OSError) as exc:
            return fail(exc)
        print(f"\nmeta block written to {written}", file=sys.stderr if args.json else sys.stdout)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dcase-fpd report EXP_DIR [--json] [--ckpt CKPT] [--baseline DIR [--meta OUT.yaml]]``."""
    p = subparsers.add_parser("report", help="print the DCASE submission figures of an experiment "
                                             "(energy kWh per phase, parameters, MACs per 10 s, hardware), "
                                             "against a baseline run on the same hardware (EW-PSDS)")
    p.add_argument("exp_dir", help="experiment folder (training.exp_dir), e.g. exp/weak")
    p.add_argument("--ckpt", help="checkpoint to build the model from (default: checkpoints/best.ckpt, else last.ckpt)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--baseline", metavar="BASELINE_EXP_DIR",
                   help="the baseline's experiment folder, run on the same hardware: kWh ratio per phase and "
                        "EW-PSDS1/2 = PSDS x kWh_baseline / kWh_system (training energy)")
    p.add_argument("--allow-other-hardware", action="store_true",
                   help="compare with a baseline measured on other hardware (CPU model, GPU model or count)")
    p.add_argument("--meta", metavar="OUT.yaml",
                   help="write the complexity / energy block of the DCASE Task 4 submission meta file (needs --baseline)")
    p.add_argument("--force", action="store_true", help="replace an existing --meta file")
    p.set_defaults(func=cmd_report)
    return p
