"""Training losses of every bundled recipe on the demo data, for two source trees side by side.

For each recipe: one epoch of ``dcase-fpd train`` on the demo dataset (seed 0, batch ``[12, 12, 0]``,
no mean teacher, WPS from epoch 0, no energy tracking, no PSDS), once with the package of
``--tree`` (default: this checkout) and, with ``--against OLD``, once with the package of another
checkout (e.g. ``git worktree add /tmp/old REV``), each through ``PYTHONPATH``. Prints the first
step losses of each and whether all of them are identical: the check that a change leaves training
as it was (or, where it should not, by how much it moved).

    python benchmarks/demo_losses.py --against /tmp/old [--recipes weak weak_fpd_ip] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("weak", "weak_fpd_ip", "weak_fpd_euc", "dcase2023_baseline", "dcase2023_baseline_fpd")
SETTINGS = ["training.n_epochs=1", "training.batch_size=[12,12,0]", "training.seed=0", "energy.enabled=false",
            "eval.psds=false", "training.log_every_n_steps=1", "training.mean_teacher=false",
            "training.n_epochs_warmup=1"]


def step_losses(tree: Path, recipe: str, overrides: list[str], exp_dir: Path) -> list[float]:
    """``train/loss_step`` of one epoch of ``recipe`` run with the package of ``tree``."""
    fpd = ["branches.fpd.wps_start_epoch=0"] if recipe.endswith(("_fpd", "_fpd_ip", "_fpd_euc")) else []
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "train", recipe, *overrides, *SETTINGS, *fpd,
           f"training.exp_dir={exp_dir}"]
    exp_dir.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(cmd, env=env, cwd=exp_dir.parent, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {recipe} failed:\n{done.stderr[-2000:]}")
    log = pd.read_csv(next(exp_dir.glob("logs/*/metrics.csv")))
    return log["train/loss_step"].dropna().tolist()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, default=ROOT, help="the checkout measured (default: this one)")
    ap.add_argument("--against", type=Path, help="another checkout to compare with")
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES))
    ap.add_argument("--out", type=Path, help="folder for the demo data and runs (default: a temp folder)")
    ap.add_argument("--show", type=int, default=3, help="losses printed per run")
    args = ap.parse_args(argv)

    from dcase_fpd_plugin.data.demo import build_demo_dataset, demo_overrides

    out = args.out or Path(tempfile.mkdtemp(prefix="demo_losses."))
    overrides = demo_overrides(build_demo_dataset(out / "data"), out / "cache")
    trees = {"tree": args.tree, **({"against": args.against} if args.against else {})}
    same_all = True
    for recipe in args.recipes:
        losses = {tag: step_losses(tree.resolve(), recipe, overrides, out / tag / recipe) for tag, tree in trees.items()}
        line = "  ".join(f"{tag} {' '.join(f'{x:.6f}' for x in v[:args.show])}" for tag, v in losses.items())
        if args.against:
            a, b = losses["tree"], losses["against"]
            same = a == b
            same_all &= same
            worst = max((abs(x - y) for x, y in zip(a, b)), default=0.0)
            line += f"  -> {'identical' if same else 'DIFFERENT'} over {min(len(a), len(b))} steps (max |diff| {worst:.3g})"
        print(f"{recipe:24s} {line}", flush=True)
    return 0 if same_all else 1


if __name__ == "__main__":
    sys.exit(main())
