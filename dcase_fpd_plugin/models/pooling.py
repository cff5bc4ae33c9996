"""The classification branch: frame classifier + attention pooling over time, and the pieces the CRNN
and the Conformer share: their attention pooling with class masks (:func:`attention_pool`) and DESED_task
2024's ``pool1d`` fusion of pretrained embeddings (:func:`pool1d_fuse`)."""

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


def attention_pool(frame_probs: torch.Tensor, logits: torch.Tensor, frame_valid: torch.Tensor | None = None,
                   class_mask: torch.Tensor | None = None, mode: str = "classes"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip probabilities from frame probabilities by attention, as DESED_task's CRNN.

    Args:
        frame_probs: (B, T, C) frame probabilities. logits: (B, T, C) attention logits.
        frame_valid: (B, T) bool, False for padded frames (no weight); None: all valid.
        class_mask: (B, C) bool, the classes each clip's source annotates (DESED_task 2024's
            ``classes_mask``): the others take no attention weight and output 0; None: all.
        mode: ``classes`` (DESED_task: softmax over the classes, clamped to [1e-7, 1], normalised over
            time by the weighted mean) or ``time`` (softmax over the valid frames).
    Returns:
        ``(frame_probs, clip_probs)``: (B, T, C) (0 for masked classes) and (B, C) in [1e-7, 1 - 1e-7].
    """
    if class_mask is not None:
        logits = logits.masked_fill(~class_mask[:, None, :].bool(), -1e30 if logits.dtype == torch.float32
                                    else torch.finfo(logits.dtype).min)
    if mode == "classes":
        weights = torch.softmax(logits, dim=-1).clamp(1e-7, 1.0)
        if frame_valid is not None:
            weights = weights * frame_valid[:, :, None].to(weights.dtype)
    else:
        if frame_valid is not None:
            logits = logits.masked_fill(~frame_valid[:, :, None].bool(), torch.finfo(logits.dtype).min)
        weights = torch.softmax(logits, dim=1)
    clip_probs = (frame_probs * weights).sum(1) / weights.sum(1).clamp_min(1e-12)  # (B, C)
    if class_mask is not None:
        keep = class_mask.to(frame_probs.dtype)
        frame_probs, clip_probs = frame_probs * keep[:, None, :], clip_probs * keep
    return frame_probs, clip_probs.clamp(1e-7, 1 - 1e-7)


def pool1d_fuse(x: torch.Tensor, embeddings: torch.Tensor | None, embedding_dim: int, project: nn.Module | None,
                dropout: nn.Module, model: str) -> torch.Tensor:
    """Frames (B, T, W) and pretrained embeddings (B, D_e, T_e) -> (B, T, W): the embeddings average-pooled to
    T frames (``adaptive_avg_pool1d``), concatenated, ``dropout``, ``project`` back to W (DESED_task 2024's
    ``pool1d`` fusion, its ``cat_tf``). ``embedding_dim`` 0: ``x`` unchanged; ``model`` names the model in
    the errors (embeddings given to a model without fusion, none to one with it, a wrong width)."""
    if not embedding_dim:
        if embeddings is not None:
            raise ValueError(f"this {model} takes no pretrained embeddings (net.embedding_dim: 0)")
        return x
    if embeddings is None:
        raise ValueError(f"this {model} fuses pretrained embeddings (net.embedding_dim: {embedding_dim}); "
                         "the batch has none (data.embeddings_dir)")
    if embeddings.dim() != 3 or embeddings.shape[1] != embedding_dim:
        raise ValueError(f"embeddings must be (B, {embedding_dim}, T_e), got {tuple(embeddings.shape)}")
    pooled = nn.functional.adaptive_avg_pool1d(embeddings.to(x.dtype), x.shape[1]).transpose(1, 2)  # (B, T, D_e)
    return project(dropout(torch.cat((x, pooled), -1)))
