"""Event-time policy: turning one clip's plan into concrete scaper events.

For each class of the clip (``k`` events), ``k`` source files are drawn uniformly among the
class's files of every variant folder, with DESED's border semantics:

* ``<Class>``           complete event; lasts the whole source (policy ``source``, as DESED) or a
  duration drawn from the target's durations of the class (policy ``target``), cut to fit;
* ``<Class>_nOn``       starts at 0 s (the source is entered at a random point);
* ``<Class>_nOff``      ends at the clip end;
* ``<Class>_nOn_nOff``  spans the clip (only when it is the class's single event).

Events of one class never overlap and keep ``min_gap`` seconds between them, so DESED's
post-processing does not merge them and the planned number of occurrences survives. A class's
single complete event starts at a truncated-normal onset (DESED: mean 5 s, std 2 s, in
[0.25, 10] s), moved earlier if it would run past the clip end; several events of a class are
spread with uniformly random gaps (a flat Dirichlet). Events of different classes may overlap.

Everything here is a pure function of the plan, the bank, the spec and a random generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .plan import ClipPlan
from .soundbank import COMPLETE, Soundbank, Source
from .spec import EventTime, SynthSpec

#: ``SeedSequence`` tag of the per-clip streams (``[seed, CLIP_STREAM, index]``).
CLIP_STREAM = 0x434C4950  # "CLIP"
#: Seconds kept above the post-processing thresholds (gap, minimum length) when placing events.
TIME_MARGIN = 0.005


@dataclass(frozen=True)
class PlacedEvent:
    """One foreground event, ready for ``scaper.Scaper.add_event`` (all ``const``).

    Attributes:
        label: scaper label = source folder name (may carry ``_nOn``/``_nOff``).
        source_file: path of the source audio.
        source_time: where the event starts inside the source, s.
        event_time: onset in the clip, s.
        event_duration: seconds of source used (before time stretching).
        snr: foreground-to-background SNR, dB.
        pitch_shift: semitones, or None.
        time_stretch: stretch factor (>1 = longer), or None.
    """

    label: str
    source_file: str
    source_time: float
    event_time: float
    event_duration: float
    snr: float
    pitch_shift: float | None = None
    time_stretch: float | None = None


@dataclass(frozen=True)
class ClipLayout:
    """A clip's background (source and start time in s) and foreground events."""

    background: Source
    background_time: float
    events: tuple[PlacedEvent, ...]


def clip_rngs(seed: int, index: int) -> tuple[np.random.Generator, int]:
    """The clip's own generator and an integer seed for its scaper object, from ``(seed, index)``."""
    ss = np.random.SeedSequence([seed, CLIP_STREAM, index])
    child_np, child_sc = ss.spawn(2)
    return np.random.default_rng(child_np), int(child_sc.generate_state(1)[0])


def truncnorm(et: EventTime, rng: np.random.Generator) -> float:
    """A draw of N(mean, std) truncated to [min, max] (rejection; uniform after 100 misses)."""
    for _ in range(100):
        x = rng.normal(et.mean, et.std)
        if et.min <= x <= et.max:
            return float(x)
    return float(rng.uniform(et.min, et.max))


def choose_sources(sources: Sequence[Source], k: int, rng: np.random.Generator) -> list[Source]:
    """``k`` files of one class: at most one ``_nOn``, one ``_nOff``; ``_nOn_nOff`` only if ``k == 1``."""
    chosen: list[Source] = []
    for _ in range(k):
        taken = {s.variant for s in chosen}
        ok = [
            s
            for s in sources
            if s.variant == COMPLETE
            or (s.variant in ("_nOn", "_nOff") and s.variant not in taken)
            or (s.variant == "_nOn_nOff" and k == 1)
        ]
        chosen.append((ok or list(sources))[int(rng.integers(len(ok or sources)))])
    return chosen


def _fit_durations(d: np.ndarray, budget: float, min_len: float) -> np.ndarray:
    """Cut the longest durations first (common cap ``t``) so they sum to at most ``budget`` s."""
    if d.sum() <= budget:
        return d
    floor = np.minimum(d, min_len)
    if floor.sum() >= budget:
        return floor * (budget / floor.sum())
    lo, hi = 0.0, float(d.max())
    for _ in range(60):  # bisection on the cap, ~1e-15 s
        t = (lo + hi) / 2
        if np.maximum(np.minimum(d, t), floor).sum() > budget:
            hi = t
        else:
            lo = t
    return np.maximum(np.minimum(d, lo), floor)


