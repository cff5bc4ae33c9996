"""The Frame Pairwise Distance (FPD) loss (paper, section 2.4).

Three swappable parts, as in metric-learning libraries:

1. a similarity (``distances.py``): embeddings (B, T, E) -> D (T, B, B);
2. per-pair terms (this module): D -> loss of each positive and each negative pair;
3. a reduction (this module): per-pair losses -> one scalar (``"mean"`` or ``"sum"``).

The pair masks come from a pair sampler (``sampler.py``).

Formulations (D is a *similarity*; alpha the margin, 0 <= alpha <= 1):

``literal``: the paper's equations exactly as printed.
    euc (eq. 3):    positive: D^2                       negative: [alpha - D]_+
    ip  (eq. 5-6):  positive: [D + alpha]_+ + (D + 1)^2 negative: [alpha - D]_+ + (D + 1)^2
    (the L_norm term (D + 1)^2 of eq. 6 is added once for every positive and negative pair).
    Read with D a similarity, these push positives apart and pull negatives together.

``consistent`` (default): the same shapes with the signs that pull positives together and
push negatives apart.
    euc:  positive: (1 - D)^2                      negative: [D - alpha]_+
          Positives are pulled to D = 1 (d = 0) by a square, as D_pos^2 pulls to 0 in eq. 3;
          negatives pay a linear hinge while their similarity exceeds the margin alpha, i.e.
          until d >= (1 - alpha) / alpha (= 9 embedding units at alpha = 0.1).
          Each term lies in [0, 1].
    ip:   positive: [alpha - D]_+ + (1 - D)^2      negative: [D + alpha]_+ + (1 + D)^2
          Eq. 5 with the roles of the two hinges mirrored (D -> -D): positives must reach
          cosine >= alpha, negatives cosine <= -alpha, keeping the printed 2 * alpha gap between
          the two hinges; and L_norm measured from each pair's own target: (1 - D)^2 pulls
          positives to cosine 1, (1 + D)^2 = eq. 6 pushes negatives to cosine -1.
          Each term lies in [0, 4 + 1 + alpha], the range of the literal terms.

``ip_norm=False`` drops the L_norm terms of the IP loss (eq. 6), leaving the two hinges. With
more than two mutually negative groups (several classes and background) no embedding reaches
cosine -1 for every negative pair, so (1 + D)^2 never vanishes; the hinge [D + alpha]_+ can
be met by up to about 1 / alpha groups (k unit vectors have a mean pairwise cosine >= -1/(k-1)).

Reductions: ``sum`` adds every used pair's loss (the paper's sum over all pairs);
``mean`` divides that sum by the number of used pairs (positives + negatives), a single mean
(balancing the positive and negative means separately made training collapse in our runs).
With no pair at all the loss is 0, still connected to the graph, with zero gradients.

Precision: :func:`fpd_loss` computes in float32 whatever the autocast. Embeddings that arrive in
bf16 or float16 (the projection under ``training.precision: bf16-mixed``) are cast up (float64
stays float64), autocast is off for the similarities, the per-pair terms and the reduction, and
the pair count stays an integer until it divides the float32 sum. In bf16, ``|a|^2 + |b|^2 - 2 a.b`` loses close pairs
(errors up to 0.36 in the squared distance were seen) and a count of 33,439 becomes 33,536.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from dcase_fpd_plugin.fpd.distances import SIMILARITIES, get_similarity

PairTerm = Callable[[torch.Tensor, float], torch.Tensor]
FORMULATIONS = ("consistent", "literal")
REDUCTIONS = ("mean", "sum")


def _hinge(x: torch.Tensor) -> torch.Tensor:
    """[x]_+ = max(0, x)."""
    return torch.relu(x)


# --- literal: eq. 3 (euc) and eq. 5-6 (ip) as printed ---------------------------------------
def literal_euc_positive(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return d * d


def literal_euc_negative(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return _hinge(alpha - d)


def literal_ip_positive(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return _hinge(d + alpha)


def literal_ip_negative(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return _hinge(alpha - d)


def literal_ip_norm(d: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 6, L_norm = (D + 1)^2, the same for positive and negative pairs."""
    return (d + 1.0) ** 2


