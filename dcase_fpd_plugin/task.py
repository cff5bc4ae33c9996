"""The LightningModule: the SED model, its training branches, validation and test.

Training loss = BCE(clip probabilities, weak labels) over clips with weak labels (RW weak
labels, and weak labels derived from SS strong labels; the weak baseline uses no strong
label) + the sum of the enabled branches' (weighted) losses, e.g. FPD.

Validation and test gather frame and clip probabilities per clip and score them with
:mod:`dcase_fpd_plugin.evaluation` in DCASE conventions; the test writes the output files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from . import registry
from .branch import SOURCE_NAMES, Batch, Branch
from .data.features import n_stft_frames
from .models import build_model
from .recipe import enabled_branches


class SEDTask(pl.LightningModule):
    """Hosts the model and branches named in a resolved recipe (see :mod:`.recipe`)."""

    def __init__(self, recipe: dict[str, Any]):
        super().__init__()
        self.save_hyperparameters({"recipe": recipe})
        self.recipe = recipe
        self.classes = list(recipe["data"]["classes"])
        feats = recipe["feats"]
        self.model = build_model(recipe["net"], feats, len(self.classes))
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
        self._eval_store: dict[str, dict[str, np.ndarray]] = {}
        self.eval_result = None  # the last test's EvaluationResult

    # ------------------------------------------------------------------ training
    def forward(self, feats: torch.Tensor, frame_valid: torch.Tensor | None = None):
        return self.model(feats, frame_valid)

    def weak_loss(self, clip_probs: torch.Tensor, batch: Batch) -> torch.Tensor:
        """BCE between (B, C) clip probabilities and weak labels, over clips that have them."""
        mask = batch.has_weak
        if not bool(mask.any()):
            return clip_probs.sum() * 0.0
        return F.binary_cross_entropy(clip_probs[mask].float(), batch.weak[mask])

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        out = self.model(batch.feats, batch.frame_valid)
        loss_cls = self.weak_loss(out.clip_probs, batch)
        loss = loss_cls
        bs = len(batch)
        logs: dict[str, Any] = {"train/loss_weak": loss_cls}
        for name, branch in self.branches.items():
            res = branch(out, batch, self.current_epoch)
            loss = loss + res.loss
            logs[f"train/loss_{name}"] = res.loss
            for k, v in res.logs.items():
                logs[f"train/{name}_{k}"] = v
        logs["train/loss"] = loss
        self.log_dict(logs, batch_size=bs, on_step=True, on_epoch=True, prog_bar=False)
        self.log("loss", loss, batch_size=bs, prog_bar=True, logger=False)
        return loss

    def configure_optimizers(self):
        opt = self.recipe["opt"]
        return torch.optim.Adam(self.parameters(), lr=opt["lr"], weight_decay=opt["weight_decay"])

    # ------------------------------------------------------------------ evaluation
    def _store(self, batch: Batch) -> None:
        out = self.model(batch.feats, batch.frame_valid)
        fp = out.frame_probs.float().cpu().numpy()
        cp = out.clip_probs.float().cpu().numpy()
        for i, name in enumerate(batch.filenames):
            self._eval_store[name] = {"frame": fp[i], "clip": cp[i]}

    def on_validation_epoch_start(self) -> None:
        self._eval_store = {}

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._store(batch)

    def _evaluate(self, tsv: str, dur: str | None, psds: bool):
        from .evaluation.metrics import evaluate

        ev = self.recipe["eval"]
        return evaluate(
            {k: v["frame"] for k, v in self._eval_store.items()},
            {k: v["clip"] for k, v in self._eval_store.items()},
            frame_hop_s=self.frame_hop_s,
            classes=self.classes,
            ground_truth_tsv=tsv,
            durations_tsv=dur,
            median_window=ev["median_window"],
            threshold=ev["threshold"],
            tagging_threshold=ev["tagging_threshold"],
            psds=psds,
        )

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking or not self._eval_store:
            return
        data = self.recipe["data"]
        res = self._evaluate(data["val_tsv"], data["val_dur"], psds=False)
        m = res.metrics
        logs = {f"val/{k}": float(m[k]) for k in ("event_f1", "segment_f1", "tagging_f1", "intersection_f1")}
        logs["val/obj"] = logs["val/tagging_f1"] + logs["val/intersection_f1"]
        self.log_dict(logs, prog_bar=False, sync_dist=False)
        self.log("val_obj", logs["val/obj"], prog_bar=True, logger=False)
        self._eval_store = {}

    def on_test_epoch_start(self) -> None:
        self._eval_store = {}

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._store(batch)

    def on_test_epoch_end(self) -> None:
        data = self.recipe["data"]
        tsv = data["test_tsv"] or data["val_tsv"]
        dur = data["test_dur"] or data["val_dur"]
        self.eval_result = self._evaluate(tsv, dur, psds=self.recipe["eval"]["psds"])
        m = self.eval_result.metrics
        self.log_dict({f"test/{k}": float(m[k]) for k in ("event_f1", "segment_f1", "tagging_f1",
                                                          "intersection_f1") if m.get(k) is not None})

    def predict_step(self, batch: Batch, batch_idx: int) -> dict[str, dict[str, np.ndarray]]:
        out = self.model(batch.feats, batch.frame_valid)
        fp = out.frame_probs.float().cpu().numpy()
        cp = out.clip_probs.float().cpu().numpy()
        return {name: {"frame": fp[i], "clip": cp[i]} for i, name in enumerate(batch.filenames)}


def count_sources(batch: Batch) -> dict[str, int]:
    """Clips per source name in a batch (for logs and tests)."""
    return {SOURCE_NAMES[s]: int((batch.source == s).sum()) for s in SOURCE_NAMES}


def load_task(ckpt: str | Path, recipe: dict[str, Any] | None = None) -> SEDTask:
    """A task from a checkpoint.

    ``recipe`` (e.g. with other data paths or post-processing) replaces the stored recipe,
    except ``feats``, ``net``, ``branches`` and ``data.classes``, which must match the weights.
    """
    ckpt = Path(ckpt)
    if not ckpt.is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    stored = state.get("hyper_parameters", {}).get("recipe")
    if stored is None:
        raise ValueError(f"{ckpt}: not a dcase-fpd checkpoint (no recipe in its hyper-parameters)")
    merged = dict(recipe or stored)
    for section in ("feats", "net", "branches"):  # what the weights were trained with wins
        merged[section] = stored[section]
    merged["data"] = {**merged["data"], "classes": stored["data"]["classes"]}
    task = SEDTask(merged)
    task.load_state_dict(state["state_dict"])
    return task
