"""Batches that mix sources in fixed slices, like DESED_task's ``[synth, weak, unlabelled]``.

The datasets are concatenated (SS first, then RW, then UL); every batch holds exactly
``batch_sizes[k]`` clips of source ``k``, in that order. An epoch ends when the smallest
source (relative to its slice) is used up, as in DESED_task's ConcatDatasetBatchSampler;
the other sources are reshuffled every epoch so all their clips are seen over epochs.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class MixedSourceBatchSampler(Sampler[list[int]]):
    """Yields lists of indices into the concatenation of the source datasets.

    Args:
        sizes: clips per source dataset, in concatenation order.
        batch_sizes: clips per batch from each source (0 = source unused).
        seed: shuffling seed; epoch ``e`` uses ``(seed, e)``.
        rank, world_size: under DDP each rank takes every ``world_size``-th batch.
    """

    def __init__(self, sizes: Sequence[int], batch_sizes: Sequence[int], seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if len(sizes) != len(batch_sizes):
            raise ValueError(f"{len(sizes)} sources but {len(batch_sizes)} batch sizes")
        for n, b in zip(sizes, batch_sizes):
            if b > 0 and n < b:
                raise ValueError(f"a source has {n} clips, fewer than its batch slice of {b}")
        if sum(batch_sizes) == 0:
            raise ValueError("all batch sizes are 0")
        self.sizes, self.batch_sizes = list(sizes), list(batch_sizes)
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(int)
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _n_batches_total(self) -> int:
        return min(n // b for n, b in zip(self.sizes, self.batch_sizes) if b > 0)

    def __len__(self) -> int:
        return self._n_batches_total() // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        perms = [rng.permutation(n) + off for n, off in zip(self.sizes, self.offsets)]
        n_total = len(self) * self.world_size
        for k in range(self.rank, n_total, self.world_size):
            batch: list[int] = []
            for perm, b in zip(perms, self.batch_sizes):
                batch.extend(int(i) for i in perm[k * b:(k + 1) * b])
            yield batch
