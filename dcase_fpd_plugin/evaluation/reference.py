"""The reference (ground truth) of an evaluation: strong events, durations, the clips scored."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from dcase_fpd_plugin.data.tsv import read_durations_tsv, read_strong_tsv

# Imported through the shim in scores.py (pkg_resources trap), which ran above.


@dataclass(frozen=True)
class Reference:
    """Ground truth of an evaluation set.

    Attributes:
        events: strong events, columns ``filename, onset, offset, event_label`` (seconds).
        durations_s: clip file name -> duration in seconds, for every evaluated clip.
    """

    events: pd.DataFrame
    durations_s: dict[str, float]

    @property
    def filenames(self) -> list[str]:
        return sorted(self.durations_s)


def read_reference(
    ground_truth_tsv: str | os.PathLike | pd.DataFrame,
    durations_tsv: str | os.PathLike | pd.DataFrame,
    classes: Sequence[str],
) -> Reference:
    """Read a DESED strong TSV and durations TSV (paths, read with the validating readers of
    :mod:`dcase_fpd_plugin.data.tsv`, or already-read DataFrames with the same columns).

    Rows with an empty ``event_label`` (a clip without events) only name the clip. Every clip
    of the ground truth must have a duration; clips only in the durations TSV are clips
    without events. Raises ValueError (``DataError`` for files) naming the file and entries.
    """
    clip_names, events = _strong_events(ground_truth_tsv, classes)
    durations_s = _durations(durations_tsv)
    without_duration = sorted(set(clip_names) - set(durations_s))
    if without_duration:
        raise ValueError(
            f"{_name(ground_truth_tsv)}: {len(without_duration)} clip(s) have no duration in "
            f"{_name(durations_tsv)}: {without_duration[:10]}"
        )
    return Reference(events, durations_s)


def _strong_events(tsv, classes: Sequence[str]) -> tuple[list[str], pd.DataFrame]:
    """(every clip named, events DataFrame) from a strong TSV path or DataFrame."""
    if not isinstance(tsv, pd.DataFrame):
        by_clip = read_strong_tsv(tsv, classes)
        rows = [(e.filename, e.onset, e.offset, e.event_label) for evs in by_clip.values() for e in evs]
        return list(by_clip), pd.DataFrame(rows, columns=STRONG_COLUMNS)
    missing = [c for c in STRONG_COLUMNS if c not in tsv.columns]
    if missing:
        raise ValueError(f"ground truth DataFrame: missing column(s) {missing}")
    events = tsv.loc[tsv["event_label"].notna(), STRONG_COLUMNS].astype(
        {"filename": str, "onset": float, "offset": float}
    )
    unknown = sorted(set(events["event_label"]) - set(classes))
    if unknown:
        raise ValueError(f"ground truth DataFrame: unknown class(es) {unknown}; classes are {list(classes)}")
    return list(tsv["filename"].astype(str).unique()), events.reset_index(drop=True)


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


# --------------------------------------------------------------------------- post-processing


STRONG_COLUMNS = ["filename", "onset", "offset", "event_label"]
