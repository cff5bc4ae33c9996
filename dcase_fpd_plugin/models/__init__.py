"""SED models, built by name from the recipe's ``net`` section.

``cnn3`` (the paper's weak baseline, :class:`WeakSED`) reads ``net.channels``, ``kernel_size``,
``time_pool``, ``freq_pool``, ``dropout``; ``crnn`` (the DCASE 2023 baseline, :class:`CRNN`)
reads the ``net.crnn_*`` and ``net.rnn_*`` keys; ``conformer`` (:class:`ConformerSED`, the paper's future
work) the ``net.conformer_*`` keys. Each ignores the others' keys.

Owns the encoders. May import the root modules (``branch``); never ``data`` (models read no files) and nothing above.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .conformer import ConformerSED
from .crnn import CRNN
from .weak_sed import WeakSED

MODEL_NAMES = ("cnn3", "crnn", "conformer")


def build_model(net: dict[str, Any], feats: dict[str, Any], n_classes: int) -> nn.Module:
    """The model named by ``net.name``: ``cnn3`` (the paper's weak baseline), ``crnn`` (DCASE 2023) or
    ``conformer`` (a Conformer encoder at the CRNN's frame rate)."""
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
    if name == "conformer":
        return ConformerSED(feats["n_mels"], n_classes, d_model=net["conformer_d_model"], heads=net["conformer_heads"],
                            blocks=net["conformer_blocks"], ff_expansion=net["conformer_ff_expansion"],
                            conv_kernel=net["conformer_conv_kernel"], dropout=net["conformer_dropout"],
                            frontend_filters=net["conformer_frontend_filters"],
                            frontend_pooling=net["conformer_frontend_pooling"],
                            frontend_dropout=net["conformer_frontend_dropout"],
                            embedding_dim=net.get("embedding_dim", 0),
                            embedding_aggregation=net.get("embedding_aggregation", "pool1d"))
    raise ValueError(f"unknown net.name {name!r}; available: {', '.join(MODEL_NAMES)}")


__all__ = ["build_model", "ConformerSED", "CRNN", "WeakSED", "MODEL_NAMES"]
