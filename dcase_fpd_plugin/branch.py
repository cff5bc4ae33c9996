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
SOURCE_SF = 3  # soft-labelled (MAESTRO-style scores per segment; data.sources kind soft)
SOURCE_NAMES = {SOURCE_SS: "SS", SOURCE_RW: "RW", SOURCE_UL: "UL", SOURCE_SF: "SF"}


@dataclass
class Batch:
    """One training/evaluation batch.

    Attributes:
        feats: (B, F, T_in) log-mel features (F mel bins, T_in STFT frames).
        strong: (B, T, C) float frame labels in [0, 1] at the model's output frame rate ({0, 1}
            for strong labels, scores for soft ones); all zero where ``has_strong`` is False.
        has_strong: (B,) bool, True for clips with frame labels (SS and SF clips).
        weak: (B, C) float {0,1} clip labels; derived from ``strong`` for SS clips.
        has_weak: (B,) bool, True where ``weak`` is a label (SS and RW clips).
        source: (B,) long, the kind of each clip's source: SOURCE_SS / SOURCE_RW / SOURCE_UL / SOURCE_SF.
        frame_valid: (B, T) bool, False for output frames that lie in zero padding.
        filenames: B clip file names (base names, as in the DESED TSVs).
        source_host: (B,) long, ``source`` on the CPU (stays there when the batch moves), so that
            host-side decisions (e.g. mixup's slices) need no device synchronisation; may be None.
        class_mask: (B, C) bool, the classes each clip's source annotates (its losses cover only
            those); None: every clip annotates every class.
        embeddings: (B, D_e, T_e) float pretrained frame embeddings (``data.embeddings_dir``) or None.
        group_host: (B,) long on the CPU, the index of each clip's source in ``data.sources`` (mixup
            mixes within one source); None: the kinds of ``source_host`` stand for the sources.
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
    class_mask: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None
    group_host: torch.Tensor | None = None

    def to(self, device: torch.device | str, **_: object) -> "Batch":
        moved = {
            k: (v.to(device) if isinstance(v, torch.Tensor) and not k.endswith("_host") else v)
            for k, v in self.__dict__.items()
        }
        return Batch(**moved)

    def host_source(self) -> torch.Tensor:
        """(B,) long sources on the CPU (``source_host`` when known, else copied from the device)."""
        return self.source_host if self.source_host is not None else self.source.cpu()

    def host_groups(self) -> torch.Tensor:
        """(B,) long source indices on the CPU (``group_host``; else the kinds of :meth:`host_source`)."""
        return self.group_host if self.group_host is not None else self.host_source()

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """The keyword inputs a model takes besides ``feats`` and ``frame_valid``: ``embeddings``
        and ``class_mask`` where the batch has them."""
        return {k: v for k, v in (("embeddings", self.embeddings), ("class_mask", self.class_mask)) if v is not None}

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
