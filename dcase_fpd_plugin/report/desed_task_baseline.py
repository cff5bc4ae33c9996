"""The official DCASE baseline's energy as DESED_task writes it: ``report --baseline`` on its codecarbon files.

    dcase-fpd report EXP_DIR --baseline exp/2024_baseline/version_0 [--allow-other-hardware] [--meta OUT.yaml]

A participant who ran the official baseline (DESED_task, ``recipes/dcase2024_task4_baseline``, commit
c6bcb45) on their machine has only its codecarbon output, no ``energy.json``. What DESED_task writes
(``local/sed_trainer_pretrained.py`` of 2024, ``local/sed_trainer.py`` / ``sed_trainer_pretrained.py``
of 2023 and 2022), in the folder of its Lightning logger (``<log_dir>/version_X``):

* **2024** (codecarbon 2.3.4): one folder ``codecarbon/`` with one CSV per tracker:
  ``emissions_baseline_training.csv`` (project ``DCASE Task 4 SED TRAINING``, from ``on_train_start``
  to ``on_train_end``), ``emissions_baseline_test.csv`` (``DCASE Task 4 SED DEVTEST``: the devtest
  inference) and ``emissions_basleline_eval.csv`` (sic; ``DCASE Task 4 SED EVALUATION``: the
  evaluation set); ``emissions_baseline_eval.csv`` is read too.
* **2023, 2022** (codecarbon 2.1.4, 1.2.0): one folder per phase, ``training_codecarbon/``,
  ``devtest_codecarbon/``, ``evaluation_codecarbon/``, each with codecarbon's default
  ``emissions.csv`` (and a ``*_tot_kwh.txt`` holding the same kWh, not read: it names no hardware).
No JSON summary is written by either. Phases: training -> ``training``, devtest -> ``devtest``,
evaluation -> ``evaluation``, those of :mod:`dcase_fpd_plugin.energy`.

**What ``--baseline`` accepts** (:func:`desed_task_files`): that ``version_X`` folder, its
``codecarbon/`` folder, one ``<phase>_codecarbon/`` folder, or one of the CSV files (its phase from its
name, its folder's name, else its rows' ``project_name``); a folder holding exactly one of these
(``exp/2024_baseline`` -> ``version_0``) stands for it, as for our own run folders.

**Columns**, read by header name, in any order (codecarbon's set varies by version): ``energy_consumed``
(kWh) is required; ``cpu_energy``, ``gpu_energy``, ``ram_energy`` (kWh), ``duration`` (s),
``emissions``, ``run_id``, ``project_name``, ``timestamp``, ``cpu_model``, ``gpu_model``, ``gpu_count``,
``cpu_count``, ``ram_total_size``, ``codecarbon_version``, ``country_iso_code``, ``tracking_mode``
are read when present; any other column is ignored. A field that should be a number and is not,
or a negative or non-finite kWh, is refused naming the file and the line.

**Which rows count.** codecarbon writes one row when its tracker stops (and one at each ``flush()``),
its figures cumulative from the tracker's start, and *appends* to an existing file: a second run
into the same folder adds rows with a new ``run_id``. The figure of a file is the **last row of the
last run** in it (the run of its last row, whose last row holds that run's totals); rows of
earlier runs are not added (a re-run would be counted twice), and the report names them. A file
without ``run_id`` (codecarbon before 2.0): its last row.

**Measured or estimated.** The CSV does not say what codecarbon read each component from: the GPU's
kWh count as measured (codecarbon reads GPUs through NVML only), the RAM's as estimated (a power
model), the CPU's as estimated (RAPL or a TDP model: the file cannot tell), and the report says so.

**Not in the files.** No work (clips, epochs): the baseline's kWh are compared as they are (DCASE's
reference is the baseline trained for 10 epochs and its devtest inference, as they ran). No PSDS:
the EW-PSDS needs only the system's PSDS and the kWh ratio, so none is asked for.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Mapping

from ..energy.phase import PHASES
from .energy_comparison import BaselineEnergy, ComparisonError

# 2024: <version_X>/codecarbon/<file> -> phase
CSV_NAMES_2024: dict[str, str] = {
    "emissions_baseline_training.csv": "training",
    "emissions_baseline_test.csv": "devtest",
    "emissions_basleline_eval.csv": "evaluation",  # sic: DESED_task's own spelling
    "emissions_baseline_eval.csv": "evaluation",
}
FOLDER_2024 = "codecarbon"
# 2023 / 2022: <version_X>/<folder>/emissions.csv -> phase
FOLDERS_2023: dict[str, str] = {"training_codecarbon": "training", "devtest_codecarbon": "devtest",
                                "evaluation_codecarbon": "evaluation"}
CSV_NAME_2023 = "emissions.csv"
# the project_name of DESED_task's trackers (both layouts) -> phase
PROJECT_NAMES: dict[str, str] = {"DCASE Task 4 SED TRAINING": "training", "DCASE Task 4 SED DEVTEST": "devtest",
                                 "DCASE Task 4 SED EVALUATION": "evaluation"}
REQUIRED_COLUMNS = ("energy_consumed",)
_NUMBERS = ("energy_consumed", "cpu_energy", "gpu_energy", "ram_energy", "duration", "emissions", "gpu_count",
            "cpu_count", "ram_total_size")
_KWH = ("energy_consumed", "cpu_energy", "gpu_energy", "ram_energy")

EXPECTED = ("DESED_task's codecarbon output: its run folder <log_dir>/version_X holding codecarbon/"
            "emissions_baseline_training.csv and emissions_baseline_test.csv (2024 recipe) or "
            "training_codecarbon/emissions.csv and devtest_codecarbon/emissions.csv (2023, 2022), that "
            "codecarbon/ or *_codecarbon/ folder, or one of those CSV files")


class BaselineFormatError(ComparisonError):
    """A DESED_task codecarbon CSV that cannot be read; the message names the file (and the line)."""


# --------------------------------------------------------------------------- the layout
def desed_task_files(path: str | Path) -> dict[str, Path] | None:
    """Phase -> CSV of DESED_task's codecarbon output at ``path`` (see the module docstring), None
    when ``path`` has not that layout. A CSV file given alone maps to the phase its name or its
    folder's name says, or to ``""`` (to be read from its ``project_name``)."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            return None
        phase = CSV_NAMES_2024.get(path.name)
        if phase is None and path.name == CSV_NAME_2023:
            phase = FOLDERS_2023.get(path.parent.name)
        return {phase or "": path}
    if not path.is_dir():
        return None
    found: dict[str, Path] = {}
    if path.name in FOLDERS_2023 and (path / CSV_NAME_2023).is_file():  # one 2023 phase folder
        return {FOLDERS_2023[path.name]: path / CSV_NAME_2023}
    for folder in (path, path / FOLDER_2024):  # the 2024 codecarbon/ folder, or the run folder above it
        for name, phase in CSV_NAMES_2024.items():
            if phase not in found and (folder / name).is_file():
                found[phase] = folder / name
        if found:
            return found
    for name, phase in FOLDERS_2023.items():
        if (path / name / CSV_NAME_2023).is_file():
            found[phase] = path / name / CSV_NAME_2023
    return found or None


