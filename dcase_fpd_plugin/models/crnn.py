"""The DCASE 2023 Task 4 baseline CRNN, re-implemented on our stack (``net.name: crnn``).

Architecture, as in DESED_task's ``desed_task/nnet/CRNN.py`` (2023 baseline, ``confs/default.yaml``):

* input: log-mel (B, F, T_in) in dB, scaled per clip by min-max over (F, T_in) to [0, 1]:
  ``(x - min) / (max - min + 1e-8)``, DESED_task's ``TorchScaler("instance", "minmax", dims=(1, 2))``
  (``net.crnn_input_norm: minmax``). The first convolution's zero padding then stands for the
  clip's minimum, as in DESED_task. ``minmax_signed`` maps to [-1, 1] instead (this package's
  scaling up to 0.1.0: checkpoints saved before 0.2 carry no ``dcase_fpd_fidelity`` key,
  ``task.FIDELITY_KEY``, and load with it), ``standard`` gives zero mean and unit variance per clip;
* 7 conv blocks: conv 3x3 (stride 1, padding 1, with bias) -> batch norm (eps 1e-3, PyTorch
  momentum 0.99, DESED_task's values) -> GLU gating ``linear(x) * sigmoid(x)`` (a dense layer
  over channels at every time-frequency bin) -> dropout 0.5 -> average pooling (time, freq);
  filters 16-32-64-128-128-128-128, pooling [[2,2],[2,2],[1,2],[1,2],[1,2],[1,2],[1,2]]:
  626 STFT frames x 128 mels -> 156 frames x 1 bin (64 ms per output frame at hop 256);
* with pretrained frame embeddings (``net.embedding_dim`` > 0; DESED_task 2024, ``aggregation_type:
  pool1d``): the embedding sequence (B, D_e, T_e), e.g. BEATs' (B, 768, 496), is average-pooled to the
  CNN's T frames (``adaptive_avg_pool1d``), concatenated with the CNN output, passed through dropout
  and projected back to the CNN's width by a dense layer (``cat_tf``), then the GRU;
* 2-layer bidirectional GRU of 128 units per direction -> frame embeddings (B, T, 256);
* dropout 0.5, then two dense layers to C classes: ``strong = sigmoid(dense(x))`` (frame
  probabilities) and attention logits ``a = dense_softmax(x)``;
* clip probabilities ``weak[c] = sum_t strong[t, c] w[t, c] / sum_t w[t, c]``.
  DESED_task takes the softmax over the **class** axis (``nn.Softmax(dim=-1)`` on (B, T, C)),
  clamps it to [1e-7, 1] and normalises over time by the division: ``crnn_attention: classes``
  (the default, the baseline exactly). ``crnn_attention: time`` takes the softmax over time instead.
  Padded frames (``frame_valid`` False) get zero weight in both.
* ``class_mask`` (B, C) bool (DESED_task 2024's ``classes_mask``): the classes a clip's source does not
  annotate get no attention weight (softmax over the other classes) and output 0.

Memory (``net.crnn_checkpoint_blocks: N``, default 0): the first N conv blocks keep no activations for
the backward pass and recompute them there instead (``torch.utils.checkpoint``, the dropout masks
and the BatchNorm running statistics as in the plain pass). The first two blocks, at full time and
frequency resolution, hold ~60 % of the activations a training step keeps (1.0 of 1.6 GB at batch
48 in bf16 on an H100: ``benchmarks/bench_memory.py``); the results are the same, the step does
their forward twice.

With 10 classes: 1,112,420 parameters (DCASE: 1.11 M). MACs for 10 s: see :func:`dcase_fpd_plugin.report.complexity.count_macs`
in ``models/__init__.py`` and ``tests/models/test_crnn.py``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator, Sequence

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..branch import ModelOutput
from .encoder import pooled_length
from .pooling import attention_pool, pool1d_fuse

ATTENTION_MODES = ("classes", "time")
INPUT_NORMS = ("minmax", "minmax_signed", "standard")


def minmax_per_clip(feats: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Min-max over each clip's (F, T_in) image to [0, 1], DESED_task's instance scaler
    ``(x - min) / (max - min + eps)``.  (B, F, T_in) -> (B, F, T_in)"""
    lo = feats.amin(dim=(1, 2), keepdim=True)
    hi = feats.amax(dim=(1, 2), keepdim=True)
    return (feats - lo) / (hi - lo + eps)


