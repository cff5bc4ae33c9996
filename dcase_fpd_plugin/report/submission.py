"""The figures a DCASE submission asks for: energy (kWh) per phase, parameters, MACs per 10 s, hardware.

    dcase-fpd report EXP_DIR [--json] [--ckpt CKPT]
    dcase-fpd report EXP_DIR --baseline BASELINE [--allow-other-hardware] [--meta OUT.yaml [--force]]

EXP_DIR is a run folder (a run's ``training.exp_dir``); a folder that holds exactly one run (the demo's
``exp/demo``, whose run is ``exp/demo/run``) stands for it, and the command says which folder it used; one
that holds several (a ``compare`` output) is refused with their list. The command
reads ``EXP_DIR/recipe.yaml``, a checkpoint (``checkpoints/best.ckpt``, else ``last.ckpt``) and
``EXP_DIR/energy.json`` (written by :mod:`dcase_fpd_plugin.energy`) and prints a table (or, with
``--json``, the dict of :func:`submission_figures`). With ``--baseline``, also the comparison with a
baseline run on the same hardware (:mod:`dcase_fpd_plugin.report.energy_comparison`: kWh ratio per phase,
EW-PSDS) and, with ``--meta``, the submission meta file's block (:mod:`dcase_fpd_plugin.report.meta`).
BASELINE is a run folder read the same way, or the official baseline's codecarbon output as DESED_task
writes it (:func:`resolve_baseline`, :mod:`dcase_fpd_plugin.report.desed_task_baseline`).

Parameters and MACs: :mod:`dcase_fpd_plugin.report.complexity`, which says what they count.
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

import torch

from ..energy.phase import PHASES
from ..energy.record import format_kwh, read_energy
from .desed_task_baseline import EXPECTED, desed_task_files, read_desed_task_baseline
from .energy_comparison import BaselineEnergy, combined_kind, phase_energy
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


def is_run_folder(path: Path) -> bool:
    """A run folder is one ``report`` can read: it holds ``recipe.yaml`` or a checkpoint in ``checkpoints/``."""
    return path.is_dir() and ((path / "recipe.yaml").is_file() or _find_checkpoint(path) is not None)


RUN_SEARCH_DEPTH = 2  # exp/demo -> exp/demo/run; a compare folder OUT -> OUT/<recipe>/seed_<s>


def find_run_folders(path: Path, depth: int = RUN_SEARCH_DEPTH, is_match=None) -> list[Path]:
    """The run folders inside ``path`` (not ``path`` itself), up to ``depth`` levels down, sorted;
    ``is_match(folder) -> bool`` (default :func:`is_run_folder`) says what a run folder is.

    A run folder's own subfolders (``tests/``, ``late_epochs/``) are not searched; nor are hidden ones."""
    is_match = is_run_folder if is_match is None else is_match
    found: list[Path] = []
    try:
        children = sorted(c for c in path.iterdir() if c.is_dir() and not c.name.startswith("."))
    except OSError:
        return found
    for child in children:
        if is_match(child):
            found.append(child)
        elif depth > 1:
            found.extend(find_run_folders(child, depth - 1, is_match))
    return found


def resolve_run_folder(path: str | Path) -> tuple[Path, Path | None]:
    """``(run folder, the folder named)``: ``path`` itself when it is a run folder (second item None), else the
    one run folder inside it (the demo's ``exp/demo`` -> ``exp/demo/run``), which the caller says it used.

    Raises:
        ReportError: ``path`` is missing, holds no run folder, or holds several (all listed).
    """
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"experiment folder not found: {path}")
    if is_run_folder(path):
        return path, None
    runs = find_run_folders(path)
    if len(runs) == 1:
        return runs[0], path
    if not runs:
        raise ReportError(f"{path}: not an experiment folder (no recipe.yaml, no checkpoints/best.ckpt or "
                          f"checkpoints/last.ckpt), and no run folder inside it (searched {RUN_SEARCH_DEPTH} "
                          "levels down); name the folder a run wrote, its training.exp_dir")
    shown = runs[:20]
    more = f" (and {len(runs) - len(shown)} more)" if len(runs) > len(shown) else ""
    raise ReportError(f"{path} is not a run folder but holds {len(runs)} runs: "
                      + ", ".join(str(r) for r in shown) + more
                      + f"; name one, e.g. dcase-fpd report {runs[0]}")


def resolve_baseline(path: str | Path) -> tuple[Path | BaselineEnergy, Path | None]:
    """``(baseline, the folder named)`` for ``report --baseline PATH``: one of our run folders (a Path, as
    :func:`resolve_run_folder` finds it; a folder with ``energy.json`` counts too) or DESED_task's codecarbon
    output read into a :class:`~.energy_comparison.BaselineEnergy` (:mod:`.desed_task_baseline`). A folder
    that is neither but holds exactly one of either, up to two levels down, stands for it (second item:
    the folder named, which the caller says it did not use as such).

    Raises:
        ReportError: ``path`` is missing, or neither kind is found (the message says what either is).
        ComparisonError: a DESED_task CSV cannot be read (the message names the file and the line).
    """
    path = Path(path)
    if not path.exists():
        raise ReportError(f"experiment folder not found: {path}")
    if path.is_dir() and (is_run_folder(path) or (path / "energy.json").is_file()):
        return path, None
    files = desed_task_files(path)
    if files:
        return read_desed_task_baseline(path, files), None
    if path.is_dir():
        found = sorted(set(find_run_folders(path)) | set(find_run_folders(path, RUN_SEARCH_DEPTH, lambda c: bool(desed_task_files(c)))))
        if len(found) == 1:
            inner, _ = resolve_baseline(found[0])
            return inner, path
        if found:
            shown = found[:20]
            more = f" (and {len(found) - len(shown)} more)" if len(found) > len(shown) else ""
            raise ReportError(f"--baseline {path} is not a run folder but holds {len(found)} runs (dcase-fpd run "
                              "folders or DESED_task's): " + ", ".join(str(r) for r in shown) + more + "; name one")
    raise ReportError(
        f"--baseline {path}: not a baseline. Expected either a dcase-fpd run folder (a run's training.exp_dir: "
        "recipe.yaml or checkpoints/*.ckpt, with energy.json) or " + EXPECTED
        + (f"; nor does it hold one of either (searched {RUN_SEARCH_DEPTH} levels down)" if path.is_dir() else ""))


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
