"""Audio loading: any sample rate and channel count -> mono at the recipe's rate, fixed length.

Decoding uses soundfile (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1), resampling librosa
(soxr). Clips shorter than ``clip_s`` are zero-padded at the end; longer ones (by more than
``LENGTH_TOLERANCE_S``) are refused, and a run checks every clip's length from its header before
training (:class:`HeaderIndex`). The number of real (unpadded) samples is returned so that padded
frames can be masked.

Recordings of any length (``dcase-fpd infer``) are read block by block instead
(:func:`stream_mono`, resampled by soxr's stream resampler): the same samples as a whole-file
decode, in memory one block at a time.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from .tsv import DataError


LENGTH_TOLERANCE_S = 0.1  # a clip this much longer than feats.clip_s (encoder padding) is cut without a word


def check_readable(path: str | Path) -> tuple[int, int]:
    """``(frames, sample_rate)`` of ``path``'s header; DataError naming it when it is absent, soundfile
    cannot read its header, or it holds no samples."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises RuntimeError/LibsndfileError/TypeError
        raise DataError(f"{path}: unreadable audio ({exc})") from None
    if info.frames == 0:
        raise DataError(f"{path}: audio file holds no samples")
    return int(info.frames), int(info.samplerate)


class HeaderIndex:
    """The audio files whose header has been read (frames, sample rate), by absolute path, size and
    modification time,
    kept in a JSON file (``<data.cache_dir>/audio_headers.json``): a later run checks only the files
    that are new or changed since, instead of opening every listed file again (~0.2 ms each:
    0.8 s for DESED's 4792 clips). A file that fails is never recorded, so it is checked every time.
    Entries of files that no longer exist are dropped when the index is saved, so a cache shared by
    many regenerated sets (temporary folders, new bench builds) does not grow without end.

    Args:
        path: the JSON file, or None to keep nothing between runs (every file checked).
    """

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self.known: dict[str, list[int]] = {}
        self.checked = 0  # headers read by this index (new or changed files)
        self._dirty = False
        if self.path is not None and self.path.is_file():
            try:
                known = json.loads(self.path.read_text())
                self.known = {k: v for k, v in known.items() if isinstance(v, list) and len(v) == 4}
            except (OSError, ValueError, AttributeError):
                self.known = {}  # unreadable index: start again (it only saves time)

    def check(self, path: str | Path) -> None:
        """:func:`check_readable`, skipped when ``path`` has the size and modification time recorded."""
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError:
            raise DataError(f"{path}: audio file not found") from None
        except OSError as exc:  # permission, name too long, ...: not the same as absent
            raise DataError(f"{path}: audio file cannot be read ({exc.strerror or exc})") from None
        key, stamp = str(path.absolute()), [st.st_size, st.st_mtime_ns]
        if self.known.get(key, [])[:2] == stamp:
            return
        frames, rate = check_readable(path)
        self.checked += 1
        self.known[key] = [*stamp, frames, rate]
        self._dirty = True

    def header(self, path: str | Path) -> tuple[int, int] | None:
        """``(frames, sample_rate)`` of a file :meth:`check` has seen (None otherwise)."""
        entry = self.known.get(str(Path(path).absolute()))
        return (entry[2], entry[3]) if entry else None

    def save(self) -> None:
        """Write the index atomically if it learnt anything; a cache that cannot be written is skipped."""
        if self.path is None or not self._dirty:
            return
        from ..atomic import atomic_write_text

        self.known = {k: v for k, v in self.known.items() if os.path.exists(k)}  # one stat each: ~5 us
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.path, json.dumps(self.known))
            self._dirty = False
        except OSError:
            pass


