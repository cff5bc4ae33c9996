"""Binary cross-entropy on probabilities, the one place the SED losses compute it.

``torch.nn.functional.binary_cross_entropy`` is the reference (DESED_task's ``nn.BCELoss``): its
log is clamped at -100 and its gradient, ``(p - y) / max(p (1 - p), 1e-12)``, stays finite where
``p`` is exactly 0 or 1. A hand-written ``-(y log p + (1 - y) log(1 - p))`` with clamped logs has
the same value but a NaN gradient there (``0 * inf``), and a bf16 sigmoid rounds to exactly 1.0
from logits of about 6: the DCASE 2023 CRNN, trained with ``bf16-mixed``, turned its weights to
NaN after 22 epochs that way. Two more traps are wrapped here: the function is banned under CUDA
autocast (so autocast is switched off around it and the inputs cast to fp32), and a NaN input
gives only "all elements of input should be between 0 and 1" (a device-side assert on CUDA). On
the CPU non-finite inputs get an error that says what happened; on an accelerator that check
would synchronise with the host at every call, so NaN is mapped to 0.5 there and the task checks
its outputs every ``training.log_every_n_steps`` steps instead (``SEDTask.on_train_batch_end``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_cross_entropy(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Element-wise BCE in fp32, any shape (``probs`` and ``target`` alike, values in [0, 1]).

    Raises:
        FloatingPointError: ``probs`` holds NaN or inf (the model's weights have diverged).
    """
    p, y = probs.float(), target.float()
    if p.device.type == "cpu":
        check_finite(p)
    else:  # no per-step host synchronisation on an accelerator: the task checks every few steps
        p = torch.nan_to_num(p, nan=0.5, posinf=1.0, neginf=0.0)  # (F.binary_cross_entropy asserts on NaN there)
    with torch.autocast(device_type=p.device.type, enabled=False):
        return F.binary_cross_entropy(p, y, reduction="none")


DIVERGED = ("the model's probabilities hold NaN/inf, so its weights have diverged; resume from the last "
            "good checkpoint (checkpoints/last.ckpt) with opt.gradient_clip > 0, a lower opt.lr or "
            "training.precision=32")


def check_finite(probs: torch.Tensor) -> None:
    """Raise FloatingPointError (weights diverged) when ``probs`` holds NaN or inf (a host sync)."""
    if not bool(torch.isfinite(probs).all()):
        raise FloatingPointError(DIVERGED)


__all__ = ["binary_cross_entropy", "check_finite", "DIVERGED"]
