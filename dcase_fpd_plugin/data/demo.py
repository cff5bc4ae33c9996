"""A tiny DESED-format dataset the package builds by itself (no download, no outside files).

Five toy classes with distinct time-frequency shapes are drawn procedurally over coloured
noise backgrounds, so the demo trains and scores in a few minutes on 2 CPU cores:

    tone_beeps    on/off beeps of a pure tone (1-3 kHz)
    chirp         a rising frequency sweep
    noise_burst   band-limited noise
    harmonic_hum  a harmonic series with a low fundamental (100-250 Hz)
    clicks        a train of short clicks

Layout written under ``root`` (the same as DESED's)::

    synth/audio/*.wav  synth/soundscapes.tsv                 SS: strong labels
    weak/audio/*.wav   weak/weak.tsv                         RW: weak labels only
    val/audio/*.wav    val/val.tsv  val/val_durations.tsv    strong validation set (selects)
    test/audio/*.wav   test/test.tsv  test/test_durations.tsv  strong test set (reported)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from .tsv import write_tsv

DEMO_CLASSES = ("tone_beeps", "chirp", "noise_burst", "harmonic_hum", "clicks")


def _event(cls: str, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / sr
    if cls == "tone_beeps":
        f = rng.uniform(1000, 3000)
        gate = (np.sin(2 * np.pi * rng.uniform(3, 6) * t) > 0).astype(np.float32)
        x = np.sin(2 * np.pi * f * t) * gate
    elif cls == "chirp":
        f0, f1 = rng.uniform(300, 800), rng.uniform(2500, 5000)
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * max(t[-1], 1e-3)))
        x = np.sin(phase)
    elif cls == "noise_burst":
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / sr)
        lo = rng.uniform(3000, 5000)
        spec[(freqs < lo) | (freqs > lo + 1500)] = 0
        x = np.fft.irfft(spec, n)
    elif cls == "harmonic_hum":
        f = rng.uniform(100, 250)
        x = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 8))
    elif cls == "clicks":
        x = np.zeros(n)
        period = int(sr / rng.uniform(8, 15))
        for start in range(0, n, period):
            m = min(40, n - start)
            x[start:start + m] = rng.standard_normal(m) * np.hanning(2 * m)[m:]
    else:
        raise ValueError(cls)
    fade = min(n // 2, int(0.01 * sr))
    env = np.ones(n)
    env[:fade] = np.linspace(0, 1, fade)
    env[n - fade:] = np.linspace(1, 0, fade)
    x = x * env
    return (x / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)


def _background(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    spec /= np.maximum(np.arange(len(spec)), 1) ** rng.uniform(0.3, 1.0)  # coloured noise
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-9)).astype(np.float32)


def make_clip(rng: np.random.Generator, sr: int, clip_s: float, snr_db: tuple[float, float],
              max_events: int = 3) -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """One soundscape (N,) float32 and its events ``(onset_s, offset_s, label)``."""
    n = int(round(clip_s * sr))
    x = 0.05 * _background(n, rng)
    events = []
    for _ in range(int(rng.integers(1, max_events + 1))):
        cls = str(rng.choice(DEMO_CLASSES))
        dur = float(rng.uniform(0.5, min(4.0, clip_s)))
        onset = float(rng.uniform(0, clip_s - dur))
        a, b = int(onset * sr), int((onset + dur) * sr)
        gain = 0.05 * 10 ** (rng.uniform(*snr_db) / 20)
        x[a:b] += gain * _event(cls, b - a, sr, rng)
        events.append((round(a / sr, 3), round(b / sr, 3), cls))
    peak = np.abs(x).max()
    if peak > 0.99:
        x *= 0.99 / peak
    return x, merge_overlapping(events)


def merge_overlapping(events: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """Merge same-class events that overlap or touch (as DESED's label post-processing does)."""
    merged: list[tuple[float, float, str]] = []
    for onset, offset, label in sorted(events, key=lambda e: (e[2], e[0])):
        if merged and merged[-1][2] == label and onset <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], offset), label)
        else:
            merged.append((onset, offset, label))
    return sorted(merged)


def build_demo_dataset(root: str | Path, *, n_synth: int = 96, n_weak: int = 96, n_val: int = 48,
                       n_test: int = 48, sample_rate: int = 16000, clip_s: float = 10.0,
                       seed: int = 0) -> dict[str, str]:
    """Write the demo dataset under ``root`` and return the recipe ``data.*`` paths.

    Idempotent: an existing complete dataset (``root/.complete`` marker, and its test set) is reused.
    """
    root = Path(root)
    paths = {
        "synth_folder": root / "synth" / "audio", "synth_tsv": root / "synth" / "soundscapes.tsv",
        "weak_folder": root / "weak" / "audio", "weak_tsv": root / "weak" / "weak.tsv",
        "val_folder": root / "val" / "audio", "val_tsv": root / "val" / "val.tsv",
        "val_dur": root / "val" / "val_durations.tsv",
        "test_folder": root / "test" / "audio", "test_tsv": root / "test" / "test.tsv",
        "test_dur": root / "test" / "test_durations.tsv",
    }
    marker = root / ".complete"
    if not (marker.is_file() and paths["test_dur"].is_file()):
        rng = np.random.default_rng(seed)
        splits = (("synth", n_synth, (6, 15)), ("weak", n_weak, (0, 12)), ("val", n_val, (0, 12)),
                  ("test", n_test, (0, 12)))
        for split, count, snr in splits:
            folder = paths[f"{split}_folder"]
            folder.mkdir(parents=True, exist_ok=True)
            strong_rows, weak_rows, dur_rows = [], [], []
            for i in range(count):
                name = f"{split}_{i:04d}.wav"
                x, events = make_clip(rng, sample_rate, clip_s, snr)
                sf.write(folder / name, x, sample_rate, subtype="PCM_16")
                strong_rows += [(name, f"{on:.3f}", f"{off:.3f}", lab) for on, off, lab in events]
                weak_rows.append((name, ",".join(sorted({lab for _, _, lab in events}))))
                dur_rows.append((name, f"{clip_s:.3f}"))
            if split == "weak":
                write_tsv(paths["weak_tsv"], ("filename", "event_labels"), weak_rows)
            else:
                write_tsv(paths[f"{split}_tsv"], ("filename", "onset", "offset", "event_label"), strong_rows)
            if split in ("val", "test"):
                write_tsv(paths[f"{split}_dur"], ("filename", "duration"), dur_rows)
        marker.write_text("ok\n")
    return {k: str(v) for k, v in paths.items()}


def demo_overrides(paths: dict[str, str], cache_dir: str | Path) -> list[str]:
    """``key.path=value`` overrides pointing a DESED recipe at a dataset of :func:`build_demo_dataset`
    (its ``paths``): the weak clips double as the unlabelled set, the demo classes, the feature cache
    in ``cache_dir``, no missing clip allowed, no weak clips held out."""
    return [f"data.{k}={v}" for k, v in paths.items()] + [
        f"data.unlabeled_folder={paths['weak_folder']}", f"data.classes=[{','.join(DEMO_CLASSES)}]",
        f"data.cache_dir={cache_dir}", "data.max_missing_fraction=0", "data.weak_val_fraction=0"]
