"""Training sources as a list: each with its folder, labels, kind, batch slice and the classes it annotates.

DESED_task's 2023 baseline trains on three sources in fixed batch slices (``[synth, weak, unlabel]``);
its 2024 baseline on five (``[maestro, synth, strong, weak, unlabel]``), one of them with soft labels
and classes of its own. ``data.sources`` lists them; ``training.batch_size`` gives one slice per entry,
in the same order (DESED_task's convention). Each entry (a mapping):

    name          unique; ``synth``, ``weak``, ``strong``, ``unlabeled`` and ``real_maestro_train`` take
                  their folder and TSV from ``data.<name>_folder`` / ``data.<name>_tsv`` (DESED_task's key
                  names) unless the entry gives ``folder`` / ``tsv``
    kind          strong (``filename onset offset event_label``), weak (``filename event_labels``),
                  soft (MAESTRO's ``filename onset offset event_label score``: a score in [0, 1] per
                  segment) or unlabeled (a folder, no TSV)
    folder, tsv   the clips and their labels
    durations     soft sources: a durations TSV listing every clip (``filename duration``); clips it lists
                  without a row in ``tsv`` (none of the source's classes sounds) train as all-zero labels.
                  Without it, only the clips named in ``tsv`` train
    classes       the classes this source annotates (null: all of ``data.classes``); its clips' losses
                  cover only these (the class mask), as DESED_task masks MAESTRO and DESED clips
    aliases       ``{label: other class}``: an event of ``label`` also marks ``other class`` (DESED_task
                  maps MAESTRO's "people talking" to DESED's "Speech")
    embeddings    the HDF5 set of ``data.embeddings_dir`` holding its clips' embeddings (default by name:
                  synth -> synth_train, weak -> weak_train, strong -> strong_train, unlabeled ->
                  unlabeled_train, real_maestro_train -> maestro_real_train)
    val_fraction  weak and soft sources: the share of clips held out of training for validation (weak:
                  default ``data.weak_val_fraction``; soft: default 0)

A source whose folder is null, or whose slice is 0, is left out (as ``data.unlabeled_folder=null``
always worked). Without ``data.sources`` (null, the default) the list is DESED_task 2023's:
``[synth (strong), weak (weak), unlabeled (unlabeled)]``, with ``training.batch_size`` its three slices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..branch import SOURCE_RW, SOURCE_SF, SOURCE_SS, SOURCE_UL

KINDS = ("strong", "weak", "soft", "unlabeled")
#: ``Batch.source`` of each kind (what FPD's labeller and pair sampler read).
KIND_SOURCE_ID = {"strong": SOURCE_SS, "weak": SOURCE_RW, "soft": SOURCE_SF, "unlabeled": SOURCE_UL}
#: the list without ``data.sources``: DESED_task 2023's three slices.
LEGACY_SOURCES = ({"name": "synth", "kind": "strong"}, {"name": "weak", "kind": "weak"},
                  {"name": "unlabeled", "kind": "unlabeled"})
#: sources whose folder and TSV are recipe keys of their own (``data.<name>_folder``, ``data.<name>_tsv``).
NAMED_SOURCES = ("synth", "weak", "strong", "unlabeled", "real_maestro_train")
#: the DESED_task embeddings file (``<data.embeddings_dir>/<set>.hdf5``) of each named source.
DEFAULT_EMBEDDING_SETS = {"synth": "synth_train", "weak": "weak_train", "strong": "strong_train",
                          "unlabeled": "unlabeled_train", "real_maestro_train": "maestro_real_train"}
ENTRY_KEYS = ("name", "kind", "folder", "tsv", "durations", "classes", "aliases", "embeddings", "val_fraction")


class SourceError(ValueError):
    """A ``data.sources`` entry is malformed (names the entry and the key)."""


@dataclass(frozen=True)
class Source:
    """One training source, resolved (see the module docstring)."""

    name: str
    kind: str
    folder: str | None
    tsv: str | None
    batch_size: int  # clips of this source in every training batch
    index: int  # position in data.sources (and in training.batch_size)
    classes: tuple[str, ...] | None = None  # the classes it annotates; None: all
    aliases: dict[str, str] = field(default_factory=dict)
    embeddings: str | None = None  # HDF5 set name in data.embeddings_dir
    val_fraction: float = 0.0
    durations: str | None = None  # soft sources: every clip's duration (clips without rows included)

    @property
    def source_id(self) -> int:
        """``Batch.source`` of its clips."""
        return KIND_SOURCE_ID[self.kind]

    @property
    def active(self) -> bool:
        """Trains: a folder and a slice > 0."""
        return self.folder is not None and self.batch_size > 0

    @property
    def where(self) -> str:
        """How a message names it: the TSV, else the folder, with the entry's name."""
        return f"source {self.name!r} ({self.tsv or self.folder})"

    def class_mask(self, all_classes: Sequence[str]) -> list[bool] | None:
        """(C,) booleans: the classes of ``all_classes`` it annotates; None when it annotates all."""
        if self.classes is None or set(all_classes) <= set(self.classes):
            return None
        return [c in self.classes for c in all_classes]


