"""Clip datasets over DESED folders + TSVs, one per source (SS, RW, UL) and for evaluation.

Every dataset item is a dict:
    feats (F, T_in) float32, strong (T, C) float32, has_strong bool, weak (C,) float32,
    has_weak bool, source int, n_valid_frames int (output frames holding real audio), filename str,
    group int (the source's index in ``data.sources``), class_mask (C,) bool or None (the classes
    its source annotates; None: all), and with pretrained embeddings ``embeddings`` (D_e, T_e) float32.

Construction validates the whole list up front: a listed file that is absent or unreadable is
reported by name (and count); the dataset goes on without such files only when their fraction
is at most ``max_missing_fraction``.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..branch import SOURCE_RW, SOURCE_SS, SOURCE_UL, Batch
from .audio import HeaderIndex
from .features import FeatureExtractor
from .labels import Event, LabelEncoder, weak_from_soft, weak_from_strong
from .tsv import DataError, list_audio_folder, read_durations_tsv, read_soft_tsv, read_strong_tsv, read_weak_tsv


@dataclass
class ClipRecord:
    """One clip: its audio path and whatever labels its source carries."""

    path: Path
    events: list[Event] | None = None  # strong labels (SS, validation, test)
    tags: list[str] | None = None  # weak labels (RW)
    segments: list[tuple[float, float, str, float]] | None = None  # soft labels (SF): onset_s, offset_s, label, score


def _spaced_twin(path: Path) -> str:
    """A note for an absent ``path`` whose folder holds the same name with spaces around it (a TSV's
    file names are read without surrounding spaces), the names quoted so that the spaces show."""
    if path.exists():
        return ""
    try:
        twins = sorted(n for n in os.listdir(path.parent) if n != path.name and n.strip() == path.name)
    except OSError:
        return ""
    if not twins:
        return ""
    return (f" (its folder holds {twins[0]!r}, not {path.name!r}: file names in a TSV are read without the "
            "spaces around them; rename the file)")


def _filter_present(records: list[ClipRecord], what: str, max_missing_fraction: float,
                    knob: str = "data.max_missing_fraction", headers: HeaderIndex | None = None) -> list[ClipRecord]:
    bad: list[str] = []  # messages
    bad_paths: set[Path] = set()
    headers = headers if headers is not None else HeaderIndex()
    for r in records:
        try:
            headers.check(r.path)
        except DataError as exc:
            bad.append(str(exc) + (_spaced_twin(r.path) if len(bad) < 10 else ""))
            bad_paths.add(r.path)
    if not bad:
        return records
    frac = len(bad) / max(len(records), 1)
    shown = "\n  ".join(bad[:10]) + ("\n  ..." if len(bad) > 10 else "")
    msg = f"{what}: {len(bad)} of {len(records)} listed audio files are absent or unreadable:\n  {shown}"
    if frac > max_missing_fraction:
        raise DataError(
            msg + f"\n({frac:.1%} missing > {knob}={max_missing_fraction}; "
            "raise it to go on without these files)" if knob.startswith("data.") else
            msg + f"\n(pass {knob} to go on without these files)"
        )
    warnings.warn(msg + f"\n(going on without them: {frac:.1%} <= {knob})", stacklevel=2)
    return [r for r in records if r.path not in bad_paths]


def strong_records(folder, tsv, classes, durations_tsv=None, max_missing_fraction=0.0,
                   headers: HeaderIndex | None = None, *, clip_s: float | None = None,
                   ground_truth: str = "refuse") -> list[ClipRecord]:
    """Records of a strongly labelled set; clips only in the durations TSV have no events.
    ``headers``: the files already known readable (each listed file is checked otherwise).
    The events are checked (:func:`~.tsv.check_events`: duplicate rows, events past the clip's
    duration from ``durations_tsv``, else ``clip_s``) and refused or repaired (``ground_truth``)."""
    durations = read_durations_tsv(durations_tsv) if durations_tsv is not None else {}
    events = read_strong_tsv(tsv, classes, durations=durations, clip_s=clip_s, ground_truth=ground_truth)
    names = list(events)
    for name in durations:
        if name not in events:
            events[name] = []
            names.append(name)
    recs = [ClipRecord(Path(folder) / n, events=events[n]) for n in names]
    return _filter_present(recs, str(tsv), max_missing_fraction, headers=headers)


def weak_records(folder, tsv, classes, max_missing_fraction=0.0, headers: HeaderIndex | None = None) -> list[ClipRecord]:
    tags = read_weak_tsv(tsv, classes)
    recs = [ClipRecord(Path(folder) / n, tags=t) for n, t in tags.items()]
    return _filter_present(recs, str(tsv), max_missing_fraction, headers=headers)


def soft_records(folder, tsv, classes, max_missing_fraction=0.0, headers: HeaderIndex | None = None,
                 aliases: dict[str, str] | None = None, durations_tsv=None) -> list[ClipRecord]:
    """Records of a soft-labelled set (:func:`~.tsv.read_soft_tsv`, MAESTRO's format). ``aliases``
    ``{label: class}``: a segment of ``label`` also marks ``class`` with the same score (DESED_task's
    MAESTRO -> DESED map); a label that is neither a class nor aliased is refused by the reader.
    Clips only in ``durations_tsv`` (no segment of any class) have no segments: all-zero labels."""
    aliases = dict(aliases or {})
    known = list(classes) + [a for a in aliases if a not in classes]
    segments = read_soft_tsv(tsv, known)
    for name in (read_durations_tsv(durations_tsv) if durations_tsv else {}):
        segments.setdefault(name, [])
    recs = []
    for name, segs in segments.items():
        out = [sg for sg in segs if sg[2] in classes]
        out += [(on, off, aliases[lab], sc) for on, off, lab, sc in segs if lab in aliases]
        recs.append(ClipRecord(Path(folder) / name, segments=out))
    return _filter_present(recs, str(tsv), max_missing_fraction, headers=headers)


def unlabeled_records(folder, max_missing_fraction=0.0, knob: str = "data.max_missing_fraction",
                      headers: HeaderIndex | None = None) -> list[ClipRecord]:
    recs = [ClipRecord(Path(folder) / n) for n in list_audio_folder(folder)]
    return _filter_present(recs, str(folder), max_missing_fraction, knob, headers)


class ClipDataset(Dataset):
    """Clips of one source, turned into features and label matrices.

    Args:
        records: the clips.
        source: SOURCE_SS, SOURCE_RW, SOURCE_UL or SOURCE_SF (evaluation sets use SOURCE_SS: strong labels).
        features: the (cached) feature extractor.
        encoder: label encoder at the model's output frame rate.
        origin: the TSV or folder the clips were listed in (for messages).
        group: the source's index in ``data.sources`` (mixup mixes within one).
        class_mask: (C,) booleans, the classes the source annotates (None: all).
        embeddings: the :class:`~.embeddings.EmbeddingFile` holding the clips' pretrained embeddings.
    """

    def __init__(self, records: Sequence[ClipRecord], source: int, features: FeatureExtractor,
                 encoder: LabelEncoder, origin: str = "", group: int | None = None,
                 class_mask: Sequence[bool] | None = None, embeddings=None):
        if not records:
            raise DataError(f"{origin or 'a dataset'}: no clip listed (a dataset needs at least one clip)")
        self.records = list(records)
        self.source = source
        self.features = features
        self.encoder = encoder
        self.origin = origin  # the TSV or folder the clips were listed in (for messages)
        self.group = source if group is None else int(group)
        self.class_mask = None if class_mask is None else np.asarray(class_mask, dtype=bool)
        self.embeddings = embeddings

    def __len__(self) -> int:
        return len(self.records)

    @property
    def filenames(self) -> list[str]:
        return [r.path.name for r in self.records]

    def __getitem__(self, i: int) -> dict:
        rec = self.records[i]
        mel, n_valid = self.features(rec.path)
        sr = self.features.settings["sample_rate"]
        n_valid_frames = min(self.encoder.n_frames, math.ceil(n_valid / sr / self.encoder.frame_hop_s))
        C, T = self.encoder.n_classes, self.encoder.n_frames
        strong = np.zeros((T, C), np.float32)
        weak = np.zeros(C, np.float32)
        has_strong = has_weak = False
        if rec.events is not None:
            strong = self.encoder.encode_strong((e.onset, e.offset, e.event_label) for e in rec.events)
            weak = weak_from_strong(strong)
            has_strong = has_weak = True
        elif rec.segments is not None:
            strong = self.encoder.encode_soft(rec.segments)
            weak = weak_from_soft(strong)
            has_strong = has_weak = True
        elif rec.tags is not None:
            weak = self.encoder.encode_weak(rec.tags)
            has_weak = True
        if self.class_mask is not None:  # labels of classes the source does not annotate: 0, and masked
            strong = strong * self.class_mask[None, :]
            weak = weak * self.class_mask
        item = {
            "feats": torch.from_numpy(mel),
            "strong": torch.from_numpy(strong),
            "has_strong": has_strong,
            "weak": torch.from_numpy(weak),
            "has_weak": has_weak,
            "source": self.source,
            "n_valid_frames": n_valid_frames,
            "filename": rec.path.name,
            "group": self.group,
            "class_mask": None if self.class_mask is None else torch.from_numpy(self.class_mask),
        }
        if self.embeddings is not None:
            item["embeddings"] = torch.from_numpy(np.asarray(self.embeddings.frames(rec.path), dtype=np.float32))
        return item


def collate(items: list[dict]) -> Batch:
    """Stack dataset items into a :class:`~dcase_fpd_plugin.branch.Batch`."""
    T, C = items[0]["strong"].shape
    n_valid = torch.tensor([it["n_valid_frames"] for it in items])
    source = torch.tensor([it["source"] for it in items], dtype=torch.long)
    masks = [it.get("class_mask") for it in items]
    class_mask = None
    if any(m is not None for m in masks):  # (B, C); clips of sources that annotate every class: all True
        class_mask = torch.stack([m if m is not None else torch.ones(C, dtype=torch.bool) for m in masks])
    with_emb = ["embeddings" in it for it in items]
    if any(with_emb) and not all(with_emb):
        raise ValueError("a batch mixes clips with and without pretrained embeddings")
    return Batch(
        feats=torch.stack([it["feats"] for it in items]),  # (B, F, T_in)
        strong=torch.stack([it["strong"] for it in items]),  # (B, T, C)
        has_strong=torch.tensor([it["has_strong"] for it in items]),
        weak=torch.stack([it["weak"] for it in items]),  # (B, C)
        has_weak=torch.tensor([it["has_weak"] for it in items]),
        source=source,
        frame_valid=torch.arange(T)[None, :] < n_valid[:, None],  # (B, T)
        filenames=[it["filename"] for it in items],
        source_host=source,
        class_mask=class_mask,
        embeddings=torch.stack([it["embeddings"] for it in items]) if all(with_emb) else None,  # (B, D_e, T_e)
        group_host=torch.tensor([it.get("group", it["source"]) for it in items], dtype=torch.long),
    )


__all__ = ["ClipRecord", "ClipDataset", "collate", "strong_records", "weak_records", "soft_records",
           "unlabeled_records", "SOURCE_SS", "SOURCE_RW", "SOURCE_UL"]
