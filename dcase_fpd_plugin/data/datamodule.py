"""The LightningDataModule: DESED sets from a recipe's ``data`` section, mixed-source batches.

Sources (``training.batch_size`` = clips per batch from each):
    SS  synth_folder + synth_tsv    strong labels (the weak baseline uses their weak view)
    RW  weak_folder + weak_tsv      weak labels
    UL  unlabeled_folder            no labels
Validation (checkpoint selection), as DESED_task: the strongly-labelled ``val_folder/val_tsv/val_dur``
plus a held-out share ``data.weak_val_fraction`` of the RW clips (split once by ``data.weak_val_seed``,
so every training seed holds out the same clips; they leave the training set).
Test (reported, never selects): ``test_*``; without them the validation set's strong part, which
``recipe.selection_on_test`` flags.
Training clips must be no longer than ``feats.clip_s``; longer validation and test clips are scored
whole, in windows of the clip length as ``dcase-fpd infer`` reads them (:class:`~.windows.WindowedClips`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from ..branch import SOURCE_RW, SOURCE_SS, SOURCE_UL
from .batching import MixedSourceBatchSampler
from .audio import HeaderIndex, fits_one_clip
from .datasets import ClipDataset, ClipRecord, collate, strong_records, unlabeled_records, weak_records
from .features import FeatureExtractor
from .labels import LabelEncoder
from .store import STORE_DTYPES, FeatureStore, IndexBatch, store_nbytes
from .windows import DEFAULT_OVERLAP, FilePlan, WindowDataset, WindowedClips, plan_file, plan_folder
from .tsv import DataError, list_audio_folder, read_durations_tsv, read_ground_truth


def default_cache_dir(data: Mapping[str, Any], exp_dir: str | Path) -> Path:
    """``data.cache_dir``, else ``.feature_cache`` beside the experiment folder ``exp_dir``."""
    if data["cache_dir"]:
        return Path(data["cache_dir"])
    return Path(exp_dir).resolve().parent / ".feature_cache"


@dataclass(frozen=True)
class Batches:
    """How the clips are batched (from the recipe's ``training`` section)."""

    batch_size: tuple[int, int, int]  # clips per training batch from [synthetic, weak, unlabelled]
    batch_size_val: int  # clips per validation / test batch
    seed: int  # seed of the batch sampler
    progress_bar: bool = True  # the feature store's progress bar
    pin_memory: bool = False  # pin the store path's index batches (a CUDA device)

    @classmethod
    def of(cls, training: Mapping[str, Any]) -> "Batches":
        """From a resolved ``training`` section."""
        pin = torch.cuda.is_available() and training["accelerator"] in ("auto", "gpu", "cuda")
        return cls(tuple(training["batch_size"]), training["batch_size_val"], training["seed"],
                   bool(training["progress_bar"]), pin)


def split_weak_validation(records: list[ClipRecord], fraction: float, seed: int
                          ) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """(training, held-out validation) weak clips: ``round(fraction x N)`` clips drawn with ``seed``.

    The draw is over the clips sorted by file name, so it does not depend on the TSV's row order;
    the training part keeps the TSV's order. ``fraction`` 0 holds out nothing.
    """
    if fraction <= 0 or not records:
        return list(records), []
    n_val = int(round(fraction * len(records)))
    if n_val >= len(records):
        raise ValueError(f"data.weak_val_fraction={fraction} leaves no weak clip for training "
                         f"({len(records)} clips)")
    by_name = sorted(range(len(records)), key=lambda i: records[i].path.name)
    held = {by_name[i] for i in np.random.default_rng(seed).permutation(len(records))[:n_val]}
    return ([r for i, r in enumerate(records) if i not in held],
            [r for i, r in enumerate(records) if i in held])


class SEDDataModule(pl.LightningDataModule):
    """DESED data for :class:`~dcase_fpd_plugin.training.task.SEDTask`.

    Args:
        data: the recipe's ``data`` section (resolved).
        feats: the recipe's ``feats`` section.
        batches: how the clips are batched (:meth:`Batches.of` the ``training`` section).
        n_frames: T, the model's output frames per clip.
        frame_hop_s: seconds per output frame.
        cache_dir: where log-mel features are cached on disk (None: no cache).

    :meth:`from_recipe` picks these from a resolved recipe.
    """

    def __init__(self, data: Mapping[str, Any], feats: Mapping[str, Any], batches: Batches, n_frames: int,
                 frame_hop_s: float, cache_dir: str | Path | None = None):
        super().__init__()
        self.data, self.feats, self.batches = data, feats, batches
        self.encoder = LabelEncoder(data["classes"], frame_hop_s, n_frames)
        self.features = FeatureExtractor(feats, Path(cache_dir) if cache_dir is not None else None)
        # listed audio files already known readable (header read by an earlier run)
        self.headers = HeaderIndex(Path(cache_dir) / "audio_headers.json" if cache_dir is not None else None)
        self.train_sets: list[ClipDataset] = []
        self.val_set: ClipDataset | None = None  # strong validation clips (long ones in windows)
        self.weak_val_set: ClipDataset | None = None  # held-out weak clips (data.weak_val_fraction)
        self.test_set: ClipDataset | None = None
        self.store: FeatureStore | None = None  # training clips on the device (data.feature_store)
        self._weak_split: tuple[list[ClipRecord], list[ClipRecord]] | None = None

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any], n_frames: int, frame_hop_s: float,
                    use_cache: bool = True) -> "SEDDataModule":
        """The data module of a resolved recipe: its ``data`` and ``feats`` sections, the batching of
        its ``training`` section, the feature cache beside ``training.exp_dir`` unless ``data.cache_dir``."""
        cache = default_cache_dir(recipe["data"], recipe["training"]["exp_dir"]) if use_cache else None
        return cls(recipe["data"], recipe["feats"], Batches.of(recipe["training"]), n_frames, frame_hop_s, cache)

    def _dataset(self, records: list[ClipRecord], source: int, origin: str = "") -> ClipDataset:
        return ClipDataset(records, source, self.features, self.encoder, origin)

    def _scored(self, records: list[ClipRecord], tsv: str) -> ClipDataset:
        """A validation or test set, refused when its TSV holds no event (every metric would be
        undefined: the run used to end with exit 0 and null metrics)."""
        if not any(r.events for r in records):
            raise DataError(f"{tsv}: no event in this strongly-labelled set; its metrics would all be undefined")
        return self._scored_set(records, tsv)

    def _scored_set(self, records: list[ClipRecord], origin: str = "") -> ClipDataset:
        """A strongly-labelled set to score: a :class:`ClipDataset`, or with clips longer than
        ``feats.clip_s`` a :class:`~.windows.WindowedClips` that reads those in windows."""
        plans = {i: plan for i, plan in enumerate(self._long_plans(records)) if plan is not None}
        if not plans:  # every clip fits: the set as it always was
            return self._dataset(records, SOURCE_SS, origin)
        return WindowedClips(records, SOURCE_SS, self.features, self.encoder, plans, origin)

    def _long_plans(self, records: list[ClipRecord]) -> list[FilePlan | None]:
        """The windowed :func:`~.windows.plan_file` of each clip longer than ``feats.clip_s`` (by its
        header), None for the others."""
        clip_s, out = float(self.feats["clip_s"]), []
        for r in records:
            header = self.headers.header(r.path)
            plan = None
            if header is None or not fits_one_clip(*header, int(self.feats["sample_rate"]), clip_s):
                plan = plan_file(r.path, self.feats, self.encoder.n_frames, self.encoder.frame_hop_s)
            out.append(plan if plan is not None and plan.windowed else None)
        return out

    def window_index(self, stage: str) -> dict[str, tuple[str, int, int]]:
        """Window key -> (file name, first frame, the file's frames) of the windowed clips of the
        validation (``stage`` "validate") or test ("test") set; empty when all of them fit one clip."""
        dataset = self.val_set if stage == "validate" else self.test_set
        return dict(getattr(dataset, "windows", {}))

    def weak_split(self) -> tuple[list[ClipRecord], list[ClipRecord]]:
        """(training, held-out validation) records of the weak set (read once)."""
        if self._weak_split is None:
            data = self.data
            records = weak_records(data["weak_folder"], data["weak_tsv"], data["classes"],
                                   data["max_missing_fraction"], headers=self.headers)
            self._weak_split = split_weak_validation(records, data["weak_val_fraction"], data["weak_val_seed"])
        return self._weak_split

    def _ground_truth_checks(self) -> dict[str, Any]:
        """How :func:`strong_records` checks a set's events: ``data.ground_truth`` (refuse or repair),
        and the clip length ``feats.clip_s`` for a clip without a listed duration (the training set)."""
        return {"clip_s": self.feats["clip_s"], "ground_truth": self.data.get("ground_truth", "refuse")}

    def ground_truth_repairs(self) -> dict[str, dict[str, int]]:
        """``{tsv: {"duplicates", "clipped", "dropped"}}`` for each strong TSV of this data whose events
        ``data.ground_truth=repair`` changed (the training set when its batches take synthetic clips,
        the validation set, the test set), for ``metrics.json``. Reads the TSVs only (no audio), without
        warning again; empty under ``refuse`` (a bad TSV is refused when read)."""
        checks = self._ground_truth_checks()
        if checks["ground_truth"] != "repair":
            return {}
        data = self.data
        sets = [(data["val_tsv"], data["val_dur"]), (data["test_tsv"], data["test_dur"])]
        if self.batches.batch_size[0] > 0:
            sets.insert(0, (data["synth_tsv"], None))
        out: dict[str, dict[str, int]] = {}
        for tsv, dur in sets:
            if not tsv or str(tsv) in out:
                continue
            durations = read_durations_tsv(dur) if dur else {}
            repairs = read_ground_truth(tsv, data["classes"], durations=durations, warn=False, **checks)[1]
            if any(repairs.values()):
                out[str(tsv)] = repairs
        return out

    def _check_slices(self, sets: list[ClipDataset]) -> None:
        """Refuse a training set with fewer clips than its slice of every batch (``training.batch_size``):
        no batch could be drawn from it."""
        data, bs = self.data, self.batches.batch_size
        sources = [(0, "synthetic", f"data.synth_tsv {data['synth_tsv']}"),
                   (1, "weak", f"data.weak_tsv {data['weak_tsv']}"),
                   (2, "unlabelled", f"data.unlabeled_folder {data['unlabeled_folder']}")]
        for (k, what, where), dataset in zip([s for s in sources if bs[s[0]] > 0], sets):
            if len(dataset) < bs[k]:
                held = ""
                if k == 1 and self._weak_split is not None and self._weak_split[1]:
                    held = (f" ({len(self._weak_split[1])} more held out for validation by "
                            f"data.weak_val_fraction={data['weak_val_fraction']})")
                raise DataError(f"training.batch_size {list(bs)}: {bs[k]} {what} clips per batch, but the {what} "
                                f"set ({where}) has {len(dataset)} training clips{held}; lower "
                                f"training.batch_size[{k}] to at most {len(dataset)}, or 0 to leave this set out")

    def setup(self, stage: str | None = None) -> None:
        data, classes = self.data, self.data["classes"]
        miss = data["max_missing_fraction"]
        bs = self.batches.batch_size
        if stage in (None, "fit") and not self.train_sets:
            sets = []
            if bs[0] > 0:
                sets.append(self._dataset(strong_records(data["synth_folder"], data["synth_tsv"], classes,
                                                         max_missing_fraction=miss, headers=self.headers,
                                                         **self._ground_truth_checks()),
                                          SOURCE_SS, data["synth_tsv"]))
            if bs[1] > 0:
                sets.append(self._dataset(self.weak_split()[0], SOURCE_RW, data["weak_tsv"]))
            if bs[2] > 0:
                sets.append(self._dataset(unlabeled_records(data["unlabeled_folder"], miss, headers=self.headers),
                                          SOURCE_UL, data["unlabeled_folder"]))
            self._check_slices(sets)
            self.train_sets = sets
        if stage == "fit" and self.store is None and self.use_store():  # not while only checking (stage None)
            self.store = FeatureStore.cached(self.train_sets, STORE_DTYPES[data["feature_store_dtype"]],
                                             self.features.cache_dir, progress=self.batches.progress_bar)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._scored(strong_records(data["val_folder"], data["val_tsv"], classes, data["val_dur"],
                                                       miss, self.headers, **self._ground_truth_checks()),
                                        data["val_tsv"])
            if data["weak_val_fraction"] > 0 and data["weak_folder"] and data["weak_tsv"]:
                held = self.weak_split()[1]
                self.weak_val_set = self._dataset(held, SOURCE_RW, data["weak_tsv"]) if held else None
        if stage in (None, "test") and self.test_set is None:
            if data["test_tsv"]:
                self.test_set = self._scored(strong_records(data["test_folder"], data["test_tsv"], classes,
                                                            data["test_dur"], miss, self.headers,
                                                            **self._ground_truth_checks()), data["test_tsv"])
            else:
                self.test_set = self.val_set or self._scored_set(
                    strong_records(data["val_folder"], data["val_tsv"], classes, data["val_dur"], miss,
                                   self.headers, **self._ground_truth_checks()))
        self.headers.save()

    def check_sets(self) -> None:
        """Read, parse and check every set a run uses (training, validation, test) before its first step:
        a bad TSV line, an absent or unreadable clip is reported now, not after training. The feature
        store is built later, by Lightning's ``setup("fit")``. Training clips (the held-out weak ones
        too) longer than ``feats.clip_s`` are refused now (they used to stop training at their first
        read); longer validation and test clips are scored in windows. Clips below
        ``feats.sample_rate`` are named in a warning."""
        self.setup(None)
        training = [*self.train_sets, self.weak_val_set]
        sets = [*training, self.val_set, self.test_set]
        self._check_lengths([s for s in dict.fromkeys(sets) if s is not None],
                            {id(s) for s in training if s is not None})

    def _check_lengths(self, sets: list[ClipDataset], training: set[int]) -> None:
        """Refuse the clips longer than ``feats.clip_s`` of the sets whose ``id`` is in ``training``;
        warn about the clips below ``feats.sample_rate`` of every set."""
        clip_s, rate = float(self.feats["clip_s"]), int(self.feats["sample_rate"])
        long: dict[str, list[str]] = {}
        low: dict[str, list[str]] = {}
        for s in sets:
            where = s.origin or "a set"
            for r in s.records:
                header = self.headers.header(r.path)
                if header is None:
                    continue
                frames, file_rate = header
                if id(s) in training and not fits_one_clip(frames, file_rate, rate, clip_s):
                    long.setdefault(where, []).append(f"'{r.path}' ({frames / file_rate:.2f} s)")
                if file_rate < rate:
                    low.setdefault(where, []).append(f"'{r.path}' ({file_rate} Hz)")
        if long:
            parts = [f"{where}: {len(items)} training clip(s) longer than feats.clip_s = {clip_s} s: "
                     + ", ".join(items[:5]) + (", ..." if len(items) > 5 else "") for where, items in long.items()]
            raise DataError("; ".join(parts) + "; training reads clips of at most feats.clip_s: cut them into such "
                            "clips or raise it (validation and test clips of any length are scored in windows, "
                            "as dcase-fpd infer reads recordings)")
        for where, items in low.items():
            warnings.warn(f"{where}: {len(items)} clip(s) below feats.sample_rate = {rate} Hz, upsampled (nothing "
                          f"above half their rate can be heard): " + ", ".join(items[:5])
                          + (", ..." if len(items) > 5 else ""), stacklevel=3)

    def store_nbytes(self) -> int:
        """Bytes the training clips would take in a feature store."""
        feats = self.feats
        return store_nbytes(sum(len(s) for s in self.train_sets), feats["n_mels"], self.features.n_frames,
                            self.encoder.n_frames, self.encoder.n_classes,
                            STORE_DTYPES[self.data["feature_store_dtype"]])

    def use_store(self) -> bool:
        """``data.feature_store: auto`` and the store fits ``data.feature_store_max_gb``."""
        data = self.data
        return (data["feature_store"] == "auto" and bool(self.train_sets)
                and self.store_nbytes() <= data["feature_store_max_gb"] * 2**30)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Store path: gather the batch of the transferred indices on the device."""
        if isinstance(batch, IndexBatch) and self.store is not None:
            if self.store.device != batch.index.device:
                self.store.to(batch.index.device)
            return self.store.gather(batch)
        return batch

    def _loader(self, dataset, **kw) -> DataLoader:
        nw = self.data["num_workers"]
        return DataLoader(dataset, collate_fn=collate, num_workers=nw, persistent_workers=nw > 0, **kw)

    def train_dataloader(self) -> DataLoader:
        sizes = [len(s) for s in self.train_sets]
        batch_sizes = [b for b in self.batches.batch_size if b > 0]
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = MixedSourceBatchSampler(sizes, batch_sizes, seed=self.batches.seed,
                                          rank=rank, world_size=world)
        if self.store is not None:  # indices only; the batch is gathered on the device
            return DataLoader(_Indices(len(self.store)), batch_sampler=sampler, collate_fn=self.store.index_batch,
                              num_workers=0, pin_memory=self.batches.pin_memory)
        return self._loader(ConcatDataset(self.train_sets), batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        """The strong validation clips, then the held-out weak clips (one loader; the task tells
        them apart by ``has_strong``)."""
        sets = [self.val_set] + ([self.weak_val_set] if self.weak_val_set is not None else [])
        dataset = sets[0] if len(sets) == 1 else ConcatDataset(sets)
        return self._loader(dataset, batch_size=self.batches.batch_size_val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, batch_size=self.batches.batch_size_val, shuffle=False)


class _Indices(Dataset):
    """Dataset of the integers 0..n-1 (the store path's DataLoader only passes indices on)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def folder_loader(folder: str | Path, data: Mapping[str, Any], feats: Mapping[str, Any], n_frames: int,
                  frame_hop_s: float, batch_size: int = 16, skip_unreadable: bool = False,
                  overlap: float = DEFAULT_OVERLAP) -> DataLoader:
    """Batches of every audio file in ``folder`` (no labels), for ``dcase-fpd infer``, with the ``data``
    (classes, workers) and ``feats`` sections of the model's recipe; unreadable files are refused by
    name unless ``skip_unreadable`` (then they are named in a warning).

    Files of any length and rate: a file longer than ``feats.clip_s`` comes in windows of the clip
    length, ``overlap`` of a window shared with the next (:mod:`.windows`); the loader's
    ``dataset.plans`` say how each file is read, its items' ``filename`` is the window's key."""
    dm = SEDDataModule(data, feats, Batches((0, 0, 0), batch_size, 0), n_frames, frame_hop_s)
    if not list_audio_folder(folder):
        raise FileNotFoundError(f"{folder}: no audio files (.wav, .flac, ...) found")
    records = unlabeled_records(folder, 1.0 if skip_unreadable else 0.0, knob="--skip-unreadable")
    plans = plan_folder(records, feats, n_frames, frame_hop_s, overlap)
    return dm._loader(WindowDataset(plans, dm.features, dm.encoder), batch_size=batch_size)
