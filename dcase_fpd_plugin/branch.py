"""The contract between the recipe host (``training/task.py``) and its training branches.

A *branch* gets the encoder's frame embeddings and the batch, and returns a loss that is
added to the classification loss. The FPD branch (``dcase_fpd_plugin.fpd.branch``) is one;
third-party packages add their own through the ``dcase_fpd_plugin.branches`` entry point.

Shapes use B = clips in the batch, T = output frames, D = embedding width, C = classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

# Source ids of the clips in a batch (``Batch.source``).
SOURCE_SS = 0  # synthetic, strongly labelled
SOURCE_RW = 1  # real, weakly labelled
SOURCE_UL = 2  # unlabelled
SOURCE_NAMES = {SOURCE_SS: "SS", SOURCE_RW: "RW", SOURCE_UL: "UL"}


@dataclass
class Batch:
    """One training/evaluation batch.

    Attributes:
        feats: (B, F, T_in) log-mel features (F mel bins, T_in STFT frames).
        strong: (B, T, C) float {0,1} frame labels at the model's output frame rate;
            all zero where ``has_strong`` is False.
        has_strong: (B,) bool, True for clips with strong labels (SS clips).
        weak: (B, C) float {0,1} clip labels; derived from ``strong`` for SS clips.
        has_weak: (B,) bool, True where ``weak`` is a label (SS and RW clips).
        source: (B,) long, SOURCE_SS / SOURCE_RW / SOURCE_UL.
        frame_valid: (B, T) bool, False for output frames that lie in zero padding.
        filenames: B clip file names (base names, as in the DESED TSVs).
        source_host: (B,) long, ``source`` on the CPU (stays there when the batch moves), so that
            host-side decisions (e.g. mixup's slices) need no device synchronisation; may be None.
    """

    feats: torch.Tensor
    strong: torch.Tensor
    has_strong: torch.Tensor
    weak: torch.Tensor
    has_weak: torch.Tensor
    source: torch.Tensor
    frame_valid: torch.Tensor
    filenames: list[str] = field(default_factory=list)
    source_host: torch.Tensor | None = None

    def to(self, device: torch.device | str, **_: object) -> "Batch":
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor) and k != "source_host" else v)
            for k, v in self.__dict__.items()
        }
        return Batch(**moved)

    def host_source(self) -> torch.Tensor:
        """(B,) long sources on the CPU (``source_host`` when known, else copied from the device)."""
        return self.source_host if self.source_host is not None else self.source.cpu()

    def __len__(self) -> int:
        return int(self.feats.shape[0])


@dataclass
class ModelOutput:
    """What the SED model returns.

    Attributes:
        embeddings: (B, T, D) frame embeddings from the feature encoder (the main branch).
        frame_probs: (B, T, C) frame probabilities from the classification branch.
        clip_probs: (B, C) clip probabilities (attention pooling over time).
    """

    embeddings: torch.Tensor
    frame_probs: torch.Tensor
    clip_probs: torch.Tensor


@dataclass
class BranchOutput:
    """A branch's loss (a scalar tensor, already weighted) and scalars to log."""

    loss: torch.Tensor
    logs: dict[str, float | torch.Tensor] = field(default_factory=dict)


class Branch(nn.Module):
    """Base class of training branches.

    Subclasses define :meth:`default_config` (every recipe key they accept, with its default;
    the host validates the recipe's ``branches.<name>`` section against it) and
    :meth:`forward`. ``enabled`` is handled by the host and is always accepted.

    Args:
        config: the validated ``branches.<name>`` section of the recipe (defaults filled in).
        embed_dim: D, the width of the encoder's frame embeddings.
        classes: the recipe's class names, in index order.
    """

    def __init__(self, config: dict[str, Any], embed_dim: int, classes: list[str]):
        super().__init__()
        self.config = config
        self.embed_dim = embed_dim
        self.classes = list(classes)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Refuse bad values (raise ValueError naming the key) when the recipe is loaded, before
        anything is written; the default accepts everything."""

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {"enabled": False, "weight": 1.0}

    def forward(self, output: ModelOutput, batch: Batch, epoch: int) -> BranchOutput:  # pragma: no cover
        raise NotImplementedError
