"""SED models, built by name from the recipe's ``net`` section.

``cnn3`` (the paper's weak baseline, :class:`WeakSED`) reads ``net.channels``, ``kernel_size``,
``time_pool``, ``freq_pool``, ``dropout``; ``crnn`` (the DCASE 2023 baseline, :class:`CRNN`)
reads the ``net.crnn_*`` and ``net.rnn_*`` keys. Each ignores the other's keys.

Owns the encoders. May import the root modules (``branch``); never ``data`` (models read no files) and nothing above.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .crnn import CRNN
from .weak_sed import WeakSED

MODEL_NAMES = ("cnn3", "crnn")


def build_model(net: dict[str, Any], feats: dict[str, Any], n_classes: int) -> nn.Module:
    """The model named by ``net.name``: ``cnn3`` (the paper's weak baseline) or ``crnn`` (DCASE 2023)."""
    name = net["name"]
    if name == "cnn3":
        return WeakSED(feats["n_mels"], n_classes, net["channels"], net["kernel_size"], net["time_pool"],
                       net["freq_pool"], net["dropout"])
    if name == "crnn":
        return CRNN(feats["n_mels"], n_classes, filters=net["crnn_filters"], pooling=net["crnn_pooling"],
                    kernel_size=net["crnn_kernel_size"], dropout=net["crnn_dropout"],
                    rnn_hidden=net["rnn_hidden"], rnn_layers=net["rnn_layers"], rnn_dropout=net["rnn_dropout"],
                    attention=net["crnn_attention"], input_norm=net["crnn_input_norm"],
                    bn_momentum=net["crnn_bn_momentum"], checkpoint_blocks=net["crnn_checkpoint_blocks"],
                    embedding_dim=net.get("embedding_dim", 0),
                    embedding_aggregation=net.get("embedding_aggregation", "pool1d"))
    raise ValueError(f"unknown net.name {name!r}; available: {', '.join(MODEL_NAMES)}")


__all__ = ["build_model", "CRNN", "WeakSED", "MODEL_NAMES"]
