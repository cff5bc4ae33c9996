"""Mixup within source slices, as the DCASE 2023 Task 4 baseline does it (DESED_task).

DESED_task (``sed_trainer.py`` + ``desed_task/data_augm.py::mixup``): with probability 0.5 per
batch, the weak slice and the synthetic slice are each mixed with a random permutation of
themselves, ``x = lam * x + (1 - lam) * x[perm]``, one ``lam ~ Beta(0.2, 0.2)`` drawn per
slice; ``soft`` labels are mixed the same way (clamped to [0, 1]), ``hard`` labels are the
union ``clamp(y + y[perm], 0, 1)``. The unlabelled slice is not mixed, and clips of different
sources are never mixed together: with ``data.sources`` each source's slice (``Batch.group_host``)
is mixed within itself, soft-labelled ones too (DESED_task 2024 mixes its MAESTRO slice; it mixes its
synthetic and AudioSet-strong slices as one, we keep every source apart). Pretrained embeddings
(``Batch.embeddings``) are mixed with the features' ``lam`` and partners (DESED_task 2024 draws
another pair for them, so that a clip's embeddings and features come from different mixes).

DESED_task mixes the mel *amplitudes* (before the dB conversion). Our batches carry dB features
(``20 log10`` amplitude, clamped to [-50, 80] dB; ``data/features.py``), so ``domain="amplitude"``
converts to amplitude, mixes and converts back (with the same clamp); ``domain="feature"`` mixes
the dB values directly.

Per clip we mix: ``feats`` (B, F, T_in), ``strong`` (B, T, C), ``weak`` (B, C); ``frame_valid``
(B, T) becomes the union of both clips' valid frames. Sources, label flags and file names stay.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np
import torch

from ..branch import SOURCE_RW, SOURCE_SF, SOURCE_SS, Batch

DB_MIN, DB_MAX = -50.0, 80.0  # the clamp of data/features.py::LogMel


def db_to_amplitude(feats: torch.Tensor) -> torch.Tensor:
    return torch.pow(10.0, feats / 20.0)


def amplitude_to_db(amp: torch.Tensor) -> torch.Tensor:
    return (20.0 * torch.log10(amp.clamp_min(1e-5))).clamp(DB_MIN, DB_MAX)


def mixup_batch(batch: Batch, prob: float = 0.5, alpha: float = 0.2, label_type: str = "soft",
                domain: str = "amplitude", sources: Sequence[int] = (SOURCE_SS, SOURCE_RW, SOURCE_SF),
                generator: torch.Generator | None = None) -> Batch:
    """A new batch where, with probability ``prob``, each source slice is mixed with itself.

    Args:
        batch: the training batch (not modified).
        prob: probability that this batch is mixed (``training.mixup_prob``; one draw per batch).
        alpha: ``lam ~ Beta(alpha, alpha)``, one ``lam`` and one permutation per slice
            (``training.mixup_alpha``).
        label_type: ``soft`` | ``hard`` (``training.mixup_label_type``).
        domain: ``amplitude`` (DESED_task) | ``feature`` (``training.mixup_domain``).
        sources: the kinds (source ids) whose slices are mixed (DESED_task: synthetic and weak; 2024:
            soft too); each source of those kinds (``batch.group_host``) is mixed within itself.
        generator: torch RNG for the draws (default: the global one, seeded by the run's seed).

    Returns:
        The mixed batch, or ``batch`` itself when not mixed.
    """
    if domain not in ("amplitude", "feature"):
        raise ValueError(f"training.mixup_domain must be amplitude or feature, got {domain!r}")
    if label_type not in ("soft", "hard"):
        raise ValueError(f"training.mixup_label_type must be soft or hard, got {label_type!r}")
    if prob <= 0.0 or float(torch.rand((), generator=generator)) >= prob:
        return batch
    x = db_to_amplitude(batch.feats.float()) if domain == "amplitude" else batch.feats
    feats, strong, weak, valid = x.clone(), batch.strong.clone(), batch.weak.clone(), batch.frame_valid.clone()
    emb = batch.embeddings.clone() if batch.embeddings is not None else None
    source = batch.host_source()  # no device synchronisation when the batch carries it
    groups = batch.host_groups()
    mixed_groups = [int(g) for g in torch.unique(groups[torch.isin(source, torch.tensor(list(sources)))])]
    for group in mixed_groups:  # ascending: the legacy sources' order (synthetic, then weak)
        idx = torch.nonzero(groups == group).flatten()  # this slice's clips
        if idx.numel() < 2:
            continue
        lam = beta_sample(alpha, generator)
        perm = idx[torch.randperm(idx.numel(), generator=generator)]  # partners from the same slice
        idx, perm = _to_device(idx, x.device), _to_device(perm, x.device)
        feats[idx] = lam * x[idx] + (1.0 - lam) * x[perm]
        strong[idx] = _mix_pair(batch.strong, idx, perm, lam, label_type)
        weak[idx] = _mix_pair(batch.weak, idx, perm, lam, label_type)
        valid[idx] = batch.frame_valid[idx] | batch.frame_valid[perm]
        if emb is not None:
            emb[idx] = lam * batch.embeddings[idx] + (1.0 - lam) * batch.embeddings[perm]
    if domain == "amplitude":
        feats = amplitude_to_db(feats)
    return replace(batch, feats=feats.to(batch.feats.dtype), strong=strong, weak=weak, frame_valid=valid,
                   embeddings=emb)


def _to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device copy that does not wait for the device (pinned source, non-blocking)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def beta_sample(alpha: float, generator: torch.Generator | None = None) -> float:
    """One draw of Beta(alpha, alpha), driven by the torch RNG (so the run's seed fixes it)."""
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _mix_pair(y: torch.Tensor, idx: torch.Tensor, perm: torch.Tensor, lam: float, label_type: str) -> torch.Tensor:
    if label_type == "soft":
        return (lam * y[idx] + (1.0 - lam) * y[perm]).clamp(0.0, 1.0)
    return (y[idx] + y[perm]).clamp(0.0, 1.0)


__all__ = ["mixup_batch", "beta_sample", "db_to_amplitude", "amplitude_to_db"]
