"""Generation settings (``synth/*.yaml``): what the soundscapes look like, not where they go.

Every key has a DESED default (DESED's ``generate_dcase_task4_2021.py``: 10-s clips at 16 kHz,
background at -50 LUFS, foreground SNR uniform in 6..30 dB, onsets truncnorm(5, 2) in
[0.25, 10] s, events at least 250 ms). Unknown keys and wrong types are refused with the key
named. Command-line options and API keywords override the file.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

#: Event-duration policies: ``source`` = the whole source file (cut to fit the clip, as DESED);
#: ``target`` = a duration drawn from the target's durations of the class, cut from the source.
DURATION_POLICIES = ("source", "target")


class SpecError(ValueError):
    """A spec file or option is malformed; the message names the key."""


@dataclass
class EventTime:
    """Onset distribution of a class's only event in a clip (seconds), truncated normal."""

    mean: float = 5.0
    std: float = 2.0
    min: float = 0.25
    max: float = 10.0


@dataclass
class SynthSpec:
    """All settings of a synthetic set (units in the field comments)."""

    n_clips: int | None = None  # clips to make (the CLI/API may override)
    occurrences: int | None = None  # total events; None: the target's events per clip
    classes: list[str] | None = None  # restrict the target to these classes
    duration: float = 10.0  # clip length, s
    sample_rate: int = 16000  # Hz
    ref_db: float = -50.0  # background loudness, LUFS (scaper's ref_db)
    snr_db: tuple[float, float] = (6.0, 30.0)  # foreground-to-background SNR range, dB (uniform)
    event_time: EventTime = field(default_factory=EventTime)
    event_duration: str = "source"  # one of DURATION_POLICIES
    min_event_length: float = 0.25  # s, DESED post-processing and placement
    min_gap: float = 0.15  # s between two events of one class (DESED merges closer ones)
    max_events_per_clip: int = 20
    max_events_per_class: int = 10
    pitch_shift: tuple[float, float] | None = None  # semitones (uniform); None = off (fast)
    time_stretch: tuple[float, float] | None = None  # factor (uniform); None = off (fast)
    reverb: float | None = None  # scaper reverb 0..1; None = off (fast)
    fix_clipping: bool = True  # peak-normalise a clipping mixture
    subtype: str = "PCM_16"  # soundfile subtype of the written wavs

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k in ("snr_db", "pitch_shift", "time_stretch"):
            if d[k] is not None:
                d[k] = list(d[k])
        return d


_PAIRS = ("snr_db", "pitch_shift", "time_stretch")


