"""The device-resident feature store gives the disk-cache path's batches and losses."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from dcase_fpd_plugin.data.datamodule import SEDDataModule
from dcase_fpd_plugin.data.store import FeatureStore, IndexBatch
from dcase_fpd_plugin.recipe.schema import RecipeError
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.task import SEDTask
from dcase_fpd_plugin.training.runs import train

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def _module(overrides):
    recipe = load_recipe(DEMO, overrides)
    task = SEDTask(recipe)
    dm = SEDDataModule.from_recipe(recipe, task.n_frames, task.frame_hop_s)
    dm.setup("fit")
    return dm


def _batches(dm):
    out = []
    for batch in dm.train_dataloader():
        out.append(dm.on_after_batch_transfer(batch, 0))
    return out


def test_store_yields_the_disk_paths_batches(demo_overrides):
    stored = _module(demo_overrides + ["data.feature_store=auto", "training.seed=3"])
    disk = _module(demo_overrides + ["data.feature_store=off", "training.seed=3"])
    assert isinstance(stored.store, FeatureStore) and disk.store is None
    assert isinstance(next(iter(stored.train_dataloader())), IndexBatch)
    a, b = _batches(stored), _batches(disk)
    assert len(a) == len(b) == 3
    for x, y in zip(a, b):
        assert x.filenames == y.filenames
        for name in ("feats", "strong", "has_strong", "weak", "has_weak", "source", "frame_valid", "source_host"):
            vx, vy = getattr(x, name), getattr(y, name)
            assert vx.dtype == vy.dtype and torch.equal(vx, vy), name


def test_float16_store_rounds_features_only(demo_overrides):
    half = _module(demo_overrides + ["data.feature_store_dtype=float16"])
    full = _module(demo_overrides)
    assert half.store.feats.dtype == torch.float16 and half.store.nbytes < 0.6 * full.store.nbytes
    x, y = _batches(half)[0], _batches(full)[0]
    assert x.feats.dtype == torch.float32 and torch.equal(x.strong, y.strong)
    assert (x.feats - y.feats).abs().max() <= 0.05  # dB


def test_store_too_large_falls_back_to_disk(demo_overrides):
    dm = _module(demo_overrides + ["data.feature_store_max_gb=0.0001"])
    assert dm.store is None and not isinstance(next(iter(dm.train_dataloader())), IndexBatch)
    with pytest.raises(RecipeError, match="feature_store"):
        load_recipe(DEMO, ["data.feature_store=gpu"])


def _train_losses(overrides, tmp_path, name):
    recipe = load_recipe(DEMO, overrides + [f"training.exp_dir={tmp_path / name}", "training.log_every_n_steps=1",
                                            "training.n_epochs=1", "energy.enabled=false"])
    train(recipe, run_test=False)
    log = pd.read_csv(next((tmp_path / name / "logs").rglob("metrics.csv")))
    return log["train/loss_step"].dropna().tolist()


def test_training_with_store_or_disk_gives_the_same_losses(demo_overrides, tmp_path):
    ov = demo_overrides + ["training.mixup=true", "training.mixup_prob=1.0"]
    with_store = _train_losses(ov + ["data.feature_store=auto"], tmp_path, "store")
    from_disk = _train_losses(ov + ["data.feature_store=off"], tmp_path, "disk")
    assert len(with_store) == 3 and with_store == from_disk


def test_store_is_kept_beside_the_cache_and_reused(demo_overrides, demo_data):
    first = _module(demo_overrides)
    stores = list(first.features.cache_dir.glob("stores/*.pt"))
    assert len(stores) == 1
    second = _module(demo_overrides)  # same clips: memory-mapped from the saved store
    for name in ("feats", "strong", "weak", "source", "n_valid"):
        assert torch.equal(getattr(first.store, name), getattr(second.store, name)), name
    assert second.store.filenames == first.store.filenames
    a, b = _batches(first), _batches(second)
    assert all(torch.equal(x.feats, y.feats) and x.filenames == y.filenames for x, y in zip(a, b))
    # a clip that changes (here: its modification time) gives another store
    clip = Path(demo_data["weak_folder"]) / "weak_0000.wav"
    st = clip.stat()
    import os

    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    _module(demo_overrides)
    assert len(list(first.features.cache_dir.glob("stores/*.pt"))) == 2
