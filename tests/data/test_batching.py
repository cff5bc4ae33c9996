from collections import Counter

import pytest

from dcase_fpd_plugin.data.batching import MixedSourceBatchSampler


def test_fixed_slices_per_source():
    s = MixedSourceBatchSampler([10, 7, 20], [3, 2, 4], seed=1)
    batches = list(s)
    assert len(batches) == len(s) == min(10 // 3, 7 // 2, 20 // 4)
    for b in batches:
        assert len(b) == 9
        assert all(i < 10 for i in b[:3]) and all(10 <= i < 17 for i in b[3:5]) and all(i >= 17 for i in b[5:])
    flat = [i for b in batches for i in b]
    assert max(Counter(flat).values()) == 1  # no clip twice in an epoch


def test_epochs_reshuffle_and_are_reproducible():
    s = MixedSourceBatchSampler([12, 12], [4, 4], seed=0)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    s.set_epoch(0)
    assert list(s) == e0 and e0 != e1


def test_ranks_split_batches():
    full = list(MixedSourceBatchSampler([16, 16], [2, 2], seed=3))
    r0 = list(MixedSourceBatchSampler([16, 16], [2, 2], seed=3, rank=0, world_size=2))
    r1 = list(MixedSourceBatchSampler([16, 16], [2, 2], seed=3, rank=1, world_size=2))
    assert r0 == full[0::2] and r1 == full[1::2]


def test_source_smaller_than_slice_refused():
    with pytest.raises(ValueError, match="fewer than its batch slice"):
        MixedSourceBatchSampler([2, 10], [4, 4])
