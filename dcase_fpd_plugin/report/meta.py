"""The complexity and energy part of a DCASE Task 4 submission meta file: ``report --meta OUT.yaml``.

    dcase-fpd report EXP_DIR --baseline BASELINE --meta OUT.yaml [--force]

writes a YAML block to paste under the ``system:`` entry of the submission's ``*.meta.yaml``:
parameters and MACs for 10 s (``complexity``), kWh of each phase of the system and of the baseline
run on the same hardware, and the hardware (``energy_consumption``). Every kWh carries a comment
saying whether it is measured, estimated or mixed, and the work it covers. The kWh are the runs'
own (not normalised): the organisers do their own weighting. The file is written atomically
(:mod:`dcase_fpd_plugin.atomic`) and never over an existing file without ``--force``.

**Keys.** The figures asked for are those of the DCASE 2024 Task 4 baseline README (DESED_task,
``recipes/dcase2024_task4_baseline/README.md``, sections "Energy Consumption (mandatory this year !)"
and "Multiply-accumulate (MAC) operations", commit c6bcb45): energy of the whole system training and
of the devtest inference (2023 also: evaluation-set inference), energy of the baseline's training and
devtest inference on the same hardware, MACs for 10 s of audio; and the parameter count of the
DCASE meta files' ``system: complexity: total_parameters``. The task's own meta template (in the
submission package on dcase.community) could not be read where this was written: the key names of
:data:`META_KEYS` follow the README's wording, gathered in that one mapping so that they can be
matched to the template of the year in one place. Compare them with the package before submitting.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ..atomic import atomic_write_text

# section -> [(our figure, the meta file's key)]; see the module docstring for their source.
META_KEYS: dict[str, list[tuple[str, str]]] = {
    "complexity": [("parameters", "total_parameters"), ("macs_per_10s", "macs")],
    "energy_consumption": [
        ("system.training", "training"),
        ("system.devtest", "devtest_inference"),
        ("system.evaluation", "evaluation_inference"),
        ("baseline.training", "baseline_training"),
        ("baseline.devtest", "baseline_devtest_inference"),
        ("baseline.evaluation", "baseline_evaluation_inference"),
        ("hardware.gpu_model", "gpu_model"),
        ("hardware.gpu_count", "gpu_count"),
        ("hardware.cpu_model", "cpu_model"),
    ],
}


def _scalar(value: Any) -> str:
    """A YAML scalar (JSON is valid YAML for numbers, strings, null)."""
    return json.dumps(value)


def _phase_comment(pe: Any, phase: str, source: str = "energy.json") -> str:
    if pe is None:
        return f"not measured (no {phase} phase in {source})"
    work = ", ".join(f"{v} {k}" for k, v in sorted(pe.work.items())) or "work not recorded"
    return f"{pe.kind}; {work}"


def meta_values(fig: Mapping[str, Any], cmp: Mapping[str, Any]) -> dict[str, tuple[Any, str]]:
    """Our figure name -> (value, comment) for every entry of :data:`META_KEYS`."""
    by_phase = {c.phase: c for c in cmp["phases"]}
    hw = fig["hardware"]
    gpu_model = hw.get("gpu_model") or ", ".join(hw.get("cuda_devices") or hw.get("gpus") or []) or None
    gpu_count = hw.get("gpu_count")
    if gpu_count is None:
        gpu_count = len(hw.get("cuda_devices") or hw.get("gpus") or [])
    values: dict[str, tuple[Any, str]] = {
        "parameters": (int(fig["parameters"]), "detection model (weights used at inference; "
                       f"training-only branches, {fig.get('branch_parameters', 0)} parameters, not counted)"),
        "macs_per_10s": (int(fig["macs_per_10s"]), "multiply-accumulates for 10 s of audio (conv / linear / "
                         "matmul by torch's FlopCounterMode, recurrent layers analytic; see dcase-fpd report)"),
        "hardware.gpu_model": (gpu_model, f"from {hw['source']}"),
        "hardware.gpu_count": (int(gpu_count or 0), ""),
        "hardware.cpu_model": (hw.get("cpu_model"), ""),
    }
    baseline_files = cmp.get("baseline_files")  # a DESED_task baseline: one codecarbon CSV per phase
    for who in ("system", "baseline"):
        for phase in ("training", "devtest", "evaluation"):
            pe = getattr(by_phase[phase], who)
            if who == "baseline" and baseline_files is not None:
                comment = _phase_comment(pe, phase, "DESED_task's codecarbon output")
                if phase in baseline_files:
                    comment += f"; from {baseline_files[phase]}"
            else:
                comment = _phase_comment(pe, phase)
            values[f"{who}.{phase}"] = (None if pe is None else pe.kwh, "kWh, " + comment)
    return values


def meta_text(fig: Mapping[str, Any], cmp: Mapping[str, Any]) -> str:
    """The YAML block (with comments) for the submission's meta file."""
    values = meta_values(fig, cmp)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        "# Complexity and energy of a DCASE Task 4 submission: paste under the meta file's `system:`.",
        f"# Written by dcase-fpd report {cmp['system']} --baseline {cmp['baseline']} ({stamp}).",
        *(["# kWh from codecarbon (energy.json of each run), the runs' own figures (not normalised);"]
          if not cmp.get("baseline_files") else
          ["# kWh from codecarbon (the system's energy.json; the baseline's DESED_task codecarbon CSV, the",
           "# last row of the last run in each file, its CPU and RAM kWh counted as estimated), the runs'",
           "# own figures (not normalised);"]),
        "# 'estimated': codecarbon modelled the power (no RAPL / NVML counters), 'measured': read from",
        "# the counters, 'mixed': part of each. Key names: see dcase_fpd_plugin/report/meta.py.",
    ]
    if cmp["hardware_differences"]:
        lines.append("# WARNING: the baseline was measured on other hardware (--allow-other-hardware): "
                     + "; ".join(cmp["hardware_differences"]))
    lines.append("system:")
    for section, keys in META_KEYS.items():
        lines.append(f"  {section}:")
        for ours, key in keys:
            value, comment = values[ours]
            lines.append(f"    {key}: {_scalar(value)}" + (f"  # {comment}" if comment else ""))
    return "\n".join(lines) + "\n"


def write_meta(path: str | Path, fig: Mapping[str, Any], cmp: Mapping[str, Any], force: bool = False) -> Path:
    """Write :func:`meta_text` to ``path`` atomically; an existing file only with ``force``.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is false (nothing written).
    """
    path = Path(path)
    if path.is_dir():
        raise FileExistsError(f"--meta {path} is a folder; give the YAML file to write")
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass --force to replace it (nothing written)")
    atomic_write_text(path, meta_text(fig, cmp))
    return path


__all__ = ["META_KEYS", "meta_text", "meta_values", "write_meta"]
