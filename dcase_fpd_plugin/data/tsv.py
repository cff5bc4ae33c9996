"""DESED TSV readers that validate as they read.

Formats (tab separated, one header line):

* strong:     ``filename  onset  offset  event_label``  (seconds; a clip with no event may
  appear once with empty onset/offset/event_label)
* weak:       ``filename  event_labels``  (comma-separated class names; may be empty)
* durations:  ``filename  duration``  (seconds)
* soft:       ``filename  onset  offset  event_label  score``  (MAESTRO's: a score in [0, 1] per
  labelled segment; DESED_task's files name the column ``confidence``, also read)

Every problem raises :class:`DataError` naming the file and the 1-based line of the TSV.

Ground truth checked (:func:`check_events`, used by :func:`read_strong_tsv`): an event row that
repeats an earlier one (same filename, onset, offset, event_label) and an event past its clip's end
(``offset > duration + END_TOLERANCE_S``, or ``onset >= duration``; the duration from a durations
TSV, else the clip length) would count twice in the labels and metrics, or add segments no
prediction can reach. ``ground_truth="refuse"`` (default; the recipe's ``data.ground_truth``)
raises naming the file, the lines and the counts; ``"repair"`` keeps one copy of a duplicate, clips
an offset to the duration, drops an event that starts at or after the end, and warns naming the
file, the lines and the counts (``{"duplicates": n, "clipped": n, "dropped": n}``).
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .labels import Event

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
GROUND_TRUTH_MODES = ("refuse", "repair")  # data.ground_truth
END_TOLERANCE_S = 1e-3  # an offset this far past the clip's duration is not an error (rounded durations)
_SHOWN_LINES = 10  # lines named per kind of problem in a message


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


def read_strong_tsv(path: str | Path, classes: Sequence[str] | None = None, *,
                    durations: Mapping[str, float] | None = None, clip_s: float | None = None,
                    ground_truth: str = "refuse") -> dict[str, list[Event]]:
    """``{filename: [Event, ...]}`` in file order; clips without events map to ``[]``.

    The events are checked (:func:`check_events`): duplicate rows always, the clip's end where a
    duration is known (``durations[filename]``, else ``clip_s``). ``ground_truth``: ``refuse``
    (DataError) or ``repair`` (warning); see the module docstring.
    """
    return read_ground_truth(path, classes, durations=durations, clip_s=clip_s, ground_truth=ground_truth)[0]


def read_ground_truth(path: str | Path, classes: Sequence[str] | None = None, *,
                      durations: Mapping[str, float] | None = None, clip_s: float | None = None,
                      ground_truth: str = "refuse", warn: bool = True
                      ) -> tuple[dict[str, list[Event]], dict[str, int]]:
    """:func:`read_strong_tsv` and the repairs made (``{"duplicates", "clipped", "dropped"}``: all 0
    unless ``ground_truth="repair"``); ``warn=False``: no warning for the repairs."""
    path = Path(path)
    names: dict[str, None] = {}  # every clip named, in file order
    rows: list[tuple[int, Event]] = []
    for lineno, row in _rows(path, ("filename", "onset", "offset", "event_label")):
        name = row["filename"]
        if not name:
            raise DataError(f"{path}:{lineno}: empty filename")
        names.setdefault(name)
        if not row["event_label"] and not row["onset"] and not row["offset"]:
            continue
        onset = _seconds(row["onset"], "onset", path, lineno)
        offset = _seconds(row["offset"], "offset", path, lineno)
        if onset >= offset:
            raise DataError(f"{path}:{lineno}: onset {onset} >= offset {offset} for {name!r}")
        _check_label(row["event_label"], classes, path, lineno)
        rows.append((lineno, Event(name, onset, offset, row["event_label"])))
    events, repairs = check_events(rows, str(path), durations=durations, clip_s=clip_s,
                                   ground_truth=ground_truth, warn=warn)
    out: dict[str, list[Event]] = {name: [] for name in names}
    for e in events:
        out[e.filename].append(e)
    return out, repairs


def check_events(rows: Iterable[tuple[int, Event]], origin: str, *, durations: Mapping[str, float] | None = None,
                 clip_s: float | None = None, ground_truth: str = "refuse", where: str = "line",
                 warn: bool = True) -> tuple[list[Event], dict[str, int]]:
    """The events of ``rows`` (``(line, event)`` in file order), checked: duplicates and events past
    their clip's duration (``durations[filename]``, else ``clip_s``; neither: not checked).

    Returns (the events kept, in order; ``{"duplicates", "clipped", "dropped"}`` counts).
    ``ground_truth="refuse"`` raises :class:`DataError` naming ``origin``, the lines (``where``:
    ``line`` in a file, ``row`` in a DataFrame) and the counts; ``"repair"`` deduplicates, clips
    and drops, and warns with the same detail unless ``warn`` is False.
    """
    if ground_truth not in GROUND_TRUTH_MODES:
        raise ValueError(f"ground_truth must be one of {GROUND_TRUTH_MODES}, got {ground_truth!r}")
    durations = durations or {}
    first_line: dict[tuple, int] = {}  # event as read -> its first line
    kept_keys: set[tuple] = set()  # events kept (after clipping)
    kept: list[Event] = []
    found: dict[str, list[tuple[int, str]]] = {"duplicates": [], "clipped": [], "dropped": []}  # (line, what)
    for lineno, e in rows:
        key = (e.filename, e.onset, e.offset, e.event_label)
        if key in first_line:
            found["duplicates"].append((lineno, f"{where} {lineno} repeats {where} {first_line[key]} "
                                                f"({e.filename} {e.onset:g} {e.offset:g} {e.event_label})"))
            continue
        first_line[key] = lineno
        duration = durations.get(e.filename, clip_s)
        if duration is not None and e.onset >= duration:
            found["dropped"].append((lineno, f"{where} {lineno}: {e.filename} {e.event_label} starts at "
                                             f"{e.onset:g} s, at or after the clip's end ({duration:g} s)"))
            continue
        if duration is not None and e.offset - duration > END_TOLERANCE_S + 1e-9:  # (1 ms over exactly: not past)
            found["clipped"].append((lineno, f"{where} {lineno}: {e.filename} {e.event_label} ends at "
                                             f"{e.offset:g} s, after the clip's end ({duration:g} s)"))
            e = Event(e.filename, e.onset, duration, e.event_label)
            key = (e.filename, e.onset, e.offset, e.event_label)
        if key in kept_keys:  # the same as a kept event once clipped
            found["duplicates"].append((lineno, f"{where} {lineno} repeats an earlier event once clipped "
                                                f"({e.filename} {e.onset:g} {e.offset:g} {e.event_label})"))
            continue
        kept_keys.add(key)
        kept.append(e)
    counts = {k: len(v) for k, v in found.items()}
    if not any(counts.values()):
        return kept, counts
    details = "; ".join(
        f"{len(v)} {label}: " + ", ".join(m for _, m in v[:_SHOWN_LINES]) + (", ..." if len(v) > _SHOWN_LINES else "")
        for label, v in (("duplicate event row(s)", found["duplicates"]),
                         ("event(s) ending after the clip's duration", found["clipped"]),
                         ("event(s) starting at or after the clip's end", found["dropped"])) if v)
    if ground_truth == "refuse":
        first = min(line for v in found.values() for line, _ in v)
        at = f"{origin}:{first}" if where == "line" else f"{origin} {where} {first}"
        raise DataError(f"{at}: bad ground truth, {details} (they would change the metrics and "
                        "labels; fix the file, or set data.ground_truth=repair to deduplicate, clip to the "
                        "duration and drop events starting at the end)")
    if warn:
        warnings.warn(f"{origin}: ground truth repaired (data.ground_truth=repair): {counts['duplicates']} "
                      f"duplicate(s) removed, {counts['clipped']} event(s) clipped to the clip's duration, "
                      f"{counts['dropped']} dropped; {details}", UserWarning, stacklevel=2)
    return kept, counts


def read_weak_tsv(path: str | Path, classes: Sequence[str] | None = None) -> dict[str, list[str]]:
    """``{filename: [class, ...]}`` (comma-separated ``event_labels``; may be empty)."""
    path = Path(path)
    out: dict[str, list[str]] = {}
    for lineno, row in _rows(path, ("filename", "event_labels")):
        name = row["filename"]
        if not name:
            raise DataError(f"{path}:{lineno}: empty filename")
        if name in out:
            raise DataError(f"{path}:{lineno}: {name!r} listed twice")
        labels = [x.strip() for x in row["event_labels"].split(",") if x.strip()]
        for label in labels:
            _check_label(label, classes, path, lineno)
        out[name] = sorted(set(labels), key=labels.index)
    return out


SOFT_SCORE_COLUMNS = ("score", "confidence")


def read_soft_tsv(path: str | Path, classes: Sequence[str] | None = None
                  ) -> dict[str, list[tuple[float, float, str, float]]]:
    """``{filename: [(onset_s, offset_s, event_label, score), ...]}`` of a soft-label TSV (MAESTRO's
    format), files and segments in file order (a file named with empty fields has no segment: ``[]``).
    ``score`` is the label's value over the segment, in [0, 1]: the column ``score`` (or DESED_task's
    ``confidence``; other columns are ignored). Bad rows raise DataError naming the file and line."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") if path.is_file() else _no_file(path) as f:
        first = f.readline()
    if not first.strip():
        raise DataError(f"{path}:1: empty file, expected the header filename onset offset event_label score")
    header = [h.strip() for h in first.rstrip("\r\n").split("\t")]
    scores = [c for c in header if c in SOFT_SCORE_COLUMNS]
    if len(scores) != 1:
        raise DataError(f"{path}:1: a soft-label TSV needs one 'score' (or 'confidence') column beside filename, "
                        f"onset, offset, event_label; header is {header}")
    column = scores[0]
    out: dict[str, list[tuple[float, float, str, float]]] = {}
    for lineno, row in _rows(path, ("filename", "onset", "offset", "event_label")):
        name = row["filename"]
        if not name:
            raise DataError(f"{path}:{lineno}: empty filename")
        segments = out.setdefault(name, [])
        if not (row["onset"] or row["offset"] or row["event_label"] or row[column]):
            continue  # a file without segments
        onset = _seconds(row["onset"], "onset", path, lineno)
        offset = _seconds(row["offset"], "offset", path, lineno)
        if onset >= offset:
            raise DataError(f"{path}:{lineno}: onset {onset} >= offset {offset} for {name!r}")
        _check_label(row["event_label"], classes, path, lineno)
        try:
            score = float(row[column])
        except ValueError:
            raise DataError(f"{path}:{lineno}: {column} {row[column]!r} is not a number") from None
        if not math.isfinite(score):
            raise DataError(f"{path}:{lineno}: {column} {row[column]!r} is not finite")
        if not 0.0 <= score <= 1.0:
            raise DataError(f"{path}:{lineno}: {column} {score} outside [0, 1]")
        segments.append((onset, offset, row["event_label"], score))
    return out


def _no_file(path: Path):
    raise DataError(f"{path}: file not found")


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
            raise DataError(f"{path}:{lineno}: duration 0 for {name!r}")
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
