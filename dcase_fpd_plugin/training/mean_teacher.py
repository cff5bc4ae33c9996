"""Mean teacher (Tarvainen & Valpola, 2017) as in the DCASE 2023 Task 4 baseline (DESED_task).

* The teacher is a copy of the student whose parameters follow the student's by an exponential
  moving average after every optimiser step (``training.ema_factor``, 0.999):
  ``teacher = a * teacher + (1 - a) * student`` with ``a = min(1 - 1 / (n + 1), ema_factor)``
  after ``n`` optimiser steps (the true average of the students so far until the EMA is the
  better estimate, as DESED_task's ``update_ema``). Only parameters are averaged; the teacher's
  BatchNorm statistics come from its own forward passes in training mode, as in DESED_task.
  The teacher gets no gradient and is not given to the optimiser.
* Consistency loss on *all* clips of the batch (SS, RW and unlabelled), between student and
  (detached) teacher: ``MSE(frame_s, frame_t) + MSE(clip_s, clip_t)`` (``training.self_sup_loss``
  ``mse``; ``bce`` uses the teacher's probabilities as soft targets), weighted by
  ``training.const_max * ramp_up(step)``.
* Ramp-up (DESED_task's ``ExponentialWarmup``): ``exp(-5 (1 - t)^2)`` with ``t = min(step / L, 1)``,
  ``L = training.n_epochs_warmup x steps per epoch``; ``step`` counts from 1 at the first
  optimiser step. ``opt.lr_warmup`` ramps the learning rate with the same curve.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .bce import binary_cross_entropy
from ..branch import ModelOutput


def sigmoid_rampup(step: float, rampup_steps: float, exponent: float = -5.0) -> float:
    """``exp(exponent * (1 - t)^2)``, ``t = clip(step / rampup_steps, 0, 1)``; 1.0 when ``rampup_steps`` is 0.

    exp(-5) ~ 0.0067 at step 0, exp(-1.25) ~ 0.287 half-way, 1.0 from ``rampup_steps`` on.
    """
    if rampup_steps <= 0:
        return 1.0
    t = min(max(float(step), 0.0), float(rampup_steps)) / float(rampup_steps)
    return float(math.exp(exponent * (1.0 - t) ** 2))


def ema_factor_at(n_steps: int, ema_factor: float) -> float:
    """The EMA weight of the teacher after ``n_steps`` optimiser steps: ``min(1 - 1 / (n + 1), ema_factor)``."""
    return min(1.0 - 1.0 / (n_steps + 1), ema_factor)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, alpha: float) -> None:
    """``teacher_param = alpha * teacher_param + (1 - alpha) * student_param`` for every parameter, in place."""
    t_params, s_params = list(teacher.parameters()), list(student.parameters())
    if len(t_params) != len(s_params):
        raise ValueError(f"teacher has {len(t_params)} parameter tensors, the student {len(s_params)}")
    s_params = [s.detach().to(t.dtype) for t, s in zip(t_params, s_params)]
    # one fused kernel per dtype/device group instead of two per tensor
    torch._foreach_mul_(t_params, alpha)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - alpha)


def consistency_loss(student: ModelOutput, teacher: ModelOutput, frame_valid: torch.Tensor | None = None,
                     kind: str = "mse") -> torch.Tensor:
    """Frame + clip consistency between student and teacher probabilities (teacher detached).

    Args:
        student, teacher: model outputs with frame_probs (B, T, C) and clip_probs (B, C).
        frame_valid: (B, T) bool; padded frames are left out of the frame term.
        kind: ``mse`` (DESED_task's default) or ``bce`` (teacher probabilities as soft targets).

    Returns:
        A scalar: mean over valid (clip, frame, class) entries + mean over (clip, class) entries.
    """
    fs, ft = student.frame_probs.float(), teacher.frame_probs.detach().float()
    cs, ct = student.clip_probs.float(), teacher.clip_probs.detach().float()
    if kind == "mse":
        frame_err, clip_err = (fs - ft) ** 2, (cs - ct) ** 2
    elif kind == "bce":
        frame_err, clip_err = binary_cross_entropy(fs, ft), binary_cross_entropy(cs, ct)
    else:
        raise ValueError(f"training.self_sup_loss must be mse or bce, got {kind!r}")
    if frame_valid is not None:
        mask = frame_valid[:, :, None].to(frame_err.dtype).expand_as(frame_err)  # (B, T, C)
        frame_term = (frame_err * mask).sum() / mask.sum().clamp_min(1.0)
    else:
        frame_term = frame_err.mean()
    return frame_term + clip_err.mean()


class MeanTeacher(nn.Module):
    """Holds the EMA teacher of a student model (the student itself is not registered here).

    Args:
        student: the model to copy (its current weights become the teacher's).
        ema_factor: ``training.ema_factor``.
    """

    def __init__(self, student: nn.Module, ema_factor: float = 0.999):
        super().__init__()
        if not 0.0 <= ema_factor < 1.0:
            raise ValueError(f"training.ema_factor must lie in [0, 1), got {ema_factor}")
        self.teacher = copy.deepcopy(student)
        self.teacher.requires_grad_(False)
        self.ema_factor = float(ema_factor)

    def update(self, student: nn.Module, n_steps: int) -> float:
        """EMA step after ``n_steps`` optimiser steps of the student; returns the weight used."""
        alpha = ema_factor_at(n_steps, self.ema_factor)
        ema_update(self.teacher, student, alpha)
        return alpha

    @torch.no_grad()
    def forward(self, feats: torch.Tensor, frame_valid: torch.Tensor | None = None, **inputs) -> ModelOutput:
        """The teacher's output; ``inputs``: the model's other inputs (``embeddings``, ``class_mask``)."""
        return self.teacher(feats, frame_valid, **inputs)


__all__ = ["MeanTeacher", "sigmoid_rampup", "ema_factor_at", "ema_update", "consistency_loss"]
