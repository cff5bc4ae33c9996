"""Deciding, per clip, which classes it holds and how many events of each.

Two steps, both deterministic for a seed:

1. **Class sets.** Each clip receives a class set drawn from the target's empirical class-set
   distribution by stratified quota (largest remainder of ``n_clips * p(set)``), so the
   per-class share of clips, the class co-occurrence and the number of distinct classes per
   clip follow the target. A repair pass then swaps single clips between class sets while that
   lowers ``sum_c |clips_c - n_clips * share_c|``, which removes the rounding error.
2. **Event counts.** Every class present in a clip has one event; the remaining
   ``occurrences - sum_c clips_c`` events are shared among classes so that each class's share of
   all events follows the target, and spread over the clips holding the class following the
   target's "events per clip when present" histogram.

No audio is touched: a plan of thousands of clips takes well under a second.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .target import ClassSet, Target

#: ``SeedSequence`` tag that separates the planner's random stream from the clips' streams.
PLAN_STREAM = 0x504C414E  # "PLAN"
#: Class sets considered as repair destinations (besides single-class sets).
MAX_REPAIR_CANDIDATES = 256


@dataclass(frozen=True)
class ClipPlan:
    """What one clip holds.

    Attributes:
        index: clip index (0-based; also names the file).
        events: ``((class, n_events), ...)`` sorted by class; empty for a background-only clip.
    """

    index: int
    events: tuple[tuple[str, int], ...]

    @property
    def classes(self) -> list[str]:
        return [c for c, _ in self.events]

    @property
    def n_events(self) -> int:
        return sum(n for _, n in self.events)


def largest_remainder(weights: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Integers proportional to ``weights`` summing to ``total``; ties broken at random."""
    w = np.asarray(weights, dtype=float)
    if total <= 0 or w.sum() <= 0:
        return np.zeros(len(w), dtype=int)
    share = w / w.sum() * total
    out = np.floor(share).astype(int)
    frac = share - out
    jitter = rng.random(len(w)) * 1e-9
    order = np.lexsort((jitter, -frac))
    out[order[: total - out.sum()]] += 1
    return out


def plan_class_sets(target: Target, n_clips: int, rng: np.random.Generator, max_repair: int | None = None) -> list[ClassSet]:
    """``n_clips`` class sets (one per clip, shuffled) following the target's class-set distribution."""
    sets = sorted(target.class_sets)
    weights = np.array([target.class_sets[s] for s in sets], dtype=float)
    quota = largest_remainder(weights, n_clips, rng)
    quota = _repair_quota(sets, weights, quota, target, n_clips, max_repair)
    out = [s for s, q in zip(sets, quota) for _ in range(int(q))]
    return [out[i] for i in rng.permutation(len(out))]


def _repair_quota(sets, weights, quota, target: Target, n_clips: int, max_repair: int | None) -> np.ndarray:
    """Swap clips between class sets while that lowers the total per-class clip-count error."""
    idx = {c: i for i, c in enumerate(target.classes)}
    member = np.zeros((len(sets), len(target.classes)))
    for a, s in enumerate(sets):
        member[a, [idx[c] for c in s]] = 1.0
    share = target.clip_share()
    goal = np.array([share[c] * n_clips for c in target.classes])
    quota = quota.copy()
    counts = quota @ member
    # "to" candidates: the heaviest sets and every single-class set (bounded work per step)
    cand = np.union1d(np.argsort(-weights, kind="stable")[:MAX_REPAIR_CANDIDATES], np.flatnonzero(member.sum(1) <= 1))
    for _ in range(max_repair if max_repair is not None else 4 * n_clips):
        d = counts - goal
        used = np.flatnonzero(quota > 0)
        step = member[cand][None, :, :] - member[used][:, None, :]  # moving one clip used[a] -> cand[b]
        gain = np.abs(d + step).sum(-1) - np.abs(d).sum()
        a, b = np.unravel_index(np.argmin(gain), gain.shape)
        if gain[a, b] >= -1e-9:
            break
        quota[used[a]] -= 1
        quota[cand[b]] += 1
        counts += step[a, b]
    return quota


