"""DESED TSV readers that validate as they read.

Formats (tab separated, one header line):

* strong:     ``filename  onset  offset  event_label``  (seconds; a clip with no event may
  appear once with empty onset/offset/event_label)
* weak:       ``filename  event_labels``  (comma-separated class names; may be empty)
* durations:  ``filename  duration``  (seconds)

Every problem raises :class:`DataError` naming the file and the 1-based line of the TSV.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from .labels import Event

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")


class DataError(ValueError):
    """A data file is malformed, or names audio that is absent or unreadable."""


def _rows(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a BOM (Excel's UTF-8) is not a column name
        reader = csv.reader(f, delimiter="\t")
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path}:1: empty file, expected a header with columns {list(required)}") from None
        header = [h.strip() for h in header]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}:1: missing column(s) {missing}; header is {header}")
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) > len(header):
                raise DataError(f"{path}:{lineno}: {len(row)} fields, header has {len(header)}")
            row = row + [""] * (len(header) - len(row))
            yield lineno, {h: c.strip() for h, c in zip(header, row)}


def _seconds(value: str, column: str, path: Path, lineno: int) -> float:
    try:
        t = float(value)
    except ValueError:
        raise DataError(f"{path}:{lineno}: {column} {value!r} is not a number") from None
    if not math.isfinite(t):
        raise DataError(f"{path}:{lineno}: {column} {value!r} is not finite")
    if t < 0:
        raise DataError(f"{path}:{lineno}: negative {column} {t}")
    return t


def _check_label(label: str, classes: Sequence[str] | None, path: Path, lineno: int) -> None:
    if classes is not None and label not in classes:
        raise DataError(f"{path}:{lineno}: unknown class {label!r}; the recipe's classes are {list(classes)}")


def read_strong_tsv(path: str | Path, classes: Sequence[str] | None = None) -> dict[str, list[Event]]:
    """``{filename: [Event, ...]}`` in file order; clips without events map to ``[]``."""
    path = Path(path)
    out: dict[str, list[Event]] = defaultdict(list)
    for lineno, row in _rows(path, ("filename", "onset", "offset", "event_label")):
        name = row["filename"]
        if not name:
            raise DataError(f"{path}:{lineno}: empty filename")
        if not row["event_label"] and not row["onset"] and not row["offset"]:
            out.setdefault(name, [])
            continue
        onset = _seconds(row["onset"], "onset", path, lineno)
        offset = _seconds(row["offset"], "offset", path, lineno)
        if onset >= offset:
            raise DataError(f"{path}:{lineno}: onset {onset} >= offset {offset} for {name}")
        _check_label(row["event_label"], classes, path, lineno)
        out[name].append(Event(name, onset, offset, row["event_label"]))
    return dict(out)


def read_weak_tsv(path: str | Path, classes: Sequence[str] | None = None) -> dict[str, list[str]]:
    """``{filename: [class, ...]}`` (comma-separated ``event_labels``; may be empty)."""
    path = Path(path)
    out: dict[str, list[str]] = {}
    for lineno, row in _rows(path, ("filename", "event_labels")):
        name = row["filename"]
        if not name:
            raise DataError(f"{path}:{lineno}: empty filename")
        if name in out:
            raise DataError(f"{path}:{lineno}: {name} listed twice")
        labels = [x.strip() for x in row["event_labels"].split(",") if x.strip()]
        for label in labels:
            _check_label(label, classes, path, lineno)
        out[name] = sorted(set(labels), key=labels.index)
    return out


def read_durations_tsv(path: str | Path) -> dict[str, float]:
    """``{filename: duration_s}``."""
    path = Path(path)
    out: dict[str, float] = {}
    for lineno, row in _rows(path, ("filename", "duration")):
        name = row["filename"]
        if not name:
            raise DataError(f"{path}:{lineno}: empty filename")
        d = _seconds(row["duration"], "duration", path, lineno)
        if d == 0:
            raise DataError(f"{path}:{lineno}: duration 0 for {name}")
        out[name] = d
    return out


def list_audio_folder(folder: str | Path) -> list[str]:
    """Sorted audio file names (not paths) directly inside ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found")
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def write_tsv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Write a TSV atomically (temp file in the same folder, then rename)."""
    from ..atomic import atomic_write

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(header)
            w.writerows(rows)

    atomic_write(path, write)
