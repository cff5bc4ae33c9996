"""`dcase-fpd report --baseline` on the official baseline's codecarbon output, as DESED_task writes it.

DESED_task (commit c6bcb45) writes, in its Lightning run folder ``<log_dir>/version_X``:
2024 (``recipes/dcase2024_task4_baseline/local/sed_trainer_pretrained.py``, codecarbon 2.3.4)
``codecarbon/emissions_baseline_training.csv``, ``codecarbon/emissions_baseline_test.csv`` and
``codecarbon/emissions_basleline_eval.csv`` (sic); 2023 (``local/sed_trainer.py``)
``training_codecarbon/emissions.csv``, ``devtest_codecarbon/emissions.csv``. The CSVs here are
written with the header codecarbon 2.3.4 writes, byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.energy.record import record_segment
from dcase_fpd_plugin.recipe.loading import dump_recipe, load_recipe
from dcase_fpd_plugin.report.desed_task_baseline import counted_row, desed_task_files, read_codecarbon_rows

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
CPU, GPU = "AMD EPYC 9454 48-Core Processor", "1 x NVIDIA H100 80GB HBM3"
H100 = {"cpu_model": CPU, "cpu_count": 16, "ram_total_gib": 125.7, "gpu_model": GPU, "gpu_count": 1}
NVML_SOURCES = {"cpu": "estimated (TDP x CPU load model)", "gpu": "measured (NVML / AMD SMI)",
                "ram": "estimated (RAM power model)"}

# codecarbon 2.3.4's EmissionsData, as its FileOutput writes it (DESED_task 2024 pins codecarbon==2.3.4)
HEADER = ("timestamp,project_name,run_id,duration,emissions,emissions_rate,cpu_power,gpu_power,ram_power,"
          "cpu_energy,gpu_energy,ram_energy,energy_consumed,country_name,country_iso_code,region,cloud_provider,"
          "cloud_region,os,python_version,codecarbon_version,cpu_count,cpu_model,gpu_count,gpu_model,longitude,"
          "latitude,ram_total_size,tracking_mode,on_cloud,pue")
RUN_A, RUN_B = "0c5b8a3e-6f1d-4a57-9d3e-2f6b1c7e9a10", "7d2e4f81-93ab-4c1e-8e5f-0a6d3b2c1f47"


def _row(project: str, run_id: str, duration: float, cpu: float, gpu: float, ram: float, *,
         cpu_model: str = CPU, gpu_model: str = GPU, energy: str | None = None) -> str:
    total = energy if energy is not None else repr(cpu + gpu + ram)
    return (f"2024-05-02T14:03:11,{project},{run_id},{duration},{(cpu + gpu + ram) * 0.052},"
            f"{(cpu + gpu + ram) * 0.052 / duration},112.5,271.3,47.14,{cpu},{gpu},{ram},{total},France,FRA,,,,"
            f"Linux-5.15.0-105-generic-x86_64-with-glibc2.35,3.8.18,2.3.4,96,{cpu_model},1,{gpu_model},,,"
            "125.71,machine,N,1.0")


TRAIN = "DCASE Task 4 SED TRAINING"
DEVTEST = "DCASE Task 4 SED DEVTEST"
# the training file: an earlier aborted run (line 2), then the run that counts (line 3): 0.6 kWh
TRAIN_ROWS = [_row(TRAIN, RUN_A, 212.4, 0.0066, 0.0152, 0.0028),
              _row(TRAIN, RUN_B, 5342.87, 0.1502731, 0.3987452, 0.0509817)]
DEVTEST_ROWS = [_row(DEVTEST, RUN_B, 41.2, 0.0021, 0.0049, 0.0007)]  # 0.0077 kWh
B_TRAIN, B_TRAIN_GPU, B_DEVTEST = 0.1502731 + 0.3987452 + 0.0509817, 0.3987452, 0.0021 + 0.0049 + 0.0007


def _csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _segment(cpu: float, gpu: float, ram: float, work: dict, hardware: dict = H100) -> dict:
    return {"started": "2026-11-27T10:00:00Z", "duration_s": 60.0, "energy_kwh": cpu + gpu + ram, "cpu_kwh": cpu,
            "gpu_kwh": gpu, "ram_kwh": ram, "emissions_kg_co2eq": 0.0, "method": "estimated",
            "sources": dict(NVML_SOURCES), "tracking_mode": "machine", "country_iso_code": "FRA",
            "hardware": dict(hardware), "codecarbon_version": "3.3.2", "csv": "energy/x.csv", "interrupted": False,
            "work": work}


@pytest.fixture
def system(tmp_path) -> Path:
    """Our run: training 1.2 kWh (0.8 of it GPU, measured), devtest 0.0154 kWh; PSDS1 0.30, PSDS2 0.50."""
    exp = tmp_path / "system"
    exp.mkdir()
    (exp / "recipe.yaml").write_text(dump_recipe(load_recipe(DEMO)))
    record_segment(exp, "training", _segment(0.3, 0.8, 0.1, {"clips": 9600, "epochs": 10}), accumulate=True)
    record_segment(exp, "devtest", _segment(0.0042, 0.0098, 0.0014, {"clips": 1168}))
    (exp / "metrics.json").write_text(json.dumps({"psds1": 0.30, "psds2": 0.50}))
    return exp


@pytest.fixture
def desed_2024(tmp_path) -> Path:
    """``exp/2024_baseline/version_0`` as DESED_task 2024's ``train_pretrained.py`` leaves it (energy part)."""
    run = tmp_path / "exp" / "2024_baseline" / "version_0"
    _csv(run / "codecarbon" / "emissions_baseline_training.csv", TRAIN_ROWS)
    _csv(run / "codecarbon" / "emissions_baseline_test.csv", DEVTEST_ROWS)
    (run / "hparams.yaml").write_text("training:\n  n_epochs: 10\n")
    (run / "last.ckpt").write_bytes(b"")  # its checkpoints lie in the run folder itself
    return run