def _check_pair(key: str, value: Any, where: str) -> tuple[float, float] | None:
    if value is None and key != "snr_db":
        return None
    if isinstance(value, (int, float)):
        value = (value, value)
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(isinstance(v, (int, float)) for v in value):
        raise SpecError(f"{where}{key}: expected [low, high] numbers, got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if lo > hi:
        raise SpecError(f"{where}{key}: low {lo} > high {hi}")
    return lo, hi


def _check_scalar(key: str, value: Any, default: Any, where: str) -> Any:
    if value is None:
        if key in ("n_clips", "occurrences", "classes", "reverb"):
            return None
        raise SpecError(f"{where}{key}: must not be empty")
    if isinstance(default, bool) or key == "fix_clipping":
        if not isinstance(value, bool):
            raise SpecError(f"{where}{key}: expected true/false, got {value!r}")
        return value
    if key in ("n_clips", "occurrences", "sample_rate", "max_events_per_clip", "max_events_per_class"):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise SpecError(f"{where}{key}: expected a positive integer, got {value!r}")
        return value
    if key in ("duration", "ref_db", "min_event_length", "min_gap", "reverb"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}{key}: expected a number, got {value!r}")
        if key == "reverb" and not 0 <= value <= 1:
            raise SpecError(f"{where}{key}: expected 0..1 or null, got {value!r}")
        if key in ("duration",) and value <= 0:
            raise SpecError(f"{where}{key}: expected a positive number, got {value!r}")
        return float(value)
    if key == "classes":
        if not isinstance(value, list) or not all(isinstance(c, str) and c for c in value):
            raise SpecError(f"{where}{key}: expected a list of class names, got {value!r}")
        return value
    if key == "event_duration":
        if value not in DURATION_POLICIES:
            raise SpecError(f"{where}{key}: expected one of {list(DURATION_POLICIES)}, got {value!r}")
        return value
    if key == "subtype":
        if not isinstance(value, str):
            raise SpecError(f"{where}{key}: expected a soundfile subtype name, got {value!r}")
        return value
    raise SpecError(f"{where}{key}: unknown key")  # pragma: no cover


def _event_time(value: Any, where: str) -> EventTime:
    if isinstance(value, EventTime):
        return value
    if not isinstance(value, Mapping):
        raise SpecError(f"{where}event_time: expected a mapping with mean/std/min/max, got {value!r}")
    known = {f.name for f in dataclasses.fields(EventTime)}
    extra = set(value) - known - {"distribution"}
    if extra:
        raise SpecError(f"{where}event_time.{sorted(extra)[0]}: unknown key; known: {sorted(known)}")
    if value.get("distribution", "truncnorm") != "truncnorm":
        raise SpecError(f"{where}event_time.distribution: only 'truncnorm' is supported")
    out = EventTime()
    for k in known & set(value):
        v = value[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise SpecError(f"{where}event_time.{k}: expected a number, got {v!r}")
        setattr(out, k, float(v))
    if out.std <= 0 or out.min > out.max:
        raise SpecError(f"{where}event_time: need std > 0 and min <= max, got {value!r}")
    return out


def make_spec(values: Mapping[str, Any] | None = None, base: SynthSpec | None = None, where: str = "") -> SynthSpec:
    """A spec from ``base`` (default: DESED defaults) with ``values`` applied and validated.

    Args:
        values: keys of :class:`SynthSpec`; ``None`` values of optional keys clear them.
        where: prefix for error messages (e.g. the YAML path).
    """
    spec = dataclasses.replace(base) if base is not None else SynthSpec()
    defaults = SynthSpec()
    known = {f.name for f in dataclasses.fields(SynthSpec)}
    for key, value in (values or {}).items():
        if key not in known:
            raise SpecError(f"{where}{key}: unknown key; known keys: {sorted(known)}")
        if key in _PAIRS:
            value = _check_pair(key, value, where)
        elif key == "event_time":
            value = _event_time(value, where)
        else:
            value = _check_scalar(key, value, getattr(defaults, key), where)
        setattr(spec, key, value)
    if spec.event_time.max > spec.duration:
        spec.event_time = dataclasses.replace(spec.event_time, max=spec.duration)
    if spec.min_event_length >= spec.duration:
        raise SpecError(f"{where}min_event_length: {spec.min_event_length} s >= clip duration {spec.duration} s")
    return spec


SPECS_DIR = Path(__file__).resolve().parent / "specs"


def bundled_specs() -> dict[str, Path]:
    """``{name: file}`` of the specs shipped inside the package (``dcase2023_2046``)."""
    return {p.stem: p for p in sorted(SPECS_DIR.glob("*.yaml"))}


def load_spec(spec: str | Path | Mapping[str, Any] | SynthSpec | None) -> SynthSpec:
    """Read a YAML spec file or a bundled spec by name (or accept a mapping / a spec / ``None`` for
    the defaults)."""
    if spec is None:
        return SynthSpec()
    if isinstance(spec, SynthSpec):
        return dataclasses.replace(spec)
    if isinstance(spec, Mapping):
        return make_spec(spec)
    path = Path(spec)
    if not path.is_file() and str(spec) in bundled_specs():
        path = bundled_specs()[str(spec)]
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found (bundled specs, usable by name: "
                        f"{', '.join(bundled_specs())})")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(values, Mapping):
        raise SpecError(f"{path}: expected a mapping of settings at the top level")
    return make_spec(values, where=f"{path}: ")