# --- consistent: same shapes, signs that pull positives together, push negatives apart ------
def consistent_euc_positive(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return (1.0 - d) ** 2


def consistent_euc_negative(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return _hinge(d - alpha)


def consistent_ip_positive(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return _hinge(alpha - d)


def consistent_ip_negative(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return _hinge(d + alpha)


def consistent_ip_norm_positive(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return (1.0 - d) ** 2


def consistent_ip_norm_negative(d: torch.Tensor, alpha: float) -> torch.Tensor:
    return (1.0 + d) ** 2


#: (formulation, distance) -> (positive-pair term, negative-pair term), each D -> loss,
#: without the IP norm term.
PAIR_TERMS: dict[tuple[str, str], tuple[PairTerm, PairTerm]] = {
    ("literal", "euc"): (literal_euc_positive, literal_euc_negative),
    ("literal", "ip"): (literal_ip_positive, literal_ip_negative),
    ("consistent", "euc"): (consistent_euc_positive, consistent_euc_negative),
    ("consistent", "ip"): (consistent_ip_positive, consistent_ip_negative),
}

#: formulation -> (positive, negative) L_norm terms of the IP loss (eq. 6), added when
#: ``ip_norm`` is on.
IP_NORM_TERMS: dict[str, tuple[PairTerm, PairTerm]] = {
    "literal": (literal_ip_norm, literal_ip_norm),
    "consistent": (consistent_ip_norm_positive, consistent_ip_norm_negative),
}


def get_pair_terms(formulation: str, distance: str, ip_norm: bool = True) -> tuple[PairTerm, PairTerm]:
    """The (positive, negative) pair-term functions of a formulation and distance.

    ``ip_norm`` adds the IP loss's L_norm term (eq. 6) to both; it is ignored for ``euc``.
    """
    if formulation not in FORMULATIONS:
        raise ValueError(f"unknown formulation {formulation!r}; choose one of {list(FORMULATIONS)}")
    if distance not in SIMILARITIES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {sorted(SIMILARITIES)}")
    pos, neg = PAIR_TERMS[(formulation, distance)]
    if distance != "ip" or not ip_norm:
        return pos, neg
    pos_norm, neg_norm = IP_NORM_TERMS[formulation]
    return (lambda d, alpha: pos(d, alpha) + pos_norm(d, alpha),
            lambda d, alpha: neg(d, alpha) + neg_norm(d, alpha))


def pair_losses(
    similarity: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    distance: str = "ip",
    alpha: float = 0.1,
    formulation: str = "consistent",
    ip_norm: bool = True,
) -> torch.Tensor:
    """Loss of every used pair; 0 (gradient 0) for pairs in neither mask.

    Args:
        similarity: (T, B, B) D of the chosen distance.
        positive, negative: (T, B, B) bool pair masks.
        ip_norm: add the IP norm term (eq. 6); ignored for ``euc``.
    Returns:
        (T, B, B) per-pair loss (a pair in both masks pays both terms).
    """
    _check_alpha(alpha)
    for name, mask in (("positive", positive), ("negative", negative)):
        if mask.shape != similarity.shape:
            raise ValueError(
                f"{name} must be (T, B, B) = {tuple(similarity.shape)}, got shape {tuple(mask.shape)}"
            )
    pos_term, neg_term = get_pair_terms(formulation, distance, ip_norm)
    zero = torch.zeros((), dtype=similarity.dtype, device=similarity.device)
    return torch.where(positive.bool(), pos_term(similarity, alpha), zero) + torch.where(
        negative.bool(), neg_term(similarity, alpha), zero
    )


def reduce_pair_losses(
    losses: torch.Tensor, n_pairs: torch.Tensor | int, reduction: str = "mean"
) -> torch.Tensor:
    """Sum of the per-pair losses, divided by the number of used pairs for ``"mean"``.

    Args:
        losses: (T, B, B) per-pair loss, 0 for unused pairs (bf16 / float16 summed in float32).
        n_pairs: number of used pairs (positives + negatives); 0 gives a loss of 0.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {list(REDUCTIONS)}")
    if losses.dtype in (torch.bfloat16, torch.float16):
        losses = losses.float()
    total = losses.sum()
    if reduction == "sum":
        return total
    n = torch.as_tensor(n_pairs, device=losses.device)  # an integer count, never a low-precision float
    if n.is_floating_point():
        n = n.round().long()
    return total / n.clamp_min(1)


def fpd_loss(
    embeddings: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    distance: str = "ip",
    alpha: float = 0.1,
    formulation: str = "consistent",
    reduction: str = "mean",
    ip_norm: bool = True,
) -> torch.Tensor:
    """The FPD loss over same-time frame pairs (formulas in the module docstring).

    Args:
        embeddings: (B, T, E) frame embeddings (the FPD branch's projection).
        positive, negative: (T, B, B) bool pair masks, e.g. from :func:`pair_masks`.
        distance: ``"ip"`` (cosine, eq. 4) or ``"euc"`` (1 / (1 + d), eq. 1-2).
        alpha: the margin, in [0, 1] (paper: 0.1).
        formulation: ``"consistent"`` (default) or ``"literal"`` (the printed equations).
        reduction: ``"mean"`` over used pairs (default) or ``"sum"`` (the paper's sum).
        ip_norm: add the IP loss's L_norm term (eq. 6, default, as the paper); ignored for ``euc``.
    Returns:
        scalar loss tensor, computed in float32 (float64 for float64 embeddings) whatever the
        autocast (module docstring).
    """
    get_pair_terms(formulation, distance)  # validate names before any computation
    if reduction not in REDUCTIONS:
        raise ValueError(f"unknown reduction {reduction!r}; choose one of {list(REDUCTIONS)}")
    if embeddings.dtype not in (torch.float32, torch.float64):  # bf16 / float16: cast up
        embeddings = embeddings.float()
    with _autocast_off(embeddings.device):
        similarity = get_similarity(distance)(embeddings)  # (T, B, B) float32 (float64 stays)
        losses = pair_losses(similarity, positive, negative, distance, alpha, formulation, ip_norm)
        n_pairs = positive.sum() + negative.sum()  # int64
        return reduce_pair_losses(losses, n_pairs, reduction)


def _autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off on ``device`` (a no-op context where that device type has no autocast)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:
        return contextlib.nullcontext()


def _check_alpha(alpha: float) -> None:
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (the paper's margin), got {alpha}")
