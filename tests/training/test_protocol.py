"""Validation apart from test: the held-out weak split, selection_on_test, late-epoch tests."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dcase_fpd_plugin.data.datamodule import SEDDataModule, split_weak_validation
from dcase_fpd_plugin.data.datasets import ClipRecord
from dcase_fpd_plugin.evaluation.metrics import tagging_f1_from_labels
from dcase_fpd_plugin.experiments.records import load_run_record
from dcase_fpd_plugin.experiments.reports import write_reports
from dcase_fpd_plugin.recipe.schema import RecipeError
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.recipe.checks import selection_on_test
from dcase_fpd_plugin.training.selection import validation_scores
from dcase_fpd_plugin.training.task import SEDTask
from dcase_fpd_plugin.training.runs import train

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def _records(names):
    return [ClipRecord(Path("/w") / n, tags=["a"]) for n in names]


def test_weak_split_sizes_disjoint_and_independent_of_row_order():
    names = [f"clip_{i:03d}.wav" for i in range(50)]
    train_part, held = split_weak_validation(_records(names), 0.1, seed=0)
    assert len(held) == 5 and len(train_part) == 45
    assert not {r.path for r in held} & {r.path for r in train_part}
    # the TSV's row order does not change which clips are held out, and training keeps the TSV order
    shuffled = list(reversed(names))
    train2, held2 = split_weak_validation(_records(shuffled), 0.1, seed=0)
    assert {r.path for r in held2} == {r.path for r in held}
    assert [r.path.name for r in train2] == [n for n in shuffled if Path("/w") / n not in {r.path for r in held}]
    # another split seed holds out other clips; fraction 0 holds out none
    _, held3 = split_weak_validation(_records(names), 0.1, seed=1)
    assert {r.path for r in held3} != {r.path for r in held}
    assert split_weak_validation(_records(names), 0.0, seed=0) == (_records(names), [])
    with pytest.raises(ValueError, match="leaves no weak clip"):
        split_weak_validation(_records(names[:1]), 0.9, seed=0)


def test_recipe_refuses_bad_weak_val_fraction_and_late_epochs():
    with pytest.raises(RecipeError, match="weak_val_fraction"):
        load_recipe(DEMO, ["data.weak_val_fraction=1.0"])
    with pytest.raises(RecipeError, match="test_last_n_epochs"):
        load_recipe(DEMO, ["training.n_epochs=3", "training.test_last_n_epochs=4"])


def test_selection_on_test_flag(tmp_path):
    recipe = load_recipe(DEMO)
    assert not selection_on_test(recipe)  # the demo has its own test set
    for unset in ("test_folder", "test_tsv", "test_dur"):
        recipe["data"][unset] = None
    assert selection_on_test(recipe)
    recipe = load_recipe(DEMO)
    recipe["data"]["test_tsv"], recipe["data"]["test_folder"] = recipe["data"]["val_tsv"], recipe["data"]["val_folder"]
    assert selection_on_test(recipe)


def test_tagging_f1_from_labels_by_hand():
    probs = np.array([[0.9, 0.1], [0.6, 0.7], [0.2, 0.4]])
    labels = np.array([[1, 0], [0, 1], [1, 0]])
    macro, per_class = tagging_f1_from_labels(probs, labels, ["a", "b"])
    # a: tp 1 (clip 0), fp 1 (clip 1), fn 1 (clip 2) -> 2/4; b: tp 1, fp 0, fn 0 -> 1
    assert per_class == {"a": 0.5, "b": 1.0} and macro == 0.75
    _, per_class = tagging_f1_from_labels(probs, np.array([[1, 0], [1, 0], [1, 0]]), ["a", "b"])
    assert math.isnan(per_class["b"])  # no positive clip: undefined, left out of the macro
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        tagging_f1_from_labels(probs[:, :1], labels, ["a", "b"])


def test_validation_objective_uses_held_out_weak_tagging():
    m = {"event_f1": 0.1, "segment_f1": 0.2, "tagging_f1": 0.3, "intersection_f1": 0.4}
    assert validation_scores(m, "val")["val/obj"] == pytest.approx(0.7)
    logs = validation_scores(m, "val", weak_tagging_f1=0.9)
    assert logs["val/obj"] == pytest.approx(1.3) and logs["val/weak_tagging_f1"] == 0.9
    assert validation_scores(m, "val", weak_tagging_f1=math.nan)["val/obj"] == pytest.approx(0.4)


def test_held_out_weak_clips_leave_training_and_join_validation(demo_overrides):
    recipe = load_recipe(DEMO, demo_overrides + ["data.weak_val_fraction=0.25"])
    task = SEDTask(recipe)
    dm = SEDDataModule.from_recipe(recipe, task.n_frames, task.frame_hop_s)
    dm.setup("fit")
    weak_train = {r.path.name for r in dm.train_sets[1].records}
    weak_val = set(dm.weak_val_set.filenames)
    assert len(weak_val) == 6 and len(weak_train) == 18 and not weak_train & weak_val
    val_names = [n for batch in dm.val_dataloader() for n in batch.filenames]
    assert weak_val <= set(val_names) and len(val_names) == 12 + 6
    train_names = {n for batch in dm.train_dataloader() for n in batch.filenames}
    assert not train_names & weak_val


def test_train_selects_on_validation_reports_test_and_late_epochs(demo_overrides, tmp_path):
    recipe = load_recipe(DEMO, demo_overrides + ["training.n_epochs=3", "training.test_last_n_epochs=2"])
    res = train(recipe)
    m = json.loads((res.exp_dir / "metrics.json").read_text())
    assert m["selection_on_test"] is False
    assert m["test_set"].endswith("test.tsv") and "val.tsv" in m["validation_set"] and "weak.tsv" in m["validation_set"]
    scored = {p.stem for p in (res.exp_dir / "scores").glob("*.tsv")}
    assert scored == {f"test_{i:04d}" for i in range(12)}  # the test clips, not the validation clips
    log = pd.read_csv(next((res.exp_dir / "logs").rglob("metrics.csv")))
    rows = log.dropna(subset=["val/obj"])
    assert np.allclose(rows["val/obj"], rows["val/weak_tagging_f1"] + rows["val/intersection_f1"])
    late = sorted(p.parent.name for p in (res.exp_dir / "late_epochs").glob("*/metrics.json"))
    assert late == ["epoch_002", "epoch_003"]
    assert not list((res.exp_dir / "late_epochs").rglob("scores"))
    # compare's reports state the protocol and add the late-epoch table
    record = load_run_record(res.exp_dir, "demo", 0)
    assert len(record.late_metrics) == 2
    files = write_reports([record], tmp_path / "reports")
    text = files["summary.md"].read_text()
    assert "Protocol: checkpoint chosen on" in text and "Warning" not in text
    assert "last 2 epochs" in text
    summary = pd.read_csv(files["summary.csv"])
    late_seg = summary[summary["metric"] == "late_segment_f1"]["mean"].iloc[0]
    by_hand = np.mean([json.loads((res.exp_dir / "late_epochs" / e / "metrics.json").read_text())["segment_f1"]
                       for e in late])
    assert late_seg == pytest.approx(by_hand, abs=1e-6)


def test_selection_on_test_is_flagged_and_warned(demo_overrides, tmp_path):
    ov = demo_overrides + ["data.test_folder=null", "data.test_tsv=null", "data.test_dur=null"]
    with pytest.warns(UserWarning, match="selection_on_test"):
        res = train(load_recipe(DEMO, ov))
    m = json.loads((res.exp_dir / "metrics.json").read_text())
    assert m["selection_on_test"] is True and m["test_set"] == m["validation_set"].split(" + ")[0]
    text = write_reports([load_run_record(res.exp_dir, "demo", 0)], tmp_path / "r")["summary.md"].read_text()
    assert "Warning: 1 of 1 runs were scored on the clips that chose their checkpoint" in text


def test_protocol_fields_follow_the_recipe_the_checkpoint_was_trained_with():
    from dcase_fpd_plugin.training.runs import protocol_fields

    now = load_recipe(DEMO)
    trained = load_recipe(DEMO, ["data.weak_val_fraction=0.2"])
    fields = protocol_fields(now, trained)
    assert "+ 0.2 of" in fields["validation_set"] and fields["selection_on_test"] is False
    old = {"data": {k: v for k, v in trained["data"].items() if not k.startswith("weak_val")}}
    assert protocol_fields(now, old)["validation_set"].endswith("(weak hold-out unknown)")
    # trained choosing on what is now the test set: flagged even though this recipe's val differs
    chose_on_test = load_recipe(DEMO, [f"data.val_tsv={now['data']['test_tsv']}",
                                       f"data.val_folder={now['data']['test_folder']}"])
    assert protocol_fields(now, chose_on_test)["selection_on_test"] is True


@pytest.mark.parametrize("late_psds, expected", [(True, [True, True]), (False, [False, False])])
def test_late_epoch_tests_compute_psds_only_when_asked(late_psds, expected, monkeypatch, tmp_path):
    """eval.psds_late_epochs=false leaves PSDS (the slow part) out of the last-N-epochs tests only."""
    from dcase_fpd_plugin.training import runs as training

    (tmp_path / "checkpoints").mkdir()
    for epoch in (1, 2, 3):
        (tmp_path / "checkpoints" / f"epoch_{epoch:03d}.ckpt").write_bytes(b"")
    seen = []
    monkeypatch.setattr(training, "test", lambda recipe, ckpt, out_dir, outputs: seen.append(recipe["eval"]["psds"]))
    recipe = load_recipe(DEMO, ["training.n_epochs=3", "training.test_last_n_epochs=2",
                                f"eval.psds_late_epochs={str(late_psds).lower()}"])
    training.test_late_epochs(recipe, tmp_path)
    assert seen == expected and recipe["eval"]["psds"] is True


def test_time_limit_stops_after_an_epoch_tests_the_last_epochs_trained_and_stays_stopped(demo_overrides, tmp_path):
    ov = demo_overrides + ["training.n_epochs=4", "training.test_last_n_epochs=2", "training.max_train_s=0.000001"]
    res = train(load_recipe(DEMO, ov))
    m = json.loads((res.exp_dir / "metrics.json").read_text())
    assert m["epochs_trained"] == 1 and m["stopped_by_time_limit"] is True
    assert res.epochs_done == 1
    # the late-epoch reading covers the epochs that ran, not epochs 3-4 that never did
    assert sorted(p.parent.name for p in (res.exp_dir / "late_epochs").glob("*/metrics.json")) == ["epoch_001"]
    text = write_reports([load_run_record(res.exp_dir, "demo", 0)], tmp_path / "r")["summary.md"].read_text()
    assert "1 of 1 runs stopped at their time limit" in text and "demo seed 0 after 1 epochs" in text
    # resumed (e.g. after a crash while testing) with a larger budget: the stop holds, nothing more is trained
    (res.exp_dir / "metrics.json").unlink()
    again = train(load_recipe(DEMO, [*ov, "training.max_train_s=1000000"]), resume=True)
    m2 = json.loads((again.exp_dir / "metrics.json").read_text())
    assert again.epochs_done == 1 and m2["epochs_trained"] == 1 and m2["stopped_by_time_limit"] is True


def test_generous_time_limit_trains_every_epoch_and_keeps_only_the_last_checkpoints(demo_overrides, tmp_path):
    ov = demo_overrides + ["training.n_epochs=3", "training.test_last_n_epochs=2", "training.max_train_s=1000000"]
    res = train(load_recipe(DEMO, ov))
    m = json.loads((res.exp_dir / "metrics.json").read_text())
    assert m["epochs_trained"] == 3 and m["stopped_by_time_limit"] is False
    assert m["fit_wall_s"] > 0
    assert sorted(p.name for p in (res.exp_dir / "checkpoints").glob("epoch_*.ckpt")) == ["epoch_002.ckpt",
                                                                                       "epoch_003.ckpt"]
    assert sorted(p.parent.name for p in (res.exp_dir / "late_epochs").glob("*/metrics.json")) == [
        "epoch_002", "epoch_003"]
    text = write_reports([load_run_record(res.exp_dir, "demo", 0)], tmp_path / "r")["summary.md"].read_text()
    assert "time limit" not in text


@pytest.mark.parametrize("bad", ["0", "-5", "true", "soon"])
def test_recipe_refuses_bad_time_limit(bad):
    with pytest.raises(RecipeError, match="max_train_s"):
        load_recipe(DEMO, [f"training.max_train_s={bad}"])


def test_time_limit_validates_the_epoch_it_stops_after_whatever_val_every_n_epochs(demo_overrides):
    # without the forced validation no best.ckpt/last.ckpt would exist after epoch 1 and the test would fail
    ov = demo_overrides + ["training.n_epochs=4", "training.val_every_n_epochs=2", "training.max_train_s=0.000001"]
    res = train(load_recipe(DEMO, ov))
    m = json.loads((res.exp_dir / "metrics.json").read_text())
    assert m["epochs_trained"] == 1 and m["stopped_by_time_limit"] is True
    assert (res.exp_dir / "checkpoints" / "best.ckpt").is_file()
    last = torch.load(res.exp_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert last["epoch"] == 0 and last["callbacks"]["TrainingTimeLimit"]["stopped_at_epoch"] == 1


def test_time_limit_at_the_final_epoch_is_no_stop_and_no_limit_on_resume_trains_on(demo_overrides):
    ov = demo_overrides + ["training.n_epochs=1", "training.max_train_s=0.000001"]
    m = json.loads((train(load_recipe(DEMO, ov)).exp_dir / "metrics.json").read_text())
    assert m["epochs_trained"] == 1 and m["stopped_by_time_limit"] is False
    # a run stopped by its limit, resumed without one (max_train_s=null): it trains on to n_epochs
    ov = demo_overrides + ["training.n_epochs=3", "training.max_train_s=0.000001", "training.test_last_n_epochs=1"]
    res = train(load_recipe(DEMO, ov), force=True)
    assert res.epochs_done == 1
    (res.exp_dir / "metrics.json").unlink()
    again = train(load_recipe(DEMO, [*ov, "training.max_train_s=null"]), resume=True)
    m = json.loads((again.exp_dir / "metrics.json").read_text())
    assert again.epochs_done == 3 and m["epochs_trained"] == 3 and m["stopped_by_time_limit"] is False
    late = sorted(p.parent.name for p in (again.exp_dir / "late_epochs").glob("*/metrics.json"))
    assert late[-1] == "epoch_003"


class _Strategy:
    def __init__(self, others_say):
        self.others_say, self.asked = others_say, []

    def reduce_boolean_decision(self, decision, all=True):  # noqa: A002 (Lightning's name)
        self.asked.append((decision, all))
        return decision or self.others_say  # all=False: stop when any rank is out of time


def test_time_limit_stops_every_rank_when_any_rank_is_out_of_time():
    from types import SimpleNamespace

    from dcase_fpd_plugin.training.callbacks import TrainingTimeLimit

    for others_say, expect in ((True, True), (False, False)):
        timer = TrainingTimeLimit(1e9)  # this rank has plenty of time
        trainer = SimpleNamespace(should_stop=False, check_val_every_n_epoch=3, max_epochs=10, current_epoch=0,
                                  strategy=_Strategy(others_say))
        timer.on_train_start(trainer, None)
        assert trainer.check_val_every_n_epoch == 1
        timer.on_train_epoch_end(trainer, None)
        assert trainer.strategy.asked == [(False, False)]
        assert trainer.should_stop is expect and (timer.stopped_at_epoch == 1) is expect


def test_late_checkpoints_sort_by_epoch_number(tmp_path):
    from dcase_fpd_plugin.training.runs import late_checkpoints

    (tmp_path / "checkpoints").mkdir()
    for e in (999, 1000, 7):
        (tmp_path / "checkpoints" / f"epoch_{e:03d}.ckpt").write_bytes(b"")
    assert [e for e, _ in late_checkpoints(tmp_path)] == [7, 999, 1000]
