"""`dcase-fpd report`: parameters, MACs per 10 s (analytic checks), energy per phase, hardware."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.energy.callback import EnergyCallback, track_energy
from dcase_fpd_plugin.energy.record import read_energy
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.report.complexity import (clip_input_shape, count_macs, count_parameters, measure_macs,
    rnn_macs)
from dcase_fpd_plugin.report.submission import hardware_info, submission_figures
from dcase_fpd_plugin.training.task import load_task

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
FEATS = {"sample_rate": 1000, "hop_length": 100, "n_mels": 8}  # 10 s -> (1, 8, 101)


class ConvOnly(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)

    def forward(self, x):  # (B, F, T)
        return self.conv(x.unsqueeze(1))


class LinearOnly(nn.Module):
    def __init__(self, n_in=8, n_out=5):
        super().__init__()
        self.lin = nn.Linear(n_in, n_out)

    def forward(self, x):  # (B, F, T) -> (B, T, n_out)
        return self.lin(x.transpose(1, 2))


class TinyCRNN(nn.Module):
    """Conv + bidirectional 2-layer GRU + linear: the shape of the DCASE CRNN, tiny."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, kernel_size=3, padding=1)
        self.rnn = nn.GRU(16, 6, num_layers=2, bidirectional=True, batch_first=True)
        self.out = nn.Linear(12, 3)

    def forward(self, x, frame_valid=None):  # (B, 8, T)
        h = self.conv(x.unsqueeze(1))  # (B, 2, 8, T)
        h = h.flatten(1, 2).transpose(1, 2)  # (B, T, 16)
        return self.out(self.rnn(h)[0])


# --------------------------------------------------------------------------- counts
def test_count_parameters_is_sum_of_numel():
    m = TinyCRNN()
    assert count_parameters(m) == sum(p.numel() for p in m.parameters())
    # by hand: conv 2*1*9+2, GRU layer 1: 2 dirs x 3 gates x (6*16 + 6*6 + 6 + 6), layer 2: in 12
    by_hand = (18 + 2) + 2 * 3 * (6 * 16 + 36 + 12) + 2 * 3 * (6 * 12 + 36 + 12) + (12 * 3 + 3)
    assert count_parameters(m) == by_hand
    m.conv.requires_grad_(False)
    assert count_parameters(m, trainable_only=True) == by_hand - 20


def test_macs_of_conv2d_and_linear_are_analytic():
    _, f, t = clip_input_shape(FEATS)
    assert (f, t) == (8, 101)
    assert count_macs(ConvOnly(), FEATS) == 4 * 1 * 3 * 3 * f * t  # C_out*C_in*k*k per output pixel
    assert count_macs(LinearOnly(), FEATS) == t * 8 * 5  # one (8 -> 5) product per frame
    # seconds scales the frame count
    assert count_macs(LinearOnly(), FEATS, seconds=5.0) == (1 + 5000 // 100) * 8 * 5


def test_gru_macs_are_counted_once_and_analytically():
    t = clip_input_shape(FEATS)[2]
    gru = 2 * t * (3 * (16 * 6 + 6 * 6) + 3 * (12 * 6 + 6 * 6))  # 2 directions, layers with in=16, in=12
    assert rnn_macs(nn.GRU(16, 6, num_layers=2, bidirectional=True), t) == gru
    mc = measure_macs(TinyCRNN(), torch.randn(clip_input_shape(FEATS)))
    assert mc.recurrent == gru
    assert mc.counted == 2 * 9 * 8 * t + t * 12 * 3  # conv + output layer, GRU not counted twice
    assert mc.total == mc.counted + mc.recurrent == count_macs(TinyCRNN(), FEATS)
    assert rnn_macs(nn.LSTM(4, 3), 10) == 10 * 4 * (4 * 3 + 3 * 3)


def test_macs_leave_the_model_as_it_was():
    m = TinyCRNN().train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    count_macs(m, FEATS)
    assert m.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert not m.rnn._forward_pre_hooks


def test_hardware_info():
    hw = hardware_info()
    assert hw["cpu_logical_cores"] >= 1 and hw["torch"] == torch.__version__ and isinstance(hw["gpus"], list)
    assert hw["cpu_model"]


# --------------------------------------------------------------------------- the report command
@pytest.fixture(scope="module")
def experiment(demo_data, tmp_path_factory) -> Path:
    """A one-epoch demo run with the energy callback, then a devtest run wrapped in track_energy."""
    from dcase_fpd_plugin.training.runs import test, train

    tmp = tmp_path_factory.mktemp("report")
    ov = [f"data.{k}={v}" for k, v in demo_data.items()] + [
        "feats.clip_s=4.0", f"data.cache_dir={tmp / 'cache'}", f"training.exp_dir={tmp / 'exp'}",
        "training.n_epochs=1", "training.batch_size=[6, 6, 0]", "training.progress_bar=false",
        "training.num_threads=1", "eval.psds=false", "energy.measure_power_secs=1",
    ]
    recipe = load_recipe(DEMO, ov)
    exp = Path(recipe["training"]["exp_dir"])
    res = train(recipe, callbacks=[EnergyCallback(exp, recipe)], run_test=False)
    with track_energy("devtest", exp, recipe):
        test(recipe, res.best_ckpt or res.last_ckpt, out_dir=exp)
    return exp


def test_report_prints_the_figures(experiment, capsys):
    assert main(["report", str(experiment)]) == 0
    out = capsys.readouterr().out
    task = load_task(experiment / "checkpoints" / "best.ckpt")
    n_params = count_parameters(task.model)
    macs = count_macs(task.model, task.recipe["feats"])
    assert f"{n_params:,}" in out and f"{macs:,}" in out
    assert "MACs per 10 s" in out and "parameters" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.strip()}
    assert "kWh (estimated)" in lines["training"] or "kWh (measured)" in lines["training"]
    assert "kWh (" in lines["devtest"]
    assert "not measured" in lines["evaluation"]
    assert "CPU" in lines and "torch" in lines


