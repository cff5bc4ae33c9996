"""Training with a list of sources: the 2023 recipes unchanged, a fourth soft-labelled source, class masks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from dcase_fpd_plugin.branch import SOURCE_SF, SOURCE_SS, Batch
from dcase_fpd_plugin.data.demo import DEMO_CLASSES
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train
from dcase_fpd_plugin.training.task import SEDTask

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"

#: First 3 training-step losses of the 2023 recipes under :func:`_settings_2023` (seed 3, mixup on every
#: batch, mean teacher on), measured with the package at commit 0458105, before the sources refactor
#: (``PYTHONPATH=<checkout of 0458105>`` running this file's settings; 2-core CPU, torch 2.13.0+cpu).
LOSSES_BEFORE_SOURCES = {
    "dcase2023_baseline": [1.3862731456756592, 1.390980839729309, 1.3781177997589111],
    "dcase2023_baseline_fpd": [2.2075448036193848, 2.16416597366333, 2.3163537979125977],
}


class FirstLosses(pl.Callback):
    def __init__(self, n: int = 3):
        self.n, self.losses = n, []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if len(self.losses) < self.n:
            self.losses.append(float(outputs["loss"]))


def _settings_2023(demo_data, root: Path, name: str) -> list[str]:
    return [f"data.{k}={v}" for k, v in demo_data.items()] + [
        f"data.unlabeled_folder={demo_data['weak_folder']}", f"data.classes=[{','.join(DEMO_CLASSES)}]",
        "feats.clip_s=4.0", f"data.cache_dir={root / 'cache'}", f"training.exp_dir={root / name}",
        "training.n_epochs=1", "training.batch_size=[4, 4, 4]", "training.progress_bar=false",
        "training.num_threads=1", "eval.psds=false", "data.weak_val_fraction=0.25", "energy.enabled=false",
        "training.seed=3", "training.mixup_prob=1.0"]


def _first_losses(recipe: dict) -> list[float]:
    rec = FirstLosses()
    train(recipe, callbacks=[rec])
    return rec.losses


@pytest.mark.parametrize("name", ["dcase2023_baseline", "dcase2023_baseline_fpd"])
def test_2023_recipes_give_the_losses_they_gave_before_the_sources_refactor(demo_data, tmp_path, name):
    legacy = _first_losses(load_recipe(name, _settings_2023(demo_data, tmp_path, name)))
    np.testing.assert_allclose(legacy, LOSSES_BEFORE_SOURCES[name], rtol=1e-5)
    # the same three sources written as a data.sources list train identically
    listed = "data.sources=[{name: synth, kind: strong}, {name: weak, kind: weak}, {name: unlabeled, kind: unlabeled}]"
    as_list = _first_losses(load_recipe(name, _settings_2023(demo_data, tmp_path, name + "_list") + [listed]))
    assert as_list == legacy


def _soft_tsv(strong_tsv: str, out: Path, classes: list[str], segment_s: float = 1.0, clip_s: float = 4.0) -> Path:
    """A MAESTRO-style soft-label TSV from a strong one: per 1 s segment, the share of it each class covers."""
    events = pd.read_csv(strong_tsv, sep="\t").dropna()
    rows = []
    for name, ev in events.groupby("filename"):
        for k in range(int(clip_s / segment_s)):
            a, b = k * segment_s, (k + 1) * segment_s
            for c in classes:
                cov = sum(max(0.0, min(b, off) - max(a, on)) for on, off in zip(ev.onset[ev.event_label == c],
                                                                             ev.offset[ev.event_label == c]))
                if cov > 0:
                    rows.append((name, a, b, c, round(min(cov / segment_s, 1.0), 3)))
    pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label", "score"]).to_csv(out, sep="\t", index=False)
    return out


def test_a_fourth_soft_labelled_source_trains_and_is_validated_by_segment(demo_data, demo_overrides, tmp_path):
    soft_classes = list(DEMO_CLASSES[:2])
    soft = _soft_tsv(demo_data["synth_tsv"], tmp_path / "soft.tsv", soft_classes)
    sources = ("data.sources=[{name: synth, kind: strong}, {name: weak, kind: weak}, {name: unlabeled, kind: unlabeled}, "
               f"{{name: maestro, kind: soft, folder: {demo_data['synth_folder']}, tsv: {soft}, "
               f"classes: [{','.join(soft_classes)}], val_fraction: 0.25}}]")
    recipe = load_recipe(DEMO, demo_overrides + [sources, "training.batch_size=[4, 4, 0, 4]",
                                                 "training.log_every_n_steps=1"])
    res = train(recipe)
    m = json.loads((res.exp_dir / "metrics.json").read_text())
    assert m["event_f1"] is not None
    log = pd.read_csv(next(res.exp_dir.glob("logs/*/metrics.csv")))
    # the held-out soft clips are scored by segment and count in the objective
    assert "val/maestro_mpauc" in log.columns and log["val/maestro_segment_f1_best"].notna().any()
    obj = log.dropna(subset=["val/obj"]).iloc[-1]
    tagging = obj["val/weak_tagging_f1"] if "val/weak_tagging_f1" in obj else obj["val/tagging_f1"]
    assert obj["val/obj"] == pytest.approx(tagging + obj["val/intersection_f1"] + obj["val/maestro_segment_f1_best"],
                                           abs=1e-6)


def test_a_clips_loss_covers_only_the_classes_its_source_annotates():
    """Predictions on classes a clip's source does not annotate change neither loss; without the mask
    they do (the test fails without the mask)."""
    task = SEDTask(load_recipe(DEMO, ["training.batch_size=[2, 2, 0]"]))
    B, T, C = 4, task.n_frames, len(task.classes)
    g = torch.Generator().manual_seed(0)
    strong = (torch.rand(B, T, C, generator=g) > 0.7).float()
    mask = torch.ones(B, C, dtype=torch.bool)
    mask[2:, 3:] = False  # clips 2, 3 come from a source that annotates the first 3 classes only
    strong = strong * mask[:, None, :]
    batch = Batch(feats=torch.zeros(B, 1, 1), strong=strong, has_strong=torch.tensor([True, False, True, True]),
                  weak=strong.amax(1), has_weak=torch.ones(B, dtype=torch.bool),
                  source=torch.tensor([SOURCE_SS, 1, SOURCE_SF, SOURCE_SF]), frame_valid=torch.ones(B, T, dtype=torch.bool),
                  class_mask=mask)
    probs = torch.rand(B, T, C, generator=g) * 0.8 + 0.1
    other = probs.clone()
    other[2:, :, 3:] = 0.99  # confident (wrong) predictions on the unannotated classes
    clip, clip_other = probs.mean(1), other.mean(1)
    assert task.strong_loss(other, batch) == pytest.approx(float(task.strong_loss(probs, batch)), rel=1e-6)
    assert task.weak_loss(clip_other, batch) == pytest.approx(float(task.weak_loss(clip, batch)), rel=1e-6)
    unmasked = Batch(**{**batch.__dict__, "class_mask": None})
    assert float(task.strong_loss(other, unmasked)) > float(task.strong_loss(probs, unmasked)) + 1e-3
    assert float(task.weak_loss(clip_other, unmasked)) > float(task.weak_loss(clip, unmasked)) + 1e-3
