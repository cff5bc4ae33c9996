"""The classification branch: frame classifier + attention pooling over time."""

from __future__ import annotations

import torch
from torch import nn


class AttentionPoolingHead(nn.Module):
    """Frame embeddings (B, T, D) -> frame probabilities (B, T, C) and clip probabilities (B, C).

    ``p[b, t, c] = sigmoid(W_cls h[b, t] + b_cls)`` and
    ``clip[b, c] = sum_t softmax_t(W_att h[b, t] + b_att)[c] * p[b, t, c]``, the softmax taken
    over valid frames only (padding gets no attention).
    """

    def __init__(self, embed_dim: int, n_classes: int):
        super().__init__()
        self.classifier = nn.Linear(embed_dim, n_classes)
        self.attention = nn.Linear(embed_dim, n_classes)

    def forward(self, h: torch.Tensor, frame_valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        frame_probs = torch.sigmoid(self.classifier(h))  # (B, T, C)
        att_logits = self.attention(h)  # (B, T, C)
        if frame_valid is not None:
            att_logits = att_logits.masked_fill(~frame_valid[:, :, None], torch.finfo(att_logits.dtype).min)
        weights = torch.softmax(att_logits, dim=1)  # (B, T, C)
        clip_probs = (weights * frame_probs).sum(dim=1).clamp(1e-7, 1 - 1e-7)  # (B, C)
        return frame_probs, clip_probs