# --------------------------------------------------------------------------- one CSV
def _number(value: str, column: str, path: Path, line: int) -> float | None:
    """A numeric field; None when empty (codecarbon leaves ``gpu_count`` empty without a GPU)."""
    text = value.strip()
    if not text:
        if column in REQUIRED_COLUMNS:
            raise BaselineFormatError(f"{path}, line {line}: '{column}' is empty (a number of kWh is expected)")
        return None
    try:
        number = float(text)
    except ValueError:
        raise BaselineFormatError(f"{path}, line {line}: '{column}' is not a number ({text!r})") from None
    if column in _KWH and (not math.isfinite(number) or number < 0):
        raise BaselineFormatError(f"{path}, line {line}: '{column}' is {text!r}, not a kWh figure (finite, >= 0)")
    return number


def read_codecarbon_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """The rows of a codecarbon CSV as ``(line, {column: value})``, numbers parsed (see
    :data:`_NUMBERS`; None when empty), strings stripped (None when empty).

    Raises:
        BaselineFormatError: unreadable, no header, no ``energy_consumed`` column, a row of another
            length than the header, a number that is not one; the message names the file and the line.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise BaselineFormatError(f"{path}: empty, not a codecarbon CSV (a header line with "
                                          f"{', '.join(REQUIRED_COLUMNS)} is expected)")
            header = [h.strip() for h in header]
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise BaselineFormatError(
                    f"{path}, line 1: no '{missing[0]}' column, so not a codecarbon emissions CSV "
                    f"(its header: {', '.join(header[:12])}{', ...' if len(header) > 12 else ''})")
            rows = []
            for record in reader:
                line = reader.line_num
                if not record or not any(f.strip() for f in record):
                    continue  # a blank line
                if len(record) != len(header):
                    raise BaselineFormatError(f"{path}, line {line}: {len(record)} fields where the header "
                                              f"has {len(header)}")
                row: dict[str, Any] = {}
                for column, value in zip(header, record):
                    if column in _NUMBERS:
                        row[column] = _number(value, column, path, line)
                    else:
                        row[column] = value.strip() or None
                rows.append((line, row))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BaselineFormatError(f"{path}: cannot be read as a CSV ({type(exc).__name__}: {exc})") from None
    if not rows:
        raise BaselineFormatError(f"{path}: a header but no row (the tracker never stopped?)")
    return rows


def counted_row(rows: list[tuple[int, dict[str, Any]]]) -> tuple[tuple[int, dict[str, Any]], list[int]]:
    """The row that counts (the last row of the last run, see the module docstring) and the lines
    of the rows of earlier runs that do not."""
    line, last = rows[-1]
    run_id = last.get("run_id")
    if run_id is None:
        return rows[-1], [ln for ln, _ in rows[:-1]]
    return rows[-1], [ln for ln, r in rows if r.get("run_id") != run_id]


def _sources(row: Mapping[str, Any]) -> dict[str, str]:
    sources = {"ram": "estimated (codecarbon's RAM power model)",
               "cpu": "estimated (RAPL or a TDP model: DESED_task's CSV does not say; counted as estimated)"}
    if (row.get("gpu_energy") or 0) > 0 or row.get("gpu_model"):
        sources["gpu"] = "measured (NVML: codecarbon's only GPU reading)"
    return sources


def phase_from_csv(path: Path, phase: str) -> tuple[dict[str, Any], list[str]]:
    """One phase of DESED_task's codecarbon output: ``(phase entry shaped as energy.json's, notes)``.

    ``phase`` ``""``: taken from the counted row's ``project_name`` (:data:`PROJECT_NAMES`)."""
    rows = read_codecarbon_rows(path)
    (line, row), skipped = counted_row(rows)
    if not phase:
        phase = PROJECT_NAMES.get(row.get("project_name") or "", "")
        if not phase:
            raise BaselineFormatError(
                f"{path}: which phase it measured cannot be told: neither its name ("
                + ", ".join([*CSV_NAMES_2024, "<phase>_codecarbon/emissions.csv"])
                + f") nor its project_name ({row.get('project_name')!r}; DESED_task's: "
                + ", ".join(PROJECT_NAMES) + ") says")
    components = {c: row.get(f"{c}_energy") for c in ("cpu", "gpu", "ram")}
    segment: dict[str, Any] = {
        "ended": row.get("timestamp"),
        "duration_s": row.get("duration") or 0.0,
        "energy_kwh": row["energy_consumed"],
        "emissions_kg_co2eq": row.get("emissions"),
        "method": "estimated",
        "sources": _sources(row),
        "tracking_mode": row.get("tracking_mode"),
        "country_iso_code": row.get("country_iso_code"),
        "codecarbon_version": row.get("codecarbon_version"),
        "project_name": row.get("project_name"),
        "run_id": row.get("run_id"),
        "csv": str(path),
        "line": line,
    }
    if all(v is not None for v in components.values()):
        segment.update({f"{c}_kwh": v for c, v in components.items()})
    if row.get("cpu_model") is not None:  # without it, no hardware record: the check says so
        segment["hardware"] = {"cpu_model": row.get("cpu_model"), "cpu_count": row.get("cpu_count"),
                               "gpu_model": row.get("gpu_model"),
                               "gpu_count": int(row.get("gpu_count") or 0),
                               "ram_total_gib": row.get("ram_total_size")}
    entry = {"energy_kwh": segment["energy_kwh"], "duration_s": segment["duration_s"], "method": "estimated",
             "n_segments": 1, "segments": [segment]}
    what = f"run_id {row['run_id']}" if row.get("run_id") else "no run_id"
    notes = [f"baseline {phase}: {path}, line {line} ({what}, project {row.get('project_name')!r}, "
             f"codecarbon {row.get('codecarbon_version') or '?'})"]
    if skipped:
        notes.append(f"baseline {phase}: {len(skipped)} row(s) of earlier runs in {path} not counted "
                     f"(line{'s' if len(skipped) > 1 else ''} {', '.join(map(str, skipped))}): only the last run's "
                     "last row counts")
    return {"phase": phase, **entry}, notes


