"""SED models, built by name from the recipe's ``net`` section."""

from __future__ import annotations

from typing import Any

from torch import nn

from .weak_sed import WeakSED


def build_model(net: dict[str, Any], feats: dict[str, Any], n_classes: int) -> nn.Module:
    """The model named by ``net.name`` (``cnn3``: the paper's weak baseline)."""
    name = net["name"]
    if name == "cnn3":
        return WeakSED(feats["n_mels"], n_classes, net["channels"], net["kernel_size"], net["time_pool"],
                       net["freq_pool"], net["dropout"])
    raise ValueError(f"unknown net.name {name!r}; available: cnn3")
