"""Feature encoders: log-mel (B, F, T_in) -> frame embeddings (B, T, D).

``CNNEncoder`` is the paper's encoder (section 3.3): blocks of conv -> batch norm -> ReLU,
each followed by average pooling. Pooling is our choice (the paper does not give it): by
default time is pooled 2, 2, 1 (626 STFT frames -> 156 output frames, 64 ms each, the
DCASE 2023 CRNN's frame rate) and frequency 4, 4, 8 (128 mel bands -> 1), so that the
embedding width D is the last block's channel count. Set ``time_pool: [1, 1, 1]`` for the
paper's full STFT frame rate.
"""

from __future__ import annotations

import math

from typing import Sequence

import torch
from torch import nn


def pooled_length(n: int, pools: Sequence[int]) -> int:
    """Length after successive non-overlapping pooling by each factor (floor)."""
    for p in pools:
        n = n // p
    return n


class CNNEncoder(nn.Module):
    """Conv blocks over a log-mel image.

    Args:
        n_mels: F, input mel bands.
        channels: output channels of each block.
        kernel_size: square convolution kernel.
        time_pool, freq_pool: average-pooling factors per block.
        dropout: dropout after each block.
    """

    def __init__(self, n_mels: int, channels: Sequence[int] = (64, 128, 128), kernel_size: int = 3,
                 time_pool: Sequence[int] = (2, 2, 1), freq_pool: Sequence[int] = (4, 4, 8),
                 dropout: float = 0.0):
        super().__init__()
        if pooled_length(n_mels, freq_pool) < 1:
            raise ValueError(f"freq_pool {list(freq_pool)} pools {n_mels} mel bands below 1")
        blocks, c_in = [], 1
        for c_out, tp, fp in zip(channels, time_pool, freq_pool):
            blocks += [
                nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.AvgPool2d((tp, fp)) if (tp, fp) != (1, 1) else nn.Identity(),
                nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
            ]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.time_pool = list(time_pool)
        self.embed_dim = channels[-1] * pooled_length(n_mels, freq_pool)

    def output_frames(self, n_in: int) -> int:
        """T, output frames for ``n_in`` STFT frames."""
        return pooled_length(n_in, self.time_pool)

    @property
    def time_pooling(self) -> int:
        """STFT frames per output frame."""
        return math.prod(self.time_pool)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, 1, T_in, F)
        x = self.blocks(x)  # (B, Ch, T, F')
        b, ch, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, ch * f)  # (B, T, D)