# --------------------------------------------------------------------------- the baseline
def read_desed_task_baseline(path: str | Path, files: Mapping[str, Path] | None = None) -> BaselineEnergy:
    """The baseline's energy from DESED_task's codecarbon output at ``path`` (module docstring).

    Raises:
        BaselineFormatError: ``path`` has not that layout, or one of its CSV files cannot be read.
    """
    path = Path(path)
    files = dict(files) if files is not None else desed_task_files(path)
    if not files:
        raise BaselineFormatError(f"{path}: not {EXPECTED}")
    phases: dict[str, Any] = {}
    by_phase: dict[str, Path] = {}
    notes: list[str] = []
    for phase, csv_path in files.items():
        entry, more = phase_from_csv(csv_path, phase)
        phase = entry.pop("phase")
        if phase in phases:
            raise BaselineFormatError(f"{csv_path} and {by_phase[phase]} both measure the {phase} phase")
        phases[phase], by_phase[phase] = entry, csv_path
        notes.extend(more)
    phases = {p: phases[p] for p in PHASES if p in phases}
    notes.append("baseline kWh from DESED_task's codecarbon CSV: the GPU's counted as measured (NVML), the CPU's "
                 "and the RAM's as estimated (the file does not say whether RAPL was read)")
    notes.append("DESED_task's codecarbon files record no work (clips, epochs): the baseline's kWh are compared "
                 "as they ran, not per unit of work (DCASE's reference: the baseline trained 10 epochs, and "
                 "its devtest inference)")
    notes.append("DESED_task's codecarbon files hold no PSDS: the baseline's PSDS is not shown (the EW-PSDS "
                 "needs only the system's PSDS and the kWh ratio)")
    return BaselineEnergy(label=str(path), data={"phases": phases}, files=by_phase,
                          source="DESED_task's codecarbon CSV", notes=notes)


__all__ = ["BaselineFormatError", "CSV_NAMES_2024", "EXPECTED", "FOLDERS_2023", "PROJECT_NAMES",
           "counted_row", "desed_task_files", "phase_from_csv",
           "read_codecarbon_rows", "read_desed_task_baseline"]
