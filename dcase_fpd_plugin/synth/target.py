"""The distribution a synthetic set should follow, measured from a strong-label TSV.

A :class:`Target` keeps the raw material the planner and the report need:

* the empirical distribution of *class sets* (which classes a clip contains), from which
  per-class share of clips, class co-occurrence and distinct-classes-per-clip all follow;
* per class, how many events a clip holds when it holds the class, and the event durations (s);
* per class, the number of events (occurrences).

The same measurement is applied to the generated ``soundscapes.tsv`` so target and achieved
figures are computed by one function.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..data.tsv import read_strong_tsv

ClassSet = tuple[str, ...]  # sorted class names of one clip; () for a clip without event


@dataclass
class Target:
    """Measured (or constructed) distribution of labels over clips.

    Attributes:
        classes: class names, in report order.
        n_clips: clips measured (weight total of ``class_sets``).
        class_sets: ``{sorted class tuple: number of clips}`` (weights, may be fractional).
        events_when_present: ``{class: {n_events: number of clips}}`` over clips holding the class.
        occurrences: ``{class: number of events}``.
        durations: ``{class: [event duration in s, ...]}`` (may be empty for constructed targets).
        source: where it came from (a TSV path or ``"uniform"``).
    """

    classes: list[str]
    n_clips: float
    class_sets: dict[ClassSet, float]
    events_when_present: dict[str, dict[int, float]]
    occurrences: dict[str, float]
    durations: dict[str, list[float]] = field(default_factory=dict)
    source: str = ""

    # ---- derived statistics ------------------------------------------------------------
    def clip_share(self) -> dict[str, float]:
        """Fraction of clips (0..1) that contain each class."""
        counts = Counter()
        for s, w in self.class_sets.items():
            for c in s:
                counts[c] += w
        return {c: counts[c] / self.n_clips for c in self.classes}

    def total_occurrences(self) -> float:
        return float(sum(self.occurrences.values()))

    def occurrence_share(self) -> dict[str, float]:
        """Fraction (0..1) of all events that belong to each class."""
        total = self.total_occurrences() or 1.0
        return {c: self.occurrences.get(c, 0.0) / total for c in self.classes}

    def events_per_clip(self) -> float:
        """Mean number of events per clip (all clips, empty ones included)."""
        return self.total_occurrences() / self.n_clips

    def distinct_per_clip(self) -> dict[int, float]:
        """``{k: fraction of clips holding exactly k distinct classes}``."""
        out: Counter = Counter()
        for s, w in self.class_sets.items():
            out[len(s)] += w / self.n_clips
        return dict(sorted(out.items()))

    def cooccurrence(self) -> np.ndarray:
        """``(C, C)`` matrix, ``[i, j]`` = P(class j in clip | class i in clip); diagonal 1 (0 if absent)."""
        idx = {c: i for i, c in enumerate(self.classes)}
        joint = np.zeros((len(self.classes), len(self.classes)))
        for s, w in self.class_sets.items():
            ii = [idx[c] for c in s]
            joint[np.ix_(ii, ii)] += w
        present = np.diag(joint).copy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(present[:, None] > 0, joint / present[:, None], 0.0)

    def mean_events_when_present(self) -> dict[str, float]:
        out = {}
        for c in self.classes:
            h = self.events_when_present.get(c, {})
            n = sum(h.values())
            out[c] = sum(k * w for k, w in h.items()) / n if n else 0.0
        return out

    def duration_stats(self) -> dict[str, dict[str, float]]:
        """Per class mean / median / min / max event duration in seconds (empty dict if unknown)."""
        out = {}
        for c in self.classes:
            d = np.asarray(self.durations.get(c, []), dtype=float)
            if d.size:
                out[c] = {"mean": float(d.mean()), "median": float(np.median(d)), "min": float(d.min()), "max": float(d.max())}
        return out

    def used_classes(self) -> list[str]:
        """Classes that occur at least once (the ones a soundbank must provide)."""
        share = self.clip_share()
        return [c for c in self.classes if share[c] > 0]

    def summary(self) -> dict:
        """JSON-friendly statistics (used by the report)."""
        return {
            "source": self.source,
            "n_clips": self.n_clips,
            "occurrences": self.total_occurrences(),
            "events_per_clip": self.events_per_clip(),
            "distinct_classes_per_clip": {str(k): v for k, v in self.distinct_per_clip().items()},
            "clip_share": self.clip_share(),
            "occurrence_share": self.occurrence_share(),
            "occurrences_per_class": {c: self.occurrences.get(c, 0.0) for c in self.classes},
            "events_per_clip_when_present": self.mean_events_when_present(),
            "durations_s": self.duration_stats(),
            "cooccurrence": {"classes": self.classes, "p_j_given_i": self.cooccurrence().round(4).tolist()},
        }


def measure_events(
    clips: Mapping[str, Iterable[tuple[float, float, str]]],
    classes: Sequence[str] | None = None,
    source: str = "",
) -> Target:
    """Measure ``{clip: [(onset_s, offset_s, label), ...]}``.

    Args:
        clips: every clip, including clips without events (empty list).
        classes: keep only these classes (events of others are ignored; a clip left without
            events counts as an empty clip). ``None``: every label found, sorted.
        source: recorded in :attr:`Target.source`.
    """
    clips = {k: list(v) for k, v in clips.items()}
    if not clips:
        raise ValueError(f"{source or 'target'}: no clip to measure")
    found = sorted({lab for evs in clips.values() for _, _, lab in evs})
    keep = list(found) if classes is None else list(classes)
    keep_set = set(keep)
    class_sets: Counter = Counter()
    when_present: dict[str, Counter] = {c: Counter() for c in keep}
    occurrences: Counter = Counter()
    durations: dict[str, list[float]] = {c: [] for c in keep}
    for events in clips.values():
        per_class = Counter(lab for _, _, lab in events if lab in keep_set)
        class_sets[tuple(sorted(per_class))] += 1
        for c, n in per_class.items():
            when_present[c][n] += 1
            occurrences[c] += n
        for on, off, lab in events:
            if lab in keep_set:
                durations[lab].append(float(off) - float(on))
    return Target(
        classes=keep,
        n_clips=float(len(clips)),
        class_sets=dict(class_sets),
        events_when_present={c: dict(h) for c, h in when_present.items()},
        occurrences={c: float(occurrences[c]) for c in keep},
        durations=durations,
        source=source,
    )


def measure_target(tsv: str | Path, classes: Sequence[str] | None = None) -> Target:
    """Measure a DESED strong-label TSV (``filename onset offset event_label``).

    Malformed lines raise ``DataError`` naming the file and line. See :func:`measure_events`
    for ``classes``.
    """
    clips = read_strong_tsv(tsv)
    events = {name: [(e.onset, e.offset, e.event_label) for e in evs] for name, evs in clips.items()}
    return measure_events(events, classes=classes, source=str(tsv))


def uniform_target(
    classes: Sequence[str],
    distinct_per_clip: Mapping[int, float] | None = None,
    events_when_present: Mapping[int, float] | None = None,
) -> Target:
    """A target with the same share of clips for every class (no validation TSV to match).

    A clip holds ``k`` distinct classes with probability ``distinct_per_clip[k]`` (default
    1: 0.6, 2: 0.3, 3: 0.1), every ``k``-subset equally likely; a class present in a clip has
    ``n`` events with probability ``events_when_present[n]`` (default 1: 0.6, 2: 0.25, 3: 0.15).
    Durations are left empty (the event-duration policy then uses the source files).
    """
    classes = list(classes)
    if not classes:
        raise ValueError("uniform_target: no class given")
    dpc = dict(distinct_per_clip or {1: 0.6, 2: 0.3, 3: 0.1})
    ewp = dict(events_when_present or {1: 0.6, 2: 0.25, 3: 0.15})
    dpc = {k: v for k, v in dpc.items() if 1 <= k <= len(classes) and v > 0}
    norm = sum(dpc.values())
    class_sets: dict[ClassSet, float] = {}
    for k, p in dpc.items():
        subsets = list(itertools.combinations(sorted(classes), k))
        for s in subsets:
            class_sets[s] = class_sets.get(s, 0.0) + p / norm / len(subsets)
    share = sum(k * p / norm for k, p in dpc.items()) / len(classes)
    mean_n = sum(n * w for n, w in ewp.items()) / sum(ewp.values())
    return Target(
        classes=classes,
        n_clips=1.0,
        class_sets=class_sets,
        events_when_present={c: {n: w * share / sum(ewp.values()) for n, w in ewp.items()} for c in classes},
        occurrences={c: share * mean_n for c in classes},
        durations={c: [] for c in classes},
        source="uniform",
    )


# --------------------------------------------------------------------------------------------
# Bundled targets: measured event lists without file names (for users without the DESED metadata)
# --------------------------------------------------------------------------------------------

TARGETS_DIR = Path(__file__).resolve().parent / "targets"
BUNDLED_TARGETS = {"desed_validation": "desed_validation.json"}


def load_events_json(path: str | Path, classes: Sequence[str] | None = None) -> Target:
    """Measure a bundled event-list file: ``{"classes": [...], "clips": [[[class index, duration_s],
    ...], ...], "source": ...}`` (one list per clip, empty for a clip without events).

    See :func:`measure_events` for ``classes``.
    """
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text())
        names = list(doc["classes"])
        clips = {f"clip_{i:05d}": [(0.0, float(d), names[int(k)]) for k, d in evs]
                 for i, evs in enumerate(doc["clips"])}
    except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValueError(f"{path}: not a target event list ({exc})") from None
    return measure_events(clips, classes=classes, source=str(doc.get("source", path)))


def resolve_match(match: str | Path, classes: Sequence[str] | None = None) -> Target:
    """The target of ``--match``: a bundled name (``desed_validation``), an event-list ``.json``,
    or a DESED strong-label TSV."""
    if str(match) in BUNDLED_TARGETS:
        return load_events_json(TARGETS_DIR / BUNDLED_TARGETS[str(match)], classes)
    if Path(match).suffix == ".json":
        return load_events_json(match, classes)
    return measure_target(match, classes=classes)

