"""The bundled Conformer recipes: listed, composed as the 2023 baseline + a Conformer (+ FPD), and one epoch of
each trains and tests on the demo data (a tiny Conformer through overrides)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.data.demo import DEMO_CLASSES
from dcase_fpd_plugin.models import ConformerSED
from dcase_fpd_plugin.recipe.loading import bundled_recipes, load_recipe, recipe_summary
from dcase_fpd_plugin.recipe.schema import BUNDLED_RECIPES_DIR
from dcase_fpd_plugin.training.runs import train
from dcase_fpd_plugin.training.task import SEDTask

TINY = ["net.conformer_d_model=32", "net.conformer_heads=2", "net.conformer_blocks=2", "net.conformer_ff_expansion=2",
        "net.conformer_frontend_filters=[4, 8]", "net.conformer_frontend_pooling=[[2, 4], [2, 4]]", "feats.n_mels=32"]


def test_recipes_command_lists_both(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("conformer", "conformer_fpd"):
        assert f"{name}  " in out and recipe_summary(bundled_recipes()[name]) in out


def test_conformer_is_the_2023_baseline_with_a_conformer_and_its_fpd_twin_adds_the_fpd_section():
    conformer, baseline = load_recipe("conformer"), load_recipe("dcase2023_baseline")
    assert conformer["net"]["name"] == "conformer" and conformer["training"]["exp_dir"] == "exp/conformer"
    for section in set(baseline) - {"net", "training"}:
        assert conformer[section] == baseline[section], section
    assert {k: v for k, v in conformer["training"].items() if k != "exp_dir"} == \
        {k: v for k, v in baseline["training"].items() if k != "exp_dir"}
    assert conformer["training"]["mean_teacher"] and conformer["training"]["mixup"]
    # conformer_fpd: the base plus branches.fpd, the same section as the CRNN's FPD twin
    text = yaml.safe_load((BUNDLED_RECIPES_DIR / "conformer_fpd.yaml").read_text())
    assert text.keys() == {"base", "branches"} and text["base"] == "conformer"
    fpd = load_recipe("conformer_fpd")
    assert fpd["branches"]["fpd"] == load_recipe("dcase2023_baseline_fpd")["branches"]["fpd"]
    expected = copy.deepcopy(conformer)
    expected["training"]["exp_dir"] = "exp/conformer_fpd"
    expected["branches"]["fpd"] = fpd["branches"]["fpd"]
    assert fpd == expected
    off = load_recipe("conformer_fpd", ["branches.fpd.enabled=false", "training.exp_dir=exp/conformer"])
    off["branches"].pop("fpd")
    assert off == conformer
    # the recipe's model: the schema's defaults, D = 144 for the FPD branch
    task = SEDTask(fpd)
    assert isinstance(task.model, ConformerSED) and task.model.embed_dim == 144 and task.n_frames == 156
    assert abs(task.frame_hop_s - 0.064) < 1e-12


def _demo_settings(demo_data, root: Path, name: str) -> list[str]:
    return [f"data.{k}={v}" for k, v in demo_data.items()] + [
        f"data.unlabeled_folder={demo_data['weak_folder']}", f"data.classes=[{','.join(DEMO_CLASSES)}]",
        "feats.clip_s=4.0", f"data.cache_dir={root / 'cache'}", f"training.exp_dir={root / name}",
        "training.n_epochs=1", "training.batch_size=[4, 4, 4]", "training.batch_size_val=12",
        "training.progress_bar=false", "training.num_threads=1", "training.limit_train_batches=3",
        "training.log_every_n_steps=1", "eval.psds=false", "data.weak_val_fraction=0.25", "energy.enabled=false",
        "branches.fpd.wps_start_epoch=0", *TINY]


@pytest.mark.parametrize("name", ["conformer", "conformer_fpd"])
def test_one_epoch_trains_and_tests_on_the_demo_data(demo_data, tmp_path, name):
    settings = _demo_settings(demo_data, tmp_path, name)
    if name == "conformer":
        settings.remove("branches.fpd.wps_start_epoch=0")  # no FPD section to set there
    recipe = load_recipe(name, settings)
    torch.manual_seed(0)
    res = train(recipe)
    m = json.loads((res.exp_dir / "metrics.json").read_text())
    assert m["event_f1"] is not None and 0.0 <= m["tagging_f1"] <= 1.0 and m["n_clips"] == 12
    assert (res.exp_dir / "checkpoints" / "best.ckpt").is_file()
    log = pd.read_csv(next(res.exp_dir.glob("logs/*/metrics.csv")))
    for column in ("train/loss_strong_step", "train/loss_weak_step", "train/loss_consistency_step"):
        assert log[column].notna().any(), column
    fpd = "train/loss_fpd_step"
    assert (fpd in log.columns and log[fpd].notna().any()) == (name == "conformer_fpd")
    if name == "conformer_fpd":  # the branch paired frames on the Conformer embeddings
        assert log["train/fpd_fpd/n_positive_pairs_step"].max() > 0
