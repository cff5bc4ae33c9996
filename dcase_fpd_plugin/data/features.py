"""Log-mel features (DCASE 2023 baseline defaults) computed with torch, and their disk cache.

Defaults follow the DCASE 2023 Task 4 baseline: 16 kHz, n_fft 2048, win 2048, hop 256,
128 mel bands (HTK scale, no filter normalisation) between 0 and 8 kHz, Hamming window,
magnitude spectrogram, ``20 log10`` dB clamped to [-50, 80] dB. The paper's hop of 255 is
``feats.hop_length: 255``. Mel filters come from librosa; no torchaudio is needed.

STFT frames are centred: a clip of N samples gives ``1 + N // hop`` frames.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import atomic_write
from .audio import load_clip

FEATURE_KEYS = ("sample_rate", "clip_s", "n_fft", "win_length", "hop_length", "n_mels", "f_min", "f_max")
_FEATURE_VERSION = 1  # bump when the computation changes, so old caches are not reused


def n_stft_frames(n_samples: int, hop_length: int) -> int:
    """Frames of a centred STFT over ``n_samples`` samples."""
    return 1 + n_samples // hop_length


class LogMel(torch.nn.Module):
    """Waveform (B, N) -> log-mel (B, n_mels, T_in) in dB."""

    def __init__(self, sample_rate=16000, n_fft=2048, win_length=2048, hop_length=256, n_mels=128,
                 f_min=0.0, f_max=8000.0, **_: Any):
        super().__init__()
        import librosa

        if win_length > n_fft:
            raise ValueError(f"win_length {win_length} > n_fft {n_fft}")
        self.n_fft, self.win_length, self.hop_length = n_fft, win_length, hop_length
        mel = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max,
                                  htk=True, norm=None)  # (n_mels, n_fft // 2 + 1)
        self.register_buffer("mel_fb", torch.from_numpy(mel).float(), persistent=False)
        self.register_buffer("window", torch.hamming_window(win_length, periodic=False), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
                          window=self.window, center=True, pad_mode="reflect", return_complex=True)
        mag = spec.abs()  # (B, n_fft//2+1, T_in)
        mel = torch.matmul(self.mel_fb, mag)  # (B, n_mels, T_in)
        return (20.0 * torch.log10(mel.clamp(min=1e-5))).clamp(min=-50.0, max=80.0)


class FeatureExtractor:
    """File -> (log-mel (n_mels, T_in) float32, n_valid_samples), with an optional disk cache.

    The cache is keyed by the audio file's *content* (SHA-1 of its bytes) and the feature
    settings, so renamed or copied files hit the cache and an edited file does not.
    Entries are written atomically; a corrupt entry is recomputed.

    Args:
        feats: the recipe's ``feats`` section.
        cache_dir: folder for cached features, or None for no cache.
    """

    def __init__(self, feats: dict[str, Any], cache_dir: str | Path | None = None):
        self.settings = {k: feats[k] for k in FEATURE_KEYS}
        if self.settings["win_length"] > self.settings["n_fft"]:  # LogMel's check, made before the first miss
            raise ValueError(f"feats.win_length {self.settings['win_length']} > feats.n_fft {self.settings['n_fft']}")
        self._logmel: LogMel | None = None  # built on the first cache miss (librosa's import costs ~1 s)
        tag = hashlib.sha1(json.dumps({**self.settings, "v": _FEATURE_VERSION}, sort_keys=True).encode()).hexdigest()[:12]
        self.cache_dir = Path(cache_dir) / tag if cache_dir else None
        self._content_keys: dict[tuple[str, int, int], str] = {}
        self.hits = 0
        self.misses = 0

    @property
    def logmel(self) -> LogMel:
        """The transform, built when a clip is first computed: a run whose clips are all cached never
        imports librosa (and its numba functions)."""
        if self._logmel is None:
            self._logmel = LogMel(**self.settings)
        return self._logmel

    @property
    def n_samples(self) -> int:
        return int(round(self.settings["clip_s"] * self.settings["sample_rate"]))

    @property
    def n_frames(self) -> int:
        """T_in, STFT frames per clip."""
        return n_stft_frames(self.n_samples, self.settings["hop_length"])

    def _content_key(self, path: Path) -> str:
        st = path.stat()
        memo = (str(path), st.st_size, st.st_mtime_ns)
        key = self._content_keys.get(memo)
        if key is None:
            h = hashlib.sha1()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            key = self._content_keys[memo] = h.hexdigest()
        return key

    def compute(self, path: str | Path) -> tuple[np.ndarray, int]:
        """Decode, resample, pad and transform one file (no cache)."""
        wave, n_valid = load_clip(path, self.settings["sample_rate"], self.settings["clip_s"])
        with torch.no_grad():
            mel = self.logmel(torch.from_numpy(wave)[None])[0]
        return mel.numpy().astype(np.float32), n_valid

    def __call__(self, path: str | Path) -> tuple[np.ndarray, int]:
        path = Path(path)
        if self.cache_dir is None:
            return self.compute(path)
        key = self._content_key(path)
        entry = self.cache_dir / key[:2] / f"{key}.npz"
        if entry.is_file():
            try:
                with np.load(entry) as z:
                    out = z["mel"], int(z["n_valid"])
                self.hits += 1
                return out
            except Exception:
                pass  # corrupt or partial entry: recompute below
        self.misses += 1
        mel, n_valid = self.compute(path)
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
                np.savez(f, mel=mel, n_valid=np.int64(n_valid))

        atomic_write(entry, write)
        return mel, n_valid
