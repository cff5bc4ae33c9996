"""The FPD branch ``fpd`` (entry point): projection -> labeller -> pair sampler -> FPD loss.

Recipe section ``branches.fpd`` (every key and its default: :meth:`FPDBranch.default_config`).
The labeller and the pair sampler are plugins looked up by name in the registry
(groups ``labellers`` and ``pair_samplers``). A plugin factory is built with
``factory.from_config(config)`` when it has that classmethod, else ``factory(config)``, where
``config`` is this branch's whole config dict. The built objects are called as

* labeller: ``labeller(output, batch, epoch) -> (frame_labels (B, T, C), valid (B, T) bool)``
* sampler:  ``sampler(frame_labels, valid, source) -> (positive, negative)``, each (T, B, B) bool.

Sources that annotate only some classes (``data.sources`` ``classes``; ``batch.class_mask``): a clip's
label 0 for a class its source does not annotate says nothing, so two clips pair only when their
sources annotate the same classes (:func:`same_annotation_pairs`), and their positive or negative
pair is decided on those classes. With every class annotated (no mask) nothing changes.

``gather_distributed: true`` (under ``torch.distributed``, e.g. Lightning DDP) gathers the
projected embeddings, frame labels, validity and sources of all ranks before pairing, so pairs
span the global batch. Gradients flow only into the local part (the own slot of the gathered
list is the local tensor itself). Every rank then computes the same global-batch loss; its
gradient is multiplied by the world size (its value is not), so that DDP's averaging of
parameter gradients over ranks yields exactly the gradient of the global-batch loss.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from dcase_fpd_plugin import registry
from dcase_fpd_plugin.branch import Batch, Branch, BranchOutput, ModelOutput
from dcase_fpd_plugin.fpd.distances import SIMILARITIES
from dcase_fpd_plugin.fpd.loss import FORMULATIONS, REDUCTIONS, fpd_loss
from dcase_fpd_plugin.fpd.sampler import BACKGROUND_PAIRS, SOURCE_KINDS, SOURCE_PAIRS


def build_plugin(group: str, name: str, config: dict[str, Any]) -> Callable[..., Any]:
    """Look ``name`` up in the registry ``group`` and build it from the branch config."""
    factory = registry.get(group, name)
    from_config = getattr(factory, "from_config", None)
    return from_config(config) if callable(from_config) else factory(config)


def world_info() -> tuple[int, int]:
    """(rank, world size) under an initialised ``torch.distributed``; (0, 1) otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_gather(tensor: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Every rank's ``tensor`` (batch sizes ``sizes`` along dim 0, other dims equal), no grad."""
    import torch.distributed as dist

    max_b = max(sizes)
    padded = tensor.new_zeros((max_b, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor.detach()
    pieces = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(pieces, padded.contiguous())
    return [piece[:n] for piece, n in zip(pieces, sizes)]


def same_annotation_pairs(class_mask: torch.Tensor) -> torch.Tensor:
    """(1, B, B) bool: clip pairs whose sources annotate the same classes (equal rows of the (B, C) mask)."""
    mask = class_mask.bool()
    return (mask[:, None, :] == mask[None, :, :]).all(-1).unsqueeze(0)


def gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (B_r, ...) concatenated along dim 0 in rank order (no grad); unchanged
    outside torch.distributed."""
    import torch.distributed as dist

    _, world = world_info()
    if world == 1:
        return tensor
    n = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    return torch.cat(_all_gather(tensor, [int(c) for c in counts]))


def gather_across_ranks(
    embeddings: torch.Tensor,
    frame_labels: torch.Tensor,
    valid: torch.Tensor,
    source: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Concatenate the inputs of all ranks along the batch, in rank order.

    Args:
        embeddings: (B_r, T, E) this rank's embeddings; the result keeps its autograd
            connection (the other ranks' parts are constants).
        frame_labels: (B_r, T, C); valid: (B_r, T) bool; source: (B_r,) long.
    Returns:
        the same four, with B = sum of B_r over ranks. Unchanged outside torch.distributed.
    """
    import torch.distributed as dist

    rank, world = world_info()
    if world == 1:
        return embeddings, frame_labels, valid, source
    shape = torch.tensor(
        [embeddings.shape[0], embeddings.shape[1], embeddings.shape[2], frame_labels.shape[2]],
        device=embeddings.device,
    )
    shapes = [torch.empty_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    shapes_list = [tuple(int(v) for v in s) for s in shapes]
    if len({s[1:] for s in shapes_list}) != 1:
        raise ValueError(
            "gather_distributed needs equal (T, E, C) on every rank, got (B, T, E, C) = "
            f"{shapes_list}"
        )
    sizes = [s[0] for s in shapes_list]

    emb_parts = _all_gather(embeddings, sizes)
    emb_parts[rank] = embeddings  # own slot: the local tensor, so gradients reach it
    labels = torch.cat(_all_gather(frame_labels, sizes))
    valid_all = torch.cat(_all_gather(valid.to(torch.uint8), sizes)).bool()
    source_all = torch.cat(_all_gather(source, sizes))
    return torch.cat(emb_parts), labels, valid_all, source_all


def scale_gradient(loss: torch.Tensor, factor: float) -> torch.Tensor:
    """``loss`` with its value unchanged and its gradient multiplied by ``factor``."""
    if factor == 1:
        return loss
    return loss * factor - (loss * (factor - 1)).detach()


class FPDBranch(Branch):
    """The Frame Pairwise Distance branch (paper, Fig. 1, right).

    Args:
        config: the ``branches.fpd`` section (missing keys take :meth:`default_config`).
        embed_dim: D, the width of ``ModelOutput.embeddings``.
        classes: class names in index order.

    ``forward(output, batch, epoch)`` returns ``BranchOutput(weight * loss, logs)`` with logs
    ``fpd/loss`` (unweighted), ``fpd/n_positive_pairs`` and ``fpd/n_negative_pairs``.
    """

    @classmethod
    def default_config(cls) -> dict[str, Any]:
        return {
            "enabled": False,  # the one flag that turns FPD on (handled by the host)
            "distance": "ip",  # ip (cosine, eq. 4) | euc (1 / (1 + d), eq. 1-2)
            "alpha": 0.1,  # margin, paper default
            "weight": 1.0,  # weight of the FPD loss against the classification loss
            "formulation": "consistent",  # consistent | literal (paper's equations as printed)
            "reduction": "mean",  # mean over used pairs | sum (paper)
            "ip_norm": True,  # ip only: add the L_norm term of eq. 6
            "sampler": "same_time",  # pair-sampler entry-point name
            "labeller": "wps",  # labeller entry-point name
            "background_pairs": "ignore",  # ignore | positive
            "source_pairs": list(SOURCE_PAIRS),  # any of SS-SS, RW-RW, SS-RW
            "projection_dim": 128,  # width of the dense projection before the loss; 0: none (loss on the encoder's embeddings)
            "wps_high": 0.7,  # tagged class active where frame probability >= this
            "wps_low": 0.3,  # ... inactive below this; frame ignored in between
            "wps_start_epoch": 5,  # RW frames join pairs from this (0-based) epoch on
            "gather_distributed": False,  # pair across all ranks under torch.distributed
        }

    @classmethod
    def config_docs(cls) -> dict[str, str]:
        """One line per key of :meth:`default_config` (``dcase-fpd recipes keys branches``, docs/usage.md)."""
        return {
            "enabled": "the one flag that turns FPD on",
            "distance": "ip: inner product, cosine (eq. 4); euc: Euclidean, 1 / (1 + d) (eq. 1-2)",
            "alpha": "margin (paper default 0.1)",
            "weight": "weight of the FPD loss against the classification loss",
            "formulation": "consistent, or literal: the paper's equations as printed",
            "reduction": "mean over the pairs used, or sum (paper)",
            "ip_norm": "ip only: add the L_norm term of eq. 6",
            "sampler": "pair-sampler plugin (entry-point name)",
            "labeller": "frame-labeller plugin for weakly labelled clips (entry-point name)",
            "background_pairs": "frames with no active class: ignore, or positive pairs with each other",
            "source_pairs": "which sources pair: any of SS-SS, RW-RW, SS-RW (SF: soft-labelled sources, e.g. "
                            "SF-SF; their uncertain frames never pair)",
            "projection_dim": "width of the dense projection before the loss (0: the encoder's embeddings)",
            "wps_high": "weak pseudo-strong (WPS) labels: a tagged class is active where its frame probability "
                        ">= this",
            "wps_low": "... and inactive below this; the frame is ignored in between",
            "wps_start_epoch": "weak clips' frames join pairs from this (0-based) epoch on",
            "gather_distributed": "pair across all ranks under torch.distributed",
        }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Every value, the labeller's and the pair sampler's included (they are built and dropped)."""
        full = {**cls.default_config(), **dict(config)}
        _check_config(full)
        build_plugin("labellers", full["labeller"], full)
        build_plugin("pair_samplers", full["sampler"], full)

    def __init__(self, config: dict[str, Any], embed_dim: int, classes: list[str]):
        full = {**self.default_config(), **dict(config)}
        _check_config(full)
        super().__init__(full, embed_dim, classes)
        dim = int(full["projection_dim"])
        self.projection = nn.Linear(embed_dim, dim) if dim > 0 else nn.Identity()
        self.labeller = build_plugin("labellers", full["labeller"], full)
        self.sampler = build_plugin("pair_samplers", full["sampler"], full)

    def forward(self, output: ModelOutput, batch: Batch, epoch: int) -> BranchOutput:
        cfg = self.config
        embeddings = self.projection(output.embeddings)  # (B, T, P), P = D without projection
        frame_labels, valid = self.labeller(output, batch, epoch)  # (B, T, C), (B, T)
        source = batch.source
        world = 1
        if cfg["gather_distributed"]:
            _, world = world_info()
            embeddings, frame_labels, valid, source = gather_across_ranks(
                embeddings, frame_labels, valid, source
            )
        positive, negative = self.sampler(frame_labels, valid, source)  # (T, B, B) each
        if batch.class_mask is not None:  # pairs only between clips whose sources annotate the same classes
            mask = batch.class_mask.to(torch.uint8)  # (B_r, C); all ranks' rows when pairs span them
            same = same_annotation_pairs(gather_rows(mask) if cfg["gather_distributed"] else mask)
            positive, negative = positive & same, negative & same
        loss = fpd_loss(
            embeddings,
            positive,
            negative,
            distance=cfg["distance"],
            alpha=cfg["alpha"],
            formulation=cfg["formulation"],
            reduction=cfg["reduction"],
            ip_norm=bool(cfg["ip_norm"]),
        )
        logs = {
            "fpd/loss": loss.detach(),
            "fpd/n_positive_pairs": positive.sum().float(),
            "fpd/n_negative_pairs": negative.sum().float(),
        }
        return BranchOutput(loss=float(cfg["weight"]) * scale_gradient(loss, world), logs=logs)


def _check_config(cfg: dict[str, Any]) -> None:
    """Refuse bad values early, naming the recipe key."""

    def choice(key: str, allowed: Any) -> None:
        if cfg[key] not in allowed:
            raise ValueError(f"branches.fpd.{key}: {cfg[key]!r} is not one of {sorted(allowed)}")

    choice("distance", SIMILARITIES)
    choice("formulation", FORMULATIONS)
    choice("reduction", REDUCTIONS)
    choice("background_pairs", BACKGROUND_PAIRS)
    if not isinstance(cfg["ip_norm"], bool):
        raise ValueError(f"branches.fpd.ip_norm must be true or false, got {cfg['ip_norm']!r}")
    if not 0.0 <= float(cfg["alpha"]) <= 1.0:
        raise ValueError(f"branches.fpd.alpha must lie in [0, 1], got {cfg['alpha']}")
    if isinstance(cfg["projection_dim"], bool) or int(cfg["projection_dim"]) < 0:
        raise ValueError(f"branches.fpd.projection_dim must be an integer >= 0 (0: no projection), "
                         f"got {cfg['projection_dim']!r}")
    def known(name: Any) -> bool:
        parts = name.split("-") if isinstance(name, str) else []
        return len(parts) == 2 and all(p in SOURCE_KINDS for p in parts)

    if isinstance(cfg["source_pairs"], str) or not all(known(s) for s in cfg["source_pairs"]):
        raise ValueError(
            f"branches.fpd.source_pairs must be a list of {list(SOURCE_PAIRS)} (or pairs with SF, the "
            f"soft-labelled sources: SF-SF, SS-SF, ...), got {cfg['source_pairs']!r}"
        )


__all__ = ["FPDBranch", "gather_across_ranks", "gather_rows", "same_annotation_pairs",
           "scale_gradient", "build_plugin"]
