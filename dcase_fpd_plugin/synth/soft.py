"""Soft labels in MAESTRO's format from a generated set: the share of each segment an event covers.

MAESTRO Real (the soft-labelled source of DCASE 2024 Task 4) is annotated per segment: a class's
label over a 1-s segment is a value in [0, 1] (annotator agreement). Here the value is measured
on the mixture itself: clip ``name`` is cut into fixed segments ``[k * segment_s, (k + 1) *
segment_s)`` (the last one ends at the clip's duration), and for every class the source annotates,
a segment where the class sounds gets one row whose ``score`` is the fraction of that segment
covered by the class's events (the union of its events, so overlapping events of one class are
not counted twice). Rows with score 0 (after rounding to 3 decimals) are not written; a clip in
which no annotated class sounds has no row at all (the set's ``durations.tsv`` lists every clip).

The events are scaper's raw labels of each clip (``soundscapes/<name>.txt``: where each event
really sits in the mixture, variant suffixes such as ``_nOn`` stripped, clipped to the clip),
not DESED's post-processed strong labels, whose 250-ms minimum length and 150-ms gap merging
are annotation conventions, not coverage.

Output (TSV, tab separated, one header line, times in seconds)::

    filename  onset  offset  event_label  score
    0000.wav  3.000  4.000   Speech       0.412
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..data.tsv import write_tsv
from .soundbank import strip_variant

SOFT_COLUMNS = ("filename", "onset", "offset", "event_label", "score")
SOFT_TSV = "soft.tsv"
SOFT_CLASSES_FILE = "soft_classes.txt"
DEFAULT_SEGMENT_S = 1.0  # MAESTRO's resolution
DEFAULT_N_SOFT_CLASSES = 5

Event = tuple[float, float, str]  # (onset s, offset s, class)


def choose_soft_classes(classes: Sequence[str], wanted: int | Sequence[str] | None = None) -> list[str]:
    """The classes a soft source annotates, in the order of ``classes``.

    ``wanted``: a list of names (each must be in ``classes``), or a count ``n``: ``n`` classes
    evenly spaced over the sorted ``classes`` (indices ``floor(i * len / n)``; independent of any
    seed, so a recipe naming them works for every bench seed); ``None``: 5, or fewer so that at
    least one class is left unannotated (with a single class: that class).
    """
    classes = list(classes)
    if not classes:
        raise ValueError("no classes to choose the soft source's classes from")
    if wanted is None:
        wanted = min(DEFAULT_N_SOFT_CLASSES, max(1, len(classes) - 1))
    if isinstance(wanted, int):
        if not 1 <= wanted <= len(classes):
            raise ValueError(f"the soft source must annotate 1 to {len(classes)} classes, got {wanted}")
        ordered = sorted(classes)
        picked = {ordered[(i * len(ordered)) // wanted] for i in range(wanted)}
    else:
        picked = set(wanted)
        unknown = [c for c in wanted if c not in classes]
        if unknown:
            raise ValueError(f"soft classes {unknown} are not among the bench's classes {classes}")
        if not picked:
            raise ValueError("the soft source must annotate at least one class")
    return [c for c in classes if c in picked]


def _union(intervals: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for on, off in sorted(intervals):
        if off <= on:
            continue
        if out and on <= out[-1][1]:
            out[-1][1] = max(out[-1][1], off)
        else:
            out.append([on, off])
    return [(a, b) for a, b in out]


def segment_bounds(duration: float, segment_s: float = DEFAULT_SEGMENT_S) -> list[tuple[float, float]]:
    """``[(start, end), ...]`` of the segments of a clip of ``duration`` s (the last one may be short)."""
    if segment_s <= 0:
        raise ValueError(f"segment length must be > 0 s, got {segment_s}")
    if duration <= 0:
        raise ValueError(f"clip duration must be > 0 s, got {duration}")
    n = max(1, math.ceil(round(duration / segment_s, 9)))
    return [(round(k * segment_s, 9), round(min((k + 1) * segment_s, duration), 9)) for k in range(n)]


def segment_scores(events: Iterable[Event], duration: float, classes: Sequence[str],
                   segment_s: float = DEFAULT_SEGMENT_S) -> list[tuple[float, float, str, float]]:
    """Soft labels of one clip: ``[(seg_start, seg_end, class, score), ...]`` by segment then by
    the order of ``classes``; only ``classes`` appear, only scores > 0 (rounded to 3 decimals).

    ``events``: ``(onset, offset, label)`` with labels possibly carrying a variant suffix
    (``Cat_nOn``); times are clipped to ``[0, duration]``."""
    per_class: dict[str, list[tuple[float, float]]] = {c: [] for c in classes}
    for on, off, label in events:
        label = strip_variant(label)
        if label in per_class:
            per_class[label].append((max(0.0, float(on)), min(float(duration), float(off))))
    merged = {c: _union(iv) for c, iv in per_class.items()}
    rows = []
    for a, b in segment_bounds(duration, segment_s):
        for c in classes:
            covered = sum(max(0.0, min(off, b) - max(on, a)) for on, off in merged[c])
            score = round(min(1.0, covered / (b - a)), 3)
            if score > 0:
                rows.append((a, b, c, score))
    return rows


def soft_rows(clips: Mapping[str, Iterable[Event]], durations: Mapping[str, float] | float,
              classes: Sequence[str], segment_s: float = DEFAULT_SEGMENT_S) -> list[tuple[str, str, str, str, str]]:
    """TSV rows (:data:`SOFT_COLUMNS`, formatted) of ``{filename: events}``, clips sorted by name.
    ``durations``: one duration for every clip, or ``{filename: duration}``."""
    out = []
    for name in sorted(clips):
        dur = durations if isinstance(durations, (int, float)) else durations[name]
        out += [(name, f"{a:.3f}", f"{b:.3f}", c, f"{s:.3f}")
                for a, b, c, s in segment_scores(clips[name], dur, classes, segment_s)]
    return out


def write_soft_tsv(path: str | Path, clips: Mapping[str, Iterable[Event]], durations: Mapping[str, float] | float,
                   classes: Sequence[str], segment_s: float = DEFAULT_SEGMENT_S) -> dict:
    """Write the soft-label TSV of ``clips``; returns ``{"rows", "clips", "clips_without_rows"}``."""
    rows = soft_rows(clips, durations, classes, segment_s)
    write_tsv(path, SOFT_COLUMNS, rows)
    labelled = {r[0] for r in rows}
    return {"rows": len(rows), "clips": len(clips), "clips_without_rows": len(clips) - len(labelled)}


def write_set_soft_tsv(set_dir: str | Path, classes: Sequence[str], segment_s: float = DEFAULT_SEGMENT_S) -> dict:
    """``set_dir/soft.tsv`` from a generated set: the clips of ``set_dir/durations.tsv``, their
    events from ``set_dir/soundscapes/<name>.txt`` (scaper's raw labels)."""
    from ..data.tsv import read_durations_tsv
    from .generate import AUDIO_DIR, read_clip_labels

    set_dir = Path(set_dir)
    durations = read_durations_tsv(set_dir / "durations.tsv")
    clips = {name: read_clip_labels(set_dir / AUDIO_DIR / f"{Path(name).stem}.txt") for name in durations}
    return write_soft_tsv(set_dir / SOFT_TSV, clips, durations, classes, segment_s)


__all__ = ["choose_soft_classes", "segment_bounds", "segment_scores", "soft_rows", "write_soft_tsv",
           "write_set_soft_tsv", "SOFT_COLUMNS", "SOFT_TSV", "SOFT_CLASSES_FILE", "DEFAULT_SEGMENT_S"]
