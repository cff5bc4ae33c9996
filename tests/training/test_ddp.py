"""A recipe trained with Lightning's DDP on 2 CPU processes (gloo), through the real CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

pytestmark = pytest.mark.slow

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def test_ddp_two_cpu_processes(demo_overrides, tmp_path):
    exp = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "train", str(DEMO), *demo_overrides,
           f"training.exp_dir={exp}", "training.n_epochs=2", "training.accelerator=cpu", "training.devices=2",
           "training.strategy=ddp", "training.log_every_n_steps=1", "data.weak_val_fraction=0",
           "branches.fpd.enabled=true", "branches.fpd.wps_start_epoch=0", "branches.fpd.gather_distributed=true"]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(29500 + os.getpid() % 1000))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "event-based F1" in proc.stdout  # rank 0 tested and printed the table, once
    assert proc.stdout.count("event-based F1 (macro) ") == 1
    metrics = json.loads((exp / "metrics.json").read_text())
    assert metrics["n_clips"] == 12
    state = torch.load(exp / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["epoch"] == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    # 24 + 24 training clips in slices of 6 + 6: 4 batches, split over 2 ranks -> 2 steps per epoch
    assert state["global_step"] == 4
    log = pd.read_csv(next(exp.glob("logs/version_*/metrics.csv")))
    assert log["train/fpd_fpd/n_positive_pairs_step"].notna().any()
