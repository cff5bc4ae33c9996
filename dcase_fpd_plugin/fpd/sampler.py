"""Same-time frame-pair sampling (paper, section 2.3): which frame pairs are positive or negative.

Every unordered pair of distinct clips (i < j) in the batch is a clip pair; its frame pairs
are the frames at the same timestamp t. With frame label sets y[i, t] and y[j, t]:

* positive: identical, non-empty label sets;
* negative: disjoint label sets, at least one non-empty (event vs background is negative);
* ignored:  everything else: partial overlap, a pair with an invalid frame (padding, an
  unconfident pseudo-label), a pair with an *uncertain* frame, and background vs background
  (unless ``background_pairs="positive"``, which makes background-background pairs positive).

A frame is uncertain when any of its labels lies strictly between 0 and 1 (more than
:data:`CERTAIN_TOL` from both): mixup's soft labels, e.g. a frame mixed as 0.7 A + 0.3 B, whose
B is audible although below 0.5. Such a frame takes part in no pair, positive or negative, so
every caller of :func:`pair_masks` gets pairs only from frames whose labels are certain.

Masks are (T, B, B) booleans, true only above the diagonal (i < j).
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch

from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SF, SOURCE_SS

BACKGROUND_PAIRS = ("ignore", "positive")
#: a label within this of 0 or of 1 counts as certain; mixup's ``lam * 1 + (1 - lam) * 1`` can
#: round to 1 - 6e-8 in float32, and a mixed share never comes this close (Beta draws below 1e-4
#: or above 1 - 1e-4 leave a clip as good as unmixed).
CERTAIN_TOL = 1e-4
#: the clip-source combinations a sampler can use (order-free: "SS-RW" == "RW-SS").
SOURCE_PAIRS = ("SS-SS", "RW-RW", "SS-RW")
_SOURCE_IDS = {"SS": SOURCE_SS, "RW": SOURCE_RW, "SF": SOURCE_SF}  # SF: soft-labelled, never in the default
#: the source kinds a ``source_pairs`` entry may name.
SOURCE_KINDS = tuple(_SOURCE_IDS)


def _check_frame_labels(frame_labels: torch.Tensor, valid: torch.Tensor | None) -> None:
    if frame_labels.dim() != 3:
        raise ValueError(
            f"frame_labels must be (B, T, C), got shape {tuple(frame_labels.shape)}"
        )
    if valid is not None and tuple(valid.shape) != tuple(frame_labels.shape[:2]):
        raise ValueError(
            f"valid must be (B, T) = {tuple(frame_labels.shape[:2])} to match frame_labels, "
            f"got shape {tuple(valid.shape)}"
        )


def _check_background_pairs(background_pairs: str) -> None:
    if background_pairs not in BACKGROUND_PAIRS:
        raise ValueError(
            f"unknown background_pairs {background_pairs!r}; choose one of {list(BACKGROUND_PAIRS)}"
        )


def certain_frames(frame_labels: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: frames all of whose labels lie within :data:`CERTAIN_TOL` of 0 or 1.

    Args:
        frame_labels: (B, T, C) frame labels in [0, 1] (soft under mixup).
    """
    x = frame_labels.float()
    return ((x <= CERTAIN_TOL) | (x >= 1.0 - CERTAIN_TOL)).all(-1)


def upper_pairs(n_clips: int, device: torch.device | str | None = None) -> torch.Tensor:
    """(B, B) bool, True where i < j: each unordered pair of distinct clips once."""
    return torch.ones(n_clips, n_clips, dtype=torch.bool, device=device).triu(diagonal=1)


