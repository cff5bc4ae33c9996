"""Frame similarities for same-time pairs (paper, eq. 1-2 and eq. 4).

The paper calls them "distances", but both are *similarities* (larger = closer):

* ``euc``: D = 1 / (1 + d) with d the Euclidean distance (eq. 1-2); D lies in (0, 1],
  D = 1 for identical frames.
* ``ip``:  D = A.B / (|A| |B|), the cosine of the angle (eq. 4); D lies in [-1, 1].

Only frames at the same timestamp are paired, so each function takes embeddings
(B, T, E) and returns a (T, B, B) matrix: ``D[t, i, j]`` compares ``e[i, t]`` with ``e[j, t]``.
Nothing of size (B*T)^2 is ever built. Both are safe at the degenerate points: the Euclidean
square root has a finite (zero) gradient at d = 0, and a zero-norm frame has cosine 0 with
everything, with finite gradients.
"""

from __future__ import annotations

from typing import Callable

import torch

#: below this squared distance / squared norm, a value counts as exactly zero.
_EPS = 1e-12

Similarity = Callable[[torch.Tensor], torch.Tensor]


def safe_sqrt(x: torch.Tensor, eps: float = _EPS) -> torch.Tensor:
    """sqrt(x) for x >= 0, with value 0 and gradient 0 (instead of inf) where x <= eps."""
    positive = x > eps
    return torch.where(positive, torch.sqrt(torch.where(positive, x, torch.ones_like(x))), torch.zeros_like(x))


def _check_embeddings(embeddings: torch.Tensor) -> None:
    if embeddings.dim() != 3:
        raise ValueError(
            f"embeddings must be (B, T, E), got shape {tuple(embeddings.shape)}"
        )


def _frames_first(embeddings: torch.Tensor) -> torch.Tensor:
    """(B, T, E) -> (T, B, E), so that a batched matmul pairs frames of the same time."""
    _check_embeddings(embeddings)
    return embeddings.transpose(0, 1)


def squared_euclidean(embeddings: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between same-time frames.

    Args:
        embeddings: (B, T, E).
    Returns:
        (T, B, B), ``|e[i, t] - e[j, t]|^2`` in squared embedding units, clamped at 0
        (the Gram-matrix expansion can go slightly negative through rounding).
    """
    x = _frames_first(embeddings)  # (T, B, E)
    sq_norm = (x * x).sum(-1)  # (T, B)
    gram = torch.bmm(x, x.transpose(1, 2))  # (T, B, B)
    return (sq_norm.unsqueeze(2) + sq_norm.unsqueeze(1) - 2.0 * gram).clamp_min(0.0)


def euclidean_similarity(embeddings: torch.Tensor) -> torch.Tensor:
    """D = 1 / (1 + d), d the Euclidean distance (eq. 1-2).

    Args:
        embeddings: (B, T, E).
    Returns:
        (T, B, B) similarity in (0, 1]; 1 for identical frames.
    """
    return 1.0 / (1.0 + safe_sqrt(squared_euclidean(embeddings)))


def cosine_similarity(embeddings: torch.Tensor) -> torch.Tensor:
    """D = A.B / (|A| |B|) (eq. 4), 0 where either frame has zero norm.

    Args:
        embeddings: (B, T, E).
    Returns:
        (T, B, B) similarity in [-1, 1] (up to rounding; not clamped, so that the
        gradient never vanishes at |D| = 1).
    """
    x = _frames_first(embeddings)  # (T, B, E)
    norm = safe_sqrt((x * x).sum(-1, keepdim=True))  # (T, B, 1)
    unit = x / norm.clamp_min(_EPS**0.5)
    return torch.bmm(unit, unit.transpose(1, 2))


#: distance name (recipe key ``branches.fpd.distance``) -> same-time similarity function.
SIMILARITIES: dict[str, Similarity] = {
    "euc": euclidean_similarity,
    "ip": cosine_similarity,
}


def get_similarity(distance: str) -> Similarity:
    """The similarity function for a distance name (``"ip"`` or ``"euc"``)."""
    try:
        return SIMILARITIES[distance]
    except KeyError:
        raise ValueError(
            f"unknown distance {distance!r}; choose one of {sorted(SIMILARITIES)}"
        ) from None
