"""Soft-label references in MAESTRO's format, and the hard reference DESED_task scores them against.

MAESTRO Real (DCASE 2024 Task 4) labels long recordings by segments, each with a **score** in [0, 1]:
the share of annotators who heard the class there. The TSV (tab separated, one header line)::

    filename    onset   offset  event_label     score

times in **seconds** from the start of the file. DESED_task names the last column ``confidence``;
both names are accepted (other columns are ignored). A row with only a file name (empty onset, offset,
label and score) names a file without segments.

:func:`~dcase_fpd_plugin.data.tsv.read_soft_tsv` reads such a file (the data module turns the segments into soft frame targets);
:func:`hard_reference` builds from it the reference that DESED_task's MAESTRO metrics use: the
segments scored **above 0.5** (DESED_task: ``confidence > 0.5``), optionally only some classes, the
overlapping or touching segments of one class in a file merged into one event, each file's duration
from a durations TSV or, without one, **the last event's offset** (as DESED_task's validation does).
Its segment-based metrics are in :mod:`dcase_fpd_plugin.evaluation.segment_based`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from dcase_fpd_plugin.data.tsv import END_TOLERANCE_S, read_durations_tsv, read_soft_tsv

from .reference import merge_spans
from .scores import audio_id

#: a segment counts as an event of the hard reference when its score is strictly above this
HARD_MIN_SCORE = 0.5
#: which files the hard reference keeps: those with an event above the score (DESED_task) | all
REFERENCE_CLIPS = ("with_events", "all")

#: one soft segment: (onset_s, offset_s, event_label, score)
SoftSegment = tuple[float, float, str, float]


@dataclass(frozen=True)
class SegmentReference:
    """A hard reference for segment-based metrics, keyed by **audio id** (the file name without its
    audio extension, as sed_scores_eval and :mod:`.scores` key score frames).

    Attributes:
        events: audio id -> ``[(onset_s, offset_s, event_label), ...]``, one class's events in a file
            never overlapping or touching (merged), sorted by class then onset.
        durations_s: audio id -> duration in seconds, for every file of the reference.
        classes: the classes whose segments were kept.
        clips_without_events: file names of the soft TSV left out because none of their segments
            of ``classes`` scored above the threshold (``clips="with_events"``).
        clipped: events cut at their file's duration (they ran past it by more than 1 ms), and
            ``dropped``: events starting at or after it (both 0 without durations).
    """

    events: dict[str, list[tuple[float, float, str]]]
    durations_s: dict[str, float]
    classes: list[str]
    clips_without_events: list[str] = field(default_factory=list)
    clipped: int = 0
    dropped: int = 0


def hard_reference(
    soft: Mapping[str, Sequence[SoftSegment]],
    *,
    classes: Sequence[str] | None = None,
    durations_s: Mapping[str, float] | None = None,
    min_score: float = HARD_MIN_SCORE,
    clips: str = "with_events",
) -> SegmentReference:
    """The hard reference of soft segments (:func:`read_soft_tsv`), as DESED_task builds it for MAESTRO.

    Args:
        soft: file name -> ``[(onset_s, offset_s, event_label, score), ...]``.
        classes: keep only these classes' segments (DESED_task scores 11 of MAESTRO's 17 classes);
            None: every label that occurs.
        durations_s: file name -> duration in seconds (a durations TSV, as read by
            :func:`dcase_fpd_plugin.data.tsv.read_durations_tsv`); must cover every file kept. None:
            each file lasts until the offset of its last event, as in DESED_task's validation (the
            part of the file after it is not scored).
        min_score: a segment is an event when its score is **strictly above** this (0.5: DESED_task's
            ``confidence > 0.5``).
        clips: ``with_events`` (DESED_task): files with no event left are left out (named in
            ``clips_without_events``); ``all``: every file of ``soft`` is kept, those without events as
            negatives (needs ``durations_s``).

    Returns:
        :class:`SegmentReference`: per file, the segments above ``min_score`` with overlapping or touching
        segments of one class merged into one event (1 s MAESTRO segments of a class that follow each
        other become one event), keyed by audio id.

    Raises:
        ValueError: ``clips`` unknown, ``clips="all"`` without durations, files without a duration, two
            file names with one audio id.
    """
    if clips not in REFERENCE_CLIPS:
        raise ValueError(f"clips must be one of {list(REFERENCE_CLIPS)}, got {clips!r}")
    if clips == "all" and durations_s is None:
        raise ValueError("clips='all' needs durations_s: a file without events has no last offset to give its duration")
    wanted = None if classes is None else set(classes)
    events: dict[str, list[tuple[float, float, str]]] = {}
    names: dict[str, str] = {}
    kept_classes: set[str] = set()
    without: list[str] = []
    for name, segments in soft.items():
        key = audio_id(name)
        if key in names:
            raise ValueError(f"two files with the audio id {key!r}: {names[key]!r} and {name!r}")
        names[key] = name
        spans: dict[str, list[tuple[float, float]]] = {}
        for on, off, label, score in segments:
            if score > min_score and (wanted is None or label in wanted):
                spans.setdefault(label, []).append((float(on), float(off)))
        merged = [(on, off, label) for label in sorted(spans) for on, off in merge_spans(spans[label])]
        if not merged and clips == "with_events":
            without.append(name)
            continue
        kept_classes.update(spans)
        events[key] = merged
    clipped = dropped = 0
    if durations_s is None:
        durations = {key: max(off for _, off, _ in evs) for key, evs in events.items()}
    else:
        missing = sorted(names[key] for key in events if names[key] not in durations_s)
        if missing:
            raise ValueError(f"{len(missing)} file(s) of the reference have no duration: {missing[:10]}")
        durations = {key: float(durations_s[names[key]]) for key in events}
        for key, evs in events.items():
            end, kept = durations[key], []
            for on, off, label in evs:
                if on >= end:
                    dropped += 1
                    continue
                if off > end + END_TOLERANCE_S:
                    clipped += 1
                kept.append((on, min(off, end), label))
            events[key] = kept
    reference_classes = list(classes) if classes is not None else sorted(kept_classes)
    return SegmentReference(events, durations, reference_classes, without, clipped, dropped)


def read_hard_reference(
    soft_tsv: str | os.PathLike,
    classes: Sequence[str],
    *,
    scored_classes: Sequence[str] | None = None,
    durations_tsv: str | os.PathLike | None = None,
    min_score: float = HARD_MIN_SCORE,
    clips: str = "with_events",
) -> SegmentReference:
    """:func:`hard_reference` of a soft-label TSV (:func:`read_soft_tsv`, labels checked against
    ``classes``), keeping ``scored_classes`` only (None: every class) and reading the durations from
    ``durations_tsv`` (``filename duration``, seconds; None: each file's last event's offset)."""
    soft = read_soft_tsv(soft_tsv, classes)
    durations = read_durations_tsv(durations_tsv) if durations_tsv is not None else None
    if scored_classes is not None:
        unknown = [c for c in scored_classes if c not in classes]
        if unknown:
            raise ValueError(f"scored_classes {unknown} are not among the classes {list(classes)}")
    return hard_reference(soft, classes=scored_classes, durations_s=durations, min_score=min_score, clips=clips)
