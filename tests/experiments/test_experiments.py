"""N-seed comparisons: the pure aggregation on hand-made runs, and `compare` end to end on the toy data."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dcase_fpd_plugin.experiments.command import split_recipes_and_overrides
from dcase_fpd_plugin.experiments.plan import plan_runs, recipe_differences
from dcase_fpd_plugin.experiments.records import CompareError, RecipeMismatchError, parse_energy, read_energy
from dcase_fpd_plugin.experiments.run import run_comparison
from dcase_fpd_plugin.experiments.tables import energy_table, format_metric_table, format_summary_markdown, per_class_table, runs_table, summarise
from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.experiments.records import EnergyRecord, RunRecord

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def _metrics(event, segment, tagging, psds1=None, per_class=None):
    return {"event_f1": event, "segment_f1": segment, "tagging_f1": tagging, "intersection_f1": event / 2,
            "psds1": psds1, "psds2": None, "undetected_classes": [], "threshold": 0.5,
            "per_class": {"event_f1": per_class or {"a": event, "b": None}}}


@pytest.fixture
def hand_runs():
    """Two recipes: base (3 seeds) and fpd (2 seeds), with known numbers."""
    return [
        RunRecord("base", 0, _metrics(0.30, 0.60, 0.70, 0.20, {"a": 0.2, "b": 0.4}),
                  EnergyRecord({"training": 0.010, "devtest": 0.002}, "estimated"), 10.0),
        RunRecord("base", 1, _metrics(0.35, 0.65, 0.72, 0.30, {"a": 0.4, "b": None}),
                  EnergyRecord({"training": 0.020, "devtest": 0.004}, "estimated"), 12.0),
        RunRecord("base", 2, _metrics(0.40, 0.62, 0.74, None, {"a": 0.6, "b": 0.8})),
        RunRecord("fpd", 0, _metrics(0.38, 0.66, 0.71, 0.25, {"a": 0.5, "b": 0.5})),
        RunRecord("fpd", 1, _metrics(0.42, 0.64, 0.75, 0.35, {"a": 0.7, "b": 0.1})),
    ]


def _row(summary, recipe, metric):
    rows = summary[(summary["recipe"] == recipe) & (summary["metric"] == metric)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_summarise_mean_sample_std_best_gain(hand_runs):
    s = summarise(hand_runs)
    base = _row(s, "base", "event_f1")
    assert base["mean"] == pytest.approx(0.35)
    assert base["std"] == pytest.approx(np.std([0.30, 0.35, 0.40], ddof=1)) == pytest.approx(0.05)
    assert base["best"] == pytest.approx(0.40) and base["n_seeds"] == 3 and base["gain"] == 0.0
    fpd = _row(s, "fpd", "event_f1")
    assert fpd["mean"] == pytest.approx(0.40) and fpd["std"] == pytest.approx(math.sqrt(0.0008))
    assert fpd["best"] == pytest.approx(0.42) and fpd["gain"] == pytest.approx(0.05)
    assert _row(s, "fpd", "tagging_f1")["gain"] == pytest.approx(0.73 - 0.72)
    # None (not computed) is left out: base has psds1 for 2 of 3 seeds, nobody has psds2
    p1 = _row(s, "base", "psds1")
    assert p1["n_seeds"] == 2 and p1["mean"] == pytest.approx(0.25)
    p2 = _row(s, "fpd", "psds2")
    assert p2["n_seeds"] == 0 and math.isnan(p2["mean"]) and math.isnan(p2["gain"])
    # energy: mean over the runs that have it, best = the lowest
    e = _row(s, "base", "energy_kwh")
    assert e["mean"] == pytest.approx(0.018) and e["best"] == pytest.approx(0.012) and e["n_seeds"] == 2
    assert _row(s, "base", "energy_kwh_training")["mean"] == pytest.approx(0.015)
    # recipe order = first appearance; one row per recipe x metric
    assert list(dict.fromkeys(s["recipe"])) == ["base", "fpd"]
    assert not s.duplicated(["recipe", "metric"]).any()


def test_one_seed_has_no_std():
    runs = [RunRecord("solo", 3, _metrics(0.3, 0.5, 0.6))]
    s = summarise(runs)
    r = _row(s, "solo", "event_f1")
    assert r["mean"] == pytest.approx(0.3) and math.isnan(r["std"]) and r["n_seeds"] == 1
    assert "| solo | 0.300 ± n/a | 0.300 | (reference) |" in format_summary_markdown(s, energy_table(runs), runs)


def test_markdown_has_the_paper_layout(hand_runs):
    s = summarise(hand_runs)
    md = format_summary_markdown(s, energy_table(hand_runs), hand_runs)
    assert "| Model | Average F1 | Best F1 | Gain over base (mean) |" in md
    assert "| base | 0.350 ± 0.0500 | 0.400 | (reference) |" in md
    assert "| fpd | **0.400 ± 0.0283** | **0.420** | +0.050 |" in md
    for title in ("Event-based F1", "Segment-based F1", "Audio tagging F1", "Intersection-based F1",
                  "PSDS1", "PSDS2"):
        assert title in md
    assert "Not computed" in md  # psds2 is null everywhere
    assert "0.018000 (estimated)" in md and "2 of 3" in md
    assert "| fpd | not measured |" in md
    assert "ddof = 1" in md


def test_ties_are_not_bold():
    runs = [RunRecord("a", 0, _metrics(0.3, 0.5, 0.6)), RunRecord("b", 0, _metrics(0.3, 0.5, 0.7))]
    s = summarise(runs)
    assert "**" not in format_metric_table(s, "event_f1", "F1")
    assert "| b | **0.700 ± n/a** | **0.700** | +0.100 |" in format_metric_table(s, "tagging_f1", "F1")


def test_per_class_and_runs_tables(hand_runs):
    pc = per_class_table(hand_runs)
    a = pc[(pc.recipe == "base") & (pc["class"] == "a")].iloc[0]
    assert a["mean"] == pytest.approx(0.4) and a["std"] == pytest.approx(0.2)
    b = pc[(pc.recipe == "base") & (pc["class"] == "b")].iloc[0]
    assert b["n_seeds"] == 2 and b["mean"] == pytest.approx(0.6)
    runs = runs_table(hand_runs)
    assert list(runs[["recipe", "seed"]].itertuples(index=False, name=None)) == [
        ("base", 0), ("base", 1), ("base", 2), ("fpd", 0), ("fpd", 1)]
    assert {"event_f1", "threshold", "energy_kwh", "energy_kind", "wall_s"} <= set(runs.columns)
    assert "per_class" not in runs.columns and "undetected_classes" not in runs.columns
    assert list(runs["energy_kind"]) == ["estimated", "estimated", "not measured", "not measured", "not measured"]


def _phase(kwh, method="estimated"):
    return {"energy_kwh": kwh, "duration_s": 1.0, "method": method, "n_segments": 1, "segments": []}


@pytest.mark.parametrize("phases, total, kind", [
    ({"training": _phase(0.5), "devtest": _phase(0.25)}, 0.75, "estimated"),
    ({"training": _phase(0.5, "measured")}, 0.5, "measured"),
    ({"training": _phase(0.5, "estimated"), "eval": _phase(0.1, "measured")}, 0.6, "mixed (17 % measured)"),
    ({"training": _phase(0.5, None), "devtest": _phase(None)}, 0.5, "unknown"),
])
def test_parse_energy_reads_the_energy_module_format(phases, total, kind):
    e = parse_energy({"format": 1, "phases": phases})
    assert e.total_kwh == pytest.approx(total) and e.kind == kind


@pytest.mark.parametrize("data", [None, [], {}, {"phases": {"training": _phase(None)}}, {"phases": "x"},
                                  {"phases": {"training": 0.5}}])
def test_parse_energy_without_figures_is_none(data):
    assert parse_energy(data) is None


def test_read_energy_reads_what_the_energy_module_writes(tmp_path):
    from dcase_fpd_plugin.energy.record import record_segment

    record_segment(tmp_path, "training", {"energy_kwh": 0.002, "duration_s": 3.0, "method": "estimated"})
    record_segment(tmp_path, "devtest", {"energy_kwh": 0.001, "duration_s": 1.0, "method": "estimated"})
    e = read_energy(tmp_path)
    assert e.phases == {"training": pytest.approx(0.002), "devtest": pytest.approx(0.001)}
    assert e.kind == "estimated"


def test_unreadable_energy_json_counts_as_not_measured(tmp_path):
    (tmp_path / "energy.json").write_text("{not json")
    with pytest.warns(UserWarning, match="not measured"):
        assert read_energy(tmp_path) is None
    assert read_energy(tmp_path / "absent") is None


def test_cli_splits_recipes_and_overrides_after_options():
    from dcase_fpd_plugin.cli import build_parser

    args = build_parser().parse_args(["compare", "a.yaml", "b.yaml", "--seeds", "3", "--out", "X",
                                      "training.n_epochs=2", "branches.fpd.enabled=true", "--force"])
    assert split_recipes_and_overrides(args.items) == (["a.yaml", "b.yaml"],
                                                          ["training.n_epochs=2", "branches.fpd.enabled=true"])
    assert args.seeds == 3 and args.seed_start == 0 and args.force


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def two_recipes(tmp_path):
    """The demo recipe as 'weak', and with FPD switched on (WPS from epoch 0) as 'weak_fpd'."""
    weak = tmp_path / "recipes" / "weak.yaml"
    weak.parent.mkdir()
    shutil.copy(DEMO, weak)
    fpd = weak.with_name("weak_fpd.yaml")
    data = yaml.safe_load(DEMO.read_text())
    data["branches"] = {"fpd": {"enabled": True, "wps_start_epoch": 0}}
    fpd.write_text(yaml.safe_dump(data))
    return weak, fpd


def _compare_overrides(demo_overrides):
    """demo_overrides without training.exp_dir (compare sets it)."""
    return [o for o in demo_overrides if not o.startswith("training.exp_dir=")]


def _fake_energy(out: Path) -> None:
    for i, run in enumerate(sorted(out.glob("weak/seed_*"))):
        (run / "energy.json").write_text(json.dumps(
            {"phases": {"training": _phase(0.001 * (i + 1)), "devtest": _phase(0.0005)}}))
    for run in out.glob("weak_fpd/seed_*"):  # runs without figures (e.g. energy.enabled=false)
        (run / "energy.json").unlink(missing_ok=True)


def test_compare_end_to_end_resumes_and_refuses(two_recipes, demo_overrides, tmp_path, monkeypatch, capsys):
    weak, fpd = two_recipes
    out = tmp_path / "cmp"
    ov = _compare_overrides(demo_overrides)
    argv = ["compare", str(weak), str(fpd), "--seeds", "2", "--seed-start", "5", "--out", str(out), *ov]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[1/4] weak seed 5: training" in printed and "[4/4] weak_fpd seed 6" in printed and "left" in printed

    runs = {(name, seed): out / name / f"seed_{seed}" for name in ("weak", "weak_fpd") for seed in (5, 6)}
    metrics = {k: json.loads((d / "metrics.json").read_text()) for k, d in runs.items()}
    for (name, seed), d in runs.items():
        r = yaml.safe_load((d / "recipe.yaml").read_text())
        assert r["training"]["seed"] == seed and r["training"]["n_epochs"] == 1
        assert r["branches"].get("fpd", {}).get("enabled", False) == (name == "weak_fpd")
    for name in ("summary.md", "summary.csv", "runs.csv", "per_class_f1.csv", "event_f1_sorted.png",
                 "per_class_f1.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "event_f1_sorted.png").read_bytes()[:4] == b"\x89PNG"
    curves = pd.read_csv(out / "learning_curves.csv")  # one validation per epoch, both seeds
    ev0 = curves[(curves["metric"] == "val/event_f1") & (curves["epoch"] == 0)].set_index("recipe")
    assert set(ev0.index) == {"weak", "weak_fpd"} and (ev0["n"] == 2).all()
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    late = pd.read_csv(out / "late_epochs.csv").set_index(["recipe", "metric"])
    assert late.loc[("weak", "val/event_f1"), "n"] == 2

    # the summary agrees with the runs' metrics.json
    summary = pd.read_csv(out / "summary.csv")
    for name in ("weak", "weak_fpd"):
        for metric in ("event_f1", "segment_f1", "tagging_f1", "intersection_f1"):
            vals = [metrics[(name, s)][metric] for s in (5, 6)]
            row = _row(summary, name, metric)
            assert row["mean"] == pytest.approx(np.mean(vals), abs=1e-5)
            assert row["std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-5)
            assert row["best"] == pytest.approx(max(vals), abs=1e-5) and row["n_seeds"] == 2
    gain = _row(summary, "weak_fpd", "event_f1")["gain"]
    assert gain == pytest.approx(np.mean([metrics[("weak_fpd", s)]["event_f1"] for s in (5, 6)])
                                 - np.mean([metrics[("weak", s)]["event_f1"] for s in (5, 6)]), abs=1e-5)
    md = (out / "summary.md").read_text()
    ev = [metrics[("weak", s)]["event_f1"] for s in (5, 6)]
    assert f"| weak | {np.mean(ev):.3f} ± {np.std(ev, ddof=1):.4f}" in md.replace("**", "")
    assert "## Energy" in md and "(estimated)" in md  # codecarbon without power counters here
    assert all((out / name / f"seed_{s}" / "energy.json").is_file() for name in ("weak", "weak_fpd") for s in (5, 6))
    table = pd.read_csv(out / "runs.csv")
    assert len(table) == 4 and table["wall_s"].gt(0).all()

    # running again trains nothing: train must not be called, metrics untouched; energy now read
    _fake_energy(out)
    mtimes = {k: (d / "metrics.json").stat().st_mtime_ns for k, d in runs.items()}

    def no_training(*a, **k):
        raise AssertionError("train called for a complete run")

    monkeypatch.setattr("dcase_fpd_plugin.training.runs.train", no_training)
    assert main(argv) == 0
    assert "complete, skipped" in capsys.readouterr().out
    assert {k: (d / "metrics.json").stat().st_mtime_ns for k, d in runs.items()} == mtimes
    md = (out / "summary.md").read_text()
    assert "0.002000 (estimated)" in md and "| weak_fpd | not measured |" in md
    e = _row(pd.read_csv(out / "summary.csv"), "weak", "energy_kwh")
    assert e["mean"] == pytest.approx(0.002) and e["n_seeds"] == 2

    # a run folder of another recipe is refused before anything runs, unless --force
    changed = [*argv, "opt.lr=0.01"]
    assert main(changed) == 2
    err = capsys.readouterr().err
    assert "different recipe" in err and "opt.lr: 0.002 -> 0.01" in err and "--force" in err
    with pytest.raises(RecipeMismatchError):
        plan_runs([weak], [5], out, [*ov, "opt.lr=0.01"])
    assert [p.action for p in plan_runs([weak], [5], out, [*ov, "opt.lr=0.01"], force=True)] == ["redo"]
    # display-only keys do not count as a different recipe
    assert [p.action for p in plan_runs([weak], [5], out, [*ov, "training.progress_bar=true"])] == ["skip"]
    # nor do keys of speed and memory only (a run may be resumed with them changed)
    for key in ("training.gpu_memory_limit_gb=2", "net.crnn_checkpoint_blocks=1", "training.max_train_s=3600"):
        assert [p.action for p in plan_runs([weak], [5], out, [*ov, key])] == ["skip"], key


def test_compare_resumes_a_run_without_metrics(two_recipes, demo_overrides, tmp_path, monkeypatch):
    weak, _ = two_recipes
    out = tmp_path / "cmp"
    ov = _compare_overrides(demo_overrides)
    run_comparison([weak], 1, out, ov, log=lambda s: None)
    run = out / "weak" / "seed_0"
    (run / "metrics.json").unlink()  # as if killed after training, before testing
    assert plan_runs([weak], [0], out, ov)[0].action == "resume"

    from dcase_fpd_plugin.training import runs as training

    calls = []
    real_train = training.train

    def spy(recipe, **kw):
        calls.append(kw)
        return real_train(recipe, **kw)

    monkeypatch.setattr(training, "train", spy)
    res = run_comparison([weak], 1, out, ov, log=lambda s: None)
    assert calls == [{"resume": True, "force": False}]
    assert (run / "metrics.json").is_file() and res.n_trained == 1 and len(res.runs) == 1


def test_invalid_input_refused_before_training(two_recipes, demo_overrides, tmp_path, monkeypatch):
    weak, fpd = two_recipes
    ov = _compare_overrides(demo_overrides)

    def no_training(*a, **k):
        raise AssertionError("trained before validating")

    monkeypatch.setattr("dcase_fpd_plugin.training.runs.train", no_training)
    out = tmp_path / "cmp"
    from dcase_fpd_plugin.recipe.schema import RecipeError

    with pytest.raises(RecipeError, match=r"weak\.yaml: .*trainig"):
        run_comparison([weak, fpd], 2, out, [*ov, "trainig.n_epochs=1"], log=lambda s: None)
    with pytest.raises(CompareError, match="distinct"):
        run_comparison([weak, weak], 2, out, ov, log=lambda s: None)
    with pytest.raises(CompareError, match="training.seed itself"):
        run_comparison([weak], 2, out, [*ov, "training.seed=3"], log=lambda s: None)
    with pytest.raises(RecipeError, match="folder not found"):
        run_comparison([weak], 2, out, [*ov, f"data.weak_folder={tmp_path / 'nowhere'}"], log=lambda s: None)
    assert main(["compare", str(weak), "--seeds", "0", "--out", str(out), *ov]) == 2
    assert not out.exists()


def test_a_run_older_than_a_new_key_matches_when_the_key_keeps_its_default():
    from dcase_fpd_plugin.recipe.loading import load_recipe

    wanted = load_recipe(None, ["branches.fpd.enabled=true"])
    old = yaml.safe_load(yaml.safe_dump(wanted))
    del old["training"]["channels_last"]  # a run recorded before these keys existed
    del old["branches"]["fpd"]["ip_norm"]
    assert recipe_differences(old, wanted) == []
    # ... but a non-default value of the new key is a different recipe
    changed = load_recipe(None, ["branches.fpd.enabled=true", "branches.fpd.ip_norm=false"])
    assert recipe_differences(old, changed) == ["branches.fpd.ip_norm: '<absent>' -> False"]
    # a key present in both still compares by value
    assert recipe_differences(wanted, changed) == ["branches.fpd.ip_norm: True -> False"]


@pytest.mark.slow
def test_compare_jobs_2_gives_the_metrics_of_jobs_1(two_recipes, demo_overrides, tmp_path, capsys):
    """Two recipes x 2 seeds trained 2 at a time in worker processes = the same runs one by one."""
    weak, fpd = two_recipes
    ov = _compare_overrides(demo_overrides) + ["energy.enabled=false"]
    outs = {}
    for jobs in (1, 2):
        out = outs[jobs] = tmp_path / f"cmp_jobs{jobs}"
        assert main(["compare", str(weak), str(fpd), "--seeds", "2", "--out", str(out), "--jobs", str(jobs), *ov]) == 0
    printed = capsys.readouterr().out
    assert "4 runs, 2 at a time" in printed and "weak_fpd seed 1: done" in printed
    for name in ("weak", "weak_fpd"):
        for seed in (0, 1):
            a, b = (json.loads((outs[j] / name / f"seed_{seed}" / "metrics.json").read_text()) for j in (1, 2))
            assert a["event_f1"] == b["event_f1"] and a["segment_f1"] == b["segment_f1"]
            assert a["per_class"] == b["per_class"] and a["psds1"] == b["psds1"]
    assert (outs[2] / "weak" / "seed_0" / "compare.log").is_file()
    s1, s2 = (pd.read_csv(outs[j] / "summary.csv") for j in (1, 2))
    assert s1[["recipe", "metric"]].equals(s2[["recipe", "metric"]])
    assert np.allclose(s1["mean"].fillna(-1), s2["mean"].fillna(-1))
    # a rerun with --jobs 2 trains nothing
    assert main(["compare", str(weak), str(fpd), "--seeds", "2", "--out", str(outs[2]), "--jobs", "2", *ov]) == 0
    assert "0 to train" in capsys.readouterr().out


def test_compare_refuses_to_reuse_a_run_trained_before_the_fidelity_fixes(two_recipes, demo_overrides, tmp_path):
    """A finished run without the fidelity mark in its metrics.json, or an unfinished one without it
    in its last checkpoint, predates 0.2's fixes: compare refuses it instead of averaging it in."""
    import torch

    from dcase_fpd_plugin.training.task import FIDELITY, FIDELITY_KEY

    weak, _ = two_recipes
    out = tmp_path / "cmp"
    ov = _compare_overrides(demo_overrides)
    run_comparison([weak], 1, out, ov, log=lambda s: None)
    run = out / "weak" / "seed_0"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics[FIDELITY_KEY] == FIDELITY
    assert plan_runs([weak], [0], out, ov)[0].action == "skip"
    del metrics[FIDELITY_KEY]
    (run / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(RecipeMismatchError, match="trained before 0.2's fidelity fixes .* metrics.json"):
        plan_runs([weak], [0], out, ov)
    (run / "metrics.json").unlink()
    last = run / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state.pop(FIDELITY_KEY) == FIDELITY
    torch.save(state, last)
    with pytest.raises(RecipeMismatchError, match="last.ckpt"):
        plan_runs([weak], [0], out, ov)
    assert plan_runs([weak], [0], out, ov, force=True)[0].action == "redo"
