"""A DESED-format mini dataset from a soundbank, keeping the paper's roles apart.

The bank's recordings are split into three disjoint sub-banks (foreground and background files),
and each role is rendered with scaper from its own sub-bank:

    ss/   synthetic strongly-labelled training set (SS): strong labels used (by FPD)
    rw/   a stand-in for the real weakly-labelled set (RW): other recordings, lower SNRs;
          only its weak labels (``rw/weak.tsv``) are given to training
    val/  strongly-labelled validation set from recordings disjoint from both

Returns the recipe ``data.*`` keys pointing at the result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .generate import generate_soundscapes
from .soundbank import bank_classes, split_soundbank

#: (fraction of the bank's recordings, SNR range in dB) per role.
ROLES = {"ss": (0.5, (6.0, 30.0)), "rw": (0.25, (0.0, 20.0)), "val": (0.25, (0.0, 20.0))}


def build_mini_desed(soundbank: str | Path, out: str | Path, *, n_ss: int = 48, n_rw: int = 48, n_val: int = 24,
                     seed: int = 0, workers: int = 1, classes: Sequence[str] | None = None,
                     progress: bool = False, **spec_overrides) -> dict[str, str]:
    """Build (or resume) the SS / RW / validation sets under ``out``; return the ``data.*`` keys.

    Args:
        soundbank: DESED-layout bank (e.g. ``../shared/soundbank``); only read.
        out: output folder; ``out/banks`` holds the disjoint sub-banks (symlinks).
        n_ss, n_rw, n_val: clips per role.
        seed: seeds the split and every role's generation.
        classes: restrict to these classes (default: every class the bank has).
        **spec_overrides: passed to :func:`generate_soundscapes` (e.g. ``duration=10.0``,
            ``pitch_shift=None``, ``reverb=None`` for speed).
    """
    out = Path(out)
    classes = list(classes) if classes else bank_classes(soundbank)
    banks = split_soundbank(soundbank, out / "banks", {r: f for r, (f, _) in ROLES.items()}, seed=seed,
                            force=False) if not (out / "banks").is_dir() else {r: out / "banks" / r for r in ROLES}
    counts = {"ss": n_ss, "rw": n_rw, "val": n_val}
    results = {}
    for i, (role, (_, snr)) in enumerate(ROLES.items()):
        results[role] = generate_soundscapes(banks[role], out / role, counts[role], seed=seed * 10 + i,
                                             workers=workers, classes=classes, snr_db=snr, progress=progress,
                                             report_png=False, **spec_overrides)
    return {
        "classes": classes,
        "synth_folder": str(results["ss"].out / "soundscapes"),
        "synth_tsv": str(results["ss"].strong_tsv),
        "weak_folder": str(results["rw"].out / "soundscapes"),
        "weak_tsv": str(results["rw"].weak_tsv),
        "val_folder": str(results["val"].out / "soundscapes"),
        "val_tsv": str(results["val"].strong_tsv),
        "val_dur": str(results["val"].durations_tsv),
    }
