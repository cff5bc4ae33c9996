"""The paper's comparison (Tables 1-3, Fig. 3) at small scale on real recordings.

1. Uses a DESED-size bench (``--bench DIR``, built by ``dcase-fpd bench build``: selection on its
   synthetic validation set + 10 % of its weak clips, metrics on its held-out test set), or builds a
   DESED-format mini dataset from the soundbank (``dcase_fpd_plugin.synth.mini_desed``: SS, RW and a
   validation set from disjoint recordings, no test set: selection and metrics on the same clips).
2. Runs ``dcase-fpd compare`` on the weak baseline, weak + FPD-IP and weak + FPD-Euc
   (``recipes/weak.yaml``, ``weak_fpd_ip.yaml``, ``weak_fpd_euc.yaml``) for ``--seeds`` seeds,
   ``--jobs`` runs in parallel (one ``compare`` per recipe and seed, 1 torch thread each), then
   once more over all recipes and seeds, which trains nothing and writes the tables.
3. Prints ``summary.md`` (mean ± std and best per recipe, as the paper's tables) and the wall time;
   ``event_f1_sorted.png`` is the paper's Fig. 3.

    python benchmarks/paper_tables.py --out exp/paper_tables [--bench DIR] [--seeds 5] [--jobs 2] [key=value ...]

Everything is resumable: rerunning the same command skips finished runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = [REPO / "recipes" / n for n in ("weak.yaml", "weak_fpd_ip.yaml", "weak_fpd_euc.yaml")]

# Sized for about an hour on 2 CPU cores with the mini set (see the results log in docs/).
DEFAULT_OVERRIDES = [
    "feats.n_mels=64",
    "net.channels=[32, 64, 128]",
    "net.freq_pool=[4, 4, 4]",
    "training.n_epochs=24",
    "training.batch_size=[24, 24, 0]",
    "training.precision=auto",  # bf16 only where the device has fast bf16 (not on an AMD EPYC)
    "training.num_threads=1",
    "training.channels_last=true",
    "training.progress_bar=false",
    "training.test_last_n_epochs=5",
    "branches.fpd.wps_start_epoch=8",
]


def soundbank_default() -> Path:
    env = os.environ.get("DCASE_FPD_SOUNDBANK")
    return Path(env) if env else REPO.parent / "shared" / "soundbank"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="exp/paper_tables")
    ap.add_argument("--soundbank", type=Path, default=soundbank_default())
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=2, help="compare processes in parallel (1 torch thread each)")
    ap.add_argument("--n-ss", type=int, default=480)
    ap.add_argument("--n-rw", type=int, default=480)
    ap.add_argument("--n-val", type=int, default=240)
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--data", type=Path, help="mini DESED folder to build or reuse (default: OUT/data); "
                    "share one between experiments to compare them on the same clips")
    ap.add_argument("--bench", type=Path, help="a DESED-size bench built by `dcase-fpd bench build` (instead of "
                    "the mini set): validation on its synthetic validation set + 10 %% of its weak clips, "
                    "metrics on its held-out test set")
    ap.add_argument("--recipes", nargs="+", type=Path, default=RECIPES,
                    help="recipes to compare, the baseline first (default: weak, weak_fpd_ip, weak_fpd_euc)")
    ap.add_argument("overrides", nargs="*", help="key.path=value, applied to every recipe after the defaults")
    args = ap.parse_args()
    from dcase_fpd_plugin.experiments.command import split_recipes_and_overrides

    # `--recipes a.yaml b.yaml key=value` : argparse hands the overrides to --recipes; take them back
    # (in their order, before the other overrides) so that they still win over DEFAULT_OVERRIDES.
    recipes, moved = split_recipes_and_overrides([str(r) for r in args.recipes])
    args.recipes, args.overrides = [Path(r) for r in recipes], moved + args.overrides
    if not args.recipes:
        raise SystemExit("--recipes needs at least one recipe file")

    from dcase_fpd_plugin.compat import quiet_dependencies
    from dcase_fpd_plugin.synth.mini_desed import build_mini_desed

    quiet_dependencies()
    out = Path(args.out)
    t0 = time.time()
    if args.bench:
        from dcase_fpd_plugin.synth.bench import read_bench

        bench = read_bench(args.bench)
        data_overrides = [*bench["overrides"], f"data.cache_dir={args.bench / 'feature_cache'}"]
        print("bench: " + ", ".join(f"{k} {v['n_clips']} clips" for k, v in bench["sets"].items()))
    else:
        data_dir = args.data or out / "data"
        data = build_mini_desed(args.soundbank, data_dir, n_ss=args.n_ss, n_rw=args.n_rw, n_val=args.n_val,
                                seed=args.data_seed, workers=2, progress=True)
        classes = data.pop("classes")
        print(f"mini DESED ready in {time.time() - t0:.0f} s: {args.n_ss} SS, {args.n_rw} RW, {args.n_val} "
              f"validation clips, classes {classes} (no test split: selection and metrics on the validation set)")
        data_overrides = [f"data.{k}={v}" for k, v in data.items()] + [
            f"data.classes=[{', '.join(classes)}]", f"data.cache_dir={data_dir / 'feature_cache'}",
            "data.max_missing_fraction=0", "data.weak_val_fraction=0",
            "data.test_folder=null", "data.test_tsv=null", "data.test_dur=null"]
    overrides = [*data_overrides, *DEFAULT_OVERRIDES, *args.overrides]
    compare = [sys.executable, "-m", "dcase_fpd_plugin.cli", "compare", *map(str, args.recipes), "--out", str(out / "runs")]
    # One `compare RECIPE --seeds 1 --seed-start S` per (seed, recipe), handed to --jobs worker threads
    # as they free up (seed blocks per job left a core idle for the last third of a 5-seed run).
    tasks = [(seed, recipe) for seed in range(args.seeds) for recipe in args.recipes]
    queue = list(reversed(tasks))
    lock = threading.Lock()
    failures: list[str] = []
    out.mkdir(parents=True, exist_ok=True)

    def worker(j: int) -> None:
        with open(out / f"compare_job{j}.log", "a") as log:
            while True:
                with lock:
                    if not queue or failures:
                        return
                    seed, recipe = queue.pop()
                cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "compare", str(recipe), "--out",
                       str(out / "runs"), "--seeds", "1", "--seed-start", str(seed), *overrides]
                log.flush()
                if subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode:
                    with lock:
                        failures.append(f"{Path(recipe).stem} seed {seed}")

    t1 = time.time()
    threads = [threading.Thread(target=worker, args=(j,)) for j in range(max(1, min(args.jobs, len(tasks))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"compare failed for {', '.join(failures)}; see {out}/compare_job*.log (rerun to resume)")
    subprocess.run(compare + ["--seeds", str(args.seeds), *overrides], check=True, stdout=subprocess.DEVNULL)
    wall = time.time() - t1
    print((out / "runs" / "summary.md").read_text())
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; {len(threads)} parallel jobs; "
          f"training + testing wall time {wall / 60:.1f} min ({args.seeds} seeds x {len(args.recipes)} recipes)")
    print("command: python benchmarks/paper_tables.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
