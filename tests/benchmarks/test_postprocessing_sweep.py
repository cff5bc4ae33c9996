"""benchmarks/postprocessing_sweep.py: tuned on validation only, then applied to the test clips."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
sys.path.insert(0, str(BENCH))
_spec = importlib.util.spec_from_file_location("postprocessing_sweep", BENCH / "postprocessing_sweep.py")
ps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ps)


def test_sweep_tunes_on_validation_and_reports_test(demo_overrides, monkeypatch):
    res = train(load_recipe(DEMO, demo_overrides + ["training.n_epochs=2"]))
    calls = []
    real = ps.f1_scores

    def spy(frame_probs, reference, *args):
        calls.append(set(reference.durations_s))
        return real(frame_probs, reference, *args)

    monkeypatch.setattr(ps, "f1_scores", spy)
    row = ps.sweep(res.exp_dir, [0.3, 0.5], [1, 7])
    val_names = {f"val_{i:04d}.wav" for i in range(12)}
    test_names = {f"test_{i:04d}.wav" for i in range(12)}
    assert calls[:4] == [val_names] * 4  # the grid: validation clips only
    assert calls[4:] == [test_names, test_names]  # then the test clips, at the default and the tuned setting
    assert row["val_event_f1_tuned"] >= row["val_event_f1_default"]
    assert (row["threshold"], row["median_window"]) in {(0.3, 1), (0.3, 7), (0.5, 1), (0.5, 7)}
    assert 0.0 <= row["test_event_f1_tuned"] <= 1.0 and 0.0 <= row["test_frame_auc"] <= 1.0


def test_sweep_refuses_a_run_without_test_set(demo_overrides):
    ov = demo_overrides + ["data.test_folder=null", "data.test_tsv=null", "data.test_dur=null"]
    with pytest.warns(UserWarning):
        res = train(load_recipe(DEMO, ov))
    with pytest.raises(SystemExit, match="no test set"):
        ps.sweep(res.exp_dir, [0.5], [7])
