"""Validation curves from Lightning CSV logs: reading (resumes included), aggregating, plotting."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dcase_fpd_plugin.experiments import learning_curves as lc


def _write_log(exp_dir, version, rows):
    """A Lightning-style metrics.csv: training rows and validation rows in one sparse table."""
    d = exp_dir / "logs" / f"version_{version}"
    d.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(d / "metrics.csv", index=False)


def _val(epoch, event, tagging, teacher=0.99):
    return {"epoch": epoch, "step": 10 * epoch + 9, "val/event_f1": event, "val/tagging_f1": tagging,
            "val/teacher/event_f1": teacher}


def _train(epoch, loss):
    return {"epoch": epoch, "step": 10 * epoch + 5, "train/loss_step": loss}


def test_read_validation_curve_keeps_one_row_per_epoch_and_the_resumed_value(tmp_path):
    run = tmp_path / "seed_0"
    _write_log(run, 0, [_train(0, 1.0), _val(0, 0.1, 0.2), _train(1, 0.9), _val(1, 0.15, 0.25)])
    # resumed after epoch 0: epoch 1 repeated with another value, then epoch 2
    _write_log(run, 1, [_train(1, 0.8), _val(1, 0.3, 0.4), _val(2, 0.5, 0.6)])
    curve = lc.read_validation_curve(run)
    assert list(curve["epoch"]) == [0, 1, 2]
    assert list(curve["val/event_f1"]) == pytest.approx([0.1, 0.3, 0.5])
    assert "val/teacher/event_f1" not in curve.columns and "train/loss_step" not in curve.columns


def test_versions_sort_numerically_not_as_text(tmp_path):
    run = tmp_path / "seed_0"
    _write_log(run, 2, [_val(0, 0.2, 0.2)])
    _write_log(run, 10, [_val(0, 0.7, 0.7)])  # "version_10" < "version_2" as text
    assert lc.read_validation_curve(run)["val/event_f1"].tolist() == [0.7]


def test_an_unreadable_log_is_named_and_its_epochs_left_out(tmp_path):
    run = tmp_path / "seed_0"
    _write_log(run, 0, [_val(0, 0.1, 0.2)])
    bad = run / "logs" / "version_1"
    bad.mkdir()
    (bad / "metrics.csv").write_text("")  # killed before Lightning wrote the header
    with pytest.warns(UserWarning, match=r"version_1.*metrics\.csv: unreadable training log"):
        curve = lc.read_validation_curve(run)
    assert curve["val/event_f1"].tolist() == [0.1]


def test_run_without_logs_gives_an_empty_curve(tmp_path):
    assert lc.read_validation_curve(tmp_path / "nothing").empty
    assert lc.curve_table([("a", tmp_path / "nothing")]).empty


def test_curve_table_mean_std_n_over_seeds(tmp_path):
    for seed, (e0, e1) in enumerate([(0.1, 0.3), (0.2, 0.5)]):
        _write_log(tmp_path / "base" / f"seed_{seed}", 0, [_val(0, e0, 0.0), _val(1, e1, 0.0)])
    _write_log(tmp_path / "fpd" / "seed_0", 0, [_val(0, 0.4, 0.1)])  # one seed, one epoch
    runs = [("base", tmp_path / "base" / "seed_0"), ("base", tmp_path / "base" / "seed_1"),
            ("fpd", tmp_path / "fpd" / "seed_0")]
    t = lc.curve_table(runs, metrics=("val/event_f1", "val/missing"))
    assert list(dict.fromkeys(t["recipe"])) == ["base", "fpd"]
    assert set(t["metric"]) == {"val/event_f1"}
    base = t[t["recipe"] == "base"].set_index("epoch")
    assert base.loc[0, "mean"] == pytest.approx(0.15) and base.loc[1, "mean"] == pytest.approx(0.4)
    assert base.loc[1, "std"] == pytest.approx(math.sqrt(((0.3 - 0.4) ** 2 + (0.5 - 0.4) ** 2) / 1))
    assert (base["n"] == 2).all()
    fpd = t[t["recipe"] == "fpd"].iloc[0]
    assert fpd["mean"] == pytest.approx(0.4) and math.isnan(fpd["std"]) and fpd["n"] == 1


def test_plot_writes_a_png_and_refuses_an_empty_table(tmp_path):
    _write_log(tmp_path / "r", 0, [_val(0, 0.1, 0.2), _val(1, 0.2, 0.3)])
    table = lc.curve_table([("weak", tmp_path / "r")])
    out = tmp_path / "curves.png"
    lc.plot_learning_curves(table, out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert not list(tmp_path.glob("*.tmp*"))
    with pytest.raises(ValueError, match="no validation curves"):
        lc.plot_learning_curves(lc.curve_table([]), tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_late_epoch_table_averages_each_run_then_the_seeds(tmp_path):
    # seed 0: epochs 0..3 event 0.0, 0.1, 0.2, 0.3 -> last 2 mean 0.25; seed 1: 0.4, 0.6 -> 0.5
    _write_log(tmp_path / "s0", 0, [_val(e, 0.1 * e, 0.0) for e in range(4)])
    _write_log(tmp_path / "s1", 0, [_val(0, 0.4, 0.0), _val(1, 0.6, 0.0)])
    t = lc.late_epoch_table([("base", tmp_path / "s0"), ("base", tmp_path / "s1")], n_last=2)
    row = t[t["metric"] == "val/event_f1"].iloc[0]
    assert row["mean"] == pytest.approx((0.25 + 0.5) / 2) and row["n"] == 2
    assert row["std"] == pytest.approx(math.sqrt(2 * 0.125 ** 2))
    with pytest.raises(ValueError, match="n_last"):
        lc.late_epoch_table([], n_last=0)
