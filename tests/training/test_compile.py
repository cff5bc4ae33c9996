"""training.compile: the compiled model (torch.compile, inductor) trains as the eager one does, within
float tolerance, on the CPU; the checkpoint keeps the eager model's keys."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from dcase_fpd_plugin.cli import main


def _step_losses(exp: Path) -> list[float]:
    log = pd.read_csv(next(exp.glob("logs/*/metrics.csv")))
    return log["train/loss_step"].dropna().tolist()


@pytest.mark.slow
def test_compiled_training_gives_the_eager_losses(demo_overrides, tmp_path, monkeypatch):
    base = [o for o in demo_overrides if not o.startswith("training.exp_dir=")]
    base += ["training.n_epochs=2", "training.log_every_n_steps=1", "training.seed=0", "energy.enabled=false"]
    compiled_modules = []
    real_compile = torch.nn.Module.compile

    def spy(module, *args, **kwargs):  # the model really is compiled (else equal losses prove nothing)
        compiled_modules.append(type(module).__name__)
        return real_compile(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "compile", spy)
    losses = {}
    for compiled in (False, True):
        exp = tmp_path / ("compiled" if compiled else "eager")
        assert main(["train", "demo", *base, f"training.exp_dir={exp}", f"training.compile={str(compiled).lower()}"]) == 0
        losses[compiled] = _step_losses(exp)
    assert compiled_modules == ["WeakSED"]  # the compiled run's student only; the eager run compiled nothing
    assert len(losses[True]) == len(losses[False]) >= 4
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=1e-4, atol=1e-5)
    state = torch.load(tmp_path / "compiled" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any("_orig_mod" in k for k in state["state_dict"])