def _report(capsys, system: Path, baseline: Path, *extra: str) -> tuple[int, str, str]:
    rc = main(["report", str(system), "--baseline", str(baseline), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_desed_task_2024_folder_gives_kwh_ratio_ew_psds_and_meta(system, desed_2024, tmp_path, capsys):
    meta = tmp_path / "task4.meta.yaml"
    rc, out, err = _report(capsys, system, desed_2024.parent, "--json", "--meta", str(meta))
    assert rc == 0, err
    assert f"is not a run folder; using the one run inside it: {desed_2024}" in err  # exp/2024_baseline -> version_0
    got = json.loads(out)["baseline"]
    training_csv = desed_2024 / "codecarbon" / "emissions_baseline_training.csv"
    assert got["baseline_source"] == "DESED_task's codecarbon CSV"
    assert got["baseline_files"] == {"training": str(training_csv),
                                     "devtest": str(desed_2024 / "codecarbon" / "emissions_baseline_test.csv")}
    tr, dt, ev = (got["phases"][p] for p in ("training", "devtest", "evaluation"))
    assert tr["baseline"]["kwh"] == pytest.approx(B_TRAIN, rel=1e-12) == pytest.approx(0.6)  # line 3 only
    assert dt["baseline"]["kwh"] == pytest.approx(B_DEVTEST, rel=1e-12)
    assert ev["baseline"] is None and ev["ratio"] is None
    assert tr["ratio"] == pytest.approx(B_TRAIN / 1.2, rel=1e-12) == pytest.approx(0.5)
    assert dt["ratio"] == pytest.approx(B_DEVTEST / 0.0154, rel=1e-12) == pytest.approx(0.5)
    # no work in DESED_task's files: not normalised, and said so
    assert tr["work"]["scale"] == 1.0 and tr["work"]["note"] == "not normalised: work not recorded in both runs"
    assert tr["baseline"]["work"] == {}
    # GPU kWh measured (NVML), CPU and RAM estimated, in both
    assert tr["kind"] == f"mixed ({100 * (0.8 + B_TRAIN_GPU) / (1.2 + B_TRAIN):.0f} % measured)"
    assert tr["baseline"]["hardware"] == [[CPU, GPU, 1]]
    assert got["hardware_differences"] == []
    for key, psds in (("psds1", 0.30), ("psds2", 0.50)):
        assert got["ew_psds"][key]["ew_system"] == pytest.approx(psds * B_TRAIN / 1.2, rel=1e-12)
        assert got["ew_psds"][key]["baseline"] is None
    notes = "\n".join(got["notes"])
    assert f"baseline training: {training_csv}, line 3 (run_id {RUN_B}" in notes
    assert f"1 row(s) of earlier runs in {training_csv} not counted (line 2)" in notes
    assert "no work" in notes and "no PSDS" in notes
    # the meta block: the baseline's own kWh, each saying where it came from
    doc = yaml.safe_load(meta.read_text())["system"]["energy_consumption"]
    assert doc["baseline_training"] == pytest.approx(B_TRAIN, rel=1e-12)
    assert doc["baseline_devtest_inference"] == pytest.approx(B_DEVTEST, rel=1e-12)
    assert doc["baseline_evaluation_inference"] is None
    assert doc["training"] == pytest.approx(1.2)
    text = meta.read_text()
    assert f"from {training_csv}" in text and "no evaluation phase in DESED_task's codecarbon output" in text


@pytest.mark.parametrize("named", ["version_0", "codecarbon", "training_csv"])
def test_every_way_of_naming_it_gives_the_same_figures(system, desed_2024, capsys, named):
    path = {"version_0": desed_2024, "codecarbon": desed_2024 / "codecarbon",
            "training_csv": desed_2024 / "codecarbon" / "emissions_baseline_training.csv"}[named]
    rc, out, err = _report(capsys, system, path)
    assert rc == 0, err
    assert err == ""  # named directly: nothing to say
    ratios = [line for line in out.splitlines() if line.strip().startswith("ratio")]
    assert ratios[0].split(None, 1)[1].startswith("kWh_baseline / kWh_system = 0.5 (mixed (")
    assert "not normalised: work not recorded in both runs" in ratios[0]
    assert "EW-PSDS1 0.1500" in out and "EW-PSDS2 0.2500" in out
    assert "DESED_task's codecarbon CSV" in out and "same hardware" in out
    if named == "training_csv":  # the CSV alone: its phase only
        assert ratios[1].split() == ["ratio", "n/a"]


def test_desed_task_2023_layout_and_a_csv_known_by_its_project_name(system, tmp_path, capsys):
    run = tmp_path / "exp" / "2023_baseline" / "version_3"
    _csv(run / "training_codecarbon" / "emissions.csv", TRAIN_ROWS[1:])
    (run / "training_codecarbon" / "training_tot_kwh.txt").write_text(str(B_TRAIN))
    _csv(run / "devtest_codecarbon" / "emissions.csv", DEVTEST_ROWS)
    assert set(desed_task_files(run)) == {"training", "devtest"}
    assert desed_task_files(run / "devtest_codecarbon") == {"devtest": run / "devtest_codecarbon" / "emissions.csv"}
    rc, out, err = _report(capsys, system, run, "--json")
    assert rc == 0, err
    got = json.loads(out)["baseline"]["phases"]
    assert got["training"]["baseline"]["kwh"] == pytest.approx(B_TRAIN, rel=1e-12)
    assert got["devtest"]["ratio"] == pytest.approx(0.5)
    # a CSV renamed by the user: its phase from DESED_task's project_name
    renamed = _csv(tmp_path / "mine" / "baseline_devtest.csv", DEVTEST_ROWS)
    rc, out, err = _report(capsys, system, renamed, "--json")
    assert rc == 0, err
    assert json.loads(out)["baseline"]["baseline_files"] == {"devtest": str(renamed)}
    other = _csv(tmp_path / "mine" / "other.csv", [DEVTEST_ROWS[0].replace(DEVTEST, "my project")])
    rc, _, err = _report(capsys, system, other)
    assert rc == 2 and f"{other}: which phase it measured cannot be told" in err and "'my project'" in err


def test_rows_that_count_are_the_last_of_the_last_run(tmp_path):
    # the same run flushed twice (cumulative figures), after an earlier run: its last row counts
    path = _csv(tmp_path / "emissions.csv", [_row(TRAIN, RUN_A, 10.0, 0.1, 0.1, 0.1),
                                             _row(TRAIN, RUN_B, 10.0, 0.01, 0.01, 0.01),
                                             _row(TRAIN, RUN_B, 20.0, 0.02, 0.02, 0.02)])
    (line, row), skipped = counted_row(read_codecarbon_rows(path))
    assert (line, row["run_id"], skipped) == (4, RUN_B, [2])
    assert row["energy_consumed"] == pytest.approx(0.06)
    # columns read by name: another order, extra columns, no run_id (codecarbon 1.x): the last row
    cols = HEADER.split(",")
    values = TRAIN_ROWS[1].split(",")
    keep = [i for i, c in enumerate(cols) if c != "run_id"][::-1]
    header = ",".join([cols[i] for i in keep] + ["water_consumed"])
    rows = [",".join([v[i] for i in keep] + ["0.0"]) for v in (TRAIN_ROWS[0].split(","), values)]
    path = _csv(tmp_path / "reordered.csv", rows, header)
    (line, row), skipped = counted_row(read_codecarbon_rows(path))
    assert (line, skipped) == (3, [2]) and row["energy_consumed"] == pytest.approx(B_TRAIN)
    assert row["gpu_model"] == GPU and row["gpu_count"] == 1.0


def test_a_malformed_csv_is_refused_naming_the_file_and_the_line(system, tmp_path, capsys):
    csv_path = tmp_path / "v0" / "codecarbon" / "emissions_baseline_training.csv"
    no_energy = HEADER.replace(",energy_consumed", "")
    _csv(csv_path, [",".join(v for i, v in enumerate(r.split(",")) if i != 12) for r in TRAIN_ROWS], no_energy)
    rc, out, err = _report(capsys, system, csv_path.parent.parent)
    assert rc == 2 and out == ""
    assert f"{csv_path}, line 1: no 'energy_consumed' column" in err
    _csv(csv_path, [TRAIN_ROWS[0], _row(TRAIN, RUN_B, 5342.87, 0.15, 0.40, 0.05, energy="n/a")])
    rc, _, err = _report(capsys, system, csv_path.parent.parent)
    assert rc == 2 and f"{csv_path}, line 3: 'energy_consumed' is not a number ('n/a')" in err
    _csv(csv_path, [TRAIN_ROWS[0].replace(",0.0066,", ",lots,")])
    rc, _, err = _report(capsys, system, csv_path)
    assert rc == 2 and f"{csv_path}, line 2: 'cpu_energy' is not a number ('lots')" in err
    _csv(csv_path, [TRAIN_ROWS[0], _row(TRAIN, RUN_B, 5342.87, 0.15, 0.40, 0.05, energy="-0.6")])
    rc, _, err = _report(capsys, system, csv_path)
    assert rc == 2 and f"{csv_path}, line 3: 'energy_consumed' is '-0.6', not a kWh figure" in err
    _csv(csv_path, [TRAIN_ROWS[0] + ",extra"])
    rc, _, err = _report(capsys, system, csv_path)
    assert rc == 2 and f"{csv_path}, line 2: 32 fields where the header has 31" in err
    _csv(csv_path, [])
    rc, _, err = _report(capsys, system, csv_path)
    assert rc == 2 and f"{csv_path}: a header but no row" in err


def test_same_hardware_check_with_a_desed_task_baseline(system, desed_2024, tmp_path, capsys):
    training_csv = desed_2024 / "codecarbon" / "emissions_baseline_training.csv"
    _csv(training_csv, [_row(TRAIN, RUN_B, 5342.87, 0.15, 0.40, 0.05, gpu_model="1 x NVIDIA A100-SXM4-40GB")])
    meta = tmp_path / "m.yaml"
    rc, out, err = _report(capsys, system, desed_2024, "--meta", str(meta))
    assert rc == 2 and not meta.exists()
    assert str(system / "energy.json") in err and str(training_csv) in err
    assert "training: gpu_model" in err and "A100" in err and "H100" in err and "--allow-other-hardware" in err
    assert "devtest:" not in err  # that phase was measured on the system's hardware
    rc, out, err = _report(capsys, system, desed_2024, "--allow-other-hardware")
    assert rc == 0 and "WARNING: other hardware" in out
    # a file without the hardware columns cannot be vouched for
    cols = HEADER.split(",")
    drop = {cols.index("cpu_model"), cols.index("gpu_model"), cols.index("gpu_count")}
    _csv(training_csv, [",".join(v for i, v in enumerate(TRAIN_ROWS[1].split(",")) if i not in drop)],
         ",".join(c for i, c in enumerate(cols) if i not in drop))
    rc, _, err = _report(capsys, system, desed_2024)
    assert rc == 2 and f"training: {training_csv} has no hardware record" in err
    # a CPU-only machine: empty gpu_count and gpu_model, as codecarbon writes them, against a GPU system
    _csv(training_csv, [_row(TRAIN, RUN_B, 5342.87, 0.15, 0.0, 0.05, gpu_model="").replace(",1,,", ",,,")])
    rc, _, err = _report(capsys, system, desed_2024)
    assert rc == 2 and "gpu_count 1 in" in err and f"0 in {training_csv}" in err


def test_an_unrecognised_baseline_gets_one_error_saying_what_either_kind_is(system, tmp_path, capsys):
    odd = tmp_path / "odd"
    (odd / "codecarbon").mkdir(parents=True)
    (odd / "codecarbon" / "notes.txt").write_text("kWh: 0.6\n")
    rc, out, err = _report(capsys, system, odd)
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dcase-fpd report: error: --baseline {odd}: not a baseline")
    for expected in ("dcase-fpd run folder", "recipe.yaml", "energy.json", "codecarbon/emissions_baseline_training.csv",
                     "emissions_baseline_test.csv", "training_codecarbon/emissions.csv", "searched 2 levels down"):
        assert expected in err
    text = odd / "codecarbon" / "notes.txt"
    rc, _, err = _report(capsys, system, text)
    assert rc == 2 and f"--baseline {text}: not a baseline" in err
    # two baselines in one folder: named, none chosen
    for v in ("version_0", "version_1"):
        _csv(tmp_path / "many" / v / "codecarbon" / "emissions_baseline_training.csv", TRAIN_ROWS)
    rc, _, err = _report(capsys, system, tmp_path / "many")
    assert rc == 2 and "holds 2 runs" in err and str(tmp_path / "many" / "version_1") in err
