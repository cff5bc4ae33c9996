"""FPD loss: the paper's equations by hand, the consistent formulation's direction, edge cases."""

from __future__ import annotations

import math

import pytest
import torch

from dcase_fpd_plugin.fpd import fpd_loss, pair_masks
from dcase_fpd_plugin.fpd.distances import cosine_similarity, euclidean_similarity, get_similarity

ALPHA = 0.1


# ---- hand computation of eq. 1-6, one pair at a time, independent of the implementation ----
def hand_similarity(a: list[float], b: list[float], distance: str) -> float:
    if distance == "euc":
        d = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))  # eq. 2
        return 1.0 / (1.0 + d)  # eq. 1
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))  # eq. 4


def hinge(x: float) -> float:
    return max(0.0, x)


def hand_pair_loss(D: float, is_positive: bool, distance: str, formulation: str, alpha: float,
                   ip_norm: bool = True) -> float:
    if formulation == "literal":
        if distance == "euc":  # eq. 3
            return D**2 if is_positive else hinge(-D + alpha)
        l_norm = (D + 1.0) ** 2 if ip_norm else 0.0  # eq. 6
        return (hinge(D + alpha) if is_positive else hinge(-D + alpha)) + l_norm  # eq. 5
    # consistent (as documented in dcase_fpd_plugin/fpd/loss.py)
    if distance == "euc":
        return (1.0 - D) ** 2 if is_positive else hinge(D - alpha)
    if is_positive:
        return hinge(alpha - D) + ((1.0 - D) ** 2 if ip_norm else 0.0)
    return hinge(D + alpha) + ((1.0 + D) ** 2 if ip_norm else 0.0)


def hand_loss(emb, pos, neg, distance, formulation, reduction, alpha=ALPHA, ip_norm=True):
    B, T, _ = emb.shape
    e = emb.tolist()
    total, n_pairs = 0.0, 0
    for t in range(T):
        for i in range(B):
            for j in range(B):
                for mask, is_positive in ((pos, True), (neg, False)):
                    if mask[t, i, j]:
                        D = hand_similarity(e[i][t], e[j][t], distance)
                        total += hand_pair_loss(D, is_positive, distance, formulation, alpha, ip_norm)
                        n_pairs += 1
    return total if reduction == "sum" else total / max(n_pairs, 1)


def make_case(seed=0, B=6, T=5, C=3, E=4, scale=1.0, dtype=torch.float64, spread=False):
    """Random embeddings (B, T, E) and pair masks from random multi-label frames.

    ``spread`` scales every third clip by 40, so that Euclidean similarities fall on both sides
    of the margin alpha (D < alpha needs d > 9).
    """
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.rand(B, T, C, generator=gen) < 0.35).float()
    pos, neg = pair_masks(labels)
    emb = scale * torch.randn(B, T, E, generator=gen, dtype=dtype)
    if spread:
        emb[::3] *= 40.0
    return emb, pos, neg


