"""`dcase-fpd postprocess` on a trained demo run: tuned on the run's saved validation scores only, scored on its
saved test scores, written beside the run's own metrics (never over them); `eval.postprocessing` in training."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.evaluation import rescoring
from dcase_fpd_plugin.evaluation.csebb import sebbs_missing
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def _overrides(demo_data, root: Path) -> list[str]:
    return [f"data.{k}={v}" for k, v in demo_data.items()] + [
        "feats.clip_s=4.0", f"data.cache_dir={root / 'cache'}", f"training.exp_dir={root / 'exp'}",
        "training.n_epochs=1", "training.batch_size=[6, 6, 0]", "training.progress_bar=false",
        "training.num_threads=1", "eval.psds=false"]


@pytest.fixture(scope="module")
def trained_run(demo_data, tmp_path_factory) -> Path:
    """One demo run (1 epoch), trained once for this module; tests copy it before changing it."""
    root = tmp_path_factory.mktemp("pp_run")
    return train(load_recipe(DEMO, _overrides(demo_data, root))).exp_dir


@pytest.fixture
def run(trained_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_saves_the_raw_scores_of_validation_and_test(trained_run):
    val = sorted(p.name for p in (trained_run / "raw_scores" / "val").iterdir())
    test = sorted(p.name for p in (trained_run / "raw_scores" / "test").iterdir())
    assert len(val) == 12 and len(test) == 12 and val[0].startswith("val_") and test[0].startswith("test_")
    assert sorted(p.name for p in (trained_run / "scores").iterdir()) == test
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert "postprocessing" not in metrics and not (trained_run / "postprocessing").exists()  # median: as before


def test_class_median_writes_beside_the_run_and_leaves_its_metrics_byte_identical(run, capsys):
    before = {name: _sha(run / name) for name in ("metrics.json", "predictions.tsv", "recipe.yaml")}
    assert main(["postprocess", str(run), "--method", "class_median"]) == 0
    assert "class_median" in capsys.readouterr().out
    assert {name: _sha(run / name) for name in before} == before
    out = run / "postprocessing" / "class_median"
    m = json.loads((out / "metrics.json").read_text())
    assert m["postprocessing"] == "class_median" and m["tuned_on"].startswith("validation set ")
    for key in ("class_median_event_f1", "class_median_segment_f1", "class_median_intersection_f1",
                "class_median_psds1", "class_median_psds2", "psds1_unprocessed", "psds2_unprocessed"):
        assert key in m, key
    assert 0.0 <= m["class_median_segment_f1"] <= 1.0 and m["n_clips"] == 12 and m["n_val_clips"] == 12
    assert set(m["per_class"]) == {"class_median_event_f1", "class_median_segment_f1", "class_median_intersection_f1"}
    params = json.loads((out / "params.json").read_text())
    classes = load_recipe(run / "recipe.yaml")["data"]["classes"]
    assert set(params["median_window"]) == set(params["threshold"]) == set(classes)
    assert all(w % 2 == 1 for w in params["median_window"].values())
    predictions = pd.read_csv(out / "predictions.tsv", sep="\t")
    assert list(predictions.columns) == ["filename", "onset", "offset", "event_label"]
    assert len(predictions) == m["class_median_n_predicted_events"]
    # an existing output is refused without --force (nothing written), replaced with it
    stamp = _sha(out / "metrics.json")
    assert main(["postprocess", str(run), "--method", "class_median"]) == 2
    assert "--force" in capsys.readouterr().err and _sha(out / "metrics.json") == stamp
    assert main(["postprocess", str(run), "--method", "class_median", "--force"]) == 0
    assert {name: _sha(run / name) for name in before} == before
    assert not [p for p in (run / "postprocessing").iterdir() if p.name.startswith(".")]  # no staging left


def test_median_from_the_raw_scores_gives_the_runs_own_figures(run):
    assert main(["postprocess", str(run), "--method", "median"]) == 0
    own = json.loads((run / "metrics.json").read_text())
    again = json.loads((run / "postprocessing" / "median" / "metrics.json").read_text())
    for key in ("event_f1", "segment_f1", "intersection_f1", "event_f1_zero_filled", "segment_f1_micro"):
        assert again[f"median_{key}"] == pytest.approx(own[key]), key
    assert again["median_n_predicted_events"] == own["n_predicted_events"]
    assert again["tuned_on"] is None


def test_the_tuning_reads_the_validation_set_only(run, monkeypatch, tmp_path):
    recipe = load_recipe(run / "recipe.yaml")
    data, ev = recipe["data"], recipe["eval"]
    reads: list[str] = []
    real_scores, real_reference, real_tune = rescoring.read_scores, rescoring.read_reference, rescoring.tune
    monkeypatch.setattr(rescoring, "read_scores", lambda folder: reads.append(str(folder)) or real_scores(folder))
    monkeypatch.setattr(rescoring, "read_reference",
                        lambda tsv, dur, *a: reads.extend([str(tsv), str(dur)]) or real_reference(tsv, dur, *a))
    monkeypatch.setattr(rescoring, "tune", lambda *a: reads.append("<tuned>") or real_tune(*a))
    rescoring.postprocess_run(run, data, ev, "class_median")
    tuning = reads[:reads.index("<tuned>")]
    assert tuning == [str(run / "raw_scores" / "val"), str(data["val_tsv"]), str(data["val_dur"])]
    assert not any("test" in Path(p).name for p in tuning)
    assert str(run / "raw_scores" / "test") in reads[reads.index("<tuned>"):]  # the test scores come after
    # the test set unreadable: the tuning still succeeds (it never opens it); scoring then fails on it
    bad = tmp_path / "broken.tsv"
    bad.write_text("not a strong TSV\n")
    broken = {**data, "test_tsv": str(bad), "test_dur": str(bad)}
    shutil.rmtree(run / "raw_scores" / "test")
    (run / "raw_scores" / "test").mkdir()
    (run / "raw_scores" / "test" / "x.tsv").write_text("garbage")
    params, val = rescoring.tune_on_validation(run, broken, ev, "class_median")
    assert set(params["threshold"]) == set(data["classes"]) and len(val.filenames) == 12
    with pytest.raises(Exception):
        rescoring.postprocess_run(run, broken, ev, "class_median", force=True)


def test_csebb_without_the_extra_is_one_line_and_exit_2(run, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sebbs", None)  # as if the extra were not installed
    monkeypatch.setitem(sys.modules, "sebbs.csebbs", None)
    assert main(["postprocess", str(run), "--method", "csebb"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "'sebbs'" in err[0] and "pip install 'dcase-fpd-plugin[sebbs]'" in err[0]
    assert captured.out == "" and not (run / "postprocessing").exists()


@pytest.mark.skipif(sebbs_missing() is not None, reason="the optional sebbs extra is not installed")
def test_csebb_with_the_extra(run):
    before = _sha(run / "metrics.json")
    assert main(["postprocess", str(run), "--method", "csebb"]) == 0
    m = json.loads((run / "postprocessing" / "csebb" / "metrics.json").read_text())
    assert m["postprocessing"] == "csebb" and "csebb_event_f1" in m and "csebb_psds1" in m
    params = json.loads((run / "postprocessing" / "csebb" / "params.json").read_text())
    assert {"cbf", "val_values", "untuned"} <= set(params)
    assert _sha(run / "metrics.json") == before


def test_a_run_without_raw_scores_says_how_to_get_them(run, capsys):
    shutil.rmtree(run / "raw_scores")  # as a run trained before they were saved
    before = {name: _sha(run / name) for name in ("metrics.json", "energy.json", "predictions.tsv")}
    assert main(["postprocess", str(run), "--method", "class_median"]) == 2
    err = capsys.readouterr().err
    assert "no saved raw scores" in err and "--score-checkpoint" in err
    assert main(["postprocess", str(run), "--method", "median", "--score-checkpoint"]) == 0
    assert (run / "raw_scores" / "val").is_dir() and {name: _sha(run / name) for name in before} == before
    own = json.loads((run / "metrics.json").read_text())
    again = json.loads((run / "postprocessing" / "median" / "metrics.json").read_text())
    assert again["median_event_f1"] == pytest.approx(own["event_f1"])  # the same checkpoint, scored again


def test_training_with_class_median_adds_its_keys_to_the_runs_metrics(demo_data, tmp_path):
    recipe = load_recipe(DEMO, _overrides(demo_data, tmp_path) + ["eval.postprocessing=class_median"])
    exp = train(recipe).exp_dir
    m = json.loads((exp / "metrics.json").read_text())
    assert m["postprocessing"] == "class_median" and m["postprocessing_tuned_on"].startswith("validation set")
    assert "class_median_event_f1" in m and "event_f1" in m and m["median_window"] == 7  # the median's kept
    assert "class_median_event_f1" in m["per_class"] and "event_f1" in m["per_class"]
    pp = json.loads((exp / "postprocessing" / "class_median" / "metrics.json").read_text())
    assert pp["class_median_event_f1"] == m["class_median_event_f1"]


def test_postprocess_help_imports_neither_torch_nor_pandas_nor_sebbs():
    import subprocess

    code = ("import sys; from dcase_fpd_plugin.cli import main\n"
            "try:\n    main(['postprocess', '--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('HEAVY', [m for m in ('torch', 'pytorch_lightning', 'pandas', 'sebbs') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--score-checkpoint" in out.stdout and out.stdout.strip().endswith("HEAVY []")
