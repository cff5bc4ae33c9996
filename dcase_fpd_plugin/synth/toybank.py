"""A toy DESED-layout soundbank of synthetic tones and noise, for tests and demos without data.

Each class gets sine tones at its own frequencies (so classes are separable), backgrounds are
white noise. Files are short FLACs at 16 kHz; nothing here is a real recording.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000


def write_tone(path: str | Path, seconds: float, freq: float = 440.0, noise: bool = False, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write a mono FLAC: a sine at ``freq`` Hz (amplitude 0.3) or white noise (std 0.1)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    if noise:
        x = 0.1 * np.random.default_rng(int(freq * 1000) + len(t)).standard_normal(t.size)
    else:
        x = 0.3 * np.sin(2 * np.pi * freq * t)
    sf.write(path, x, sample_rate, format="FLAC")
    return path


def make_toy_soundbank(
    root: str | Path,
    classes: Sequence[str] = ("Alarm", "Beep"),
    per_class: int = 3,
    variants: bool = True,
    n_backgrounds: int = 3,
) -> Path:
    """Build ``root/foreground/<Class>/`` (``per_class`` tones of 0.6, 1.0, 1.4... s) and ``root/background/``.

    With ``variants`` the first class also gets one file in each DESED border folder
    (``_nOn``: 2 s, ``_nOff``: 2 s, ``_nOn_nOff``: 12 s). Backgrounds last 4, 5, 6... s.
    Returns ``root``.
    """
    root = Path(root)
    for ci, cls in enumerate(classes):
        for i in range(per_class):
            write_tone(root / "foreground" / cls / f"{cls}_{i}.flac", 0.6 + 0.4 * i, 300 + 100 * ci + 10 * i)
    if variants and classes:
        first = classes[0]
        write_tone(root / "foreground" / f"{first}_nOn" / "a_non.flac", 2.0, 700)
        write_tone(root / "foreground" / f"{first}_nOff" / "a_noff.flac", 2.0, 750)
        write_tone(root / "foreground" / f"{first}_nOn_nOff" / "a_nonnoff.flac", 12.0, 800)
    for i in range(n_backgrounds):
        write_tone(root / "background" / f"bg_{i}.flac", 4.0 + i, 50 + i, noise=True)
    return root
