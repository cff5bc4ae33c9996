"""The reference (ground truth) of an evaluation: strong events, durations, the clips scored."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from dcase_fpd_plugin.data.labels import Event
from dcase_fpd_plugin.data.tsv import check_events, read_durations_tsv, read_ground_truth

#: the columns of a strong TSV (DESED's format), times in seconds
STRONG_COLUMNS = ["filename", "onset", "offset", "event_label"]


@dataclass(frozen=True)
class Reference:
    """Ground truth of an evaluation set.

    Attributes:
        events: strong events, columns ``filename, onset, offset, event_label`` (seconds).
        durations_s: clip file name -> duration in seconds, for every evaluated clip.
        repairs: ``{ground truth: {"duplicates", "clipped", "dropped"}}`` when ``ground_truth="repair"``
            changed its events (empty otherwise).
    """

    events: pd.DataFrame
    durations_s: dict[str, float]
    repairs: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def filenames(self) -> list[str]:
        return sorted(self.durations_s)


def read_reference(
    ground_truth_tsv: str | os.PathLike | pd.DataFrame,
    durations_tsv: str | os.PathLike | pd.DataFrame,
    classes: Sequence[str],
    ground_truth: str = "refuse",
) -> Reference:
    """Read a DESED strong TSV and durations TSV (paths, read with the validating readers of
    :mod:`dcase_fpd_plugin.data.tsv`, or already-read DataFrames with the same columns).

    Rows with an empty ``event_label`` (a clip without events) only name the clip. Every clip
    of the ground truth must have a duration; clips only in the durations TSV are clips
    without events. Raises ValueError (``DataError`` for files) naming the file and entries.
    Duplicate event rows and events past their clip's duration are refused (``DataError`` naming
    the file and lines) or, with ``ground_truth="repair"``, deduplicated, clipped or dropped and
    counted in :attr:`Reference.repairs` (:func:`dcase_fpd_plugin.data.tsv.check_events`).
    """
    durations_s = _durations(durations_tsv)
    clip_names, events, repairs = _strong_events(ground_truth_tsv, classes, durations_s, ground_truth)
    without_duration = sorted(set(clip_names) - set(durations_s))
    if without_duration:
        raise ValueError(
            f"{_name(ground_truth_tsv)}: {len(without_duration)} clip(s) have no duration in "
            f"{_name(durations_tsv)}: {without_duration[:10]}"
        )
    return Reference(events, durations_s, {_name(ground_truth_tsv): repairs} if any(repairs.values()) else {})


def _strong_events(tsv, classes: Sequence[str], durations_s: dict[str, float], ground_truth: str
                   ) -> tuple[list[str], pd.DataFrame, dict[str, int]]:
    """(every clip named, events DataFrame, repairs) from a strong TSV path or DataFrame, checked
    against ``durations_s``."""
    if not isinstance(tsv, pd.DataFrame):
        by_clip, repairs = read_ground_truth(tsv, classes, durations=durations_s, ground_truth=ground_truth)
        rows = [(e.filename, e.onset, e.offset, e.event_label) for evs in by_clip.values() for e in evs]
        return list(by_clip), pd.DataFrame(rows, columns=STRONG_COLUMNS), repairs
    missing = [c for c in STRONG_COLUMNS if c not in tsv.columns]
    if missing:
        raise ValueError(f"ground truth DataFrame: missing column(s) {missing}")
    events = tsv.loc[tsv["event_label"].notna(), STRONG_COLUMNS].astype(
        {"filename": str, "onset": float, "offset": float}
    )
    unknown = sorted(set(events["event_label"]) - set(classes))
    if unknown:
        raise ValueError(f"ground truth DataFrame: unknown class(es) {unknown}; classes are {list(classes)}")
    rows = [(i, Event(*row)) for i, row in enumerate(events.itertuples(index=False, name=None))]
    kept, repairs = check_events(rows, "ground truth DataFrame", durations=durations_s, ground_truth=ground_truth,
                                 where="row")
    if len(kept) < len(rows) or any(repairs.values()):
        events = pd.DataFrame([(e.filename, e.onset, e.offset, e.event_label) for e in kept], columns=STRONG_COLUMNS)
    return list(tsv["filename"].astype(str).unique()), events.reset_index(drop=True), repairs


def _durations(tsv) -> dict[str, float]:
    """File name -> seconds, from a durations TSV path or DataFrame."""
    if not isinstance(tsv, pd.DataFrame):
        return read_durations_tsv(tsv)
    if not {"filename", "duration"} <= set(tsv.columns):
        raise ValueError(f"durations DataFrame: needs columns filename, duration; has {list(tsv.columns)}")
    durations_s = {str(f): float(d) for f, d in zip(tsv["filename"], tsv["duration"])}
    bad = sorted(f for f, d in durations_s.items() if not d > 0)
    if bad:
        raise ValueError(f"durations DataFrame: non-positive duration for {bad[:10]}")
    return durations_s


def _name(tsv) -> str:
    return "<DataFrame>" if isinstance(tsv, pd.DataFrame) else str(tsv)


def merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sorted ``(onset_s, offset_s)`` spans with the overlapping or touching ones joined (one class's
    events of one clip, as sed_scores_eval's references need them)."""
    merged: list[list[float]] = []
    for on, off in sorted(spans):
        if merged and on <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], off)
        else:
            merged.append([on, off])
    return [(on, off) for on, off in merged]
