"""GPU memory of a training process: the cap a recipe sets (``training.gpu_memory_limit_gb``), the
peak a fit reached (``peak_gpu_mb`` in metrics.json, MB), and what to change when a run does not fit.

Where a CRNN run's memory goes (H100, batch 48; ``docs/usage.md``, performance notes): the feature
store on the device plus one training step, whose peak is the activations kept for the backward pass
(halved by bf16 autocast, cut by ``net.crnn_checkpoint_blocks`` and ``training.teacher_first``), not
cuDNN's workspaces. ``benchmarks/bench_memory.py`` measures a step per configuration.
"""

from __future__ import annotations

import sys
from typing import Any

import pytorch_lightning as pl
import torch

from ..compat import expand_cuda_segments
from ..recipe.schema import RecipeError


def _cuda_index(device: torch.device) -> int:
    """The index of a CUDA device (``cuda`` alone: the current one; torch's memory calls want one)."""
    return device.index if device.index is not None else torch.cuda.current_device()


def limit_gpu_memory(limit_gb: float | None, device: torch.device | str) -> float | None:
    """``training.gpu_memory_limit_gb``: cap what this process's PyTorch allocator may hold on a CUDA
    ``device`` (``torch.cuda.set_per_process_memory_fraction``; the CUDA context and the libraries'
    handles, a few hundred MB per process, come on top), and makes the allocator's segments
    expandable (:func:`~dcase_fpd_plugin.compat.expand_cuda_segments`: under a cap, fixed-size
    segments left partly used made an fp32 CRNN run fail below its peak; docs/usage.md, performance
    notes). Beyond the cap an allocation raises CUDA's out of memory error, and cuDNN, which tries
    its convolution algorithms in turn and passes over one whose workspace cannot be allocated,
    falls back to leaner ones: several runs that share a
    GPU each keep to their share. ``limit_gb`` None lifts a cap set earlier in the process.
    Returns the fraction of the device's memory set, None where no cap was set (no limit, or not a
    CUDA device). Raises RecipeError for a limit above the device's memory."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    index = _cuda_index(device)
    if limit_gb is None:
        torch.cuda.set_per_process_memory_fraction(1.0, index)
        return None
    total = torch.cuda.get_device_properties(index).total_memory
    fraction = float(limit_gb) * 2**30 / total
    if fraction > 1.0:
        raise RecipeError(f"'training.gpu_memory_limit_gb' is {limit_gb} GB, more than {device} holds "
                          f"({total / 2**30:.1f} GB)")
    torch.cuda.set_per_process_memory_fraction(fraction, index)
    expand_cuda_segments()
    return fraction


def peak_gpu_mb(device: torch.device | str) -> float | None:
    """MB this process has had allocated at most on a CUDA ``device`` since its peak was last reset
    (feature store, model, the steps' tensors, cuDNN's workspaces: ``torch.cuda.max_memory_allocated``),
    None elsewhere."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(_cuda_index(device)) / 2**20


def is_gpu_memory_error(exc: BaseException, capped: bool) -> bool:
    """CUDA's out of memory error, or cuDNN failing to allocate; under a cap (``capped``) also cuDNN
    finding no algorithm, which there means none whose workspace fits (without a cap it more often
    means a configuration cuDNN does not support)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and "cuDNN" in text and ("ALLOC" in text or (capped and "engine" in text))


def memory_levers(recipe: dict[str, Any], store_on_gpu: bool) -> list[str]:
    """The recipe changes that lower a CRNN / CNN run's GPU memory, those not already in use, biggest
    first (H100, batch 48, DCASE CRNN: ``docs/usage.md#performance-notes``): bf16 autocast halves the
    activations, 2 checkpointed conv blocks drop the full-resolution blocks' saved tensors (a third
    one lowers nothing: the peak is then the first block's recomputation), the teacher
    first frees its activations before the student keeps its own, a float16 store halves the store,
    no store keeps the training features on the host; a smaller batch always helps."""
    from .precision import resolve_precision

    tr, net, data = recipe["training"], recipe["net"], recipe["data"]
    levers = []
    if resolve_precision(tr["precision"], "gpu") in ("32-true", "32", 32, "64-true", "64", 64):
        levers.append("training.precision=bf16-mixed (half the activations; 16-mixed on a GPU before Ampere)")
    if net["name"] == "crnn" and net["crnn_checkpoint_blocks"] < 2:  # more blocks: the same peak (docs)
        levers.append("net.crnn_checkpoint_blocks=2 (the full-resolution blocks recompute their activations "
                      "in backward)")
    if tr["mean_teacher"] and not tr["teacher_first"]:
        levers.append("training.teacher_first=true")
    if store_on_gpu and data["feature_store_dtype"] == "float32":
        levers.append("data.feature_store_dtype=float16 (half the store)")
    if store_on_gpu:
        levers.append("data.feature_store=off (training features stay on the host)")
    levers.append("a smaller training.batch_size")
    return levers


class GpuMemory(pl.Callback):
    """The GPU memory of one fit of ``recipe``: applies ``training.gpu_memory_limit_gb``
    (:func:`limit_gpu_memory`) to the device the process trains on (each DDP rank its own) for the fit
    and lifts it after; keeps the fit's peak (``peak_mb``, MB: None off CUDA or when no training step
    ran, e.g. a resumed run that was already complete); when the fit runs out of GPU memory, says
    what to change (:func:`memory_levers`)."""

    def __init__(self, recipe: dict[str, Any]):
        self.recipe = recipe
        self.limit_gb: float | None = recipe["training"]["gpu_memory_limit_gb"]
        self.peak_mb: float | None = None
        self._steps = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        device = trainer.strategy.root_device
        limit_gpu_memory(self.limit_gb, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(_cuda_index(device))  # this fit's, not an earlier run's
        self.peak_mb, self._steps = None, 0

    def on_train_batch_end(self, trainer: pl.Trainer, *args: Any) -> None:
        self._steps += 1

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        device = trainer.strategy.root_device
        if self._steps:
            self.peak_mb = peak_gpu_mb(device)
        if self.limit_gb is not None:
            limit_gpu_memory(None, device)  # the tests after the fit, and the next run in this process

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if self.limit_gb is not None:
            limit_gpu_memory(None, trainer.strategy.root_device)  # Lightning calls no teardown hook after an error
        if not is_gpu_memory_error(exception, capped=self.limit_gb is not None):
            return
        try:  # a hint that fails must not replace the error it explains
            store = getattr(trainer.datamodule, "store", None)
            on_gpu = store is not None and store.device.type == "cuda"
            where = f" under training.gpu_memory_limit_gb={self.limit_gb}" if self.limit_gb is not None else ""
            held = f"; the feature store holds {store.nbytes / 2**20:.0f} MB of it" if on_gpu else ""
            levers = memory_levers(self.recipe, on_gpu)
            hint = (f"\ndcase-fpd: out of GPU memory{where}{held}. Lower what the run needs: {'; '.join(levers)}"
                    + (", or raise the limit" if where else "")
                    + ". `python benchmarks/bench_memory.py --device cuda` prints a CRNN step's peak per "
                    "configuration.")
        except Exception:
            return
        print(hint, file=sys.stderr)


__all__ = ["GpuMemory", "is_gpu_memory_error", "limit_gpu_memory", "memory_levers", "peak_gpu_mb"]
