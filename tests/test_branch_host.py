"""The recipe host and its branches: the FPD flag, logs, and a third-party branch used by a recipe."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from dcase_fpd_plugin import registry
from dcase_fpd_plugin.branch import Branch, BranchOutput
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"


def _state(exp):
    return torch.load(Path(exp) / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]


def test_fpd_disabled_is_exactly_the_weak_baseline(demo_overrides, tmp_path):
    base = load_recipe(DEMO, demo_overrides + [f"training.exp_dir={tmp_path / 'weak'}"])
    off = load_recipe(DEMO, demo_overrides + [f"training.exp_dir={tmp_path / 'off'}", "branches.fpd.enabled=false",
                                              "branches.fpd.distance=euc"])
    on = load_recipe(DEMO, demo_overrides + [f"training.exp_dir={tmp_path / 'on'}", "branches.fpd.enabled=true",
                                             "branches.fpd.wps_start_epoch=0"])
    for r in (base, off, on):
        train(r, run_test=False)
    a, b, c = _state(tmp_path / "weak"), _state(tmp_path / "off"), _state(tmp_path / "on")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # ... while enabling it changes training (and adds the projection's weights)
    assert any(k.startswith("branches.fpd.") for k in c)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_fpd_logs_loss_and_pair_counts(demo_overrides, tmp_path):
    r = load_recipe(DEMO, demo_overrides + ["branches.fpd.enabled=true", "branches.fpd.wps_start_epoch=0",
                                            "training.log_every_n_steps=1"])
    train(r, run_test=False)
    csv = next(Path(r["training"]["exp_dir"]).glob("logs/version_*/metrics.csv"))
    cols = pd.read_csv(csv).columns
    assert any(c.startswith("train/loss_fpd") for c in cols)
    assert any("fpd" in c and "pos" in c for c in cols) and any("fpd" in c and "neg" in c for c in cols)


class EnergyBranch(Branch):
    """A third-party branch: penalises the mean squared frame embedding."""

    @classmethod
    def default_config(cls):
        return {"enabled": False, "weight": 0.5}

    def forward(self, output, batch, epoch):
        loss = self.config["weight"] * output.embeddings.pow(2).mean()
        return BranchOutput(loss, {"energy": loss.detach()})


def test_registered_branch_is_used_by_a_recipe(demo_overrides, tmp_path):
    registry.register("branches", "energy", EnergyBranch)
    try:
        r = load_recipe(DEMO, demo_overrides + ["branches.energy.enabled=true", "branches.energy.weight=2.0",
                                                "training.log_every_n_steps=1"])
        assert r["branches"]["energy"] == {"enabled": True, "weight": 2.0}
        with pytest.raises(Exception, match="branches.energy.wieght"):
            load_recipe(DEMO, demo_overrides + ["branches.energy.wieght=2.0"])
        train(r, run_test=False)
        csv = next(Path(r["training"]["exp_dir"]).glob("logs/version_*/metrics.csv"))
        assert "train/energy_energy_step" in pd.read_csv(csv).columns
    finally:
        registry.unregister("branches", "energy")