def plan_event_counts(
    target: Target,
    class_sets: Sequence[ClassSet],
    occurrences: int,
    rng: np.random.Generator,
    max_events_per_clip: int = 20,
    max_events_per_class: int = 10,
) -> list[dict[str, int]]:
    """Number of events per class for every clip, totalling ``occurrences`` where possible.

    Args:
        target: gives the per-class share of occurrences and the events-when-present histograms.
        class_sets: one class set per clip (from :func:`plan_class_sets`).
        occurrences: total events wanted; at least one per class present in a clip, so a smaller
            number is raised to that minimum (with a warning).
        max_events_per_clip: cap on all events of a clip.
        max_events_per_class: cap on the events of one class in a clip (they must fit side by
            side, without overlapping, in the clip).
    """
    counts = [{c: 1 for c in s} for s in class_sets]
    clips_of = {c: [i for i, s in enumerate(class_sets) if c in s] for c in target.classes}
    base = sum(len(s) for s in class_sets)
    if occurrences < base:
        warnings.warn(
            f"{occurrences} occurrences asked for but the {len(class_sets)} planned clips hold {base} "
            f"(class, clip) pairs, each needing an event; making {base}",
            stacklevel=2,
        )
        return counts
    extra_total = occurrences - base
    occ_share = target.occurrence_share()
    wanted = np.array([max(0.0, occ_share[c] * occurrences - len(clips_of[c])) for c in target.classes])
    if wanted.sum() <= 0:  # every class already at its share: spread by clip counts
        wanted = np.array([float(len(clips_of[c])) for c in target.classes])
    extras = largest_remainder(wanted, extra_total, rng)
    totals = np.array([len(s) for s in class_sets])
    leftover = 0
    for c, n_extra in zip(target.classes, extras):
        leftover += _spread_extras(c, int(n_extra), clips_of[c], counts, totals, target, rng, max_events_per_clip, max_events_per_class)
    if leftover:
        warnings.warn(f"{leftover} events could not be placed without exceeding the per-clip caps", stacklevel=2)
    return counts


def _spread_extras(cls, n_extra, clips, counts, totals, target, rng, cap_clip, cap_class) -> int:
    """Add ``n_extra`` events of ``cls`` over its ``clips``; returns how many did not fit."""
    if n_extra <= 0 or not clips:
        return n_extra if not clips else 0
    hist = target.events_when_present.get(cls) or {1: 1.0}
    ks = np.array(sorted(hist), dtype=int)
    p = np.array([hist[k] for k in ks], dtype=float)
    draw = rng.choice(ks, size=len(clips), p=p / p.sum()) - 1  # extra events per clip, shape
    room = np.array([min(cap_class - counts[i][cls], cap_clip - totals[i]) for i in clips])
    draw = np.clip(draw, 0, np.maximum(room, 0))
    scale = n_extra / draw.sum() if draw.sum() else 0.0
    add = np.minimum(largest_remainder(draw * scale, n_extra, rng) if draw.sum() else np.zeros(len(clips), int), np.maximum(room, 0))
    missing = n_extra - int(add.sum())
    while missing > 0:  # top up uniformly over clips with room left
        free = np.flatnonzero(room - add > 0)
        if free.size == 0:
            break
        pick = rng.choice(free, size=min(missing, free.size), replace=False)
        add[pick] += 1
        missing -= pick.size
    for j, i in enumerate(clips):
        counts[i][cls] += int(add[j])
        totals[i] += int(add[j])
    return max(missing, 0)


def make_plan(
    target: Target,
    n_clips: int,
    occurrences: int | None = None,
    seed: int = 0,
    max_events_per_clip: int = 20,
    max_events_per_class: int = 10,
) -> list[ClipPlan]:
    """Plan ``n_clips`` clips following ``target``.

    Args:
        target: the distribution to follow.
        n_clips: clips to plan.
        occurrences: total events; ``None`` keeps the target's mean events per clip.
        seed: the plan is a pure function of ``(target, n_clips, occurrences, seed, caps)``.
    """
    if n_clips <= 0:
        raise ValueError(f"n_clips must be positive, got {n_clips}")
    if occurrences is None:
        occurrences = int(round(target.events_per_clip() * n_clips))
    rng = np.random.default_rng(np.random.SeedSequence([seed, PLAN_STREAM]))
    sets = plan_class_sets(target, n_clips, rng)
    counts = plan_event_counts(target, sets, occurrences, rng, max_events_per_clip, max_events_per_class)
    return [ClipPlan(i, tuple(sorted(c.items()))) for i, c in enumerate(counts)]


def plan_digest(plan: Sequence[ClipPlan]) -> str:
    """A short hash of a plan (recorded to refuse resuming a run with a different plan)."""
    blob = json.dumps([[p.index, list(map(list, p.events))] for p in plan]).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def plan_summary(plan: Sequence[ClipPlan], classes: Sequence[str]) -> dict:
    """Per-class share of clips and of occurrences of a plan (0..1), and its totals."""
    n = len(plan)
    clips = {c: 0 for c in classes}
    occ = {c: 0 for c in classes}
    for p in plan:
        for c, k in p.events:
            clips[c] += 1
            occ[c] += k
    total = sum(occ.values())
    return {
        "n_clips": n,
        "occurrences": total,
        "clip_share": {c: clips[c] / n for c in classes},
        "occurrence_share": {c: occ[c] / total if total else 0.0 for c in classes},
    }