def load_clip(path: str | Path, sample_rate: int, clip_s: float) -> tuple[np.ndarray, int]:
    """Mono float32 waveform of exactly ``round(clip_s * sample_rate)`` samples.

    Returns:
        (waveform (N,), n_valid): ``n_valid`` samples at the start are real audio, the rest
        is zero padding.
    Raises:
        DataError: naming the file when it is absent, cannot be decoded or holds NaN/inf samples.
    """
    path = Path(path)
    try:
        x, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (N, channels)
    except Exception as exc:
        if not path.is_file():
            raise DataError(f"{path}: audio file not found") from None
        raise DataError(f"{path}: unreadable audio ({exc})") from None
    if not np.isfinite(x).all():
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise DataError(f"{path}: {bad} non-finite (NaN/inf) sample(s); the file is corrupt, replace or remove it")
    x = x.mean(axis=1)  # downmix, (N,)
    if sr != sample_rate:
        import librosa

        x = librosa.resample(x, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq").astype(np.float32)
    n = int(round(clip_s * sample_rate))
    if len(x) > n + int(LENGTH_TOLERANCE_S * sample_rate):  # a few ms over (encoder padding): cut quietly
        raise DataError(f"{path}: {len(x) / sample_rate:.2f} s long, more than feats.clip_s = {clip_s} s: it would be "
                        "cropped and its events after the crop counted as misses; cut it into clips or raise "
                        "feats.clip_s")
    n_valid = min(len(x), n)
    if len(x) >= n:
        return np.ascontiguousarray(x[:n]), n
    out = np.zeros(n, dtype=np.float32)
    out[: len(x)] = x
    return out, n_valid


def fits_one_clip(frames: int, file_rate: int, sample_rate: int, clip_s: float) -> bool:
    """Whether a file of ``frames`` samples at ``file_rate`` Hz is one clip of ``clip_s`` seconds once
    resampled to ``sample_rate``: :func:`load_clip`'s rule (at most ``LENGTH_TOLERANCE_S`` over), the one
    rule of the length checks before training and of the window planning of longer files."""
    n = int(round(clip_s * sample_rate)) + int(LENGTH_TOLERANCE_S * sample_rate)
    return resampled_length(frames, file_rate, sample_rate) <= n


def resampled_length(frames: int, file_rate: int, sample_rate: int) -> int:
    """Samples of ``frames`` samples at ``file_rate`` once resampled to ``sample_rate``: the length
    :func:`load_clip`'s resampling gives (librosa: ``ceil(frames x sample_rate / file_rate)``)."""
    return frames if file_rate == sample_rate else int(math.ceil(frames * sample_rate / file_rate))


def stream_mono(path: str | Path, sample_rate: int, block_frames: int = 1 << 16) -> Iterator[np.ndarray]:
    """The file as mono float32 at ``sample_rate``, in consecutive blocks (any length each).

    Joined, the blocks are the signal :func:`load_clip` computes before it pads or crops (downmix,
    then soxr at librosa's ``soxr_hq`` quality; the stream resampler gives the same samples as the
    whole-file one, bar the one zero librosa may pad at the end), while at most ``block_frames``
    frames of the file are decoded at a time.

    Raises:
        DataError: naming the file when it cannot be decoded or holds NaN/inf samples.
    """
    path = Path(path)
    try:
        f = sf.SoundFile(str(path))
    except Exception as exc:
        if not path.is_file():
            raise DataError(f"{path}: audio file not found") from None
        raise DataError(f"{path}: unreadable audio ({exc})") from None
    with f:
        stream = None
        if f.samplerate != sample_rate:
            import soxr  # librosa's resampler (a librosa dependency)

            stream = soxr.ResampleStream(f.samplerate, sample_rate, 1, dtype="float32", quality="HQ")
        done = 0  # frames of the file read so far
        while True:
            try:
                x = f.read(block_frames, dtype="float32", always_2d=True)  # (n, channels)
            except Exception as exc:
                raise DataError(f"{path}: unreadable audio after {done / f.samplerate:.2f} s ({exc})") from None
            if not np.isfinite(x).all():
                first = done + int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
                raise DataError(f"{path}: non-finite (NaN/inf) sample(s), the first at {first / f.samplerate:.3f} s; "
                                "the file is corrupt, replace or remove it")
            done += len(x)
            mono = x.mean(axis=1)  # downmix, (n,)
            if stream is not None:
                mono = stream.resample_chunk(mono, last=len(x) == 0)
            if len(mono):
                yield mono
            if len(x) == 0:
                return
