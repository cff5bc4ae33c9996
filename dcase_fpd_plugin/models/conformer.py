"""A Conformer encoder for SED (``net.name: conformer``): the paper's future work ("notably the Conformer").

Same interface as :class:`~dcase_fpd_plugin.models.crnn.CRNN`: log-mel (B, F, T_in) ->
:class:`ModelOutput` (frame embeddings (B, T, D), frame probabilities (B, T, C), clip probabilities
(B, C)), ``embed_dim``, ``time_pooling``, ``output_frames(n_in)``; ``frame_valid``, ``class_mask`` and
pretrained ``embeddings`` are taken as the CRNN takes them.

Architecture (Gulati et al., "Conformer: Convolution-augmented Transformer for Speech Recognition",
Interspeech 2020; for SED Miyazaki et al., DCASE 2020 Task 4, 4th place, whose encoder we read as 3 blocks
of 144 dimensions, 4 heads, kernel 7 (not re-checked here)):

* input: per-clip min-max of the log-mel image to [0, 1], as the CRNN's default
  (``crnn_input_norm: minmax``); with ``frame_valid`` over the valid input frames only, and the padded
  input frames set to 0 (the clip's minimum, what the convolutions' zero padding stands for);
* convolutional front end: conv blocks as the CRNN's (conv 3x3 -> batch norm -> GLU gating ->
  dropout -> average pooling (time, freq)), ``net.conformer_frontend_filters`` /
  ``conformer_frontend_pooling`` (default 16-32-64, [[2, 2], [2, 2], [1, 2]]: 626 STFT frames x 128
  mels -> 156 frames x 16 bins, time pooling 4 as the CRNN: 64 ms frames at hop 256), then a dense
  layer over channels x remaining bins -> ``d_model``, dropout. With ``frame_valid`` the padded frames
  are set to 0 after every block, so that the valid frames see what an unpadded clip's would;
* with pretrained frame embeddings (``net.embedding_dim`` > 0): DESED_task 2024's ``pool1d`` fusion as
  in the CRNN (pooled to T frames, concatenated, dropout, dense back to ``d_model``), before the blocks;
* N Conformer blocks (``net.conformer_blocks``), each::

      x = x + 1/2 FF(x)          FF: layer norm -> dense (d -> e d) -> swish -> dropout -> dense -> dropout
      x = x + MHSA(x)            layer norm -> multi-head self-attention, relative positions -> dropout
      x = x + Conv(x)            layer norm -> pointwise (d -> 2 d) -> GLU -> depthwise conv (kernel k)
                                 -> batch norm -> swish -> pointwise (d -> d) -> dropout
      x = x + 1/2 FF(x)
      x = LayerNorm(x)

  Self-attention with **Transformer-XL relative positional encoding** (Dai et al. 2019, the one Gulati et
  al. use; ESPnet's ``RelPositionMultiHeadedAttention``): score(i, j) = [(q_i + u) . k_j +
  (q_i + v) . W_r r_{i-j}] / sqrt(d_k), with r_{i-j} the sinusoidal encoding of the signed distance
  i - j (no absolute positions anywhere), u and v learnt per head, W_r a dense layer without bias. The
  position term depends only on the query and the distance (:meth:`RelPositionMultiHeadAttention.position_scores`).
  Padded frames (``frame_valid`` False) are masked out of the keys (no attention weight) and set to 0
  before the depthwise convolution (as its own zero padding);
* frame embeddings h (B, T, d_model) = the last block's output: ``ModelOutput.embeddings`` (the FPD
  branch attaches there); then dropout, ``strong = sigmoid(dense(h))`` and attention pooling to clip
  probabilities as the CRNN's ``classes`` mode (softmax over classes, clamped to [1e-7, 1], normalised
  over the valid frames); ``class_mask`` (B, C): masked classes get no attention weight and output 0.

Exactness of the padding: in eval mode the valid frames' outputs of a clip padded with ``frame_valid``
are those of the same clip unpadded (when its STFT frames are a multiple of ``time_pooling``), whatever
the padded features hold (``tests/models/test_conformer.py``). In training mode the batch norms' batch
statistics include the padded frames (as ESPnet's), which do not depend on the padded features either.

Size with the defaults (d_model 144, 4 heads, 3 blocks, FF x4, kernel 7, 10 classes): 1,689,348
parameters, 565.8 M MACs for 10 s (:func:`dcase_fpd_plugin.report.complexity.count_macs`: conv,
linear and attention matmuls; ``tests/models/test_conformer.py``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from ..branch import ModelOutput
from .crnn import ConvBlock, minmax_per_clip
from .encoder import pooled_length
from .pooling import attention_pool, pool1d_fuse


def relative_position_encoding(n: int, d: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Sinusoidal encodings of the signed distances ``n - 1, n - 2, ..., -(n - 1)`` (row k: distance
    ``n - 1 - k``), Transformer-XL / ESPnet's ``RelPositionalEncoding``: ``sin(r w_i)``, ``cos(r w_i)``
    interleaved, ``w_i = 10000^(-2i/d)``.  -> (2n - 1, d)"""
    r = torch.arange(n - 1, -n, -1, device=device, dtype=torch.float32)[:, None]  # (2n - 1, 1)
    w = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(2 * n - 1, d, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(r * w)
    pe[:, 1::2] = torch.cos(r * w[: d // 2])
    return pe.to(dtype)


class RelPositionMultiHeadAttention(nn.Module):
    """Multi-head self-attention with Transformer-XL relative positions (module docstring).  (B, T, d)"""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"net.conformer_d_model ({d_model}) must be a multiple of net.conformer_heads ({heads})")
        self.heads, self.d_k = heads, d_model // heads
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)  # W_r
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))  # u: content bias
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))  # v: position bias
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, H, T, d_k)
        return x.view(x.shape[0], x.shape[1], self.heads, self.d_k).transpose(1, 2)

    def position_scores(self, q_v: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        """The position term ``(q_i + v) . W_r r_{i-j}`` (unscaled) for queries ``q_v = q + v`` (B, H, T, d_k)
        and the encodings of :func:`relative_position_encoding` (2T - 1, d).  -> (B, H, T, T)"""
        b, h, t, _ = q_v.shape
        p = self.linear_pos(pos_emb).view(2 * t - 1, h, self.d_k).transpose(0, 1)  # (H, 2T - 1, d_k)
        by_distance = torch.matmul(q_v, p.transpose(-2, -1))  # (B, H, T, 2T - 1): column k = distance T - 1 - k
        i = torch.arange(t, device=q_v.device)
        column = (t - 1) - (i[:, None] - i[None, :])  # (T, T): the column of distance i - j
        return by_distance.gather(-1, column.expand(b, h, t, t))

    def attention_weights(self, x: torch.Tensor, pos_emb: torch.Tensor,
                          key_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention weights (B, H, T, T) (before dropout; rows sum to 1 over the valid keys, 0 on the
        others) and the values (B, H, T, d_k) of ``x`` (B, T, d)."""
        q, k, v = self._heads(self.linear_q(x)), self._heads(self.linear_k(x)), self._heads(self.linear_v(x))
        content = torch.matmul(q + self.pos_bias_u[:, None, :].to(q.dtype), k.transpose(-2, -1))  # (B, H, T, T)
        position = self.position_scores(q + self.pos_bias_v[:, None, :].to(q.dtype), pos_emb)
        scores = (content + position) / math.sqrt(self.d_k)
        if key_valid is not None:
            masked = ~key_valid[:, None, None, :]
            scores = scores.masked_fill(masked, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1).masked_fill(masked, 0.0)
        else:
            weights = torch.softmax(scores, dim=-1)
        return weights, v

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        weights, v = self.attention_weights(x, pos_emb, key_valid)
        out = torch.matmul(self.dropout(weights).to(v.dtype), v)  # (B, H, T, d_k)
        return self.linear_out(out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1))


class FeedForward(nn.Module):
    """layer norm -> dense (d -> e d) -> swish -> dropout -> dense (e d -> d) -> dropout.  (B, T, d)"""

    def __init__(self, d_model: int, expansion: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, expansion * d_model), nn.SiLU(),
                                 nn.Dropout(dropout), nn.Linear(expansion * d_model, d_model), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvolutionModule(nn.Module):
    """layer norm -> pointwise (d -> 2d) -> GLU -> depthwise conv over time -> batch norm -> swish ->
    pointwise (d -> d) -> dropout. The pointwise convolutions are dense layers over channels (the same
    map). Padded frames are 0 at the depthwise convolution's input.  (B, T, d)"""

    def __init__(self, d_model: int, kernel_size: int, dropout: float):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"net.conformer_conv_kernel must be an odd number >= 1, got {kernel_size}")
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2, groups=d_model)
        self.batch_norm = nn.BatchNorm1d(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        y = F.glu(self.pointwise_in(self.norm(x)), dim=-1)  # (B, T, d)
        if valid is not None:
            y = y * valid[:, :, None].to(y.dtype)
        y = self.depthwise(y.transpose(1, 2))  # (B, d, T)
        y = F.silu(self.batch_norm(y)).transpose(1, 2)  # (B, T, d)
        return self.dropout(self.pointwise_out(y))


class ConformerBlock(nn.Module):
    """Half-step FF, relative-position MHSA, convolution module, half-step FF, layer norm.  (B, T, d)"""

    def __init__(self, d_model: int, heads: int, ff_expansion: int, kernel_size: int, dropout: float):
        super().__init__()
        self.ff1 = FeedForward(d_model, ff_expansion, dropout)
        self.attn_norm = nn.LayerNorm(d_model)
        self.attn = RelPositionMultiHeadAttention(d_model, heads, dropout)
        self.attn_dropout = nn.Dropout(dropout)
        self.conv = ConvolutionModule(d_model, kernel_size, dropout)
        self.ff2 = FeedForward(d_model, ff_expansion, dropout)
        self.out_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        x = x + 0.5 * self.ff1(x)
        x = x + self.attn_dropout(self.attn(self.attn_norm(x), pos_emb, valid))
        x = x + self.conv(x, valid)
        x = x + 0.5 * self.ff2(x)
        return self.out_norm(x)


def masked_minmax_per_clip(feats: torch.Tensor, valid: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """:func:`~dcase_fpd_plugin.models.crnn.minmax_per_clip` over the valid input frames of each clip
    (``valid`` (B, T_in) bool), the others set to 0 (a clip without valid frames: over all of them).
    (B, F, T_in) -> (B, F, T_in)"""
    m = valid[:, None, :] | ~valid.any(1)[:, None, None]  # (B, 1, T_in)
    lo = feats.masked_fill(~m, float("inf")).amin(dim=(1, 2), keepdim=True)
    hi = feats.masked_fill(~m, float("-inf")).amax(dim=(1, 2), keepdim=True)
    return ((feats - lo) / (hi - lo + eps)).masked_fill(~m, 0.0)


class ConformerSED(nn.Module):
    """Log-mel (B, F, T_in) -> :class:`ModelOutput` (Conformer frame embeddings, frame and clip probabilities).

    Args:
        n_mels: F, input mel bands (``feats.n_mels``).
        n_classes: C.
        d_model: width of the blocks and of the frame embeddings, D (``net.conformer_d_model``).
        heads: attention heads (``net.conformer_heads``; divides d_model).
        blocks: Conformer blocks (``net.conformer_blocks``).
        ff_expansion: feed-forward inner width / d_model (``net.conformer_ff_expansion``).
        conv_kernel: depthwise convolution kernel, odd (``net.conformer_conv_kernel``).
        dropout: dropout in the blocks, after the front end and before the classifier (``net.conformer_dropout``).
        frontend_filters: output channels of each front-end conv block (``net.conformer_frontend_filters``).
        frontend_pooling: (time, freq) average pooling of each (``net.conformer_frontend_pooling``).
        frontend_dropout: dropout after each front-end conv block (``net.conformer_frontend_dropout``).
        embedding_dim: D_e of pretrained frame embeddings fused before the blocks (``net.embedding_dim``; 0: none).
        embedding_aggregation: ``pool1d`` (``net.embedding_aggregation``).
    """

    def __init__(self, n_mels: int, n_classes: int, d_model: int = 144, heads: int = 4, blocks: int = 3,
                 ff_expansion: int = 4, conv_kernel: int = 7, dropout: float = 0.1,
                 frontend_filters: Sequence[int] = (16, 32, 64),
                 frontend_pooling: Sequence[Sequence[int]] = ((2, 2), (2, 2), (1, 2)),
                 frontend_dropout: float = 0.1, embedding_dim: int = 0, embedding_aggregation: str = "pool1d"):
        super().__init__()
        pooling = [list(p) for p in frontend_pooling]
        if len(frontend_filters) == 0 or len(pooling) != len(frontend_filters) or any(len(p) != 2 for p in pooling):
            raise ValueError(f"net.conformer_frontend_pooling must hold one [time, freq] pair per "
                             f"net.conformer_frontend_filters entry ({len(frontend_filters)}), got {pooling}")
        if any(int(p) < 1 for pair in pooling for p in pair) or any(int(f) < 1 for f in frontend_filters):
            raise ValueError("net.conformer_frontend_filters and net.conformer_frontend_pooling must be positive "
                             "integers")
        n_freq = pooled_length(n_mels, [p[1] for p in pooling])
        if n_freq < 1:
            raise ValueError(f"net.conformer_frontend_pooling pools feats.n_mels={n_mels} mel bands below 1 "
                             f"(frequency factors {[p[1] for p in pooling]})")
        if min(d_model, heads, blocks, ff_expansion) < 1:
            raise ValueError("net.conformer_d_model, _heads, _blocks and _ff_expansion must be >= 1")
        if embedding_aggregation != "pool1d":
            raise ValueError(f"net.embedding_aggregation must be pool1d, got {embedding_aggregation!r}")
        self.frontend = nn.ModuleList()
        c_in = 1
        for c_out, pool in zip(frontend_filters, pooling):
            self.frontend.append(ConvBlock(c_in, int(c_out), 3, pool, frontend_dropout, bn_momentum=0.1))
            c_in = int(c_out)
        self.time_pool = [int(p[0]) for p in pooling]
        self.projection = nn.Linear(c_in * n_freq, d_model)
        self.embedding_dim = int(embedding_dim)
        if self.embedding_dim:  # DESED_task 2024's cat_tf, as in the CRNN
            self.cat_tf = nn.Linear(d_model + self.embedding_dim, d_model)
        self.blocks = nn.ModuleList(ConformerBlock(d_model, heads, ff_expansion, conv_kernel, dropout)
                                    for _ in range(blocks))
        self.dropout = nn.Dropout(dropout)
        self.pos_dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(d_model, n_classes)  # frame classifier
        self.dense_softmax = nn.Linear(d_model, n_classes)  # attention logits
        self._embed_dim = d_model

    @property
    def embed_dim(self) -> int:
        """D, the width of the frame embeddings (d_model)."""
        return self._embed_dim

    def output_frames(self, n_in: int) -> int:
        """T, output frames for ``n_in`` STFT frames (626 -> 156 with the default pooling)."""
        return pooled_length(n_in, self.time_pool)

    @property
    def time_pooling(self) -> int:
        """STFT frames per output frame (4 by default: 64 ms at hop 256, 16 kHz)."""
        return math.prod(self.time_pool)

    def _valid_at(self, frame_valid: torch.Tensor, n: int, frames_per_step: int) -> torch.Tensor:
        """(B, T) output-frame validity -> (B, n) at a resolution of ``frames_per_step`` STFT frames per
        step; steps past the last output frame (the remainder pooling drops) follow that frame."""
        t = frame_valid.shape[1]
        idx = (torch.arange(n, device=frame_valid.device) * frames_per_step // self.time_pooling).clamp_max(t - 1)
        return frame_valid[:, idx]

    def fuse(self, x: torch.Tensor, embeddings: torch.Tensor | None) -> torch.Tensor:
        """Front-end frames (B, T, d) and pretrained embeddings (B, D_e, T_e) -> (B, T, d): the CRNN's
        ``pool1d`` fusion (:meth:`~dcase_fpd_plugin.models.crnn.CRNN.fuse`)."""
        return pool1d_fuse(x, embeddings, self.embedding_dim, getattr(self, "cat_tf", None), self.dropout, "Conformer")

    def encode(self, feats: torch.Tensor, frame_valid: torch.Tensor | None = None,
               embeddings: torch.Tensor | None = None) -> torch.Tensor:
        """Frame embeddings.  (B, F, T_in) -> (B, T, d_model)"""
        b, _, n_in = feats.shape
        t = self.output_frames(n_in)
        if frame_valid is not None and frame_valid.shape[1] != t:
            raise ValueError(f"frame_valid has {frame_valid.shape[1]} frames, the Conformer gives {t}")
        if frame_valid is None:
            x = minmax_per_clip(feats)
        else:
            frame_valid = frame_valid.bool()
            x = masked_minmax_per_clip(feats, self._valid_at(frame_valid, n_in, 1))
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, T_in, F)
        step = 1
        for block, t_pool in zip(self.frontend, self.time_pool):
            x = block(x)  # (B, Ch, T', F')
            step *= t_pool
            if frame_valid is not None:  # padded steps back to 0, as the next convolution's zero padding
                x = x * self._valid_at(frame_valid, x.shape[2], step)[:, None, :, None].to(x.dtype)
        _, ch, _, f = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b, t, ch * f)  # (B, T, Ch * F')
        x = self.fuse(self.dropout(self.projection(x)), embeddings)  # (B, T, d)
        pos_emb = self.pos_dropout(relative_position_encoding(t, self._embed_dim, x.device, x.dtype))
        for block in self.blocks:
            x = block(x, pos_emb, frame_valid)
        return x

    def forward(self, feats: torch.Tensor, frame_valid: torch.Tensor | None = None,
                embeddings: torch.Tensor | None = None, class_mask: torch.Tensor | None = None) -> ModelOutput:
        h = self.encode(feats, frame_valid, embeddings)  # (B, T, D) frame embeddings
        z = self.dropout(h)
        frame_probs = torch.sigmoid(self.dense(z))  # (B, T, C)
        logits = self.dense_softmax(z)  # (B, T, C)
        frame_probs, clip_probs = attention_pool(frame_probs, logits, frame_valid, class_mask, "classes")
        return ModelOutput(embeddings=h, frame_probs=frame_probs, clip_probs=clip_probs)
