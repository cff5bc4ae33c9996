"""Labels: events (seconds) <-> frame matrices (output frames), weak labels from strong.

The frame grid: output frame ``t`` covers ``[t * frame_hop_s, (t + 1) * frame_hop_s)`` seconds,
where ``frame_hop_s = hop_length * time_pooling / sample_rate`` (e.g. 256 * 4 / 16000 = 0.064 s).
An event ``(onset, offset)`` marks frames ``floor(onset / hop) .. ceil(offset / hop) - 1``,
so every frame that overlaps the event, even partly, is active.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np


@dataclass(frozen=True)
class Event:
    """One labelled or detected sound event; times in seconds."""

    filename: str
    onset: float
    offset: float
    event_label: str


class LabelEncoder:
    """Maps between events in seconds and (T, C) frame matrices for a fixed class list.

    Args:
        classes: class names, in index order (column order of every matrix).
        frame_hop_s: seconds between two output frames.
        n_frames: T, output frames per clip.
    """

    def __init__(self, classes: Sequence[str], frame_hop_s: float, n_frames: int):
        if frame_hop_s <= 0:
            raise ValueError(f"frame_hop_s must be > 0, got {frame_hop_s}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"duplicate class names in {list(classes)}")
        self.classes = list(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.frame_hop_s = float(frame_hop_s)
        self.n_frames = int(n_frames)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def time_to_frame(self, t_s: float, *, round_up: bool) -> int:
        """Frame index of time ``t_s`` (seconds), clipped to ``[0, n_frames]``."""
        x = t_s / self.frame_hop_s
        # Guard against 2.0000000001 from float arithmetic before rounding.
        x = round(x, 6)
        f = math.ceil(x) if round_up else math.floor(x)
        return min(max(f, 0), self.n_frames)

    def encode_strong(self, events: Iterable[tuple[float, float, str]]) -> np.ndarray:
        """(T, C) float32 {0,1} matrix from ``(onset_s, offset_s, label)`` tuples."""
        y = np.zeros((self.n_frames, self.n_classes), dtype=np.float32)
        for onset, offset, label in events:
            c = self.index[label]
            a = self.time_to_frame(onset, round_up=False)
            b = self.time_to_frame(offset, round_up=True)
            y[a:b, c] = 1.0
        return y

    def encode_soft(self, segments: Iterable[tuple[float, float, str, float]]) -> np.ndarray:
        """(T, C) float32 matrix in [0, 1] from ``(onset_s, offset_s, label, score)`` segments: every
        frame a segment overlaps takes its score; a frame two segments of one class overlap (at their
        shared boundary) takes the higher."""
        y = np.zeros((self.n_frames, self.n_classes), dtype=np.float32)
        for onset, offset, label, score in segments:
            c = self.index[label]
            a = self.time_to_frame(onset, round_up=False)
            b = self.time_to_frame(offset, round_up=True)
            y[a:b, c] = np.maximum(y[a:b, c], np.float32(score))
        return y

    def encode_weak(self, labels: Iterable[str]) -> np.ndarray:
        """(C,) float32 {0,1} vector from class names."""
        y = np.zeros(self.n_classes, dtype=np.float32)
        for label in labels:
            y[self.index[label]] = 1.0
        return y

    def decode_strong(
        self, decisions: np.ndarray, filename: str, duration_s: float | None = None
    ) -> list[Event]:
        """Events from a (T, C) boolean decision matrix.

        Each run of consecutive active frames ``[a, b)`` of class ``c`` becomes one event
        ``(a * frame_hop_s, b * frame_hop_s)``, its offset clipped to ``duration_s`` if given.
        Events are sorted by onset, then class index.
        """
        d = np.asarray(decisions, dtype=bool)
        if d.ndim != 2 or d.shape[1] != self.n_classes:
            raise ValueError(f"decisions must be (T, {self.n_classes}), got {d.shape}")
        events = []
        for c, label in enumerate(self.classes):
            for a, b in active_runs(d[:, c]):
                onset = a * self.frame_hop_s
                offset = b * self.frame_hop_s
                if duration_s is not None:
                    offset = min(offset, duration_s)
                if offset > onset:
                    events.append((onset, c, Event(filename, round(onset, 6), round(offset, 6), label)))
        return [e for _, _, e in sorted(events, key=lambda x: (x[0], x[1]))]


def weak_from_strong(strong: np.ndarray) -> np.ndarray:
    """(C,) clip labels from (T, C) frame labels: a class is present if any frame is active."""
    return (np.asarray(strong).max(axis=0) > 0).astype(np.float32)


def weak_from_soft(soft: np.ndarray) -> np.ndarray:
    """(C,) clip labels from (T, C) soft frame labels: each class's highest frame score."""
    return np.asarray(soft, dtype=np.float32).max(axis=0)


def active_runs(active: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges ``[a, b)`` of consecutive True values in a 1-D boolean array."""
    x = np.concatenate([[False], np.asarray(active, dtype=bool), [False]])
    edges = np.flatnonzero(x[1:] != x[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2])]
