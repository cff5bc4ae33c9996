"""Pair masks against a brute-force loop over (t, i, j)."""

from __future__ import annotations

import pytest
import torch

from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, SOURCE_UL
from dcase_fpd_plugin.fpd import pair_masks
from dcase_fpd_plugin.fpd.sampler import SameTimePairSampler

NAME = {SOURCE_SS: "SS", SOURCE_RW: "RW", SOURCE_UL: "UL"}


def brute_force(labels, valid, background_pairs, source=None, source_pairs=None):
    """Reference masks from the definition, one frame pair at a time."""
    B, T, C = labels.shape
    pos = torch.zeros(T, B, B, dtype=torch.bool)
    neg = torch.zeros(T, B, B, dtype=torch.bool)
    allowed_combos = None
    if source_pairs is not None:
        allowed_combos = {frozenset(s.split("-")) for s in source_pairs}
    for t in range(T):
        for i in range(B):
            for j in range(i + 1, B):
                if valid is not None and not (valid[i, t] and valid[j, t]):
                    continue
                if allowed_combos is not None:
                    combo = frozenset((NAME[int(source[i])], NAME[int(source[j])]))
                    if "UL" in combo or combo not in allowed_combos:
                        continue
                yi = {c for c in range(C) if labels[i, t, c] == 1}
                yj = {c for c in range(C) if labels[j, t, c] == 1}
                if yi and yi == yj:
                    pos[t, i, j] = True
                elif not yi and not yj:
                    pos[t, i, j] = background_pairs == "positive"
                elif not (yi & yj):
                    neg[t, i, j] = True
    return pos, neg


def random_labels(gen, B=7, T=9, C=3, p=0.35):
    return (torch.rand(B, T, C, generator=gen) < p).float()


