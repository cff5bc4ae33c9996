"""A device-resident feature store: the training clips' features and labels as stacked tensors.

Per step, the disk-cache path loads every clip of the batch from its ``.npz`` cache entry, encodes
its labels in Python and copies the stacked batch to the device; at GPU speeds that, not the model,
bounds training. With the store, every training clip is loaded once (at the start of ``fit``),
stacked, and moved to the training device; the DataLoader then yields only the indices chosen by
:class:`~dcase_fpd_plugin.data.batching.MixedSourceBatchSampler` (:class:`IndexBatch`), and the
batch is gathered on the device (:meth:`FeatureStore.gather`). The indices and their order are the
disk path's, so for a given seed the batches are the same (exactly, with ``float32`` storage).

A built store is kept beside the feature cache (``<cache>/stores/<key>.pt``, keyed by every clip's
path, size and modification time, labels and the settings) and memory-mapped by the next run with
the same training clips, so that it starts without reading every clip again.

Recipe keys: ``data.feature_store`` (``auto``: use it when it fits ``data.feature_store_max_gb``;
``off``: the disk-cache path) and ``data.feature_store_dtype`` (``float32``: exact;
``float16``: half the memory, features rounded to ~0.03 dB).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch

from ..atomic import atomic_write
from ..branch import Batch

STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16}


@dataclass
class IndexBatch:
    """What the DataLoader yields on the store path: clip indices into the store, and their file
    names and sources on the host (so nothing needs to come back from the device)."""

    index: torch.Tensor  # (B,) long, indices into the concatenated training sets
    filenames: list[str] = field(default_factory=list)
    source_host: torch.Tensor | None = None  # (B,) long, on the CPU
    group_host: torch.Tensor | None = None  # (B,) long, on the CPU: the clips' sources in data.sources

    def to(self, device: torch.device | str, **_: object) -> "IndexBatch":
        return IndexBatch(self.index.to(device, non_blocking=True), self.filenames, self.source_host,
                          self.group_host)

    def pin_memory(self) -> "IndexBatch":
        """Pinned indices, so that the copy to the device is asynchronous (DataLoader pin_memory)."""
        return IndexBatch(self.index.pin_memory(), self.filenames, self.source_host, self.group_host)

    def __len__(self) -> int:
        return int(self.index.shape[0])


_TENSORS = ("feats", "strong", "weak", "has_strong", "has_weak", "source", "n_valid", "group", "class_mask")


def store_key(datasets: Sequence, dtype: torch.dtype) -> str:
    """What a store is built from: every clip's path, size and modification time, its labels and
    source, the feature settings, the label grid and the dtype (any change gives another key)."""
    parts: list = [str(dtype)]
    for ds in datasets:
        parts += [ds.source, ds.features.settings, ds.encoder.classes, ds.encoder.frame_hop_s, ds.encoder.n_frames]
        if getattr(ds, "group", ds.source) != ds.source or getattr(ds, "class_mask", None) is not None:
            parts += [ds.group, None if ds.class_mask is None else ds.class_mask.tolist()]  # (legacy keys unchanged)
        for r in ds.records:
            st = r.path.stat()
            extra = [repr(r.segments)] if getattr(r, "segments", None) is not None else []
            parts.append([str(r.path), st.st_size, st.st_mtime_ns, repr(r.events), r.tags, *extra])
    return hashlib.sha1(json.dumps(parts, default=str).encode()).hexdigest()[:20]


class FeatureStore:
    """Stacked features and labels of datasets (concatenation order), gathered by index.

    Args:
        datasets: :class:`~dcase_fpd_plugin.data.datasets.ClipDataset` s, in the order of the
            training ConcatDataset (SS, RW, UL).
        dtype: storage dtype of the features (float32 or float16).
        progress: show a tqdm bar while loading.
    """

    @classmethod
    def cached(cls, datasets: Sequence, dtype: torch.dtype, cache_dir: str | Path | None,
               progress: bool = False) -> "FeatureStore":
        """The store of ``datasets``, read from ``cache_dir/stores/<key>.pt`` when a previous run
        built the same one (memory-mapped: a second run starts without reading every clip), else
        built and written there (atomically). ``cache_dir`` None: always built."""
        if cache_dir is None:
            return cls(datasets, dtype, progress)
        path = Path(cache_dir) / "stores" / f"{store_key(datasets, dtype)}.pt"
        if path.is_file():
            try:
                state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
                return cls.from_state(state)
            except Exception:  # a partial or foreign file: rebuild it
                pass
        store = cls(datasets, dtype, progress)
        atomic_write(path, lambda tmp: torch.save(store.state(), tmp))
        return store

    def state(self) -> dict:
        return {**{k: getattr(self, k) for k in _TENSORS}, "filenames": list(self.filenames)}

    @classmethod
    def from_state(cls, state: dict) -> "FeatureStore":
        store = cls.__new__(cls)
        for k in _TENSORS:
            setattr(store, k, state[k])
        store.filenames = list(state["filenames"])
        store.source_cpu = store.source.clone()
        store.group_cpu = store.group.clone()
        store.frames = torch.arange(store.strong.shape[1])
        store.masked = not bool(store.class_mask.all())
        return store

    def __init__(self, datasets: Sequence, dtype: torch.dtype = torch.float32, progress: bool = False):
        from tqdm import tqdm

        items = []
        with tqdm(total=sum(len(ds) for ds in datasets), desc="feature store", unit="clip", leave=False,
                  disable=not progress) as bar:
            for ds in datasets:
                for i in range(len(ds)):
                    items.append(ds[i])
                    bar.update()
        if not items:
            raise ValueError("a feature store needs at least one clip")
        self.feats = torch.stack([it["feats"] for it in items]).to(dtype)  # (N, F, T_in)
        self.strong = torch.stack([it["strong"] for it in items])  # (N, T, C)
        self.weak = torch.stack([it["weak"] for it in items])  # (N, C)
        self.has_strong = torch.tensor([it["has_strong"] for it in items])  # (N,)
        self.has_weak = torch.tensor([it["has_weak"] for it in items])  # (N,)
        self.source = torch.tensor([it["source"] for it in items], dtype=torch.long)  # (N,)
        self.source_cpu = self.source.clone()  # stays on the host (batches' source_host)
        self.n_valid = torch.tensor([it["n_valid_frames"] for it in items], dtype=torch.long)  # (N,)
        self.group = torch.tensor([it.get("group", it["source"]) for it in items], dtype=torch.long)  # (N,)
        self.group_cpu = self.group.clone()
        C = self.strong.shape[2]
        self.class_mask = torch.stack([it["class_mask"] if it.get("class_mask") is not None  # (N, C)
                                       else torch.ones(C, dtype=torch.bool) for it in items])
        self.masked = not bool(self.class_mask.all())  # batches carry class_mask only when a source has one
        self.filenames = [it["filename"] for it in items]
        self.frames = torch.arange(self.strong.shape[1])  # (T,)

    def __len__(self) -> int:
        return int(self.feats.shape[0])

    @property
    def nbytes(self) -> int:
        return sum(t.element_size() * t.numel() for t in self._tensors().values())

    @property
    def device(self) -> torch.device:
        return self.feats.device

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in ("feats", "strong", "weak", "has_strong", "has_weak", "source",
                                              "n_valid", "frames", "group", "class_mask")}

    def to(self, device: torch.device | str) -> "FeatureStore":
        """Move every tensor to ``device`` (in place); returns self."""
        for name, tensor in self._tensors().items():
            setattr(self, name, tensor.to(device))
        return self

    def index_batch(self, indices: Sequence[int]) -> IndexBatch:
        """The host-side :class:`IndexBatch` of the clip indices of one batch (the DataLoader's collate)."""
        index = torch.as_tensor(list(indices), dtype=torch.long)
        return IndexBatch(index, [self.filenames[i] for i in index.tolist()], self.source_cpu[index],
                          self.group_cpu[index])

    def gather(self, batch: IndexBatch) -> Batch:
        """The :class:`~dcase_fpd_plugin.branch.Batch` of ``batch.index``, on the store's device,
        features in float32 (no host synchronisation)."""
        idx = batch.index.to(self.device, non_blocking=True)
        n_valid = self.n_valid[idx]
        return Batch(
            feats=self.feats[idx].float(),  # (B, F, T_in)
            strong=self.strong[idx],  # (B, T, C)
            has_strong=self.has_strong[idx],
            weak=self.weak[idx],  # (B, C)
            has_weak=self.has_weak[idx],
            source=self.source[idx],
            frame_valid=self.frames[None, :] < n_valid[:, None],  # (B, T)
            filenames=list(batch.filenames),
            source_host=batch.source_host,
            class_mask=self.class_mask[idx] if self.masked else None,  # (B, C)
            group_host=batch.group_host,
        )


def store_nbytes(n_clips: int, n_mels: int, n_frames_in: int, n_frames: int, n_classes: int,
                 dtype: torch.dtype = torch.float32) -> int:
    """Bytes a store of ``n_clips`` clips will take (features dominate)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    return n_clips * (n_mels * n_frames_in * itemsize + 4 * (n_frames * n_classes + n_classes) + 2 + 16)


__all__ = ["FeatureStore", "IndexBatch", "STORE_DTYPES", "store_nbytes"]
