"""Frame labels for the FPD pairs: strong labels for SS clips, WPS pseudo-labels for RW clips.

WPS ("pseudo-strong labels from weakly-labelled data", paper section 2.2): the classification
branch's frame probabilities p[b, t, c] (detached, no gradient flows through labels), used only
for the classes c in the clip's weak label:

* class c is active at frame t   where p >= high;
* class c is inactive at frame t where p <  low;
* frame t is invalid (its pairs are ignored) when some tagged class has low <= p < high.

A class is tagged when its weak label is above :data:`~dcase_fpd_plugin.fpd.sampler.CERTAIN_TOL`.
Under mixup a weak label can be soft (a class only the partner clip holds gets 1 - lam); where
such a class is active, its frame label is that share, not 1, so the frame is uncertain and the
pair sampler leaves it out (SS clips' mixed strong labels are left out the same way). Classes
outside the weak label are never active. A frame whose tagged classes are all below
``low`` is background. Before ``start_epoch`` (the paper: until the classification branch is
"adequately mature") RW frames take part in no pair. Unlabelled (UL) clips never do, and
neither do frames in padding (``Batch.frame_valid``).
"""

from __future__ import annotations

from typing import Any

import torch

from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SF, SOURCE_SS, Batch, ModelOutput
from dcase_fpd_plugin.fpd.sampler import CERTAIN_TOL


def wps_labels(
    frame_probs: torch.Tensor, weak: torch.Tensor, high: float, low: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-strong frame labels from frame probabilities and clip (weak) labels.

    Args:
        frame_probs: (B, T, C) probabilities in [0, 1] (detached here).
        weak: (B, C) clip labels in [0, 1] (soft under mixup).
        high, low: thresholds, 0 <= low <= high <= 1.
    Returns:
        ``(labels, confident)``: labels (B, T, C) float32: the weak label where a tagged class is
        active (1, or a mixed share), else 0; confident (B, T) bool, False where a tagged class
        lies in [low, high).
    """
    p = frame_probs.detach().float()  # float32 labels whatever the autocast
    w = weak.float().unsqueeze(1)  # (B, 1, C)
    tagged = w > CERTAIN_TOL  # (B, 1, C)
    labels = torch.where(tagged & (p >= high), w, torch.zeros_like(p))
    unsure = tagged & (p >= low) & (p < high)  # (B, T, C)
    return labels, ~unsure.any(-1)


class WPSLabeller:
    """Labeller ``wps`` (entry point).

    Called as ``labeller(output, batch, epoch)``; returns ``(frame_labels, valid)`` with
    frame_labels (B, T, C) float32 in [0, 1] (soft under mixup: the pair sampler leaves such
    frames out) and valid (B, T) bool:
    SS and SF clips (``source`` SOURCE_SS or SOURCE_SF, with ``has_strong``): ``batch.strong``;
    RW clips (``source == SOURCE_RW`` with ``has_weak``): WPS labels from
    ``output.frame_probs``, valid only from ``epoch >= start_epoch`` and where confident;
    every other clip (UL): invalid. Frames outside ``batch.frame_valid`` are invalid.

    Args:
        high: a tagged class is active at a frame where its probability is >= high.
        low: a tagged class is inactive where its probability is < low; in between, the frame
            is invalid. 0 <= low <= high <= 1; ``low == high`` marks no frame invalid.
        start_epoch: first epoch (0-based) in which RW frames take part in pairs.
    """

    def __init__(self, high: float = 0.7, low: float = 0.3, start_epoch: int = 5):
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                f"WPS thresholds must satisfy 0 <= low <= high <= 1, got low={low}, high={high}"
            )
        if int(start_epoch) != start_epoch or start_epoch < 0:
            raise ValueError(f"start_epoch must be an integer >= 0, got {start_epoch!r}")
        self.high = float(high)
        self.low = float(low)
        self.start_epoch = int(start_epoch)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "WPSLabeller":
        """Build from the FPD branch's config (keys ``wps_high``, ``wps_low``, ``wps_start_epoch``)."""
        return cls(
            high=config.get("wps_high", 0.7),
            low=config.get("wps_low", 0.3),
            start_epoch=config.get("wps_start_epoch", 5),
        )

    def __call__(
        self, output: ModelOutput, batch: Batch, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        probs = output.frame_probs
        if probs.shape != batch.strong.shape:
            raise ValueError(
                f"output.frame_probs must be (B, T, C) = {tuple(batch.strong.shape)} like "
                f"batch.strong, got shape {tuple(probs.shape)}"
            )
        # clips with frame labels: SS, and SF whose soft scores strictly inside (0, 1) pair with nothing
        is_ss = ((batch.source == SOURCE_SS) | (batch.source == SOURCE_SF)) & batch.has_strong.bool()  # (B,)
        is_rw = (batch.source == SOURCE_RW) & batch.has_weak.bool() & ~is_ss  # (B,)

        wps, confident = wps_labels(probs, batch.weak, self.high, self.low)
        strong = batch.strong.to(wps.dtype)
        labels = torch.where(is_ss[:, None, None], strong, torch.where(is_rw[:, None, None], wps, 0.0))

        rw_valid = confident if epoch >= self.start_epoch else torch.zeros_like(confident)
        valid = (is_ss[:, None] | (is_rw[:, None] & rw_valid)) & batch.frame_valid.bool()
        return labels, valid

    def __repr__(self) -> str:
        return f"WPSLabeller(high={self.high}, low={self.low}, start_epoch={self.start_epoch})"
