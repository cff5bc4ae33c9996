"""End-to-end runs of the weak-baseline recipe on the tiny toy dataset (seconds each)."""

import json

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import ExperimentExistsError, train
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


class Interrupt(Exception):
    pass


class InterruptAtEpoch(pl.Callback):
    """Simulates a crash / kill at the start of an epoch (after the previous one was saved)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise Interrupt()


def test_train_writes_outputs_and_metrics(demo_overrides):
    recipe = load_recipe(DEMO, demo_overrides)
    res = train(recipe)
    exp = res.exp_dir
    for name in ("metrics.json", "predictions.tsv", "recipe.yaml", "checkpoints/best.ckpt", "checkpoints/last.ckpt"):
        assert (exp / name).is_file(), name
    m = json.loads((exp / "metrics.json").read_text())
    for k in ("event_f1", "segment_f1", "tagging_f1", "intersection_f1", "psds1", "psds2"):
        assert k in m
    assert 0.0 <= m["segment_f1"] <= 1.0
    assert list(pd.read_csv(exp / "predictions.tsv", sep="\t").columns) == ["filename", "onset", "offset",
                                                                          "event_label"]
    assert len(list((exp / "scores").glob("*.tsv"))) == 12
    assert list((exp / "logs").rglob("metrics.csv")) and list((exp / "tb").rglob("events.out.tfevents*"))
    # a second train into the same folder is refused (nothing overwritten) ...
    with pytest.raises(ExperimentExistsError, match="--resume.*--force"):
        train(recipe)
    # ... and the resolved recipe there reloads
    assert load_recipe(exp / "recipe.yaml")["training"]["exp_dir"] == recipe["training"]["exp_dir"]


def test_resume_continues_after_interruption(demo_overrides):
    recipe = load_recipe(DEMO, demo_overrides + ["training.n_epochs=3"])
    with pytest.raises(Interrupt):
        train(recipe, callbacks=[InterruptAtEpoch(2)])
    exp = Path(recipe["training"]["exp_dir"])
    last = exp / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["epoch"] == 1  # epochs 0 and 1 finished
    res = train(recipe, resume=True)
    assert res.epochs_done == 3
    state = torch.load(last, weights_only=False)
    assert state["epoch"] == 2  # the counter went on from 2, not from 0
    logs = sorted((exp / "logs").glob("version_*/metrics.csv"))
    assert len(logs) == 2
    resumed_epochs = set(pd.read_csv(logs[1])["epoch"].dropna().astype(int))
    assert resumed_epochs == {2}
    m = json.loads((exp / "metrics.json").read_text())
    assert m["n_clips"] == 12 and 0 <= m["tagging_f1"] <= 1


def test_resume_without_checkpoint_refused(demo_overrides):
    recipe = load_recipe(DEMO, demo_overrides)
    with pytest.raises(ExperimentExistsError, match="no checkpoint"):
        train(recipe, resume=True)


def test_cli_train_test_infer(demo_overrides, demo_data, tmp_path, capsys):
    assert main(["train", str(DEMO), *demo_overrides]) == 0
    out = capsys.readouterr().out
    assert "event" in out.lower() and "psds" in out.lower()
    n_epochs = load_recipe(DEMO, demo_overrides)["training"]["n_epochs"]
    assert f"trained {n_epochs} epochs, fit " in out and "peak GPU memory" not in out  # on the CPU: no peak
    exp = Path(load_recipe(DEMO, demo_overrides)["training"]["exp_dir"])
    ckpt = exp / "checkpoints" / "best.ckpt"
    # test into another folder, with another median filter
    assert main(["test", str(DEMO), *demo_overrides, "eval.median_window=1", "--ckpt", str(ckpt),
                 "--out", str(tmp_path / "t")]) == 0
    assert json.loads((tmp_path / "t" / "metrics.json").read_text())["median_window"] == 1
    # infer on any folder
    preds = tmp_path / "preds.tsv"
    assert main(["infer", "--ckpt", str(ckpt), "--audio", demo_data["val_folder"], "--out", str(preds),
                 "--threshold", "0.3"]) == 0
    df = pd.read_csv(preds, sep="\t")
    assert list(df.columns) == ["filename", "onset", "offset", "event_label"]
    assert (df.offset > df.onset).all()
    # an existing output is not overwritten without --force
    assert main(["infer", "--ckpt", str(ckpt), "--audio", demo_data["val_folder"], "--out", str(preds)]) == 2
    assert "--force" in capsys.readouterr().err


def test_cli_reports_bad_input_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "r.yaml"
    bad.write_text("training:\n  n_epoch: 3\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "r.yaml:2" in err and "training.n_epoch" in err
    assert main(["train", str(DEMO), f"data.synth_folder={tmp_path / 'none'}"]) == 2
    assert "'data.synth_folder': folder not found" in capsys.readouterr().err


class WorseEveryEpoch(pl.Callback):
    """Makes the monitored validation score fall every epoch (runs before the checkpoint callbacks)."""

    def on_validation_end(self, trainer, pl_module):
        trainer.callback_metrics["val/obj"] = torch.tensor(1.0 - trainer.current_epoch)


def test_last_checkpoint_is_the_last_epoch_even_without_improvement(demo_overrides):
    recipe = load_recipe(DEMO, demo_overrides + ["training.n_epochs=2"])
    train(recipe, run_test=False, callbacks=[WorseEveryEpoch()])
    ckpts = Path(recipe["training"]["exp_dir"]) / "checkpoints"
    assert torch.load(ckpts / "last.ckpt", weights_only=False)["epoch"] == 1
    assert torch.load(ckpts / "best.ckpt", weights_only=False)["epoch"] == 0
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.ckpt", "last.ckpt"]


@pytest.mark.parametrize("n_epochs, every", [(2, 5), (3, 2)])
def test_the_final_epoch_is_validated_and_checkpointed(demo_overrides, n_epochs, every):
    """#15 rows 1-2: an interval above n_epochs left no checkpoint; 3 epochs every 2 lost epoch 3."""
    recipe = load_recipe(DEMO, demo_overrides + [f"training.n_epochs={n_epochs}", f"training.val_every_n_epochs={every}"])
    res = train(recipe)
    assert torch.load(res.exp_dir / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == n_epochs - 1
    assert (res.exp_dir / "metrics.json").is_file() and res.metrics is not None


def test_cli_test_never_writes_over_the_training_results(demo_overrides, tmp_path, capsys):
    """#15 row 4: `test` without --out used to replace the training run's metrics.json."""
    assert main(["train", str(DEMO), *demo_overrides]) == 0
    exp = Path(load_recipe(DEMO, demo_overrides)["training"]["exp_dir"])
    before = (exp / "metrics.json").read_bytes()
    ckpt = exp / "checkpoints" / "best.ckpt"
    assert main(["test", str(DEMO), *demo_overrides, "eval.threshold=0.9", "--ckpt", str(ckpt)]) == 0
    assert (exp / "metrics.json").read_bytes() == before
    (written,) = (exp / "tests").glob("best_*/metrics.json")
    assert json.loads(written.read_text())["threshold"] == 0.9
    out = tmp_path / "t"
    assert main(["test", str(DEMO), *demo_overrides, "--ckpt", str(ckpt), "--out", str(out)]) == 0
    assert main(["test", str(DEMO), *demo_overrides, "--ckpt", str(ckpt), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["test", str(DEMO), *demo_overrides, "--ckpt", str(ckpt), "--out", str(out), "--force"]) == 0


def test_force_keeps_the_old_run_until_the_new_one_trains(demo_overrides, demo_data, tmp_path):
    """#15 row 3: `train --force` used to delete the old run before the new one's TSVs were read."""
    recipe = load_recipe(DEMO, demo_overrides)
    res = train(recipe)
    before = {p.relative_to(res.exp_dir): p.read_bytes() for p in res.exp_dir.rglob("*")
              if p.is_file() and p.suffix in (".json", ".tsv", ".ckpt", ".yaml")}
    bad = tmp_path / "weak.tsv"
    bad.write_text("filename\tevent_labels\n" + Path(demo_data["weak_tsv"]).read_text().split("\n", 1)[1]
                   + "weak_0000.wav\tnot_a_class\n")
    with pytest.raises(Exception, match="weak.tsv:26"):  # a data error found when the TSV is read
        train(load_recipe(DEMO, demo_overrides + [f"data.weak_tsv={bad}"]), force=True)
    after = {p.relative_to(res.exp_dir): p.read_bytes() for p in res.exp_dir.rglob("*")
             if p.is_file() and p.suffix in (".json", ".tsv", ".ckpt", ".yaml")}
    assert after == before and not list(res.exp_dir.glob(".replaced_*"))
    # a clean --force replaces the run and leaves nothing set aside
    train(recipe, force=True)
    assert not list(res.exp_dir.glob(".replaced_*")) and (res.exp_dir / "metrics.json").is_file()


def test_sigint_says_what_was_kept_and_how_to_resume(tmp_path, capsys):
    """#15 row 14: SIGINT ended with status 1 and no message."""
    from types import SimpleNamespace

    from dcase_fpd_plugin.training.callbacks import InterruptNotice

    trainer = SimpleNamespace(is_global_zero=True, current_epoch=2)
    InterruptNotice(tmp_path).on_exception(trainer, None, KeyboardInterrupt())
    err = capsys.readouterr().err
    assert "interrupted (SIGINT) in epoch 3" in err and "nothing was checkpointed" in err and "--resume" in err
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"x")
    InterruptNotice(tmp_path).on_exception(trainer, None, KeyboardInterrupt())
    assert "last.ckpt holds the last finished epoch" in capsys.readouterr().err
    InterruptNotice(tmp_path).on_exception(trainer, None, ValueError("other"))
    assert capsys.readouterr().err == ""


def test_test_refuses_other_classes_than_the_checkpoints(demo_overrides, capsys):
    """#15 row 9: a recipe's data.classes that differ from the checkpoint's were silently ignored."""
    assert main(["train", str(DEMO), *demo_overrides]) == 0
    exp = Path(load_recipe(DEMO, demo_overrides)["training"]["exp_dir"])
    capsys.readouterr()
    assert main(["test", str(DEMO), *demo_overrides, "--ckpt", str(exp / "checkpoints" / "best.ckpt"),
                 "data.classes=[chirp, tone_beeps, noise_burst, harmonic_hum, clicks]"]) == 2
    err = capsys.readouterr().err
    assert "'data.classes'" in err and "best.ckpt" in err and not (exp / "tests").exists()


def test_infer_on_a_folder_with_a_corrupt_file(demo_overrides, demo_data, tmp_path, capsys):
    """#15 row 12: the error said 'raise data.max_missing_fraction', which infer cannot take."""
    import shutil

    assert main(["train", str(DEMO), *demo_overrides, "training.n_epochs=1"]) == 0
    ckpt = Path(load_recipe(DEMO, demo_overrides)["training"]["exp_dir"]) / "checkpoints" / "best.ckpt"
    folder = tmp_path / "audio"
    folder.mkdir()
    for name in sorted(Path(demo_data["val_folder"]).glob("*.wav"))[:3]:
        shutil.copy(name, folder)
    (folder / "broken.wav").write_bytes(b"RIFF....not audio")
    capsys.readouterr()
    assert main(["infer", "--ckpt", str(ckpt), "--audio", str(folder), "--out", str(tmp_path / "p.tsv")]) == 2
    err = capsys.readouterr().err
    assert "broken.wav" in err and "--skip-unreadable" in err and "max_missing_fraction" not in err
    with pytest.warns(UserWarning, match="broken.wav"):
        assert main(["infer", "--ckpt", str(ckpt), "--audio", str(folder), "--out", str(tmp_path / "p.tsv"),
                     "--skip-unreadable"]) == 0
    assert "broken.wav" not in (tmp_path / "p.tsv").read_text()


_KILL_SCRIPT = '''
import json, os, signal, sys, time
from pathlib import Path
import pytorch_lightning as pl
from dcase_fpd_plugin.recipe import load_recipe
from dcase_fpd_plugin.training.runs import train

class KillMidEpoch(pl.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 2:  # epochs 0 and 1 are checkpointed
            Path(sys.argv[2]).write_text(json.dumps({"killed": time.time()}))
            os.kill(os.getpid(), signal.SIGKILL)

train(load_recipe(sys.argv[1], json.loads(sys.argv[3])), callbacks=[KillMidEpoch()])
'''


def test_sigkill_then_resume_keeps_the_killed_segments_energy(demo_overrides, tmp_path):
    """#15 row 15: after a SIGKILL, `--resume` trained on but energy.json dropped the killed segment."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from dcase_fpd_plugin.energy.record import read_energy
    from dcase_fpd_plugin.report.submission import format_report, submission_figures

    overrides = demo_overrides + ["training.n_epochs=3", "energy.measure_power_secs=0.5"]
    script, stamp = tmp_path / "kill.py", tmp_path / "killed.json"
    script.write_text(_KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DEMO.parents[1]), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script), str(DEMO), str(stamp), json.dumps(overrides)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    killed = json.loads(stamp.read_text())["killed"]
    recipe = load_recipe(DEMO, overrides)
    exp = Path(recipe["training"]["exp_dir"])
    assert torch.load(exp / "checkpoints" / "last.ckpt", weights_only=False)["epoch"] == 1
    resume_called = time.time()
    train(recipe, resume=True, run_test=False)
    tr = read_energy(exp)["phases"]["training"]
    recovered = [s for s in tr["segments"] if s.get("recovered") == "killed"]
    assert len(recovered) == 1 and tr["n_segments"] == 2  # the killed segment, then the resumed one
    seg = recovered[0]
    assert seg["energy_kwh"] > 0 and seg["duration_s"] > 0 and seg["interrupted"] is True
    assert seg["work"]["steps"] >= 1 and seg["work"]["clips"] == seg["work"]["steps"] * 12  # batch [6, 6, 0]
    assert tr["work"]["clips"] == sum(s["work"]["clips"] for s in tr["segments"])  # normalisable per clip
    assert tr["energy_kwh"] == pytest.approx(sum(s["energy_kwh"] for s in tr["segments"]))
    # the tail after codecarbon's last reading is kept as unmeasured seconds, reaching past the kill
    (span,) = tr["unmeasured"]
    assert span["duration_s"] >= resume_called - killed > 0 and tr["unmeasured_s"] == span["duration_s"]
    assert not (exp / "energy" / "training.live.json").exists()
    out = format_report(submission_figures(exp))
    assert "1 recovered after a kill" in out and "lower bound" in out and "unmeasured" in out


def test_training_line_says_epochs_fit_and_gpu_peak():
    from dcase_fpd_plugin.cli import training_line

    assert training_line({"event_f1": 0.3}) is None  # a plain test's metrics
    line = training_line({"epochs_trained": 40, "stopped_by_time_limit": False, "fit_wall_s": 160.97,
                          "peak_gpu_mb": 828})
    assert line.startswith("trained 40 epochs, fit 161 s") and "peak GPU memory 828 MB" in line
    assert "stopped by training.max_train_s" in training_line({"epochs_trained": 3, "stopped_by_time_limit": True})
