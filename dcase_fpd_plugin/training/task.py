"""The LightningModule: the SED model, its training branches, validation and test.

Training loss (recipe keys under ``training``):

* the weak baseline (defaults): BCE(clip probabilities, weak labels) over clips with weak labels
  (RW weak labels, and weak labels derived from SS strong labels; no strong label is used);
* ``strong_loss: true`` (DCASE 2023 baseline): BCE(frame probabilities, strong labels) over the
  (valid frames of the) SS clips + BCE(clip probabilities, weak labels) over the RW clips only;
* ``mean_teacher: true``: + ``const_max x ramp_up(step) x`` consistency(student, EMA teacher) on
  all clips, unlabelled ones included (:mod:`dcase_fpd_plugin.training.mean_teacher`); the teacher is a
  non-trained submodule (``mean_teacher.teacher.*`` in the state dict), updated after every
  optimiser step; validation, test and inference use ``eval_model`` (the student by default) and
  validation also logs the other model's metrics under ``val/<student|teacher>/``;
* ``mixup: true``: the SS and RW slices are mixed within themselves before the forward pass
  (:mod:`dcase_fpd_plugin.data.mixup`); losses and branches see the mixed batch;
* + the sum of the enabled branches' (weighted) losses, e.g. FPD, computed on the student's output.

Optimiser: Adam (``opt.lr``, ``opt.weight_decay``); ``opt.lr_warmup: true`` ramps the learning rate
up by ``exp(-5 (1 - t)^2)`` over ``training.n_epochs_warmup`` epochs, per step, as DESED_task;
``opt.gradient_clip > 0`` clips the gradient norm.

Validation and test gather frame and clip probabilities per clip and score them with
:mod:`dcase_fpd_plugin.evaluation` in DCASE conventions; the test writes the output files.
"""

from __future__ import annotations

import copy
import math
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn

from .. import registry
from .bce import DIVERGED, binary_cross_entropy
from ..branch import SOURCE_NAMES, Batch, Branch, ModelOutput
from ..data.features import n_stft_frames
from ..data.mixup import mixup_batch
from .mean_teacher import MeanTeacher, consistency_loss, sigmoid_rampup
from ..models import build_model
from ..recipe.schema import DEFAULTS
from ..recipe.checks import enabled_branches
from ..data.sources import resolve_sources
from .logs import TrainScalars, suffixed
from .selection import validation_scores

if TYPE_CHECKING:
    from ..evaluation.postprocessing import StitchedProbs