def test_report_json_agrees_with_energy_json(experiment, capsys):
    assert main(["report", str(experiment), "--json"]) == 0
    fig = json.loads(capsys.readouterr().out)
    data = read_energy(experiment)
    assert set(data["phases"]) == {"training", "devtest"}
    assert data["phases"]["training"]["n_segments"] == 1  # counted once, also when training/runs.py adds its own
    work = data["phases"]["training"]["work"]  # what the segment did, for report --baseline
    assert work["epochs"] == 1 and work["steps"] >= 1 and work["clips"] == 12 * work["steps"]  # batches [6, 6, 0]
    for phase in ("training", "devtest"):
        assert fig["energy"]["phases"][phase]["kwh"] == pytest.approx(data["phases"][phase]["energy_kwh"])
        assert fig["energy"]["phases"][phase]["kwh"] >= 0
        assert fig["energy"]["phases"][phase]["method"] in ("estimated", "measured")
    assert fig["energy"]["phases"]["evaluation"]["kwh"] is None
    assert fig["macs"]["input_shape"][2] == 1 + 10 * 16000 // 256  # 10 s, not the recipe's 4 s clips
    assert fig["parameters"] == submission_figures(experiment)["parameters"] > 0
    assert "energy.json" in fig["hardware"]["source"]