def pair_masks(
    frame_labels: torch.Tensor,
    valid: torch.Tensor | None = None,
    background_pairs: str = "ignore",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive and negative same-time frame pairs.

    Args:
        frame_labels: (B, T, C) frame labels in [0, 1], any dtype. A label within
            :data:`CERTAIN_TOL` of 1 is active, one within it of 0 inactive; a frame with any
            label in between (a mixup soft label) takes part in no pair.
        valid: (B, T) bool, False for frames that take part in no pair (padding, unconfident
            pseudo-labels, unlabelled clips); None means all valid.
        background_pairs: ``"ignore"`` (default) or ``"positive"``: what a pair of two
            background frames (both label sets empty) is.
    Returns:
        ``(positive, negative)``, each (T, B, B) bool, true only for i < j.
    """
    _check_frame_labels(frame_labels, valid)
    _check_background_pairs(background_pairs)
    n_clips = frame_labels.shape[0]
    active = (frame_labels >= 1.0 - CERTAIN_TOL).transpose(0, 1).float()  # (T, B, C)
    n_labels = active.sum(-1)  # (T, B), label-set sizes
    shared = torch.bmm(active, active.transpose(1, 2))  # (T, B, B), |y_i & y_j|
    n_i, n_j = n_labels.unsqueeze(2), n_labels.unsqueeze(1)  # (T, B, 1), (T, 1, B)

    identical = (shared == n_i) & (shared == n_j)
    disjoint = shared == 0
    event_i, event_j = n_i > 0, n_j > 0
    positive = identical & event_i
    if background_pairs == "positive":
        positive = positive | (~event_i & ~event_j)
    negative = disjoint & (event_i | event_j)

    usable = upper_pairs(n_clips, frame_labels.device).unsqueeze(0)  # (1, B, B)
    v = certain_frames(frame_labels)  # (B, T)
    if valid is not None:
        v = v & valid.bool()
    v = v.transpose(0, 1)  # (T, B)
    usable = usable & v.unsqueeze(2) & v.unsqueeze(1)
    return positive & usable, negative & usable


def _parse_source_pair(name: str) -> frozenset[int]:
    parts = name.split("-")
    if len(parts) != 2 or any(p not in _SOURCE_IDS for p in parts):
        raise ValueError(
            f"unknown source_pairs entry {name!r}; entries are {list(SOURCE_PAIRS)}"
        )
    return frozenset(_SOURCE_IDS[p] for p in parts)


def source_pair_mask(source: torch.Tensor, source_pairs: Iterable[str] = SOURCE_PAIRS) -> torch.Tensor:
    """(B, B) bool: clip pairs whose source combination is allowed.

    Args:
        source: (B,) long source ids (``SOURCE_SS``, ``SOURCE_RW``, ``SOURCE_UL``).
        source_pairs: allowed combinations among ``"SS-SS"``, ``"RW-RW"``, ``"SS-RW"``
            (``"RW-SS"`` is the same). Unlabelled (UL) clips are never allowed.
    """
    if source.dim() != 1:
        raise ValueError(f"source must be (B,), got shape {tuple(source.shape)}")
    allowed = torch.zeros(source.shape[0], source.shape[0], dtype=torch.bool, device=source.device)
    for name in source_pairs:
        combo = sorted(_parse_source_pair(name))
        a, b = combo[0], combo[-1]
        is_a, is_b = source == a, source == b
        allowed |= (is_a.unsqueeze(1) & is_b.unsqueeze(0)) | (is_b.unsqueeze(1) & is_a.unsqueeze(0))
    return allowed


class SameTimePairSampler:
    """Pair sampler ``same_time`` (entry point): :func:`pair_masks` restricted by clip source.

    Called as ``sampler(frame_labels, valid, source)`` with frame_labels (B, T, C), valid
    (B, T) bool or None and source (B,) long; returns ``(positive, negative)``, each
    (T, B, B) bool, true only for i < j and for allowed source combinations.

    Args:
        background_pairs: ``"ignore"`` or ``"positive"`` (see :func:`pair_masks`).
        source_pairs: the clip-source combinations used, any of ``"SS-SS"``, ``"RW-RW"``,
            ``"SS-RW"``; all three by default (the paper).
    """

    def __init__(
        self,
        background_pairs: str = "ignore",
        source_pairs: Sequence[str] = SOURCE_PAIRS,
    ):
        _check_background_pairs(background_pairs)
        if isinstance(source_pairs, str):
            raise ValueError(f"source_pairs must be a list of names, got the string {source_pairs!r}")
        for name in source_pairs:
            _parse_source_pair(name)
        self.background_pairs = background_pairs
        self.source_pairs = tuple(source_pairs)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "SameTimePairSampler":
        """Build from the FPD branch's config (keys ``background_pairs``, ``source_pairs``)."""
        return cls(
            background_pairs=config.get("background_pairs", "ignore"),
            source_pairs=config.get("source_pairs", SOURCE_PAIRS),
        )

    def __call__(
        self,
        frame_labels: torch.Tensor,
        valid: torch.Tensor | None,
        source: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if source.shape != frame_labels.shape[:1]:
            raise ValueError(
                f"source must be (B,) = ({frame_labels.shape[0]},), got shape {tuple(source.shape)}"
            )
        positive, negative = pair_masks(frame_labels, valid, self.background_pairs)
        allowed = source_pair_mask(source, self.source_pairs).unsqueeze(0)  # (1, B, B)
        return positive & allowed, negative & allowed

    def __repr__(self) -> str:
        return (
            f"SameTimePairSampler(background_pairs={self.background_pairs!r}, "
            f"source_pairs={list(self.source_pairs)})"
        )


__all__ = [
    "BACKGROUND_PAIRS",
    "CERTAIN_TOL",
    "certain_frames",
    "SOURCE_PAIRS",
    "SOURCE_KINDS",
    "SameTimePairSampler",
    "pair_masks",
    "source_pair_mask",
    "upper_pairs",
]