@pytest.mark.parametrize("background_pairs", ["ignore", "positive"])
@pytest.mark.parametrize("with_valid", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pair_masks_equal_brute_force(background_pairs, with_valid, seed):
    gen = torch.Generator().manual_seed(seed)
    labels = random_labels(gen)
    valid = (torch.rand(labels.shape[:2], generator=gen) < 0.8) if with_valid else None
    pos, neg = pair_masks(labels, valid, background_pairs=background_pairs)
    ref_pos, ref_neg = brute_force(labels, valid, background_pairs)
    assert pos.shape == neg.shape == (labels.shape[1], labels.shape[0], labels.shape[0])
    assert pos.dtype == neg.dtype == torch.bool
    assert torch.equal(pos, ref_pos)
    assert torch.equal(neg, ref_neg)
    # the random input exercises every case
    assert ref_pos.any() and ref_neg.any()


def test_masks_only_above_diagonal_and_disjoint():
    gen = torch.Generator().manual_seed(3)
    labels = random_labels(gen, B=6, T=5, C=2, p=0.5)
    pos, neg = pair_masks(labels, background_pairs="positive")
    lower_or_diag = ~torch.ones(6, 6, dtype=torch.bool).triu(1)
    assert not (pos & lower_or_diag).any() and not (neg & lower_or_diag).any()
    assert not (pos & neg).any()


def test_known_cases():
    # clips: 0 = {A}, 1 = {A}, 2 = {A, B}, 3 = {}, 4 = {}, 5 = {B}
    labels = torch.tensor([[1, 0], [1, 0], [1, 1], [0, 0], [0, 0], [0, 1]], dtype=torch.float)
    labels = labels[:, None, :]  # T = 1
    pos, neg = pair_masks(labels)
    assert pos[0, 0, 1] and not neg[0, 0, 1]  # identical
    assert not pos[0, 0, 2] and not neg[0, 0, 2]  # partial overlap: ignored
    assert neg[0, 0, 3]  # event vs background
    assert not pos[0, 3, 4] and not neg[0, 3, 4]  # background vs background: ignored
    assert neg[0, 0, 5]  # disjoint events
    pos_bg, _ = pair_masks(labels, background_pairs="positive")
    assert pos_bg[0, 3, 4]


@pytest.mark.parametrize(
    "source_pairs",
    [["SS-SS", "RW-RW", "SS-RW"], ["SS-SS"], ["RW-RW"], ["SS-RW"], ["RW-SS", "SS-SS"], []],
)
def test_sampler_source_restriction_equals_brute_force(source_pairs):
    gen = torch.Generator().manual_seed(4)
    labels = random_labels(gen, B=9, T=6)
    valid = torch.rand(labels.shape[:2], generator=gen) < 0.85
    source = torch.tensor([SOURCE_SS, SOURCE_RW, SOURCE_UL, SOURCE_SS, SOURCE_RW, SOURCE_RW, SOURCE_SS, SOURCE_UL, SOURCE_SS])
    for background_pairs in ("ignore", "positive"):
        sampler = SameTimePairSampler(background_pairs=background_pairs, source_pairs=source_pairs)
        pos, neg = sampler(labels, valid, source)
        ref_pos, ref_neg = brute_force(labels, valid, background_pairs, source, source_pairs)
        assert torch.equal(pos, ref_pos) and torch.equal(neg, ref_neg)


def test_unlabelled_clips_never_pair():
    labels = torch.ones(4, 3, 2)
    source = torch.tensor([SOURCE_UL, SOURCE_SS, SOURCE_SS, SOURCE_UL])
    pos, neg = SameTimePairSampler()(labels, None, source)
    assert pos[:, 1, 2].all()
    assert not pos[:, 0].any() and not pos[:, :, 3].any() and not neg.any()


def test_default_sampler_uses_all_sources():
    assert SameTimePairSampler().source_pairs == ("SS-SS", "RW-RW", "SS-RW")
    s = SameTimePairSampler.from_config({"background_pairs": "positive", "source_pairs": ["SS-SS"]})
    assert s.background_pairs == "positive" and s.source_pairs == ("SS-SS",)


def test_bad_arguments_name_the_argument():
    labels = torch.zeros(3, 4, 2)
    with pytest.raises(ValueError, match="frame_labels"):
        pair_masks(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="valid"):
        pair_masks(labels, torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="background_pairs"):
        pair_masks(labels, background_pairs="negative")
    with pytest.raises(ValueError, match="source_pairs"):
        SameTimePairSampler(source_pairs=["SS-UL"])
    with pytest.raises(ValueError, match="source_pairs"):
        SameTimePairSampler(source_pairs="SS-SS")
    with pytest.raises(ValueError, match="source"):
        SameTimePairSampler()(labels, None, torch.zeros(4, dtype=torch.long))


def test_a_mixed_frame_takes_part_in_no_pair():
    """A frame mixed as 0.7 A + 0.3 B and a frame of B at the same time: B is audible in both, so
    they make no pair (thresholding the soft label at 0.5 made them a negative)."""
    labels = torch.tensor([[[0.7, 0.3]], [[0.0, 1.0]], [[1.0, 0.0]]])  # (B=3, T=1, C=2)
    pos, neg = pair_masks(labels)
    assert not pos[0, 0, 1] and not neg[0, 0, 1]  # mixed vs B: no pair
    assert not pos[0, 0, 2] and not neg[0, 0, 2]  # mixed vs A: no pair either
    assert neg[0, 1, 2]  # the two certain frames still pair (B vs A: negative)


def test_certain_frames_tolerate_rounding_and_reject_every_soft_label():
    from dcase_fpd_plugin.fpd.sampler import CERTAIN_TOL, certain_frames

    lam = torch.tensor(0.3)
    both = lam * 1.0 + (1.0 - lam) * 1.0  # a class both clips hold: 1 up to float32 rounding
    labels = torch.tensor([[[float(both), 0.0], [1.0, 2e-5], [0.5, 0.0], [1.0, 0.999], [0.0, 0.01]]])
    assert certain_frames(labels).tolist() == [[True, True, False, False, False]]
    assert CERTAIN_TOL < 1e-3
    # a mixed pair of identical label sets (both hold A only) is still a positive
    pos, _ = pair_masks(torch.tensor([[[float(both), 0.0]], [[1.0, 0.0]]]))
    assert pos[0, 0, 1]


def test_soft_labels_equal_brute_force_on_their_certain_frames():
    """Random soft labels: the masks are the brute force's over the frames whose labels are 0 or 1."""
    gen = torch.Generator().manual_seed(5)
    labels = random_labels(gen, B=8, T=6, C=3, p=0.4)
    soft = torch.rand(labels.shape, generator=gen) < 0.1
    labels = torch.where(soft, torch.rand(labels.shape, generator=gen) * 0.98 + 0.01, labels)
    valid = ~((labels > 0) & (labels < 1)).any(-1)
    pos, neg = pair_masks(labels)
    ref_pos, ref_neg = brute_force(labels, valid, "ignore")
    assert torch.equal(pos, ref_pos) and torch.equal(neg, ref_neg)
    assert (~valid).any() and ref_neg.any()
