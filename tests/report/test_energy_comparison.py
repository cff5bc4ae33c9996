"""`dcase-fpd report --baseline` (kWh ratio per phase, work normalisation, EW-PSDS, hardware check),
`--meta` (the DCASE meta block) and `compare`'s energy column and PSDS-vs-kWh plot.

Hand-made energy.json / metrics.json files check the arithmetic against figures computed here;
two tiny demo runs (trained once, by `compare`) check the same on what training really writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.energy.record import record_segment
from dcase_fpd_plugin.report.energy_comparison import kind_label, normalise_work
from dcase_fpd_plugin.recipe.loading import dump_recipe, load_recipe
from dcase_fpd_plugin.report.complexity import count_macs, count_parameters

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
H100 = {"cpu_model": "AMD EPYC 9454 48-Core Processor", "cpu_count": 16, "ram_total_gib": 125.7,
        "gpu_model": "1 x NVIDIA H100 80GB HBM3", "gpu_count": 1}
NVML_SOURCES = {"cpu": "estimated (TDP x CPU load model)", "gpu": "measured (NVML / AMD SMI)",
                "ram": "estimated (RAM power model)"}


def _segment(cpu: float, gpu: float, ram: float, work: dict | None, hardware: dict = H100) -> dict:
    """A segment as PhaseTracker.stop writes it: GPU measured by NVML, CPU and RAM modelled."""
    seg = {"started": "2026-11-27T10:00:00Z", "duration_s": 60.0, "energy_kwh": cpu + gpu + ram,
           "cpu_kwh": cpu, "gpu_kwh": gpu, "ram_kwh": ram, "emissions_kg_co2eq": 0.0, "method": "estimated",
           "sources": dict(NVML_SOURCES), "tracking_mode": "machine", "country_iso_code": "FRA",
           "hardware": dict(hardware), "codecarbon_version": "3.0.0", "csv": "energy/x.csv", "interrupted": False}
    if work is not None:
        seg["work"] = work
    return seg


def _experiment(root: Path, name: str, segments: dict[str, list[dict]], psds1, psds2) -> Path:
    exp = root / name
    exp.mkdir(parents=True)
    (exp / "recipe.yaml").write_text(dump_recipe(load_recipe(DEMO)))
    for phase, segs in segments.items():
        for seg in segs:
            record_segment(exp, phase, seg, accumulate=True)
    (exp / "metrics.json").write_text(json.dumps({"psds1": psds1, "psds2": psds2, "event_f1": 0.1}))
    return exp


@pytest.fixture
def pair(tmp_path):
    """System: training resumed once (2 x 96 clips, 2 epochs), devtest on 12 clips, evaluation
    without work counts; baseline: 1 epoch of 96 clips, devtest on 24 clips, evaluation likewise."""
    system = _experiment(tmp_path, "system", {
        "training": [_segment(0.010, 0.030, 0.002, {"clips": 96, "epochs": 1, "steps": 8}),
                     _segment(0.011, 0.031, 0.002, {"clips": 96, "epochs": 1, "steps": 8})],
        "devtest": [_segment(0.001, 0.002, 0.0005, {"clips": 12})],
        "evaluation": [_segment(0.0005, 0.001, 0.0005, None)],
    }, psds1=0.30, psds2=0.50)
    baseline = _experiment(tmp_path, "baseline", {
        "training": [_segment(0.004, 0.012, 0.001, {"clips": 96, "epochs": 1, "steps": 8})],
        "devtest": [_segment(0.0008, 0.0015, 0.0004, {"clips": 24})],
        "evaluation": [_segment(0.0002, 0.0006, 0.0002, None)],
    }, psds1=0.25, psds2=0.45)
    return system, baseline


def _load(exp: Path) -> tuple[dict, dict]:
    return json.loads((exp / "energy.json").read_text()), json.loads((exp / "metrics.json").read_text())


def test_ratio_ew_psds_and_meta_match_a_hand_computation(pair, tmp_path, capsys):
    system, baseline = pair
    meta = tmp_path / "out" / "task4.meta.yaml"
    assert main(["report", str(system), "--baseline", str(baseline), "--json", "--meta", str(meta)]) == 0
    got = json.loads(capsys.readouterr().out)["baseline"]

    # by hand, from the two energy.json and metrics.json
    (se, sm), (be, bm) = _load(system), _load(baseline)
    s_train = sum(seg["energy_kwh"] for seg in se["phases"]["training"]["segments"])
    b_train = sum(seg["energy_kwh"] for seg in be["phases"]["training"]["segments"])
    s_clips = sum(seg["work"]["clips"] for seg in se["phases"]["training"]["segments"])
    b_clips = be["phases"]["training"]["segments"][0]["work"]["clips"]
    ratio = b_train * (s_clips / b_clips) / s_train  # baseline scaled to the system's 192 clips
    assert (s_train, b_train, s_clips, b_clips) == (pytest.approx(0.086), pytest.approx(0.017), 192, 96)
    assert ratio == pytest.approx(0.39534884, rel=1e-6)
    tr = got["phases"]["training"]
    assert tr["ratio"] == pytest.approx(ratio, rel=1e-12)
    assert tr["raw_ratio"] == pytest.approx(b_train / s_train, rel=1e-12)
    assert tr["work"]["unit"] == "clips" and tr["work"]["scale"] == 2.0
    measured = sum(seg["gpu_kwh"] for d in (se, be) for seg in d["phases"]["training"]["segments"])
    assert tr["kind"] == f"mixed ({100 * measured / (s_train + b_train):.0f} % measured)" == "mixed (71 % measured)"
    dt = got["phases"]["devtest"]  # 12 clips against 24: the baseline's kWh halved
    s_dev, b_dev = se["phases"]["devtest"]["energy_kwh"], be["phases"]["devtest"]["energy_kwh"]
    assert dt["ratio"] == pytest.approx(b_dev * 12 / 24 / s_dev, rel=1e-12)
    ev = got["phases"]["evaluation"]  # no work counts: not normalised, and it says so
    assert ev["ratio"] == pytest.approx(be["phases"]["evaluation"]["energy_kwh"] / se["phases"]["evaluation"]["energy_kwh"])
    assert ev["work"]["scale"] == 1.0 and "not normalised" in ev["work"]["note"]
    for key in ("psds1", "psds2"):
        assert got["ew_psds"][key]["ew_system"] == pytest.approx(sm[key] * ratio, rel=1e-12)
        assert got["ew_psds"][key]["baseline"] == bm[key]
    assert got["ew_psds"]["psds1"]["ew_system"] == pytest.approx(0.30 * 0.39534884, rel=1e-6)

    # the meta block: the runs' own kWh, parameters and MACs of the model, the hardware
    doc = yaml.safe_load(meta.read_text())["system"]
    energy, complexity = doc["energy_consumption"], doc["complexity"]
    assert energy["training"] == pytest.approx(se["phases"]["training"]["energy_kwh"], rel=1e-12)
    assert energy["devtest_inference"] == pytest.approx(s_dev, rel=1e-12)
    assert energy["evaluation_inference"] == pytest.approx(se["phases"]["evaluation"]["energy_kwh"], rel=1e-12)
    assert energy["baseline_training"] == pytest.approx(b_train, rel=1e-12)
    assert energy["baseline_devtest_inference"] == pytest.approx(b_dev, rel=1e-12)
    assert energy["gpu_model"] == H100["gpu_model"] and energy["gpu_count"] == 1
    assert energy["cpu_model"] == H100["cpu_model"]
    from dcase_fpd_plugin.training.task import SEDTask

    task = SEDTask(load_recipe(system / "recipe.yaml"))
    assert complexity["total_parameters"] == count_parameters(task.model) > 0
    assert complexity["macs"] == count_macs(task.model, task.recipe["feats"]) > 0
    text = meta.read_text()
    assert "mixed (71 % measured); 192 clips, 2 epochs, 16 steps" in text  # each kWh says what it is


def test_report_prints_ratio_work_and_kind(pair, capsys):
    system, baseline = pair
    assert main(["report", str(system), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    ratios = [l for l in out.splitlines() if l.strip().startswith("ratio")]
    assert ratios[0].split(None, 1)[1] == ("kWh_baseline / kWh_system = 0.3953 (mixed (71 % measured)); normalised "
                                           "by clips: baseline 96, system 192; baseline kWh x 2; raw ratio 0.1977")
    assert "0.086000 kWh (mixed (71 % measured)); 192 clips, 2 epochs, 16 steps" in out
    assert "EW-PSDS1 0.1186" in out and "EW-PSDS2 0.1977" in out
    assert "same hardware" in out
    assert "not normalised: work not recorded in both runs" in out


def test_other_hardware_is_refused_naming_both_files(pair, tmp_path, capsys):
    system, baseline = pair
    data = json.loads((baseline / "energy.json").read_text())
    for seg in data["phases"]["training"]["segments"]:
        seg["hardware"]["gpu_model"] = "1 x NVIDIA A100-SXM4-40GB"
    (baseline / "energy.json").write_text(json.dumps(data))
    meta = tmp_path / "m.yaml"
    assert main(["report", str(system), "--baseline", str(baseline), "--meta", str(meta)]) == 2
    err = capsys.readouterr().err
    assert str(system / "energy.json") in err and str(baseline / "energy.json") in err
    assert "gpu_model" in err and "A100" in err and "H100" in err and "--allow-other-hardware" in err
    assert not meta.exists()
    assert main(["report", str(system), "--baseline", str(baseline), "--allow-other-hardware"]) == 0
    assert "WARNING: other hardware" in capsys.readouterr().out
    # the GPU count too, and a phase without a hardware record cannot be vouched for
    data["phases"]["training"]["segments"][0]["hardware"] = dict(H100, gpu_count=2)
    (baseline / "energy.json").write_text(json.dumps(data))
    assert main(["report", str(system), "--baseline", str(baseline)]) == 2
    assert "gpu_count 1 in" in capsys.readouterr().err
    del data["phases"]["training"]["segments"][0]["hardware"]
    (baseline / "energy.json").write_text(json.dumps(data))
    assert main(["report", str(system), "--baseline", str(baseline)]) == 2
    assert "has no hardware record" in capsys.readouterr().err


def test_meta_refuses_to_overwrite_without_force(pair, tmp_path, capsys):
    system, baseline = pair
    meta = tmp_path / "task4.meta.yaml"
    meta.write_text("mine\n")
    argv = ["report", str(system), "--baseline", str(baseline), "--meta", str(meta)]
    assert main(argv) == 2
    assert f"{meta} exists; pass --force" in capsys.readouterr().err
    assert meta.read_text() == "mine\n"
    assert main([*argv, "--force"]) == 0
    assert yaml.safe_load(meta.read_text())["system"]["energy_consumption"]["baseline_training"] > 0
    assert not list(tmp_path.glob(".task4.meta.yaml.*"))  # no temporary file left behind
    assert main(["report", str(system), "--meta", str(tmp_path / "n.yaml")]) == 2  # the block needs the baseline
    assert "--meta needs --baseline" in capsys.readouterr().err


def test_missing_or_broken_inputs_are_named(pair, tmp_path, capsys):
    system, baseline = pair
    (baseline / "energy.json").unlink()
    assert main(["report", str(system), "--baseline", str(baseline)]) == 2
    assert f"{baseline / 'energy.json'} not found" in capsys.readouterr().err
    assert main(["report", str(system), "--baseline", str(tmp_path / "nope")]) == 2
    assert f"experiment folder not found: {tmp_path / 'nope'}" in capsys.readouterr().err
    shutil.copy(system / "energy.json", baseline / "energy.json")
    (baseline / "metrics.json").write_text("{broken")
    assert main(["report", str(system), "--baseline", str(baseline)]) == 2
    assert f"{baseline / 'metrics.json'}: not valid JSON" in capsys.readouterr().err
    (baseline / "metrics.json").write_text(json.dumps({"psds1": None, "psds2": 0.4}))
    assert main(["report", str(system), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out  # the EW-PSDS needs only the system's PSDS
    assert "'psds1' is null (eval.psds: false?): the baseline's PSDS1 unknown" in out and "EW-PSDS1 0.3000" in out
    (system / "metrics.json").write_text(json.dumps({"psds2": 0.4}))
    assert main(["report", str(system), "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert f"{system / 'metrics.json'}: 'psds1' is missing (eval.psds: false?): no EW-PSDS1" in out
    assert "EW-PSDS1 n/a" in out
    for broken, says in (([0.3], "not a metrics file"), ({"psds1": "0.3", "psds2": 0.4}, "'psds1' is not a number"),
                         ({"psds1": True, "psds2": 0.4}, "'psds1' is not a number")):
        (system / "metrics.json").write_text(json.dumps(broken))
        assert main(["report", str(system), "--baseline", str(baseline)]) == 2
        assert f"{system / 'metrics.json'}: {says}" in capsys.readouterr().err
    (system / "energy.json").write_text("{broken")
    assert main(["report", str(system), "--baseline", str(baseline)]) == 2
    assert str(system / "energy.json") in capsys.readouterr().err


def test_work_normalisation_and_kind_rules():
    assert normalise_work("training", {"epochs": 10}, {"epochs": 5}).scale == 2.0  # clips unknown: epochs
    w = normalise_work("training", {"clips": 100, "epochs": 10}, {"clips": 100, "epochs": 5})
    assert w.scale == 1.0 and w.unit == "clips" and w.note == "same work (100 clips)"  # clips first
    assert normalise_work("devtest", {"epochs": 1}, {"epochs": 2}).unit is None  # devtest counts clips only
    assert kind_label(0.0, 1.0) == "estimated" and kind_label(1.0, 1.0) == "measured"
    assert kind_label(0.25, 1.0) == "mixed (25 % measured)"


# --------------------------------------------------------------------------- two tiny demo runs
@pytest.fixture(scope="module")
def compared(demo_data, tmp_path_factory) -> Path:
    """`compare` of the demo recipe trained 1 epoch ('weak') and with FPD trained 2 ('weak_fpd'),
    one seed each, energy tracked, PSDS computed."""
    tmp = tmp_path_factory.mktemp("ew_compare")
    recipes = tmp / "recipes"
    recipes.mkdir()
    for name, epochs, fpd in (("weak", 1, False), ("weak_fpd", 2, True)):
        data = yaml.safe_load(DEMO.read_text())
        data["training"]["n_epochs"] = epochs
        if fpd:
            data["branches"] = {"fpd": {"enabled": True, "wps_start_epoch": 0}}
        (recipes / f"{name}.yaml").write_text(yaml.safe_dump(data))
    ov = [f"data.{k}={v}" for k, v in demo_data.items()] + [
        "feats.clip_s=4.0", f"data.cache_dir={tmp / 'cache'}", "training.batch_size=[6, 6, 0]",
        "training.progress_bar=false", "training.num_threads=1", "eval.psds=true", "energy.measure_power_secs=1"]
    out = tmp / "cmp"
    assert main(["compare", str(recipes / "weak.yaml"), str(recipes / "weak_fpd.yaml"), "--seeds", "1",
                 "--out", str(out), *ov]) == 0
    return out


def test_compare_writes_psds_vs_kwh_plot_and_normalisation_column(compared):
    out = compared
    png = out / "psds1_vs_training_kwh.png"
    assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    (we, wm), (fe, fm) = _load(out / "weak" / "seed_0"), _load(out / "weak_fpd" / "seed_0")
    w_work, f_work = we["phases"]["training"]["work"], fe["phases"]["training"]["work"]
    assert (w_work["epochs"], f_work["epochs"]) == (1, 2) and f_work["clips"] == 2 * w_work["clips"] > 0
    table = pd.read_csv(out / "energy.csv").set_index("recipe")
    w_kwh, f_kwh = we["phases"]["training"]["energy_kwh"], fe["phases"]["training"]["energy_kwh"]
    ratio = w_kwh * (f_work["clips"] / w_work["clips"]) / f_kwh
    assert table.loc["weak_fpd", "kwh_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert table.loc["weak", "kwh_ratio"] == pytest.approx(1.0)
    assert "normalised by clips" in table.loc["weak_fpd", "normalised_by"]
    assert table.loc["weak_fpd", "ew_psds1"] == pytest.approx(fm["psds1"] * ratio, rel=1e-5, abs=1e-9)
    assert table.loc["weak_fpd", "same_hardware"]
    md = (out / "summary.md").read_text()
    assert "training kWh of weak / of this" in md and "psds1_vs_training_kwh.png" in md
    row = next(l for l in md.splitlines() if l.startswith("| weak_fpd |") and "normalised by clips" in l)
    assert f"| {ratio:.3f} |" in row


def test_report_baseline_on_two_tiny_runs(compared, tmp_path, capsys):
    system, baseline = compared / "weak_fpd" / "seed_0", compared / "weak" / "seed_0"
    meta = tmp_path / "meta.yaml"
    assert main(["report", str(system), "--baseline", str(baseline), "--json", "--meta", str(meta)]) == 0
    got = json.loads(capsys.readouterr().out)["baseline"]
    (se, sm), (be, bm) = _load(system), _load(baseline)
    s, b = se["phases"]["training"], be["phases"]["training"]
    ratio = b["energy_kwh"] * s["work"]["clips"] / b["work"]["clips"] / s["energy_kwh"]
    assert got["phases"]["training"]["ratio"] == pytest.approx(ratio, rel=1e-12)
    assert got["phases"]["training"]["kind"] in ("estimated", "measured") or "mixed" in got["phases"]["training"]["kind"]
    assert got["phases"]["devtest"]["work"]["note"] == f"same work ({sm['n_clips']} clips)"
    assert got["phases"]["devtest"]["ratio"] == pytest.approx(
        be["phases"]["devtest"]["energy_kwh"] / se["phases"]["devtest"]["energy_kwh"], rel=1e-12)
    for key in ("psds1", "psds2"):
        assert got["ew_psds"][key]["ew_system"] == pytest.approx(sm[key] * ratio, rel=1e-12, abs=1e-12)
    doc = yaml.safe_load(meta.read_text())["system"]["energy_consumption"]
    assert doc["training"] == pytest.approx(s["energy_kwh"], rel=1e-12)
    assert doc["baseline_training"] == pytest.approx(b["energy_kwh"], rel=1e-12)
    assert doc["evaluation_inference"] is None  # never inferred: null, and the comment says why
    assert doc["cpu_model"] == s["segments"][0]["hardware"]["cpu_model"]
