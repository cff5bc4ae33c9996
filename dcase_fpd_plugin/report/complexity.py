"""Model complexity for a submission: parameters and MACs per 10 s clip.

**Parameters** are those of the detection model (``task.model``): weights used at inference.
Training-only branches (e.g. the FPD projection) are reported separately and a mean-teacher copy
is not counted.

**MACs** (multiply-accumulates) are for one clip of 10 s (batch 1) in the recipe's feature shape
``(1, n_mels, 1 + 10 s * sample_rate // hop_length)``: convolutions, linear layers and matmuls as
counted by :class:`torch.utils.flop_counter.FlopCounterMode` (MACs = FLOPs / 2); recurrent layers
(GRU, LSTM, RNN) analytically, because FlopCounterMode sees them only where they run as
decomposed matmuls (CPU) and not as fused kernels (cuDNN): per time step, layer and direction
``gates * (in * h + h * h)`` MACs, gates = 3 for a GRU (4 LSTM, 1 RNN), ``in`` the layer's input
width, ``h`` the hidden size. Bias additions, normalisation, activations, pooling, GLU gating
products and the log-mel front-end are not counted (the usual convention of MAC counters).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import nn


CLIP_SECONDS = 10.0
_RNN_GATES = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1}


class ReportError(FileNotFoundError):
    """The experiment folder (or what the report needs in it) is missing; the message names the path."""


# --------------------------------------------------------------------------- model figures
def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (sum of ``numel``), optionally only those with ``requires_grad``."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


@dataclass
class MacCount:
    """MACs of one forward pass. ``total = counted + recurrent`` (all in multiply-accumulates)."""

    total: int
    counted: int  # FlopCounterMode's FLOPs / 2 outside recurrent layers
    recurrent: int  # recurrent layers, analytic
    recurrent_seen_by_torch: int  # FlopCounterMode's FLOPs / 2 inside recurrent layers (replaced)
    input_shape: tuple[int, ...]
    by_op: dict[str, int] = field(default_factory=dict)  # MACs per aten op, outside recurrent layers


def rnn_macs(module: nn.Module, steps: int) -> int:
    """Analytic MACs of a GRU/LSTM/RNN over ``steps`` time steps (summed over the batch).

    Per step, layer and direction: ``gates * (in * h + h_rec * h)`` (+ ``h * proj_size`` for an
    LSTM with projection), gates = 3 (GRU), 4 (LSTM), 1 (RNN); biases not counted.
    """
    gates = next(g for cls, g in _RNN_GATES.items() if isinstance(module, cls))
    h = module.hidden_size
    proj = getattr(module, "proj_size", 0) or 0
    h_out = proj or h
    dirs = 2 if module.bidirectional else 1
    per_step = 0
    for layer in range(module.num_layers):
        n_in = module.input_size if layer == 0 else h_out * dirs
        per_step += gates * (n_in * h + h_out * h) + (h * proj if proj else 0)
    return int(steps * dirs * per_step)


def _rnn_steps(module: nn.Module, x: Any) -> int:
    """Time steps summed over the batch of an RNN input (tensor or PackedSequence)."""
    if isinstance(x, nn.utils.rnn.PackedSequence):
        return int(x.data.shape[0])
    if x.dim() == 2:  # unbatched (T, in)
        return int(x.shape[0])
    return int(x.shape[0] * x.shape[1])  # (B, T, in) or (T, B, in)


def measure_macs(model: nn.Module, example: torch.Tensor) -> MacCount:
    """MACs of ``model(example)`` in eval mode without gradients (see the module docstring)."""
    from torch.utils.flop_counter import FlopCounterMode

    root = type(model).__name__
    rnns = {name: m for name, m in model.named_modules() if isinstance(m, tuple(_RNN_GATES))}
    analytic: dict[str, int] = {name: 0 for name in rnns}
    hooks = []
    for name, m in rnns.items():
        def pre_hook(mod, args, _name=name):
            analytic[_name] += rnn_macs(mod, _rnn_steps(mod, args[0]))
        hooks.append(m.register_forward_pre_hook(pre_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(example)
    finally:
        for hk in hooks:
            hk.remove()
        model.train(was_training)
    counts = counter.get_flop_counts()
    total_flops = int(counter.get_total_flops())
    seen = 0
    rnn_by_op: dict[str, int] = {}
    for name in rnns:
        key = f"{root}.{name}" if name else root  # FlopCounterMode's module names
        for op, flops in counts.get(key, {}).items():
            seen += int(flops)
            rnn_by_op[str(op)] = rnn_by_op.get(str(op), 0) + int(flops)
    by_op = {str(op): int(f) for op, f in counts.get("Global", {}).items()}
    for op, f in rnn_by_op.items():
        by_op[op] -= f
    counted = (total_flops - seen) // 2
    recurrent = sum(analytic.values())
    return MacCount(total=counted + recurrent, counted=counted, recurrent=recurrent,
                    recurrent_seen_by_torch=seen // 2, input_shape=tuple(example.shape),
                    by_op={op: f // 2 for op, f in by_op.items() if f})


def clip_input_shape(feats_cfg: Mapping[str, Any], seconds: float = CLIP_SECONDS) -> tuple[int, int, int]:
    """``(1, n_mels, T_in)``: the log-mel shape of one clip of ``seconds`` s (centred STFT frames)."""
    from ..data.features import n_stft_frames

    n_samples = int(round(seconds * feats_cfg["sample_rate"]))
    return 1, int(feats_cfg["n_mels"]), n_stft_frames(n_samples, int(feats_cfg["hop_length"]))


def count_macs(model: nn.Module, feats_cfg: Mapping[str, Any], seconds: float = CLIP_SECONDS) -> int:
    """MACs of ``model`` for one clip of ``seconds`` s (default 10 s) of audio in the ``feats`` shape.

    Conv/linear/matmul via FlopCounterMode (FLOPs / 2), recurrent layers analytically (see the
    module docstring). The log-mel front-end is not part of the model and not counted.
    """
    return measure_macs_for_clip(model, feats_cfg, seconds).total


def measure_macs_for_clip(model: nn.Module, feats_cfg: Mapping[str, Any], seconds: float = CLIP_SECONDS) -> MacCount:
    """:func:`measure_macs` on a random log-mel clip of ``seconds`` s (on the model's device)."""
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(clip_input_shape(feats_cfg, seconds), generator=gen).to(device)
    return measure_macs(model, example)
