"""DESED-like post-processing of the strong labels of one clip.

The rules of ``desed.post_process._post_process_labels_file`` (desed 1.3.8), re-implemented on
plain tuples because the desed helper is private, pandas-row-by-row (milliseconds per clip)
and fails without a clip length. A test checks both agree on random label sets:

1. strip the ``_nOn`` / ``_nOff`` suffixes from labels;
2. clip offsets to the clip length, onsets to 0, and round times to the millisecond;
3. per class, sweeping events by onset: an event shorter than ``min_event_length`` (0.25 s) is
   extended on its offset side, and dropped with every later event of its class if that runs
   past the clip end; a later event inside the current one is dropped; one starting less than
   ``min_gap`` (0.15 s) after the current offset, or less than ``min_event_length + min_gap``
   after the current onset, is merged into it.
"""

from __future__ import annotations

from typing import Iterable

from .soundbank import strip_variant

Label = tuple[float, float, str]  # (onset s, offset s, class)


def _class_sweep(events: list[tuple[float, float]], length: float | None, min_len: float, min_gap: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    cur: list[float] | None = None
    for on, off in events:
        if cur is not None:
            if off < cur[1]:
                continue  # inside the current event
            if on - cur[1] < min_gap or on - cur[0] < min_len + min_gap:
                cur[1] = off
                continue
            out.append((cur[0], cur[1]))
        if off - on < min_len:
            off = on + min_len
            if length is not None and off > length:
                cur = None  # too short at the clip end: dropped with the rest of the class
                break
        cur = [on, off]
    if cur is not None:
        out.append((cur[0], cur[1]))
    return out


def postprocess_labels(
    labels: Iterable[Label],
    length: float | None = None,
    min_event_length: float = 0.25,
    min_gap: float = 0.15,
) -> list[Label]:
    """Clean one clip's ``[(onset_s, offset_s, label), ...]``; returns events sorted by onset.

    Args:
        labels: raw scaper annotations; labels may carry ``_nOn``/``_nOff`` suffixes.
        length: clip length in s (``None``: no clipping at the end).
        min_event_length: shortest event, s.
        min_gap: events of one class closer than this (s) are merged.
    """
    by_class: dict[str, list[tuple[float, float]]] = {}
    for on, off, lab in labels:
        on, off = max(0.0, float(on)), float(off)
        if length is not None:
            off = min(off, float(length))
        by_class.setdefault(strip_variant(str(lab)), []).append((round(on, 3), round(off, 3)))
    out: list[Label] = []
    for cls, evs in by_class.items():
        evs.sort()
        out += [(on, off, cls) for on, off in _class_sweep(evs, length, min_event_length, min_gap)]
    out.sort(key=lambda e: (e[0], e[1], e[2]))
    return out
