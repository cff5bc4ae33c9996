"""The paper's weak SED model: feature encoder (main branch) + attention-pooling classifier."""

from __future__ import annotations

import torch
from torch import nn

from ..branch import ModelOutput
from .encoder import CNNEncoder
from .pooling import AttentionPoolingHead


def standardize_per_clip(feats: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over each clip's (F, T_in) log-mel image.  (B, F, T_in)"""
    mean = feats.mean(dim=(1, 2), keepdim=True)
    std = feats.std(dim=(1, 2), keepdim=True)
    return (feats - mean) / (std + 1e-5)


class WeakSED(nn.Module):
    """Log-mel (B, F, T_in) -> :class:`ModelOutput` (embeddings, frame and clip probabilities)."""

    def __init__(self, n_mels: int, n_classes: int, channels=(64, 128, 128), kernel_size=3,
                 time_pool=(2, 2, 1), freq_pool=(4, 4, 8), dropout=0.0):
        super().__init__()
        self.encoder = CNNEncoder(n_mels, channels, kernel_size, time_pool, freq_pool, dropout)
        self.head = AttentionPoolingHead(self.encoder.embed_dim, n_classes)

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def output_frames(self, n_in: int) -> int:
        return self.encoder.output_frames(n_in)

    @property
    def time_pooling(self) -> int:
        return self.encoder.time_pooling

    def forward(self, feats: torch.Tensor, frame_valid: torch.Tensor | None = None,
                embeddings: torch.Tensor | None = None, class_mask: torch.Tensor | None = None) -> ModelOutput:
        """``class_mask`` (B, C) bool is not used by this model (the losses mask the classes a clip's source
        does not annotate); pretrained ``embeddings`` are fused by the CRNN only."""
        if embeddings is not None:
            raise ValueError("the cnn3 model takes no pretrained embeddings (net.embedding_dim is for the crnn)")
        h = self.encoder(standardize_per_clip(feats))  # (B, T, D)
        if frame_valid is not None and frame_valid.shape[1] != h.shape[1]:
            raise ValueError(f"frame_valid has {frame_valid.shape[1]} frames, the encoder gives {h.shape[1]}")
        frame_probs, clip_probs = self.head(h, frame_valid)
        return ModelOutput(embeddings=h, frame_probs=frame_probs, clip_probs=clip_probs)
