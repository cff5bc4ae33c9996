"""Plugin discovery: entry points plus an in-process ``register()``.

Three groups map a short name (used in recipes) to a factory:

=====================  ==================================  ============
group (short)          entry-point group                    shipped
=====================  ==================================  ============
``branches``           ``dcase_fpd_plugin.branches``        ``fpd``
``pair_samplers``      ``dcase_fpd_plugin.pair_samplers``   ``same_time``
``labellers``          ``dcase_fpd_plugin.labellers``       ``wps``
=====================  ==================================  ============

A third-party package adds a plugin by declaring an entry point in its own
``pyproject.toml``; tests and notebooks can call :func:`register` instead.
Names registered in-process take precedence over entry points of the same name.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Callable

GROUPS = {
    "branches": "dcase_fpd_plugin.branches",
    "pair_samplers": "dcase_fpd_plugin.pair_samplers",
    "labellers": "dcase_fpd_plugin.labellers",
}

_registered: dict[str, dict[str, Callable[..., Any]]] = {g: {} for g in GROUPS}


class UnknownPluginError(KeyError):
    """A recipe named a plugin that no entry point or register() call provides."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def _check_group(group: str) -> None:
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; groups are {sorted(GROUPS)}")


def register(group: str, name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory`` under ``name`` in ``group`` for this process."""
    _check_group(group)
    _registered[group][name] = factory


def unregister(group: str, name: str) -> None:
    """Remove a name added with :func:`register` (no error if absent)."""
    _check_group(group)
    _registered[group].pop(name, None)


def _entry_points(group: str) -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUPS[group])}


def available(group: str) -> list[str]:
    """Sorted names known in ``group`` (entry points and in-process registrations)."""
    _check_group(group)
    return sorted(set(_entry_points(group)) | set(_registered[group]) | set(_BUILTINS.get(group, {})))


def get(group: str, name: str) -> Callable[..., Any]:
    """The factory registered as ``name`` in ``group``.

    Raises :class:`UnknownPluginError` listing the available names when unknown.
    """
    _check_group(group)
    if name in _registered[group]:
        return _registered[group][name]
    eps = _entry_points(group)
    if name in eps:
        return eps[name].load()
    # Fallback for running from a source tree that is not pip-installed.
    builtin = _BUILTINS.get(group, {}).get(name)
    if builtin is not None:
        module, attr = builtin.split(":")
        import importlib

        return getattr(importlib.import_module(module), attr)
    names = sorted(set(eps) | set(_registered[group]) | set(_BUILTINS.get(group, {})))
    raise UnknownPluginError(
        f"unknown {_SINGULAR.get(group, group)} {name!r}; available: {', '.join(names) or '(none)'}"
    )


# The plugins this package ships, also declared as entry points in pyproject.toml.
_SINGULAR = {"branches": "branch", "pair_samplers": "pair sampler", "labellers": "labeller"}

_BUILTINS = {
    "branches": {"fpd": "dcase_fpd_plugin.fpd.branch:FPDBranch"},
    "pair_samplers": {"same_time": "dcase_fpd_plugin.fpd.sampler:SameTimePairSampler"},
    "labellers": {"wps": "dcase_fpd_plugin.fpd.labeller:WPSLabeller"},
}
