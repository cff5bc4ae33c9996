"""Training throughput (clips/s) with and without the on-disk feature cache, in one run.

Builds the toy demo dataset (DESED format, 10-s clips at 16 kHz) in a temp folder, then trains
the weak baseline of recipes/demo.yaml for ``--epochs`` epochs twice, alternating the order:
once computing log-mels every epoch (no cache) and once reading them from a cache that was
filled beforehand (the first epoch of a real run fills it; we report the steady state). Prints
clips/s for both and their ratio.

    python benchmarks/bench_feature_cache.py [--epochs 2] [--clips 96] [--repeats 2]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from dcase_fpd_plugin.compat import quiet_dependencies
from dcase_fpd_plugin.data.datamodule import SEDDataModule
from dcase_fpd_plugin.data.demo import build_demo_dataset
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--clips", type=int, default=96, help="clips per training source")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    quiet_dependencies()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = build_demo_dataset(tmp / "data", n_synth=args.clips, n_weak=args.clips, n_val=8)
        base = [f"data.{k}={v}" for k, v in paths.items()] + [
            f"data.cache_dir={tmp / 'cache'}", f"training.n_epochs={args.epochs}", "training.progress_bar=false",
            "eval.psds=false"]
        recipe = load_recipe(REPO / "recipes" / "demo.yaml", base)
        # fill the cache (what the first epoch of a cached run does)
        dm = SEDDataModule.from_recipe(recipe, 1, 0.064)
        dm.setup("fit")
        for s in dm.train_sets + [dm.val_set]:
            for r in s.records:
                dm.features(r.path)
        bs = recipe["training"]["batch_size"]
        clips_per_epoch = min(args.clips // b for b in bs[:2] if b) * sum(bs)
        rates: dict[str, list[float]] = {"no cache": [], "cache": []}
        for rep in range(args.repeats):
            order = ["no cache", "cache"] if rep % 2 == 0 else ["cache", "no cache"]
            for mode in order:
                r = load_recipe(REPO / "recipes" / "demo.yaml",
                                base + [f"training.exp_dir={tmp / f'exp_{mode}_{rep}'.replace(' ', '_')}"])
                t0 = time.perf_counter()
                train(r, run_test=False, use_cache=(mode == "cache"))
                dt = time.perf_counter() - t0
                rates[mode].append(clips_per_epoch * args.epochs / dt)
    print(f"machine: {platform.processor() or platform.machine()}, torch threads 1, "
          f"{args.epochs} epochs x {clips_per_epoch} clips, {args.repeats} repeats (alternating order); "
          "includes validation on 8 clips per epoch")
    for mode, v in rates.items():
        print(f"{mode:>9}: {statistics.median(v):6.1f} clips/s  (runs: {', '.join(f'{x:.1f}' for x in v)})")
    print(f"    ratio: {statistics.median(rates['cache']) / statistics.median(rates['no cache']):.2f}x "
          "(cache / no cache)")


if __name__ == "__main__":
    main()