def test_report_errors_and_missing_parts(experiment, tmp_path, capsys):
    missing = tmp_path / "nope"
    assert main(["report", str(missing)]) == 2
    assert f"experiment folder not found: {missing}" in capsys.readouterr().err
    assert main(["report", str(tmp_path)]) == 2
    assert "not an experiment folder" in capsys.readouterr().err
    assert main(["report", str(experiment), "--ckpt", str(tmp_path / "x.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    # recipe.yaml only (no checkpoint, no energy.json): model figures from the recipe, energy "not measured"
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(experiment / "recipe.yaml", bare / "recipe.yaml")
    assert main(["report", str(bare)]) == 0
    out = capsys.readouterr().out
    assert out.count("not measured") >= 3 and "no checkpoint found" in out and "energy.json not found" in out
    assert f"{count_parameters(load_task(experiment / 'checkpoints' / 'best.ckpt').model):,}" in out


# --------------------------------------------------------------------------- a folder that holds runs
def _recipe_only_run(folder: Path, source: Path) -> Path:
    folder.mkdir(parents=True)
    shutil.copy(source / "recipe.yaml", folder / "recipe.yaml")
    return folder


def test_report_on_a_folder_holding_one_run_uses_it_and_says_so(experiment, tmp_path, capsys):
    """#26: after `make demo`, `dcase-fpd report exp/demo` failed ('not an experiment folder') without
    naming exp/demo/run, the run folder inside it."""
    demo = tmp_path / "exp" / "demo"  # what `dcase-fpd demo` leaves: data/, feature_cache/, run/
    (demo / "data" / "synth" / "audio").mkdir(parents=True)
    (demo / "feature_cache").mkdir()
    shutil.copytree(experiment, demo / "run")
    assert main(["report", str(demo)]) == 0
    captured = capsys.readouterr()
    assert f"reporting on the one run inside it: {demo / 'run'}" in captured.err
    assert f"DCASE submission figures: {demo / 'run'} " in captured.out
    assert "kWh (" in next(line for line in captured.out.splitlines() if line.strip().startswith("training"))
    # --json keeps stdout a JSON document: the folder used is in it, the notice on stderr
    assert main(["report", str(demo), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["exp_dir"] == str(demo / "run")
    assert str(demo / "run") in captured.err
    # the fixture's own parent holds its run beside a cache folder, as exp/demo does
    assert main(["report", str(experiment.parent)]) == 0
    assert f"reporting on the one run inside it: {experiment}" in capsys.readouterr().err


def test_report_on_a_folder_holding_several_runs_lists_them(experiment, tmp_path, capsys):
    """A compare output (OUT/<recipe>/seed_<s>/) holds several runs: refused, every run named."""
    out = tmp_path / "cmp"
    runs = [_recipe_only_run(out / r / f"seed_{s}", experiment) for r in ("weak", "weak_fpd_ip") for s in (0, 1)]
    assert main(["report", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{out} is not a run folder but holds 4 runs" in captured.err
    assert all(str(r) in captured.err for r in runs)
    assert f"dcase-fpd report {runs[0]}" in captured.err
    assert main(["report", str(out / "weak")]) == 2  # one level down: the recipe's seeds
    assert "holds 2 runs" in capsys.readouterr().err
    # a run folder's own subfolders (tests/, late_epochs/) do not count as runs inside it
    assert main(["report", str(runs[0])]) == 0
    assert "inside it" not in capsys.readouterr().err


def test_report_baseline_folder_is_resolved_the_same_way(experiment, tmp_path, capsys):
    base = tmp_path / "baselines"
    for s in (0, 1):
        _recipe_only_run(base / f"seed_{s}", experiment)
    assert main(["report", str(experiment), "--baseline", str(base)]) == 2
    err = capsys.readouterr().err
    assert "holds 2 runs" in err and str(base / "seed_0") in err and str(base / "seed_1") in err
    nested = tmp_path / "baseline"
    shutil.copytree(experiment, nested / "run")
    assert main(["report", str(experiment), "--baseline", str(nested)]) == 0
    captured = capsys.readouterr()
    assert f"--baseline {nested} is not a run folder; using the one run inside it: {nested / 'run'}" in captured.err
    assert str(nested / "run") in captured.out


def test_gru_invisible_to_flop_counter_is_still_counted():
    """cuDNN runs a GRU as one fused kernel that FlopCounterMode does not count: simulate that on CPU."""
    from torch.utils._python_dispatch import _disable_current_modes

    class FusedGRU(nn.GRU):
        def forward(self, *args):
            with _disable_current_modes():  # the counter sees no op of this layer
                return super().forward(*args)

    m = TinyCRNN()
    m.rnn = FusedGRU(16, 6, num_layers=2, bidirectional=True, batch_first=True)
    mc = measure_macs(m, torch.randn(clip_input_shape(FEATS)))
    assert mc.recurrent_seen_by_torch == 0
    assert mc.total == count_macs(TinyCRNN(), FEATS)  # same figure as when torch counts the matmuls


def test_report_of_the_dcase2023_crnn_matches_the_published_size(tmp_path, capsys):
    """DCASE 2023 baseline: 1.11 M parameters, 930.9 M MACs for 10 s (within 5 %)."""
    from pathlib import Path

    from dcase_fpd_plugin.cli import main
    from dcase_fpd_plugin.recipe.loading import dump_recipe, load_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "dcase2023_baseline.yaml")
    exp = tmp_path / "crnn"
    exp.mkdir()
    (exp / "recipe.yaml").write_text(dump_recipe(recipe))
    fig = submission_figures(exp)
    assert abs(fig["parameters"] - 1.11e6) / 1.11e6 < 0.05
    assert abs(fig["macs_per_10s"] - 930.9e6) / 930.9e6 < 0.05
    assert main(["report", str(exp)]) == 0
    out = capsys.readouterr().out
    assert f"{fig['parameters']:,}" in out and "not measured" in out
