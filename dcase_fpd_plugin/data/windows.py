"""Recordings of any length and sample rate for inference: windows of the model's clip length.

A file no longer than ``feats.clip_s`` (plus :func:`~.audio.load_clip`'s 0.1 s of tolerance) is one
clip, read exactly as training and testing read it (zero-padded to the clip length). A longer file
is cut into windows of the clip length whose starts lie on the model's output frame grid, ``stride``
output frames apart, the last one ending at the file's last frame; the windows' frame probabilities
are averaged where they overlap
(:class:`~dcase_fpd_plugin.evaluation.postprocessing.OverlapAdd`), so that the scores cover the whole
file on one grid: frame ``t`` covers ``[t x frame_hop_s, (t + 1) x frame_hop_s)`` from the file's start.

A windowed file is decoded and resampled block by block (:func:`~.audio.stream_mono`): memory holds
about one window of audio, whatever the file's length. Files whose rate is below the model's are
resampled up as in training, with a warning naming the file and both rates (the band above half the
file's rate is empty: detections on band-limited audio are unreliable); higher rates are resampled quietly.

Each window is a dataset item like :class:`~.datasets.ClipDataset`'s (unlabelled), its ``filename``
the window's key ``<file name>#<window index>`` (:func:`window_key`, :func:`split_key`). Validation and
test read their clips longer than ``feats.clip_s`` in the same windows (:class:`WindowedClips`, labelled).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import IterableDataset, get_worker_info

from ..branch import SOURCE_SS, SOURCE_UL
from .audio import fits_one_clip, resampled_length, stream_mono
from .datasets import ClipDataset, ClipRecord
from .features import FeatureExtractor
from .labels import LabelEncoder, weak_from_strong
from .tsv import DataError

DEFAULT_OVERLAP = 0.5  # share of a window shared with the next one


@dataclass(frozen=True)
class FilePlan:
    """How one file is read: as one clip, or in windows.

    Attributes:
        path: the audio file.
        file_rate: its sample rate.
        duration_s: its length in seconds (from its header).
        n_frames: output frames of its scores (a clip's T for a file read as one clip).
        starts: the first output frame of each window (``(0,)`` for one clip).
        windowed: False: one clip, padded or cropped to ``feats.clip_s`` as training reads it.
    """

    path: Path
    file_rate: int
    duration_s: float
    n_frames: int
    starts: tuple[int, ...]
    windowed: bool

    @property
    def name(self) -> str:
        return self.path.name


def window_key(name: str, index: int) -> str:
    """The dataset key of window ``index`` of file ``name``."""
    return f"{name}#{index}"


def split_key(key: str) -> tuple[str, int]:
    """(file name, window index) of a :func:`window_key` (file names may hold ``#``)."""
    name, _, index = key.rpartition("#")
    return name, int(index)


def window_starts(n_frames: int, window_frames: int, stride: int) -> list[int]:
    """First frames of windows of ``window_frames`` frames, ``stride`` apart, covering ``n_frames``
    frames; the last window ends at frame ``n_frames`` (it may overlap its neighbour more)."""
    if stride < 1 or window_frames < 1:
        raise ValueError(f"window of {window_frames} frames and stride {stride}: both must be >= 1")
    if n_frames <= window_frames:
        return [0]
    starts = list(range(0, n_frames - window_frames, stride))
    return starts + [n_frames - window_frames]


def window_stride(window_frames: int, overlap: float) -> int:
    """Frames between window starts for ``overlap`` (share of a window, in [0, 1))."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"window overlap must lie in [0, 1), got {overlap}")
    return max(1, window_frames - int(round(overlap * window_frames)))


def plan_file(path: str | Path, feats: Mapping[str, Any], window_frames: int, frame_hop_s: float,
              overlap: float = DEFAULT_OVERLAP) -> FilePlan:
    """The :class:`FilePlan` of one (readable) file for a model of ``window_frames`` output frames
    per ``feats.clip_s`` clip and ``frame_hop_s`` seconds per frame. Warns when the file's rate is
    below ``feats.sample_rate`` (:func:`plan_folder` names such files)."""
    path = Path(path)
    sr, clip_s = int(feats["sample_rate"]), float(feats["clip_s"])
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise DataError(f"{path}: unreadable audio ({exc})") from None
    duration_s = info.frames / info.samplerate
    length = resampled_length(info.frames, info.samplerate, sr)
    if fits_one_clip(info.frames, info.samplerate, sr, clip_s):
        return FilePlan(path, info.samplerate, duration_s, window_frames, (0,), False)
    frame_samples = int(round(frame_hop_s * sr))
    n_frames = math.ceil(length / frame_samples)
    starts = window_starts(n_frames, window_frames, window_stride(window_frames, overlap))
    return FilePlan(path, info.samplerate, duration_s, n_frames, tuple(starts), True)


def window_waves(plan: FilePlan, sample_rate: int, window_samples: int, frame_samples: int
                 ) -> Iterator[tuple[np.ndarray, int]]:
    """(waveform (window_samples,), n_valid) of each window of a windowed ``plan``, in order: the
    samples from ``start x frame_samples`` on, zero-padded past the file's end (``n_valid`` real ones).
    Reads the file once, as a stream; keeps at most a window and a block of audio."""
    blocks = stream_mono(plan.path, sample_rate)
    buf = np.zeros(0, dtype=np.float32)
    buf_start = 0  # sample index of buf[0]
    ended = False
    for start in plan.starts:
        first = start * frame_samples
        while not ended and buf_start + len(buf) < first + window_samples:
            block = next(blocks, None)
            if block is None:
                ended = True
            else:
                buf = np.concatenate([buf, block])
        if first > buf_start:  # drop what no later window needs
            buf = buf[first - buf_start:]
            buf_start = first
        wave = buf[:window_samples]
        n_valid = len(wave)
        if n_valid < window_samples:
            wave = np.concatenate([wave, np.zeros(window_samples - n_valid, dtype=np.float32)])
        yield np.ascontiguousarray(wave, dtype=np.float32), n_valid


class WindowDataset(IterableDataset):
    """The windows of every file of ``plans`` as unlabelled dataset items (see the module docstring).

    With DataLoader workers, each worker reads every n-th file.
    """

    def __init__(self, plans: Sequence[FilePlan], features: FeatureExtractor, encoder: LabelEncoder):
        self.plans = list(plans)
        self.features, self.encoder = features, encoder
        self.clips = ClipDataset([ClipRecord(p.path) for p in self.plans], SOURCE_UL, features, encoder)

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        first, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        for i in range(first, len(self.plans), step):
            plan = self.plans[i]
            if not plan.windowed:  # one clip, as training and testing read it
                item = self.clips[i]
                item["filename"] = window_key(plan.name, 0)
                yield item
                continue
            yield from self._windows(plan)

    def _windows(self, plan: FilePlan) -> Iterator[dict]:
        sr = int(self.features.settings["sample_rate"])
        frame_samples = int(round(self.encoder.frame_hop_s * sr))
        for k, (wave, n_valid) in enumerate(window_waves(plan, sr, self.features.n_samples, frame_samples)):
            yield _window_item(self.features, self.encoder, wave, n_valid, window_key(plan.name, k))


def _window_item(features: FeatureExtractor, encoder: LabelEncoder, wave: np.ndarray, n_valid: int, key: str,
                 strong: np.ndarray | None = None) -> dict:
    """The dataset item of one window's waveform (unlabelled without ``strong``, its (T, C) labels)."""
    sr = int(features.settings["sample_rate"])
    with torch.no_grad():  # FeatureExtractor.compute's transform
        mel = features.logmel(torch.from_numpy(wave)[None])[0]
    labelled = strong is not None
    strong = strong if labelled else np.zeros((encoder.n_frames, encoder.n_classes), np.float32)
    return {
        "feats": mel.float().contiguous(),
        "strong": torch.from_numpy(strong),
        "has_strong": labelled,
        "weak": torch.from_numpy(weak_from_strong(strong)),
        "has_weak": labelled,
        "source": SOURCE_SS if labelled else SOURCE_UL,
        "n_valid_frames": min(encoder.n_frames, math.ceil(n_valid / sr / encoder.frame_hop_s)),
        "filename": key,
    }


class WindowedClips(ClipDataset):
    """A strongly-labelled validation or test set whose files longer than ``feats.clip_s`` are read in
    windows as ``dcase-fpd infer`` reads them (the same samples, windows and frame grid); its other files
    are :class:`~.datasets.ClipDataset`'s items, unchanged.

    ``plans``: the :class:`FilePlan` of each windowed file, by its index in ``records``. Window ``k`` of
    file ``name`` is an item of key :func:`window_key` ``(name, k)``, labelled with the file's events
    shifted to the window's start; :attr:`windows` maps each key to ``(name, first frame, the file's
    frames)``, to stitch the windows' outputs back into the file's
    (:class:`~dcase_fpd_plugin.evaluation.postprocessing.StitchedProbs`). Items come file by file; a
    windowed file's audio is held (resampled) while its windows are read, once per DataLoader worker
    that reads any of them.
    """

    def __init__(self, records: Sequence[ClipRecord], source: int, features: FeatureExtractor,
                 encoder: LabelEncoder, plans: Mapping[int, FilePlan], origin: str = ""):
        super().__init__(records, source, features, encoder, origin)
        self.plans = dict(plans)
        self.items: list[tuple[int, int | None]] = []  # (record, window or None: the whole clip)
        self.windows: dict[str, tuple[str, int, int]] = {}
        for i, rec in enumerate(self.records):
            plan = self.plans.get(i)
            if plan is None:
                self.items.append((i, None))
                continue
            for k, start in enumerate(plan.starts):
                self.items.append((i, k))
                self.windows[window_key(rec.path.name, k)] = (rec.path.name, start, plan.n_frames)
        self._wave: tuple[int, np.ndarray] | None = None  # (record, its resampled audio)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int) -> dict:
        i, k = self.items[j]
        if k is None:
            return super().__getitem__(i)
        rec, plan, enc = self.records[i], self.plans[i], self.encoder
        sr = int(self.features.settings["sample_rate"])
        if self._wave is None or self._wave[0] != i:
            self._wave = None  # the previous file's audio goes first
            blocks = list(stream_mono(plan.path, sr))
            self._wave = (i, np.concatenate(blocks) if blocks else np.zeros(0, np.float32))
        n, frame_samples = self.features.n_samples, int(round(enc.frame_hop_s * sr))
        first = plan.starts[k] * frame_samples  # window_waves' slice of the same stream
        wave = self._wave[1][first:first + n]
        n_valid = len(wave)
        if n_valid < n:
            wave = np.concatenate([wave, np.zeros(n - n_valid, dtype=np.float32)])
        t0 = plan.starts[k] * enc.frame_hop_s
        strong = enc.encode_strong((e.onset - t0, e.offset - t0, e.event_label) for e in rec.events or [])
        return _window_item(self.features, enc, np.ascontiguousarray(wave, dtype=np.float32), n_valid,
                            window_key(rec.path.name, k), strong)


def plan_folder(records: Sequence[ClipRecord], feats: Mapping[str, Any], window_frames: int, frame_hop_s: float,
                overlap: float = DEFAULT_OVERLAP) -> list[FilePlan]:
    """:func:`plan_file` of each record, in order; warns for each file whose rate is below
    ``feats.sample_rate`` (``dcase-fpd infer``; a run's sets are checked by the data module)."""
    window_stride(window_frames, overlap)  # a bad overlap is refused before any file is read
    plans = [plan_file(r.path, feats, window_frames, frame_hop_s, overlap) for r in records]
    sr = int(feats["sample_rate"])
    for plan in plans:
        if plan.file_rate < sr:
            warnings.warn(f"{plan.path}: sample rate {plan.file_rate} Hz, below the model's {sr} Hz: resampled up, "
                          f"but it holds nothing above {plan.file_rate / 2:g} Hz, which the model was trained "
                          "with; detections on band-limited audio are unreliable", UserWarning, stacklevel=2)
    return plans