@pytest.mark.parametrize("distance", ["euc", "ip"])
@pytest.mark.parametrize("formulation", ["literal", "consistent"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_equals_hand_computation(distance, formulation, reduction):
    # every hinge is exercised in both its active and inactive part (test below)
    emb, pos, neg = make_case(spread=True)
    assert pos.any() and neg.any()
    got = fpd_loss(emb, pos, neg, distance=distance, alpha=ALPHA, formulation=formulation, reduction=reduction)
    want = hand_loss(emb, pos, neg, distance, formulation, reduction)
    assert got.item() == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_hand_case_exercises_both_sides_of_every_hinge():
    emb, pos, neg = make_case(spread=True)
    used = pos | neg
    euc, cos = euclidean_similarity(emb)[used], cosine_similarity(emb)[used]
    assert (euc < ALPHA).any() and (euc > ALPHA).any()
    assert (cos > ALPHA).any() and (cos < -ALPHA).any() and (cos.abs() < ALPHA).any()


def test_float32_matches_float64():
    emb, pos, neg = make_case(seed=1)
    for distance in ("euc", "ip"):
        a = fpd_loss(emb, pos, neg, distance=distance)
        b = fpd_loss(emb.float(), pos, neg, distance=distance)
        assert b.item() == pytest.approx(a.item(), rel=1e-5)


def test_similarities_match_torch_reference():
    emb, _, _ = make_case(seed=2, B=5, T=4, E=7)
    x = emb.transpose(0, 1)  # (T, B, E)
    euc = 1.0 / (1.0 + torch.cdist(x, x))
    cos = torch.nn.functional.cosine_similarity(x.unsqueeze(2), x.unsqueeze(1), dim=-1)
    assert torch.allclose(euclidean_similarity(emb), euc, atol=1e-7)
    assert torch.allclose(cosine_similarity(emb), cos, atol=1e-12)


def mean_similarity(emb, mask, distance):
    with torch.no_grad():
        return get_similarity(distance)(emb)[mask].mean().item()


def balanced_case(seed=5, B=8, T=6, E=16, scale=1.0):
    """One event per frame, from two classes: about as many positive as negative pairs.

    Why balanced and unit scale: with Euclidean similarity, a negative pair with D > alpha is
    pushed with slope D^2 in d, a positive pair pulled with 2 (1 - D) D^2, which is weaker
    for D > 1/2. With many more negatives than positives (real batches: ~40:1), or with
    embeddings so small that D > 1/2, a step first expands the whole cloud, positives
    included, until negatives pass the margin (d = 9). That is the dynamics of the Euclidean
    loss, not its direction; this case tests the direction.
    """
    gen = torch.Generator().manual_seed(seed)
    cls = torch.randint(0, 2, (B, T), generator=gen)
    labels = torch.nn.functional.one_hot(cls, 2).float()
    pos, neg = pair_masks(labels)
    emb = scale * torch.randn(B, T, E, generator=gen)
    return emb, pos, neg


@pytest.mark.parametrize("distance", ["euc", "ip"])
def test_one_step_pulls_positives_together_and_pushes_negatives_apart(distance):
    emb0, pos, neg = balanced_case()
    assert 0.5 < pos.sum() / neg.sum() < 2.0
    emb = torch.nn.Parameter(emb0.clone())
    before_pos, before_neg = mean_similarity(emb, pos, distance), mean_similarity(emb, neg, distance)
    opt = torch.optim.SGD([emb], lr=5.0)  # the mean over ~170 pairs makes gradients small
    loss = fpd_loss(emb, pos, neg, distance=distance)  # consistent, mean
    loss.backward()
    opt.step()
    after_pos, after_neg = mean_similarity(emb, pos, distance), mean_similarity(emb, neg, distance)
    # D is a similarity: positives closer = larger D, negatives farther = smaller D
    assert after_pos > before_pos
    assert after_neg < before_neg
    assert fpd_loss(emb, pos, neg, distance=distance).item() < loss.item()


@pytest.mark.parametrize("distance", ["euc", "ip"])
def test_each_term_moves_its_pairs_the_right_way(distance):
    """Positive pairs alone get closer, negative pairs alone farther (realistic labels)."""
    emb0, pos, neg = make_case(seed=6, B=10, T=6, C=3, E=16, scale=0.1, dtype=torch.float32)
    none = torch.zeros_like(pos)
    for mask, sign in ((pos, 1.0), (neg, -1.0)):
        emb = torch.nn.Parameter(emb0.clone())
        before = mean_similarity(emb, mask, distance)
        args = (mask, none) if sign > 0 else (none, mask)
        fpd_loss(emb, *args, distance=distance).backward()
        with torch.no_grad():
            emb -= 1.0 * emb.grad
        assert sign * (mean_similarity(emb, mask, distance) - before) > 0


@pytest.mark.parametrize("distance", ["euc", "ip"])
def test_literal_pushes_positives_apart(distance):
    """The printed equations, read with D a similarity, do the opposite for positives."""
    emb0, pos, neg = balanced_case()
    emb = torch.nn.Parameter(emb0.clone())
    before = mean_similarity(emb, pos, distance)
    opt = torch.optim.SGD([emb], lr=5.0)
    fpd_loss(emb, pos, neg, distance=distance, formulation="literal").backward()
    opt.step()
    assert mean_similarity(emb, pos, distance) < before


@pytest.mark.parametrize("distance", ["euc", "ip"])
@pytest.mark.parametrize("formulation", ["literal", "consistent"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_zero_pairs_give_zero_loss_and_finite_zero_gradients(distance, formulation, reduction):
    emb = torch.randn(4, 3, 5, requires_grad=True)
    none = torch.zeros(3, 4, 4, dtype=torch.bool)
    loss = fpd_loss(emb, none, none, distance=distance, formulation=formulation, reduction=reduction)
    assert loss.requires_grad  # still connected to the graph
    assert loss.item() == 0.0
    loss.backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all() and (emb.grad == 0).all()


@pytest.mark.parametrize("distance", ["euc", "ip"])
def test_degenerate_frames_give_finite_gradients(distance):
    """Identical frames (d = 0) and zero-norm frames must not produce inf/nan gradients."""
    emb = torch.randn(3, 2, 4)
    emb[1] = emb[0]  # clip 1 == clip 0: d = 0, D = 1
    emb[2, 0] = 0.0  # a zero-norm frame
    emb.requires_grad_(True)
    labels = torch.tensor([[[1.0], [1.0]], [[1.0], [1.0]], [[1.0], [0.0]]])
    pos, neg = pair_masks(labels)
    assert pos[0, 0, 1] and pos[0, 0, 2]
    for formulation in ("literal", "consistent"):
        emb.grad = None
        loss = fpd_loss(emb, pos, neg, distance=distance, formulation=formulation)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(emb.grad).all()
    assert torch.isfinite(cosine_similarity(emb)).all()


def test_mean_is_sum_over_pairs_used():
    emb, pos, neg = make_case(seed=7)
    n = int(pos.sum() + neg.sum())
    for distance in ("euc", "ip"):
        s = fpd_loss(emb, pos, neg, distance=distance, reduction="sum")
        m = fpd_loss(emb, pos, neg, distance=distance, reduction="mean")
        assert m.item() == pytest.approx(s.item() / n)


def test_unused_pairs_do_not_matter():
    gen = torch.Generator().manual_seed(8)
    labels = (torch.rand(6, 5, 3, generator=gen) < 0.35).float()
    valid = torch.ones(6, 5, dtype=torch.bool)
    valid[2, 3] = False  # frame t=3 of clip 2 takes part in no pair
    pos, neg = pair_masks(labels, valid)
    emb = torch.randn(6, 5, 4, generator=gen, dtype=torch.float64)
    moved = emb.clone()
    moved[2, 3] += 10.0
    for distance in ("euc", "ip"):
        assert fpd_loss(moved, pos, neg, distance=distance).item() == pytest.approx(
            fpd_loss(emb, pos, neg, distance=distance).item()
        )
    moved[2, 2] += 10.0  # a frame that is used changes the loss
    assert fpd_loss(moved, pos, neg).item() != pytest.approx(fpd_loss(emb, pos, neg).item())


def test_bad_arguments_name_the_argument():
    emb, pos, neg = make_case()
    with pytest.raises(ValueError, match="distance"):
        fpd_loss(emb, pos, neg, distance="cosine")
    with pytest.raises(ValueError, match="formulation"):
        fpd_loss(emb, pos, neg, formulation="paper")
    with pytest.raises(ValueError, match="reduction"):
        fpd_loss(emb, pos, neg, reduction="max")
    with pytest.raises(ValueError, match="alpha"):
        fpd_loss(emb, pos, neg, alpha=1.5)
    with pytest.raises(ValueError, match="positive"):
        fpd_loss(emb, pos[:, :-1], neg)
    with pytest.raises(ValueError, match="embeddings"):
        fpd_loss(emb[0], pos, neg)


@pytest.mark.parametrize("formulation", ["literal", "consistent"])
def test_ip_without_norm_term_equals_hand_computation(formulation):
    emb, pos, neg = make_case(seed=3, spread=True)
    got = fpd_loss(emb, pos, neg, distance="ip", formulation=formulation, ip_norm=False)
    want = hand_loss(emb, pos, neg, "ip", formulation, "mean", ip_norm=False)
    assert got.item() == pytest.approx(want, rel=1e-9)
    with_norm = fpd_loss(emb, pos, neg, distance="ip", formulation=formulation)
    assert with_norm.item() > got.item() + 0.1  # the norm term is really gone
    # euc has no norm term: the flag changes nothing
    assert fpd_loss(emb, pos, neg, distance="euc", ip_norm=False).item() == fpd_loss(emb, pos, neg, distance="euc").item()


def test_ip_without_norm_term_is_met_by_several_orthogonal_groups():
    """Four groups on orthogonal axes: positives at cosine 1, negatives at cosine 0. Without the
    norm term only the negative hinge [0 + alpha]_+ = alpha remains; with it, (1 + 0)^2 = 1 per
    negative keeps the loss near 1 (cosine -1 for every negative pair is out of reach)."""
    labels = torch.zeros(8, 1, 4)
    for i in range(8):
        labels[i, 0, i % 4] = 1.0
    pos, neg = pair_masks(labels)
    emb = torch.eye(4, dtype=torch.float64)[torch.arange(8) % 4].unsqueeze(1)  # (8, 1, 4)
    no_norm = fpd_loss(emb, pos, neg, distance="ip", ip_norm=False).item()
    with_norm = fpd_loss(emb, pos, neg, distance="ip").item()
    assert no_norm == pytest.approx(ALPHA * neg.sum().item() / (pos.sum() + neg.sum()).item())
    assert with_norm > 0.8


@pytest.mark.parametrize("distance", ["euc", "ip"])
def test_bf16_autocast_gives_the_float32_loss_and_gradient(distance):
    """Close embeddings holding bf16 values (12 clips x 40 frames, as a bf16 projection gives them):
    under bf16 autocast the loss and its gradient are the float32 computation's within 1e-3
    relative (computing the distances in bf16 was 22 % / 70 % off for euc)."""
    gen = torch.Generator().manual_seed(0)
    labels = (torch.rand(12, 40, 3, generator=gen) < 0.3).float()
    pos, neg = pair_masks(labels)
    base = torch.randn(1, 40, 64, generator=gen)
    emb = (base + 0.05 * torch.randn(12, 40, 64, generator=gen)).to(torch.bfloat16).float()

    def loss_and_grad(autocast: bool):
        x = emb.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = fpd_loss(x, pos, neg, distance=distance, ip_norm=False)
        loss.backward()
        return loss.detach(), x.grad

    ref_loss, ref_grad = loss_and_grad(False)
    loss, grad = loss_and_grad(True)
    assert loss.dtype == torch.float32
    assert abs(float(loss - ref_loss)) <= 1e-3 * abs(float(ref_loss))
    assert float((grad - ref_grad).norm()) <= 1e-3 * float(ref_grad.norm())
    # bf16 embeddings (the projection's output under autocast) are cast up: a float32 loss
    x16 = emb.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16 = fpd_loss(x16, pos, neg, distance=distance, ip_norm=False)
    assert loss16.dtype == torch.float32
    assert abs(float(loss16.detach() - ref_loss)) <= 1e-3 * abs(float(ref_loss))


def test_pair_count_is_never_a_low_precision_float():
    """33,439 pairs (a bf16 count would be 33,536), one of them paying alpha: under bf16 autocast
    the mean is alpha / 33,439."""
    n = 33_439
    emb = torch.ones(2, n, 2)  # (B, T, E): identical frames, cosine 1, no loss
    emb[1, 0] = torch.tensor([1.0, -1.0])  # one orthogonal pair: [alpha - 0]_+ = alpha
    pos = torch.zeros(n, 2, 2, dtype=torch.bool)
    pos[:, 0, 1] = True
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fpd_loss(emb.to(torch.bfloat16), pos, torch.zeros_like(pos), distance="ip", ip_norm=False)
    assert float(loss) == pytest.approx(ALPHA / n, rel=1e-5)
