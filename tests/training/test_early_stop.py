"""training.early_stop_patience: a run whose validation stops improving ends early, says so, and is
tested from its best checkpoint; a bad value is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.recipe import RecipeError, load_recipe


def _flat_validation(monkeypatch):
    """Every validation scores the same objective: no epoch after the first is a new best."""
    from dcase_fpd_plugin.training import task

    real = task.validation_scores

    def flat(*args, **kwargs):
        logs = real(*args, **kwargs)
        return {k: (0.5 if k.endswith("/obj") else v) for k, v in logs.items()}

    monkeypatch.setattr(task, "validation_scores", flat)


def test_a_run_without_improvement_stops_after_patience_validations(demo_overrides, capsys, monkeypatch):
    exp = Path(next(o.split("=", 1)[1] for o in demo_overrides if o.startswith("training.exp_dir=")))
    _flat_validation(monkeypatch)
    argv = ["train", "demo", *demo_overrides, "training.n_epochs=6", "training.early_stop_patience=2"]
    assert main(argv) == 0
    metrics = json.loads((exp / "metrics.json").read_text())
    assert metrics["stopped_early"] is True
    assert metrics["epochs_trained"] == 3  # the first validation sets the best, 2 more without a new one
    assert "stopped early" in capsys.readouterr().out
    assert (exp / "checkpoints" / "best.ckpt").is_file()


def test_without_patience_every_epoch_is_trained(demo_overrides, monkeypatch):
    exp = Path(next(o.split("=", 1)[1] for o in demo_overrides if o.startswith("training.exp_dir=")))
    _flat_validation(monkeypatch)
    assert main(["train", "demo", *demo_overrides, "training.n_epochs=3"]) == 0
    metrics = json.loads((exp / "metrics.json").read_text())
    assert metrics["stopped_early"] is False and metrics["epochs_trained"] == 3


@pytest.mark.parametrize("value", ["0", "-1", "true"])
def test_a_bad_patience_is_refused(value):
    with pytest.raises(RecipeError, match="early_stop_patience"):
        load_recipe(None, [f"training.early_stop_patience={value}"])


def test_a_resumed_run_goes_on_counting(demo_overrides, monkeypatch):
    """The count is in the checkpoint: 2 epochs (1 validation without a new best), then a resume to 6
    epochs stops after 2 more (4 in all), not after 3 more as a fresh count would."""
    exp = Path(next(o.split("=", 1)[1] for o in demo_overrides if o.startswith("training.exp_dir=")))
    _flat_validation(monkeypatch)
    assert main(["train", "demo", *demo_overrides, "training.n_epochs=2", "training.early_stop_patience=3"]) == 0
    assert json.loads((exp / "metrics.json").read_text())["stopped_early"] is False
    assert main(["train", "demo", *demo_overrides, "training.n_epochs=6", "training.early_stop_patience=3",
                 "--resume"]) == 0
    metrics = json.loads((exp / "metrics.json").read_text())
    assert metrics["stopped_early"] is True and metrics["epochs_trained"] == 4


def test_compare_protocol_names_the_runs_that_stopped_early():
    from dcase_fpd_plugin.experiments.records import RunRecord
    from dcase_fpd_plugin.experiments.tables import format_protocol

    base = {"selection_on_test": False, "validation_set": "val.tsv", "test_set": "test.tsv"}
    runs = [RunRecord("crnn", 0, {**base, "stopped_early": True, "epochs_trained": 41}),
            RunRecord("crnn", 1, {**base, "stopped_early": False, "epochs_trained": 200})]
    text = format_protocol(runs)
    assert "1 of 2 runs stopped early" in text and "crnn seed 0 after 41 epochs" in text
    assert "seed 1" not in text