#: key of checkpoints and ``metrics.json`` marking a run trained with 0.2's fidelity fixes (the
#: CRNN's [0, 1] input scaling, FPD pairs from certain frames only, FPD in float32; docs/results.md).
#: Without it a run predates them: its CRNN, if any, was trained with ``net.crnn_input_norm:
#: minmax`` meaning [-1, 1], and its numbers are not those the same recipe gives now.
FIDELITY_KEY = "dcase_fpd_fidelity"
FIDELITY = 2  # 0.2's fixes; runs without the key count as 1


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the entries where ``mask`` (broadcast to its shape) is true; 0 (with a
    gradient of 0) when none is. No host synchronisation (no boolean indexing, no ``.any()``)."""
    weights = mask.to(values.dtype).expand_as(values)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def with_default_sections(recipe: dict[str, Any]) -> dict[str, Any]:
    """``recipe`` with keys missing from its ``data``/``net``/``training``/``opt``/``eval`` sections filled from DEFAULTS
    (recipes stored in checkpoints written before those keys existed)."""
    out = dict(recipe)
    for section in ("data", "net", "training", "opt", "eval"):
        out[section] = {**copy.deepcopy(DEFAULTS[section]), **recipe.get(section, {})}
    return out


class SEDTask(pl.LightningModule):
    """Hosts the model and branches named in a resolved recipe (see :mod:`.recipe`)."""

    def __init__(self, recipe: dict[str, Any]):
        super().__init__()
        recipe = with_default_sections(recipe)
        self.save_hyperparameters({"recipe": recipe})
        self.recipe = recipe
        self.classes = list(recipe["data"]["classes"])
        feats = recipe["feats"]
        self.model = build_model(recipe["net"], feats, len(self.classes))
        if recipe["training"]["channels_last"]:  # same numbers, another memory layout of the 4-D tensors
            self.model = self.model.to(memory_format=torch.channels_last)
        n_in = n_stft_frames(int(round(feats["clip_s"] * feats["sample_rate"])), feats["hop_length"])
        self.n_frames = self.model.output_frames(n_in)  # T, output frames per clip
        self.frame_hop_s = feats["hop_length"] * self.model.time_pooling / feats["sample_rate"]
        branches = {}
        for name, section in enabled_branches(recipe).items():
            factory = registry.get("branches", name)
            branch = factory(section, self.model.embed_dim, self.classes)
            if not isinstance(branch, Branch):
                raise TypeError(f"branch plugin {name!r} returned {type(branch).__name__}, not a Branch")
            branches[name] = branch
        self.branches = nn.ModuleDict(branches)
        training = recipe["training"]
        self.mean_teacher: MeanTeacher | None = None
        if training["mean_teacher"]:
            self.mean_teacher = MeanTeacher(self.model, training["ema_factor"])
        elif training["eval_model"] == "teacher":
            raise ValueError("training.eval_model: teacher needs training.mean_teacher: true")
        elif any(src.kind == "unlabeled" and src.active for src in resolve_sources(recipe["data"], training["batch_size"])):
            warnings.warn("an unlabelled source has a batch slice > 0 (training.batch_size) but "
                          "training.mean_teacher is false: the unlabelled clips take part in no loss", stacklevel=2)
        self._eval_store: StitchedProbs | None = None  # per clip (a long one's windows joined): validation, test
        self._other_store: StitchedProbs | None = None  # the model that is not eval_model
        self._weak_store: dict[str, dict[str, np.ndarray]] = {}  # held-out weak clips: clip probs, labels
        self._other_weak_store: dict[str, dict[str, np.ndarray]] = {}
        self._soft_store: dict[str, np.ndarray] = {}  # soft-labelled clips (SF): frame probs, validation and test
        self._other_soft_store: dict[str, np.ndarray] = {}
        self._steps_per_epoch: int | None = None
        self._ema_step = -1  # global step of the last teacher update
        self._nonfinite: torch.Tensor | None = None  # device flag: an output held NaN/inf (checked later)
        self._train_scalars = TrainScalars()
        self.eval_result = None  # the last test's EvaluationResult
        self.stored_recipe: dict[str, Any] | None = None  # set by load_task: the recipe it was trained with

    # ------------------------------------------------------------------ training
    def forward(self, feats: torch.Tensor, frame_valid: torch.Tensor | None = None):
        return self.model(feats, frame_valid)

    def weak_loss(self, clip_probs: torch.Tensor, batch: Batch, mask: torch.Tensor | None = None) -> torch.Tensor:
        """BCE between (B, C) clip probabilities and weak labels, over clips that have them
        (and are in ``mask``, (B,) bool, when given), and over the classes each clip's source
        annotates (``batch.class_mask``)."""
        mask = batch.has_weak if mask is None else batch.has_weak & mask  # (B,)
        mask = mask[:, None] if batch.class_mask is None else mask[:, None] & batch.class_mask  # (B, 1 | C)
        return masked_mean(binary_cross_entropy(clip_probs, batch.weak), mask)

    def strong_loss(self, frame_probs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """BCE between (B, T, C) frame probabilities and frame labels (strong, or soft scores), over the
        valid frames of clips with frame labels (the SS and SF slices) and the classes each clip's source
        annotates (``batch.class_mask``)."""
        mask = (batch.has_strong[:, None] & batch.frame_valid)[:, :, None]  # (B, T, 1)
        if batch.class_mask is not None:
            mask = mask & batch.class_mask[:, None, :]  # (B, T, C)
        return masked_mean(binary_cross_entropy(frame_probs, batch.strong), mask)

    # -- the DCASE training scheme
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (the ramp-ups' unit), from the trainer."""
        if self._steps_per_epoch is None:
            trainer = self.trainer
            n = trainer.num_training_batches
            if not isinstance(n, int) or n <= 0 or math.isinf(n):
                n = trainer.estimated_stepping_batches / max(trainer.max_epochs or 1, 1)
            self._steps_per_epoch = max(1, int(n))
        return self._steps_per_epoch

    def rampup_steps(self) -> int:
        """``training.n_epochs_warmup`` x steps per epoch: the length of the exp(-5 (1-t)^2) ramp-ups."""
        return int(self.recipe["training"]["n_epochs_warmup"] * self.steps_per_epoch())

    def consistency_weight(self, step: int | None = None) -> float:
        """``training.const_max x exp(-5 (1 - t)^2)`` at optimiser step ``step`` (counted from 1 as
        DESED_task's scheduler; default: the current step)."""
        step = self.global_step + 1 if step is None else step
        return float(self.recipe["training"]["const_max"]) * sigmoid_rampup(step, self.rampup_steps())

    def _mixup(self, batch: Batch) -> Batch:
        tr = self.recipe["training"]
        if not tr["mixup"]:
            return batch
        return mixup_batch(batch, prob=tr["mixup_prob"], alpha=tr["mixup_alpha"], label_type=tr["mixup_label_type"],
                           domain=tr["mixup_domain"])

    def forward_student_teacher(self, batch: Batch) -> tuple[ModelOutput, ModelOutput | None]:
        """The student's output on ``batch`` and the mean teacher's (None without a teacher), in the
        order ``training.teacher_first`` sets: the student first by default (DESED_task's order); the
        teacher first, its activations are gone before the student keeps its own for the backward (a
        lower peak memory; the two forwards then draw their dropout masks in the other order)."""
        inputs = batch.model_inputs()  # pretrained embeddings, class masks
        if self.mean_teacher is None:
            return self.model(batch.feats, batch.frame_valid, **inputs), None
        if self.recipe["training"]["teacher_first"]:
            teacher_out = self.mean_teacher(batch.feats, batch.frame_valid, **inputs)
            return self.model(batch.feats, batch.frame_valid, **inputs), teacher_out
        out = self.model(batch.feats, batch.frame_valid, **inputs)
        return out, self.mean_teacher(batch.feats, batch.frame_valid, **inputs)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        tr = self.recipe["training"]
        mixed = self._mixup(batch)
        logs: dict[str, Any] = {"train/mixup": float(mixed is not batch)} if tr["mixup"] else {}
        batch = mixed
        out, teacher_out = self.forward_student_teacher(batch)
        self._track_finite(out.frame_probs)
        self._track_finite(out.clip_probs)
        bs = len(batch)
        if tr["strong_loss"]:  # DCASE: frame BCE on SS, clip BCE on the weakly-labelled clips only
            loss_strong = self.strong_loss(out.frame_probs, batch)
            loss_cls = self.weak_loss(out.clip_probs, batch, mask=~batch.has_strong)
            logs["train/loss_strong"] = loss_strong
            loss = loss_strong + loss_cls
        else:
            loss_cls = self.weak_loss(out.clip_probs, batch)
            loss = loss_cls
        logs["train/loss_weak"] = loss_cls
        if teacher_out is not None:
            loss_cons = consistency_loss(out, teacher_out, batch.frame_valid, tr["self_sup_loss"])
            weight = self.consistency_weight()
            loss = loss + weight * loss_cons
            logs["train/loss_consistency"] = loss_cons
            logs["train/consistency_weight"] = weight
        for name, branch in self.branches.items():
            res = branch(out, batch, self.current_epoch)
            loss = loss + res.loss
            logs[f"train/loss_{name}"] = res.loss
            for k, v in res.logs.items():
                logs[f"train/{name}_{k}"] = v
        logs["train/loss"] = loss
        self._train_scalars.add(logs, bs)  # on the device; written every log_every_n_steps steps
        if loss.device.type == "cpu":  # the progress bar reads it every step: a host sync elsewhere
            self.log("loss", loss, batch_size=bs, prog_bar=True, logger=False)
        return loss

    def _log_every(self) -> int:
        return max(1, int(self.recipe["training"]["log_every_n_steps"]))

    def _write_train_scalars(self, values: dict[str, float]) -> None:
        """Hand scalars straight to the loggers at the current global step (rank zero only)."""
        if values and self.trainer is not None and self.trainer.is_global_zero:
            for logger in self.loggers:
                logger.log_metrics(values, step=self.global_step)

    def on_train_epoch_start(self) -> None:
        self._train_scalars.reset()

    def _track_finite(self, probs: torch.Tensor) -> None:
        """Remember (on the device, no sync) whether ``probs`` held NaN/inf; CPU tensors are checked
        at once by the BCE."""
        if probs.device.type == "cpu":
            return
        bad = ~torch.isfinite(probs.detach()).all()
        self._nonfinite = bad if self._nonfinite is None else self._nonfinite | bad

    def _check_finite(self) -> None:
        """Raise the diverged-weights error if a tracked output held NaN/inf (one host sync)."""
        if self._nonfinite is not None:
            flag, self._nonfinite = self._nonfinite, None
            if bool(flag):
                raise FloatingPointError(DIVERGED)

    def on_train_epoch_end(self) -> None:
        self._check_finite()
        means = suffixed(self._train_scalars.epoch_means(), "_epoch")
        self._write_train_scalars({**means, "epoch": float(self.current_epoch)} if means else {})

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        """After each optimiser step (once per global step): the EMA update of the teacher. Every
        ``log_every_n_steps`` steps: the deferred NaN check and the step's training scalars."""
        alpha = None
        if self.mean_teacher is not None and self.global_step not in (self._ema_step, 0):
            self._ema_step = self.global_step
            alpha = self.mean_teacher.update(self.model, self.global_step)
        if self.global_step % self._log_every() == 0:  # optimiser steps done, as Lightning's logging
            self._check_finite()
            values = suffixed(self._train_scalars.last(), "_step")
            if alpha is not None:
                values["train/ema_factor"] = alpha
            self._write_train_scalars(values)

    def trained_parameters(self) -> list[nn.Parameter]:
        """The parameters given to the optimiser: everything but the mean teacher."""
        return [p for n, p in self.named_parameters() if not n.startswith("mean_teacher.")]

    def configure_optimizers(self):
        opt = self.recipe["opt"]
        # fused: one kernel for all parameters on CUDA (same update as the foreach/for-loop Adam)
        fused = {"fused": True} if self.device.type == "cuda" else {}
        optimizer = torch.optim.Adam(self.trained_parameters(), lr=opt["lr"], weight_decay=opt["weight_decay"], **fused)
        if not opt["lr_warmup"]:
            return optimizer
        # DESED_task's ExponentialWarmup: the lr of step k (0-based) is lr x exp(-5 (1 - (k+1)/L)^2)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: sigmoid_rampup(k + 1, self.rampup_steps()))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        clip = self.recipe["opt"]["gradient_clip"]
        if clip > 0:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")
        else:
            super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)

    # ------------------------------------------------------------------ evaluation
    def eval_model(self) -> nn.Module:
        """The model validated, tested and used for inference (``training.eval_model``)."""
        if self.recipe["training"]["eval_model"] == "teacher":
            if self.mean_teacher is None:
                raise ValueError("training.eval_model: teacher needs training.mean_teacher: true")
            return self.mean_teacher.teacher
        return self.model

    def _other_model(self) -> tuple[str, nn.Module] | None:
        """The mean-teacher model that is not ``eval_model`` (validated too), or None."""
        if self.mean_teacher is None:
            return None
        if self.recipe["training"]["eval_model"] == "teacher":
            return "student", self.model
        return "teacher", self.mean_teacher.teacher

    @staticmethod
    def _probs(model: nn.Module, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        out: ModelOutput = model(batch.feats, batch.frame_valid, **batch.model_inputs())
        return out.frame_probs.float().cpu().numpy(), out.clip_probs.float().cpu().numpy()

    def _store(self, batch: Batch, store: StitchedProbs | None = None, model: nn.Module | None = None,
               weak_store: dict | None = None, soft_store: dict | None = None) -> None:
        """Keep the batch's probabilities per clip (or window of a long clip): strongly-labelled clips
        (and, without ``weak_store``, every clip) in ``store``; weak-only clips in ``weak_store`` with
        their labels; soft-labelled clips (source SF) in ``soft_store`` (frame probabilities)."""
        from ..branch import SOURCE_SF

        store = self._eval_store if store is None else store
        soft_store = self._soft_store if soft_store is None else soft_store
        fp, cp = self._probs(model if model is not None else self.eval_model(), batch)
        weak_only = (~batch.has_strong & batch.has_weak).tolist() if weak_store is not None else [False] * len(fp)
        soft = (batch.host_source() == SOURCE_SF).tolist()
        for i, name in enumerate(batch.filenames):
            if soft[i]:
                soft_store[name] = fp[i]
            elif weak_only[i]:
                weak_store[name] = {"clip": cp[i], "weak": batch.weak[i].float().cpu().numpy()}
            else:
                store.add(name, fp[i], cp[i])

    def _stitched(self, stage: str) -> StitchedProbs:
        """An empty store for the validation or test set, knowing the windows of its long clips."""
        from ..evaluation.postprocessing import StitchedProbs

        dm = getattr(self._trainer, "datamodule", None)
        return StitchedProbs(dm.window_index(stage) if hasattr(dm, "window_index") else None)

    def on_validation_epoch_start(self) -> None:
        self._check_finite()  # before a checkpoint can be saved after this validation
        self._eval_store, self._other_store = self._stitched("validate"), self._stitched("validate")
        self._weak_store, self._other_weak_store = {}, {}
        self._soft_store, self._other_soft_store = {}, {}

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._store(batch, weak_store=self._weak_store)
        other = self._other_model()
        if other is not None:
            self._store(batch, self._other_store, other[1], weak_store=self._other_weak_store,
                        soft_store=self._other_soft_store)

    def _soft_metrics(self, soft_store: dict[str, np.ndarray], stage: str) -> dict[str, Any] | None:
        """:func:`~dcase_fpd_plugin.evaluation.segment_based.soft_set_metrics` of the soft-labelled clips of
        the validation (``stage`` "validate": the held-out ones) or test set; None without such clips."""
        if not soft_store:
            return None
        from ..evaluation.segment_based import soft_set_metrics

        dm = self.trainer.datamodule
        dataset, src = ((dm.soft_val_set, dm.soft_val_source) if stage == "validate"
                        else (dm.soft_test_set, dm.soft_test_source))
        return soft_set_metrics(soft_store, {r.path.name: r.segments for r in dataset.records}, self.classes,
                                self.frame_hop_s, list(src.classes) if src is not None and src.classes else None,
                                pooling="mean" if stage == "test" else "max")

    def _weak_tagging_f1(self, weak_store: dict) -> float | None:
        """Macro tagging F1 of the held-out weak clips, None without any."""
        from ..evaluation.metrics import tagging_f1_from_labels

        if not weak_store:
            return None
        names = sorted(weak_store)
        probs = np.stack([weak_store[n]["clip"] for n in names])
        labels = np.stack([weak_store[n]["weak"] for n in names])
        return tagging_f1_from_labels(probs, labels, self.classes,
                                      tagging_threshold=self.recipe["eval"]["tagging_threshold"])[0]

    def _evaluate(self, tsv: str, dur: str | None, psds: bool, store: StitchedProbs | None = None):
        from ..evaluation.metrics import evaluate

        ev = self.recipe["eval"]
        store = (self._eval_store if store is None else store).files()
        return evaluate(
            {k: v["frame"] for k, v in store.items()},
            {k: v["clip"] for k, v in store.items()},
            frame_hop_s=self.frame_hop_s,
            classes=self.classes,
            ground_truth_tsv=tsv,
            durations_tsv=dur,
            median_window=ev["median_window"],
            threshold=ev["threshold"],
            tagging_threshold=ev["tagging_threshold"],
            psds=psds,
            psds_clips=ev["psds_clips"],
            ground_truth=self.recipe["data"]["ground_truth"],
            scored_classes=self.recipe["data"].get("eval_classes"),
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._eval_store:
            return
        data = self.recipe["data"]
        res = self._evaluate(data["val_tsv"], data["val_dur"], psds=False)
        m = res.metrics
        logs = validation_scores(m, "val", self._weak_tagging_f1(self._weak_store),
                                 self._soft_metrics(self._soft_store, "validate"))
        other = self._other_model()
        if other is not None and self._other_store:
            mo = self._evaluate(data["val_tsv"], data["val_dur"], psds=False, store=self._other_store).metrics
            logs.update(validation_scores(mo, f"val/{other[0]}", self._weak_tagging_f1(self._other_weak_store),
                                          self._soft_metrics(self._other_soft_store, "validate")))
        self.log_dict(logs, prog_bar=False, sync_dist=False)
        self.log("val_obj", logs["val/obj"], prog_bar=True, logger=False)
        self._eval_store = self._other_store = None
        self._weak_store, self._other_weak_store = {}, {}
        self._soft_store, self._other_soft_store = {}, {}

    def on_test_epoch_start(self) -> None:
        self._eval_store = self._stitched("test")
        self._soft_store = {}

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._store(batch)

    def on_test_epoch_end(self) -> None:
        data = self.recipe["data"]
        tsv = data["test_tsv"] or data["val_tsv"]
        dur = data["test_dur"] or data["val_dur"]
        self.eval_result = self._evaluate(tsv, dur, psds=self.recipe["eval"]["psds"])
        self.eval_inputs = self._eval_store.inputs  # clips and windows of long clips: the model's inputs
        self.test_frame_probs = {k: v["frame"] for k, v in self._eval_store.files().items()}  # raw, per file
        m = self.eval_result.metrics
        if self._soft_store:  # DESED_task 2024's MAESTRO test figures: segment mpAUC, mAUC, best F1
            soft = self._soft_metrics(self._soft_store, "test")
            m["maestro"] = soft
            for key in ("mpauc", "mauc", "segment_f1_best"):
                m[f"maestro_{key}"] = None if soft is None else soft[key]
            self._soft_store = {}
        dm = getattr(self.trainer, "datamodule", None)  # repairs of the training and validation TSVs too
        if hasattr(dm, "ground_truth_repairs"):
            m["ground_truth_repairs"] = {**dm.ground_truth_repairs(), **m["ground_truth_repairs"]}
        self.log_dict({f"test/{k}": float(m[k]) for k in ("event_f1", "segment_f1", "tagging_f1",
                                                          "intersection_f1") if m.get(k) is not None})

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[FIDELITY_KEY] = FIDELITY

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, dict[str, np.ndarray]]:
        fp, cp = self._probs(self.eval_model(), batch)
        return {name: {"frame": fp[i], "clip": cp[i]} for i, name in enumerate(batch.filenames)}


def count_sources(batch: Batch) -> dict[str, int]:
    """Clips per source name in a batch (for logs and tests)."""
    return {SOURCE_NAMES[s]: int((batch.source == s).sum()) for s in SOURCE_NAMES}


def _damaged_part(archive: zipfile.ZipFile) -> str | None:
    """The first part of a checkpoint's zip archive whose data fails its stored CRC-32, else None. Parts
    stored without one (CRC 0: ``torch.serialization.set_crc32_options(False)``) cannot be checked."""
    for info in archive.infolist():
        if info.CRC == 0:
            continue
        try:
            with archive.open(info) as part:  # zipfile checks the CRC-32 as it reads to the end
                while part.read(1 << 22):
                    pass
        except zipfile.BadZipFile:
            return info.filename
    return None


def read_checkpoint(ckpt: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(contents, recipe as trained)`` of a dcase-fpd checkpoint, loaded with
    ``weights_only=True``: a file that holds anything but tensors and plain data (which could run
    code when unpickled) is refused, not run. The recipe has ``net.crnn_input_norm`` as the weights
    were trained with (:func:`trained_recipe`).

    A corrupt or truncated file (a damaged zip archive, a part whose checksum fails, a pickle that
    breaks off) is a DataError naming the file, as is one that is no torch file at all.

    Raises:
        FileNotFoundError: no such file. DataError: not a checkpoint (corrupt, truncated, another kind
        of file), refused objects, no recipe.
    """
    import pickle

    from ..data.tsv import DataError

    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    corrupt = f"{ckpt}: not a checkpoint, or a corrupt or truncated one"
    try:  # torch reads the parts of its zip archive without their checksums: damaged weights would load
        with zipfile.ZipFile(ckpt) as archive:
            damaged = _damaged_part(archive)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):  # truncated, or not a zip (torch.load says more)
        damaged = None
    except Exception as exc:  # zlib errors and the like: a damaged archive
        damaged = f"({type(exc).__name__})"
    if damaged is not None:
        raise DataError(f"{ckpt}: a corrupt checkpoint (its part {damaged} fails its checksum: the file was "
                        "damaged after it was written)")
    if ckpt.stat().st_size == 0:
        raise DataError(f"{ckpt}: an empty file, not a checkpoint (truncated when it was written?)")
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc).strip()
        detail = next((line.strip() for line in text.splitlines() if "WeightsUnpickler error:" in line
                       and line.strip() != "WeightsUnpickler error:"), None)
        if "Unsupported global" in text or "GLOBAL" in text:  # torch's weights-only unpickler met another object
            first = (detail or text.splitlines()[0])[:200]
            raise DataError(f"{ckpt}: refused: it holds objects other than tensors and plain data, which could "
                            f"run code when loaded ({first})") from None
        cause = exc.__cause__ or exc.__context__
        reason = str(cause) if cause is not None and str(cause) else (text.splitlines() or [type(exc).__name__])[0]
        raise DataError(f"{corrupt} (UnpicklingError: {reason[:200]})") from None
    except Exception as exc:  # not a torch file at all, a damaged archive, an empty file
        first = (str(exc).strip().splitlines() or ["(no message)"])[0].split(". This is an internal")[0][:200]
        raise DataError(f"{corrupt} ({type(exc).__name__}: {first})") from None
    stored = state.get("hyper_parameters", {}).get("recipe") if isinstance(state, dict) else None
    if not isinstance(stored, dict):
        raise DataError(f"{ckpt}: not a dcase-fpd checkpoint (no recipe in its hyper-parameters)")
    return state, trained_recipe(stored, state)


def trained_recipe(stored: dict[str, Any], state: dict[str, Any]) -> dict[str, Any]:
    """The stored recipe of a checkpoint, with ``net.crnn_input_norm: minmax`` read as
    ``minmax_signed`` ([-1, 1]) when the checkpoint has no :data:`FIDELITY_KEY`: its CRNN was
    trained before ``minmax`` became DESED_task's [0, 1]."""
    net = stored.get("net", {})
    if state.get(FIDELITY_KEY) is None and net.get("name") == "crnn" and net.get("crnn_input_norm", "minmax") == "minmax":
        return {**stored, "net": {**net, "crnn_input_norm": "minmax_signed"}}
    return stored


def check_resume(recipe: dict[str, Any], ckpt: str | Path) -> None:
    """Refuse to resume ``ckpt`` with a recipe whose CRNN input scaling is not the one its weights
    were trained with (e.g. a run saved before 0.2, trained on [-1, 1], under ``minmax``).

    Raises:
        RecipeError: naming the scaling to resume with. DataError: see :func:`read_checkpoint`.
    """
    from ..data.tsv import DataError
    from ..recipe.schema import RecipeError

    try:
        state, trained = read_checkpoint(ckpt)
    except DataError as exc:
        raise DataError(f"{exc}. --resume cannot continue from it: restore the file, or start the run again "
                        "with --force (the other checkpoints/ files, e.g. best.ckpt, can still be tested)") from None
    net = recipe["net"]
    if net["name"] != "crnn" or trained.get("net", {}).get("name") != "crnn":
        return
    was = trained["net"].get("crnn_input_norm", "minmax")
    if was != net["crnn_input_norm"]:
        raise RecipeError(f"{ckpt}: its CRNN was trained with net.crnn_input_norm={was}"
                          f"{' (saved before 0.2, when minmax meant [-1, 1])' if state.get(FIDELITY_KEY) is None else ''}, "
                          f"this recipe has {net['crnn_input_norm']}: resume it with net.crnn_input_norm={was}, "
                          "or start a new run")


def load_task(ckpt: str | Path, recipe: dict[str, Any] | None = None) -> SEDTask:
    """A task from a checkpoint (read by :func:`read_checkpoint`: nothing in it can run code).

    ``recipe`` (e.g. with other data paths or post-processing) replaces the stored recipe,
    except ``feats``, ``net``, ``branches``, ``data.classes`` and ``training.mean_teacher``, which
    must match the weights.
    """
    state, stored = read_checkpoint(ckpt)
    if recipe is not None and list(recipe["data"]["classes"]) != list(stored["data"]["classes"]):
        from ..recipe.schema import RecipeError

        raise RecipeError(f"'data.classes' {list(recipe['data']['classes'])} differ from those {ckpt} was trained "
                          f"with {list(stored['data']['classes'])}: the weights' outputs are those classes, in "
                          "that order; use the training recipe's data.classes")
    merged = dict(recipe or stored)
    for section in ("feats", "net", "branches"):  # what the weights were trained with wins
        merged[section] = stored[section]
    merged["data"] = {**merged["data"], "classes": stored["data"]["classes"]}
    merged["training"] = {**merged.get("training", {}),
                          "mean_teacher": stored.get("training", {}).get("mean_teacher", False)}
    task = SEDTask(merged)
    task.load_state_dict(state["state_dict"])
    task.stored_recipe = stored  # as trained (its data section chose the checkpoint)
    return task