def declared_sources(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The raw entries of ``data.sources``, or DESED_task 2023's three when it is null."""
    sources = data.get("sources")
    return [dict(e) for e in (LEGACY_SOURCES if sources is None else sources)]


def resolve_sources(data: Mapping[str, Any], batch_size: Sequence[int]) -> list[Source]:
    """Every declared source, resolved and checked, in ``data.sources`` order (left-out ones included:
    see :attr:`Source.active`).

    Raises:
        SourceError: an entry without a name or kind, an unknown kind or key, a duplicate name, a class
            or alias target not in ``data.classes``, ``training.batch_size`` not one slice per entry.
    """
    entries = declared_sources(data)
    classes = list(data["classes"])
    if len(batch_size) != len(entries):
        names = [e.get("name", "?") for e in entries]
        raise SourceError(f"'training.batch_size' {list(batch_size)} must give one slice per training source "
                          f"({len(entries)}: {names}, from "
                          f"{'data.sources' if data.get('sources') is not None else 'DESED_task 2023 defaults'})")
    out, seen = [], set()
    for k, (entry, bs) in enumerate(zip(entries, batch_size)):
        where = f"'data.sources[{k}]'"
        if not isinstance(entry, Mapping):
            raise SourceError(f"{where} must be a mapping with name and kind, got {entry!r}")
        unknown = sorted(set(entry) - set(ENTRY_KEYS))
        if unknown:
            raise SourceError(f"{where}: unknown key(s) {unknown}; an entry may hold {list(ENTRY_KEYS)}")
        name, kind = entry.get("name"), entry.get("kind")
        if not isinstance(name, str) or not name:
            raise SourceError(f"{where}: 'name' is required (a non-empty string)")
        if name in seen:
            raise SourceError(f"{where}: duplicate source name {name!r}")
        seen.add(name)
        if kind not in KINDS:
            raise SourceError(f"{where} ({name}): 'kind' must be one of {list(KINDS)}, got {kind!r}")
        if not isinstance(bs, int) or isinstance(bs, bool) or bs < 0:
            raise SourceError(f"'training.batch_size[{k}]' ({name}) must be an integer >= 0, got {bs!r}")
        folder = entry.get("folder", data.get(f"{name}_folder") if name in NAMED_SOURCES else None)
        tsv = entry.get("tsv", data.get(f"{name}_tsv") if name in NAMED_SOURCES else None)
        if kind == "unlabeled":
            tsv = None
        src_classes = entry.get("classes")
        if src_classes is not None:
            bad = [c for c in src_classes if c not in classes] if isinstance(src_classes, list) else [src_classes]
            if bad or not src_classes:
                raise SourceError(f"{where} ({name}): 'classes' must be a non-empty list of data.classes, "
                                  f"unknown: {bad}")
            src_classes = tuple(src_classes)
        aliases = entry.get("aliases") or {}
        if not isinstance(aliases, Mapping) or any(t not in classes for t in aliases.values()):
            raise SourceError(f"{where} ({name}): 'aliases' must map labels to classes of data.classes, "
                              f"got {aliases!r}")
        val_default = data.get("weak_val_fraction", 0.0) if kind == "weak" else 0.0
        val_fraction = entry.get("val_fraction", val_default)
        if kind in ("strong", "unlabeled") and entry.get("val_fraction"):
            raise SourceError(f"{where} ({name}): 'val_fraction' holds out weak or soft clips only "
                              "(strong sources are validated by data.val_*)")
        if not isinstance(val_fraction, (int, float)) or not 0.0 <= val_fraction < 1.0:
            raise SourceError(f"{where} ({name}): 'val_fraction' must lie in [0, 1), got {val_fraction!r}")
        emb = entry.get("embeddings", DEFAULT_EMBEDDING_SETS.get(name))
        out.append(Source(name=name, kind=kind, folder=folder, tsv=tsv, batch_size=int(bs), index=k,
                          classes=src_classes, aliases=dict(aliases), embeddings=emb,
                          val_fraction=float(val_fraction), durations=entry.get("durations")))
    if not any(s.batch_size > 0 and s.kind != "unlabeled" for s in out):
        raise SourceError(f"'training.batch_size' {list(batch_size)}: no labelled source has a slice > 0")
    return out


def active_sources(data: Mapping[str, Any], batch_size: Sequence[int]) -> list[Source]:
    """The sources that train (:attr:`Source.active`), in order: the batch slices' order.

    Raises:
        SourceError: as :func:`resolve_sources`, or when no labelled source has a folder.
    """
    out = [s for s in resolve_sources(data, batch_size) if s.active]
    if not any(s.kind != "unlabeled" for s in out):
        raise SourceError("no labelled training source has a folder (data.synth_folder, data.weak_folder, ... or "
                          "data.sources[*].folder)")
    return out


def uses_class_masks(data: Mapping[str, Any], batch_size: Sequence[int]) -> bool:
    """Whether any training source annotates only some of ``data.classes``."""
    return any(s.class_mask(data["classes"]) is not None for s in active_sources(data, batch_size))


__all__ = ["KINDS", "KIND_SOURCE_ID", "Source", "SourceError", "resolve_sources", "active_sources",
           "declared_sources", "uses_class_masks", "NAMED_SOURCES", "DEFAULT_EMBEDDING_SETS"]
