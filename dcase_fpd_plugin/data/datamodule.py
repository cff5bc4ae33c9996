"""The LightningDataModule: DESED sets from a recipe's ``data`` section, mixed-source batches.

Training sources (:mod:`.sources`; ``training.batch_size`` = clips per batch from each), by default
DESED_task 2023's three:
    SS  synth_folder + synth_tsv    strong labels (the weak baseline uses their weak view)
    RW  weak_folder + weak_tsv      weak labels
    UL  unlabeled_folder            no labels
and with ``data.sources`` any list of strong, weak, soft (SF) and unlabelled sources, each annotating
its own classes (a class mask on its clips), optionally with pretrained embeddings from
``data.embeddings_dir`` (DESED_task's HDF5 files, :mod:`.embeddings`).
Validation (checkpoint selection), as DESED_task: the strongly-labelled ``val_folder/val_tsv/val_dur``
plus a held-out share ``data.weak_val_fraction`` of the RW clips (split once by ``data.weak_val_seed``,
so every training seed holds out the same clips; they leave the training set), and a soft source's
``val_fraction`` of its clips (scored by segment, as DESED_task scores MAESTRO).
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

from ..branch import SOURCE_RW, SOURCE_SF, SOURCE_SS
from .batching import MixedSourceBatchSampler
from .audio import HeaderIndex, fits_one_clip
from .datasets import (ClipDataset, ClipRecord, collate, soft_records, strong_records, unlabeled_records,
                       weak_records)
from .sources import Source, active_sources, resolve_sources
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

    batch_size: tuple[int, ...]  # clips per training batch from each source of data.sources ([synthetic, weak,
    # unlabelled] without it)
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
                 frame_hop_s: float, cache_dir: str | Path | None = None, check_sources: bool = True):
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
        self.soft_val_set: ClipDataset | None = None  # held-out soft-labelled clips (a soft source's val_fraction)
        self.soft_val_source: Source | None = None
        self.soft_test_set: ClipDataset | None = None  # soft-labelled test clips (data.real_maestro_val_*)
        self.soft_test_source: Source | None = None
        self.store: FeatureStore | None = None  # training clips on the device (data.feature_store)
        # the training sources, in batch-slice order (none for infer's folder loader)
        self.declared = resolve_sources(data, batches.batch_size) if check_sources else []
        self.sources = active_sources(data, batches.batch_size) if check_sources else []
        self._splits: dict[str, tuple[list[ClipRecord], list[ClipRecord]]] = {}  # weak / soft source -> split
        self._emb_files: dict[str, Any] = {}  # embeddings set name -> EmbeddingFile

    @classmethod
    def from_recipe(cls, recipe: Mapping[str, Any], n_frames: int, frame_hop_s: float,
                    use_cache: bool = True) -> "SEDDataModule":
        """The data module of a resolved recipe: its ``data`` and ``feats`` sections, the batching of
        its ``training`` section, the feature cache beside ``training.exp_dir`` unless ``data.cache_dir``."""
        cache = default_cache_dir(recipe["data"], recipe["training"]["exp_dir"]) if use_cache else None
        return cls(recipe["data"], recipe["feats"], Batches.of(recipe["training"]), n_frames, frame_hop_s, cache)

    def _scored(self, records: list[ClipRecord], tsv: str, embeddings: str | None = None) -> ClipDataset:
        """A validation or test set, refused when its TSV holds no event (every metric would be
        undefined: the run used to end with exit 0 and null metrics)."""
        if not any(r.events for r in records):
            raise DataError(f"{tsv}: no event in this strongly-labelled set; its metrics would all be undefined")
        return self._scored_set(records, tsv, embeddings)

    def _scored_set(self, records: list[ClipRecord], origin: str = "", embeddings: str | None = None) -> ClipDataset:
        """A strongly-labelled set to score: a :class:`ClipDataset`, or with clips longer than
        ``feats.clip_s`` a :class:`~.windows.WindowedClips` that reads those in windows (not with
        pretrained embeddings, which hold one clip length)."""
        plans = {i: plan for i, plan in enumerate(self._long_plans(records)) if plan is not None}
        file = self._embedding_file(embeddings, origin) if embeddings else None
        if not plans:  # every clip fits: the set as it always was
            return ClipDataset(records, SOURCE_SS, self.features, self.encoder, origin, embeddings=file,
                               class_mask=self.eval_class_mask())
        if file is not None:
            names = ", ".join(str(records[i].path) for i in list(plans)[:3])
            raise DataError(f"{origin}: {len(plans)} clip(s) longer than feats.clip_s = {self.feats['clip_s']} s "
                            f"({names}); with data.embeddings_dir each clip has one clip's embeddings, so "
                            "longer clips cannot be read in windows: cut them into clips")
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
        """(training, held-out validation) records of the first weak source (read once)."""
        weak = next((src for src in self.declared if src.kind == "weak" and src.folder and src.tsv), None)
        if weak is None:
            return [], []
        return self._split(weak)

    def _split(self, src: Source) -> tuple[list[ClipRecord], list[ClipRecord]]:
        """(training, held-out validation) records of a weak or soft source (read once), its
        ``val_fraction`` drawn with ``data.weak_val_seed``."""
        if src.name not in self._splits:
            data, miss = self.data, self.data["max_missing_fraction"]
            if src.kind == "weak":
                records = weak_records(src.folder, src.tsv, data["classes"], miss, headers=self.headers)
            else:
                records = soft_records(src.folder, src.tsv, data["classes"], miss, self.headers, src.aliases,
                                       src.durations)
            records = self._with_embeddings(records, src.embeddings, src.where)
            self._splits[src.name] = split_weak_validation(records, src.val_fraction, data["weak_val_seed"])
        return self._splits[src.name]

    def _embedding_file(self, set_name: str | None, where: str):
        """The :class:`~.embeddings.EmbeddingFile` of ``set_name`` in ``data.embeddings_dir`` (None without
        embeddings)."""
        emb_dir = self.data.get("embeddings_dir")
        if not emb_dir:
            return None
        if set_name is None:
            raise DataError(f"{where}: data.embeddings_dir is set but this set names no embeddings file "
                            "(data.sources entry key 'embeddings')")
        from .embeddings import EmbeddingFile, embeddings_path

        if set_name not in self._emb_files:
            path = embeddings_path(emb_dir, set_name)
            if not Path(path).is_file():
                raise DataError(f"{where}: its embeddings file {path} is not there (data.embeddings_dir="
                                f"{emb_dir}; DESED_task's extract_embeddings.py writes <set>.hdf5 files, "
                                "dcase-fpd embeddings extract writes the same)")
            self._emb_files[set_name] = EmbeddingFile(path)
        return self._emb_files[set_name]

    def _with_embeddings(self, records: list[ClipRecord], set_name: str | None, where: str) -> list[ClipRecord]:
        """``records`` whose clips the set's embeddings file holds (the others reported like missing
        audio, :func:`~.embeddings.check_clips`); all of them without ``data.embeddings_dir``."""
        file = self._embedding_file(set_name, where)
        if file is None:
            return records
        from .embeddings import check_clips

        keep = set(check_clips(file, [r.path for r in records], where, self.data["max_missing_fraction"]))
        return [r for r in records if r.path in keep]

    def _source_dataset(self, src: Source, records: list[ClipRecord]) -> ClipDataset:
        return ClipDataset(records, src.source_id, self.features, self.encoder, src.tsv or src.folder or src.name,
                           group=src.index, class_mask=src.class_mask(self.data["classes"]),
                           embeddings=self._embedding_file(src.embeddings, src.where))

    def _source_records(self, src: Source) -> list[ClipRecord]:
        """The training records of a source (weak and soft ones without their held-out clips)."""
        data, miss = self.data, self.data["max_missing_fraction"]
        if src.kind in ("weak", "soft"):
            return self._split(src)[0]
        if src.kind == "strong":
            records = strong_records(src.folder, src.tsv, data["classes"], max_missing_fraction=miss,
                                     headers=self.headers, **self._ground_truth_checks())
        else:
            records = unlabeled_records(src.folder, miss, headers=self.headers)
        return self._with_embeddings(records, src.embeddings, src.where)

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
        sets = [(src.tsv, None) for src in self.sources if src.kind == "strong"]
        sets += [(data["val_tsv"], data["val_dur"]), (data["test_tsv"], data["test_dur"])]
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
        bs = self.batches.batch_size
        kinds = {"strong": "strongly-labelled", "weak": "weak", "soft": "soft-labelled", "unlabeled": "unlabelled"}
        for src, dataset in zip(self.sources, sets):
            if len(dataset) < src.batch_size:
                k, what = src.index, kinds[src.kind]
                where = (f"data.{src.name}_tsv {src.tsv}" if src.kind != "unlabeled" else
                         f"data.{src.name}_folder {src.folder}") if self.data.get("sources") is None else src.where
                held = self._splits.get(src.name, ([], []))[1]
                held_text = (f" ({len(held)} more held out for validation by "
                             f"{'data.weak_val_fraction' if src.kind == 'weak' else 'its val_fraction'}="
                             f"{src.val_fraction})") if held else ""
                if self.data.get("sources") is None:
                    what = {"strong": "synthetic"}.get(src.kind, what)
                raise DataError(f"training.batch_size {list(bs)}: {src.batch_size} {what} clips per batch, but the "
                                f"{what} set ({where}) has {len(dataset)} training clips{held_text}; lower "
                                f"training.batch_size[{k}] to at most {len(dataset)}, or 0 to leave this set out")

    def setup(self, stage: str | None = None) -> None:
        data, classes = self.data, self.data["classes"]
        if stage in (None, "fit") and not self.train_sets:
            sets = [self._source_dataset(src, self._source_records(src)) for src in self.sources]
            self._check_slices(sets)
            self.train_sets = sets
        if stage == "fit" and self.store is None and self.use_store():  # not while only checking (stage None)
            self.store = FeatureStore.cached(self.train_sets, STORE_DTYPES[data["feature_store_dtype"]],
                                             self.features.cache_dir, progress=self.batches.progress_bar)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._scored(self._strong_set_records("val", "synth_val"), data["val_tsv"], "synth_val")
            held = [(src, self._split(src)[1]) for src in self.declared  # a slice of 0 still holds clips out
                    if src.kind in ("weak", "soft") and src.folder and src.tsv and src.val_fraction > 0]
            weak_held = [(src, r) for src, r in held if src.kind == "weak" and r]
            if weak_held:  # DESED_task's weak_val.hdf5 holds the weak folder's clips; else the source's own file
                src, records = weak_held[0]
                emb = "weak_val" if self._has_embedding_set("weak_val") else src.embeddings
                self.weak_val_set = ClipDataset(records, SOURCE_RW, self.features, self.encoder, src.tsv,
                                                group=src.index, class_mask=src.class_mask(classes),
                                                embeddings=self._embedding_file(emb, src.where))
            soft_held = [(src, r) for src, r in held if src.kind == "soft" and r]
            if soft_held:
                src, records = soft_held[0]
                self.soft_val_set = self._source_dataset(src, records)
                self.soft_val_source = src
        if stage in (None, "test") and self.soft_test_set is None and data.get("real_maestro_val_tsv"):
            src = next((s for s in self.declared if s.kind == "soft"), None)
            self.soft_test_set = ClipDataset(self.soft_test_records(), SOURCE_SF, self.features, self.encoder,
                                             data["real_maestro_val_tsv"],
                                             class_mask=src.class_mask(classes) if src else None,
                                             embeddings=self._embedding_file("maestro_real_dev", "MAESTRO test")
                                             if data.get("embeddings_dir") else None)
            self.soft_test_source = src
        if stage in (None, "test") and self.test_set is None:
            if data["test_tsv"]:
                self.test_set = self._scored(self._strong_set_records("test", "devtest"), data["test_tsv"], "devtest")
            else:
                self.test_set = self.val_set or self._scored_set(self._strong_set_records("val", "synth_val"),
                                                                 embeddings="synth_val")
        self.headers.save()

    def eval_class_mask(self) -> list[bool] | None:
        """(C,) booleans: ``data.eval_classes``, the classes the validation and test sets annotate (None: all)."""
        scored = self.data.get("eval_classes")
        if not scored or set(self.data["classes"]) <= set(scored):
            return None
        return [c in scored for c in self.data["classes"]]

    def _has_embedding_set(self, set_name: str) -> bool:
        emb_dir = self.data.get("embeddings_dir")
        if not emb_dir:
            return False
        from .embeddings import embeddings_path

        return Path(embeddings_path(emb_dir, set_name)).is_file()

    def _strong_set_records(self, which: str, embeddings: str) -> list[ClipRecord]:
        """The records of the validation (``which`` "val") or test set, checked against its embeddings file."""
        data = self.data
        records = strong_records(data[f"{which}_folder"], data[f"{which}_tsv"], data["classes"], data[f"{which}_dur"],
                                 data["max_missing_fraction"], self.headers, **self._ground_truth_checks())
        return self._with_embeddings(records, embeddings, f"data.{which}_tsv {data[f'{which}_tsv']}")

    def check_sets(self) -> None:
        """Read, parse and check every set a run uses (training, validation, test) before its first step:
        a bad TSV line, an absent or unreadable clip is reported now, not after training. The feature
        store is built later, by Lightning's ``setup("fit")``. Training clips (the held-out weak ones
        too) longer than ``feats.clip_s`` are refused now (they used to stop training at their first
        read); longer validation and test clips are scored in windows. Clips below
        ``feats.sample_rate`` are named in a warning."""
        self.setup(None)
        training = [*self.train_sets, self.weak_val_set, self.soft_val_set]
        sets = [*training, self.val_set, self.test_set, self.soft_test_set]
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
        """``data.feature_store: auto``, the store fits ``data.feature_store_max_gb``, and no pretrained
        embeddings (``data.embeddings_dir``: 1.5 MB a clip, read from their HDF5 files instead)."""
        data = self.data
        return (data["feature_store"] == "auto" and bool(self.train_sets) and not data.get("embeddings_dir")
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
        batch_sizes = [src.batch_size for src in self.sources]
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
        """The strong validation clips, then the held-out weak clips, then the held-out soft clips (one
        loader; the task tells them apart by ``has_strong`` and ``source``)."""
        sets = [self.val_set] + [s for s in (self.weak_val_set, self.soft_val_set) if s is not None]
        dataset = sets[0] if len(sets) == 1 else ConcatDataset(sets)
        return self._loader(dataset, batch_size=self.batches.batch_size_val, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """The test clips, then the soft-labelled test clips (``data.real_maestro_val_*``) if any."""
        sets = [self.test_set] + ([self.soft_test_set] if self.soft_test_set is not None else [])
        dataset = sets[0] if len(sets) == 1 else ConcatDataset(sets)
        return self._loader(dataset, batch_size=self.batches.batch_size_val, shuffle=False)

    def soft_test_records(self) -> list[ClipRecord]:
        """The soft-labelled test set (``data.real_maestro_val_folder/_tsv``, DESED_task 2024's MAESTRO
        validation set, which selects nothing here), checked against its embeddings file ``maestro_real_dev``."""
        data = self.data
        src = next((s for s in self.declared if s.kind == "soft"), None)
        records = soft_records(data["real_maestro_val_folder"], data["real_maestro_val_tsv"], data["classes"],
                               data["max_missing_fraction"], self.headers, src.aliases if src else None,
                               data.get("real_maestro_val_dur"))
        return self._with_embeddings(records, "maestro_real_dev",
                                     f"data.real_maestro_val_tsv {data['real_maestro_val_tsv']}")


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
    dm = SEDDataModule({**data, "sources": None}, feats, Batches((0, 0, 0), batch_size, 0), n_frames, frame_hop_s,
                       check_sources=False)
    if not list_audio_folder(folder):
        raise FileNotFoundError(f"{folder}: no audio files (.wav, .flac, ...) found")
    records = unlabeled_records(folder, 1.0 if skip_unreadable else 0.0, knob="--skip-unreadable")
    plans = plan_folder(records, feats, n_frames, frame_hop_s, overlap)
    return dm._loader(WindowDataset(plans, dm.features, dm.encoder), batch_size=batch_size)
