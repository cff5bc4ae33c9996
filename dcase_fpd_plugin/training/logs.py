"""Training scalars (losses, pair counts, ramp-up weights) kept on the device between log writes.

Lightning's ``self.log`` costs a few hundred microseconds of Python per key and per step, and a
logged Python number becomes a device tensor through a host-to-device copy that waits for the
device: at GPU speeds the ~12 training scalars of a step cost as much as a step of the model.
:class:`TrainScalars` stacks a step's scalars into one device tensor and adds it to a running
sum (two kernels, no synchronisation); the values reach the loggers only every
``training.log_every_n_steps`` steps (``<key>_step``, the step's values) and at the end of each
epoch (``<key>_epoch``, means weighted by the batch size), as Lightning's ``on_step`` /
``on_epoch`` logging names them.
"""

from __future__ import annotations

from typing import Iterable, Mapping

import torch


class TrainScalars:
    """Running sums of a step's named scalars on the device.

    ``add(values, weight)`` per step; ``last()`` the latest step's values and ``epoch_means()`` the
    weighted means since ``reset()``, both as Python floats (one host sync each). A step whose keys
    differ from the previous steps' starts the sums over (its keys are what the epoch reports).
    """

    def __init__(self) -> None:
        self.keys: tuple[str, ...] = ()
        self._sum: torch.Tensor | None = None
        self._last: torch.Tensor | None = None
        self._weight = 0.0

    def reset(self) -> None:
        self.keys, self._sum, self._last, self._weight = (), None, None, 0.0

    def add(self, values: Mapping[str, torch.Tensor | float], weight: float = 1.0) -> None:
        keys = tuple(values)
        if not keys:
            return
        device = next((v.device for v in values.values() if isinstance(v, torch.Tensor)), torch.device("cpu"))
        vec = torch.stack([v.detach().float().reshape(()) if isinstance(v, torch.Tensor)
                           else torch.full((), float(v), device=device) for v in values.values()])
        if keys != self.keys:
            self.keys, self._sum, self._weight = keys, torch.zeros_like(vec), 0.0
        self._sum = self._sum + vec * weight
        self._last = vec
        self._weight += weight

    def last(self) -> dict[str, float]:
        """The latest step's values (empty before any step)."""
        return {} if self._last is None else dict(zip(self.keys, self._last.tolist()))

    def epoch_means(self) -> dict[str, float]:
        """Weighted means since the last reset (empty before any step)."""
        if self._sum is None or self._weight <= 0:
            return {}
        return dict(zip(self.keys, (self._sum / self._weight).tolist()))


def suffixed(values: Mapping[str, float], suffix: str, keep: Iterable[str] = ()) -> dict[str, float]:
    """``{key + suffix: value}``, except the keys in ``keep``, which stay as they are."""
    keep = set(keep)
    return {k if k in keep else f"{k}{suffix}": v for k, v in values.items()}


__all__ = ["TrainScalars", "suffixed"]