def minmax_signed_per_clip(feats: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """:func:`minmax_per_clip` mapped to [-1, 1] (``net.crnn_input_norm: minmax_signed``; the
    scaling of checkpoints saved before 0.2).  (B, F, T_in) -> (B, F, T_in)"""
    return minmax_per_clip(feats, eps) * 2.0 - 1.0


def standardize_per_clip(feats: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over each clip's (F, T_in) image.  (B, F, T_in)"""
    return (feats - feats.mean(dim=(1, 2), keepdim=True)) / (feats.std(dim=(1, 2), keepdim=True) + eps)


_SCALINGS = {"minmax": minmax_per_clip, "minmax_signed": minmax_signed_per_clip, "standard": standardize_per_clip}


class GLU(nn.Module):
    """Gated linear unit over channels: ``linear(x) * sigmoid(x)`` at every (time, freq) bin.  (B, Ch, T, F)"""

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lin = self.linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, Ch, T, F)
        return lin * torch.sigmoid(x)


class ConvBlock(nn.Module):
    """conv k x k -> batch norm -> GLU -> dropout -> average pooling (time, freq)."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, pool: Sequence[int], dropout: float,
                 bn_momentum: float):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, stride=1, padding=kernel_size // 2)
        self.norm = nn.BatchNorm2d(c_out, eps=1e-3, momentum=bn_momentum)
        self.glu = GLU(c_out)
        self.dropout = nn.Dropout(dropout)
        self.pool = nn.AvgPool2d(tuple(pool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, Ch_in, T, F) -> (B, Ch_out, T', F')
        return self.pool(self.dropout(self.glu(self.norm(self.conv(x)))))


@contextlib.contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Normalisation layers of ``module`` (batch or instance norm) normalise with their batch
    statistics as usual but leave their running statistics as they were (a checkpointed block's
    recomputation must not update them twice). Momentum 0 (also for ``momentum=None``, the
    cumulative average) makes the update a no-op; ``num_batches_tracked`` is restored."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._NormBase) and m.track_running_stats]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)


class CRNN(nn.Module):
    """Log-mel (B, F, T_in) -> :class:`ModelOutput` (GRU frame embeddings, frame and clip probabilities).

    Args:
        n_mels: F, input mel bands (``feats.n_mels``; 128 in DCASE).
        n_classes: C.
        filters: output channels of each conv block (``net.crnn_filters``).
        pooling: (time, freq) average-pooling factors of each block (``net.crnn_pooling``).
        kernel_size: square conv kernel (``net.crnn_kernel_size``).
        dropout: dropout after each conv block and after the GRU (``net.crnn_dropout``).
        rnn_hidden: GRU units per direction (``net.rnn_hidden``); D = 2 * rnn_hidden.
        rnn_layers: stacked bidirectional GRU layers (``net.rnn_layers``).
        rnn_dropout: dropout between GRU layers (``net.rnn_dropout``).
        attention: ``classes`` (DESED_task) or ``time`` softmax (``net.crnn_attention``).
        input_norm: per-clip ``minmax`` to [0, 1] (DESED_task), ``minmax_signed`` to [-1, 1] or
            ``standard`` (``net.crnn_input_norm``).
        bn_momentum: BatchNorm momentum, PyTorch meaning (``net.crnn_bn_momentum``; DESED_task 0.99).
        checkpoint_blocks: the first N conv blocks recompute their activations in the backward pass
            instead of keeping them (``net.crnn_checkpoint_blocks``; module docstring).
        embedding_dim: D_e, width of pretrained frame embeddings fused before the GRU (``net.embedding_dim``;
            0: none).
        embedding_aggregation: how they meet the CNN frames (``net.embedding_aggregation``: ``pool1d``).
    """

    def __init__(self, n_mels: int, n_classes: int,
                 filters: Sequence[int] = (16, 32, 64, 128, 128, 128, 128),
                 pooling: Sequence[Sequence[int]] = ((2, 2), (2, 2), (1, 2), (1, 2), (1, 2), (1, 2), (1, 2)),
                 kernel_size: int = 3, dropout: float = 0.5, rnn_hidden: int = 128, rnn_layers: int = 2,
                 rnn_dropout: float = 0.0, attention: str = "classes", input_norm: str = "minmax",
                 bn_momentum: float = 0.99, checkpoint_blocks: int = 0, embedding_dim: int = 0,
                 embedding_aggregation: str = "pool1d"):
        super().__init__()
        pooling = [list(p) for p in pooling]
        if len(filters) == 0 or len(pooling) != len(filters) or any(len(p) != 2 for p in pooling):
            raise ValueError(f"net.crnn_pooling must hold one [time, freq] pair per net.crnn_filters entry "
                             f"({len(filters)}), got {pooling}")
        if any(int(p) < 1 for pair in pooling for p in pair) or any(int(f) < 1 for f in filters):
            raise ValueError("net.crnn_filters and net.crnn_pooling must be positive integers")
        n_freq = pooled_length(n_mels, [p[1] for p in pooling])
        if n_freq < 1:
            raise ValueError(f"net.crnn_pooling pools feats.n_mels={n_mels} mel bands below 1 "
                             f"(frequency factors {[p[1] for p in pooling]}); the DCASE CRNN needs 128 mels")
        if attention not in ATTENTION_MODES:
            raise ValueError(f"net.crnn_attention must be one of {ATTENTION_MODES}, got {attention!r}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"net.crnn_input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        if rnn_hidden < 1 or rnn_layers < 1:
            raise ValueError("net.rnn_hidden and net.rnn_layers must be >= 1")
        if not 0 <= int(checkpoint_blocks) <= len(filters):
            raise ValueError(f"net.crnn_checkpoint_blocks must lie in [0, {len(filters)}] (the conv blocks), "
                             f"got {checkpoint_blocks}")
        self.checkpoint_blocks = int(checkpoint_blocks)
        blocks, c_in = [], 1
        for c_out, pool in zip(filters, pooling):
            blocks.append(ConvBlock(c_in, int(c_out), kernel_size, pool, dropout, bn_momentum))
            c_in = int(c_out)
        self.cnn = nn.Sequential(*blocks)
        if embedding_aggregation != "pool1d":
            raise ValueError(f"net.embedding_aggregation must be pool1d, got {embedding_aggregation!r}")
        self.embedding_dim = int(embedding_dim)
        if self.embedding_dim:  # DESED_task 2024's cat_tf: [CNN frames, pooled embeddings] -> the CNN's width
            self.cat_tf = nn.Linear(c_in * n_freq + self.embedding_dim, c_in * n_freq)
        self.rnn = nn.GRU(c_in * n_freq, rnn_hidden, num_layers=rnn_layers, batch_first=True,
                          bidirectional=True, dropout=rnn_dropout if rnn_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(2 * rnn_hidden, n_classes)  # frame classifier
        self.dense_softmax = nn.Linear(2 * rnn_hidden, n_classes)  # attention logits
        self.time_pool = [int(p[0]) for p in pooling]
        self.attention = attention
        self.input_norm = input_norm
        self._embed_dim = 2 * rnn_hidden

    @property
    def embed_dim(self) -> int:
        """D, the width of the frame embeddings (the bidirectional GRU output)."""
        return self._embed_dim

    def output_frames(self, n_in: int) -> int:
        """T, output frames for ``n_in`` STFT frames (626 -> 156 with the DCASE pooling)."""
        return pooled_length(n_in, self.time_pool)

    @property
    def time_pooling(self) -> int:
        """STFT frames per output frame (4 in DCASE: 64 ms at hop 256, 16 kHz)."""
        return math.prod(self.time_pool)

    def normalize(self, feats: torch.Tensor) -> torch.Tensor:
        """The per-clip input scaling of ``net.crnn_input_norm``.  (B, F, T_in) -> (B, F, T_in)"""
        return _SCALINGS[self.input_norm](feats)

    def _conv_blocks(self, x: torch.Tensor) -> torch.Tensor:  # (B, 1, T_in, F) -> (B, Ch, T, F')
        if not self.checkpoint_blocks or not torch.is_grad_enabled():  # e.g. the teacher, inference
            return self.cnn(x)
        for k, block in enumerate(self.cnn):
            if k < self.checkpoint_blocks:
                x = checkpoint(block, x, use_reentrant=False,
                               context_fn=lambda b=block: (contextlib.nullcontext(), frozen_running_stats(b)))
            else:
                x = block(x)
        return x

    def fuse(self, x: torch.Tensor, embeddings: torch.Tensor | None) -> torch.Tensor:
        """CNN frames (B, T, W) and pretrained embeddings (B, D_e, T_e) -> (B, T, W): the embeddings pooled
        to T frames, concatenated, dropout, projected (DESED_task 2024's ``pool1d`` fusion)."""
        return pool1d_fuse(x, embeddings, self.embedding_dim, getattr(self, "cat_tf", None), self.dropout, "CRNN")

    def forward(self, feats: torch.Tensor, frame_valid: torch.Tensor | None = None,
                embeddings: torch.Tensor | None = None, class_mask: torch.Tensor | None = None) -> ModelOutput:
        x = self.normalize(feats).transpose(1, 2).unsqueeze(1)  # (B, 1, T_in, F)
        x = self._conv_blocks(x)  # (B, Ch, T, F')
        b, ch, t, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, ch * f)  # (B, T, Ch * F')
        x = self.fuse(x, embeddings)  # (B, T, Ch * F')
        h, _ = self.rnn(x)  # (B, T, D) frame embeddings
        if frame_valid is not None and frame_valid.shape[1] != t:
            raise ValueError(f"frame_valid has {frame_valid.shape[1]} frames, the CRNN gives {t}")
        z = self.dropout(h)
        frame_probs = torch.sigmoid(self.dense(z))  # (B, T, C)
        logits = self.dense_softmax(z)  # (B, T, C)
        frame_probs, clip_probs = attention_pool(frame_probs, logits, frame_valid, class_mask, self.attention)
        return ModelOutput(embeddings=h, frame_probs=frame_probs, clip_probs=clip_probs)