def _class_events(
    sources: list[Source],
    spec: SynthSpec,
    rng: np.random.Generator,
    durations: Sequence[float] | None,
) -> list[tuple[Source, float, float, float, float | None]]:
    """``[(source, source_time, event_time, duration_in_clip, stretch), ...]`` for one class."""
    L = spec.duration
    # a few ms above DESED's thresholds so millisecond rounding cannot trigger a merge
    min_len, gap = spec.min_event_length + TIME_MARGIN, spec.min_gap + TIME_MARGIN
    k = len(sources)
    stretch = [float(rng.uniform(*spec.time_stretch)) if spec.time_stretch else None for _ in sources]
    avail = np.array([s.duration * (f or 1.0) for s, f in zip(sources, stretch)])  # clip seconds available
    want = avail.copy()
    for i, s in enumerate(sources):
        if s.variant == COMPLETE and spec.event_duration == "target" and durations:
            want[i] = min(avail[i], max(min_len, float(durations[int(rng.integers(len(durations)))])))
        elif s.variant == "_nOn" and avail[i] > min_len:
            want[i] = avail[i] - rng.uniform(0, avail[i] - min_len)  # enter the source at a random point
        elif s.variant == "_nOff":
            want[i] = L - rng.uniform(max(0.0, L - avail[i]), L - min_len)
    want = np.minimum(want, L)
    # order: the _nOn event first, complete events shuffled, the _nOff event last
    order = [i for i in range(k) if sources[i].variant in ("_nOn", "_nOn_nOff")]
    middle = [i for i in range(k) if sources[i].variant == COMPLETE]
    order += [middle[j] for j in rng.permutation(len(middle))]
    order += [i for i in range(k) if sources[i].variant == "_nOff"]
    d = _fit_durations(want[order], L - (k - 1) * gap, min_len)
    if k == 1 and sources[order[0]].variant == COMPLETE:
        on = min(truncnorm(spec.event_time, rng), L - d[0])
        onsets = [max(0.0, on)]
    else:
        free = max(0.0, L - d.sum() - (k - 1) * gap)
        slots = np.ones(k + 1)
        if sources[order[0]].variant in ("_nOn", "_nOn_nOff"):
            slots[0] = 0.0
        if sources[order[-1]].variant in ("_nOff", "_nOn_nOff"):
            slots[-1] = 0.0
        g = np.zeros(k + 1)
        if slots.any():  # (a lone _nOn_nOff event shorter than the clip just starts at 0)
            g[slots > 0] = rng.dirichlet(np.ones(int(slots.sum()))) * free
        starts = np.concatenate([[0.0], np.cumsum(d[:-1] + gap)]) + np.cumsum(g[:-1])
        onsets = list(starts)
    out = []
    for pos, i in enumerate(order):
        s, f = sources[i], stretch[i]
        on = float(min(onsets[pos], L - d[pos]))
        dur_src = float(d[pos]) / (f or 1.0)  # source seconds
        if s.variant in ("_nOff",):
            src_t = 0.0
        else:
            src_t = float(rng.uniform(0.0, max(0.0, s.duration - dur_src)))
        if s.variant == "_nOn":
            src_t = max(0.0, s.duration - dur_src)  # runs to the end of the source
        out.append((s, src_t, on, dur_src, f))
    return out


def layout_clip(
    plan: ClipPlan,
    bank: Soundbank,
    spec: SynthSpec,
    rng: np.random.Generator,
    target_durations: Mapping[str, Sequence[float]] | None = None,
) -> ClipLayout:
    """Concrete background and events of one clip (times in s, SNR in dB)."""
    bg = bank.background[int(rng.integers(len(bank.background)))]
    bg_t = float(rng.uniform(0.0, max(0.0, bg.duration - spec.duration)))
    events: list[PlacedEvent] = []
    for cls, k in plan.events:
        sources = choose_sources(bank.foreground[cls], k, rng)
        durs = (target_durations or {}).get(cls)
        for s, src_t, on, dur, f in _class_events(sources, spec, rng, durs):
            snr = float(rng.uniform(*spec.snr_db))
            pitch = float(rng.uniform(*spec.pitch_shift)) if spec.pitch_shift else None
            events.append(PlacedEvent(s.label, s.path, src_t, on, dur, snr, pitch, f))
    return ClipLayout(bg, bg_t, tuple(events))
