"""Start-up: seconds from the ``dcase-fpd train`` command to its first training step, warm cache.

    python benchmarks/bench_startup.py [--recipe recipes/dcase2023_baseline.yaml] [--bench DIR]
        [--repeat 3] [key=value ...]

Data: the demo dataset built in a temp folder (48 clips per source), or a bench built by
``dcase-fpd bench build`` (``--bench``: its ``bench.json`` overrides, DESED sizes). A first run warms
the feature cache, the feature store and the audio-header index; then ``--repeat`` fresh processes run
``python -m dcase_fpd_plugin.cli train RECIPE ...`` (what the ``dcase-fpd`` script runs) and are
stopped at their first training step. Side by side, the same number of fresh processes time
``import pytorch_lightning`` alone: the floor no recipe can go under. Prints the median of each phase
(child process clock: interpreter start excluded, import of the CLI included) and as its last line::

    startup_s=X import_floor_s=Y above_floor_s=Z device=D

``startup_s`` is wall time in the parent, from launching the process to the first step's report.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARK = "STARTUP_PHASES "


def child(argv: list[str]) -> None:
    """Run the CLI's train command; report the phases at the first training step and exit."""
    t0 = time.perf_counter()
    import importlib.abc
    import importlib.util

    phases: dict[str, float] = {}

    def mark(name: str) -> None:
        phases.setdefault(name, round(time.perf_counter() - t0, 3))

    def patch(training) -> None:  # the training module, once imported: add a callback that reports
        import pytorch_lightning as pl

        class FirstStep(pl.Callback):
            def on_fit_start(self, trainer, pl_module):
                mark("fit started (data set up, model built)")

            def on_train_start(self, trainer, pl_module):
                mark("train loop started")

            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                mark("first training step")
                print(MARK + json.dumps(phases), flush=True)
                os._exit(0)

        build = training.build_trainer

        def build_trainer(recipe, exp_dir, callbacks=(), **kw):
            mark("Trainer built")
            return build(recipe, exp_dir, [FirstStep(), *callbacks], **kw)

        training.build_trainer = build_trainer

    class Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "dcase_fpd_plugin.training.runs":
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                mark("training module imported (Lightning, torch)")
                patch(module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, Hook())
    from dcase_fpd_plugin.cli import main

    mark("CLI imported")
    main(["train", *argv])
    raise SystemExit("the run ended before a training step")


def _timed_child(argv: list[str], timeout: float = 300) -> tuple[float, dict[str, float]]:
    """Wall seconds from launching the child to its report, and its phases; the child is killed at
    ``timeout`` seconds (its stderr, kept in a file so that it cannot fill a pipe, is shown then)."""
    with tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--child", *argv], stdout=subprocess.PIPE,
                                stderr=err, text=True, cwd=REPO)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        phases = None
        try:
            for line in proc.stdout:
                if line.startswith(MARK):
                    phases = json.loads(line[len(MARK):])
                    break
            wall = time.perf_counter() - t
            proc.wait()
        finally:
            timer.cancel()
        if phases is None:
            err.seek(0)
            raise SystemExit(f"the child never reached a training step within {timeout:.0f} s "
                             f"(exit {proc.returncode}):\n{err.read()[-3000:]}")
    return wall, phases


def import_floor() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import pytorch_lightning"], check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "dcase2023_baseline.yaml"))
    ap.add_argument("--bench", type=Path, help="a bench folder (dcase-fpd bench build); default: demo data")
    ap.add_argument("--repeat", type=int, default=3, help="timed processes of each kind (default 3)")
    ap.add_argument("overrides", nargs="*", help="key.path=value overrides for the recipe")
    args = ap.parse_intermixed_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    if args.bench:
        bench = json.loads((args.bench / "bench.json").read_text())
        data_ov = list(bench["overrides"]) + [f"data.cache_dir={args.bench / 'feature_cache'}"]
        what = f"bench {args.bench}"
    else:
        sys.path.insert(0, str(REPO))
        from dcase_fpd_plugin.data.demo import build_demo_dataset, demo_overrides

        data = tmp / "data"
        paths = build_demo_dataset(data, n_synth=48, n_weak=48, n_val=24, n_test=8)
        data_ov = demo_overrides(paths, data / "feature_cache")
        what = f"demo data ({data}, 48 clips per source)"
    argv = [args.recipe, *data_ov, *args.overrides, f"training.exp_dir={tmp / 'exp'}",
            "training.progress_bar=false", "--force"]
    print(f"recipe {args.recipe}, {what}; warming the caches with a first run ...", flush=True)
    t = time.perf_counter()
    _timed_child(argv, timeout=3600)
    print(f"  warm-up run reached its first step in {time.perf_counter() - t:.1f} s", flush=True)

    walls, floors, runs = [], [], []
    for _ in range(args.repeat):  # interleaved, so that both kinds see the same machine
        wall, phases = _timed_child(argv)
        walls.append(wall)
        runs.append(phases)
        floors.append(import_floor())
        print(f"  run {len(walls)}: command to first step {wall:.2f} s, import pytorch_lightning alone "
              f"{floors[-1]:.2f} s", flush=True)  # each as it comes: a run cut by a deadline keeps them
    print(f"{'phase (child clock, median of ' + str(args.repeat) + ')':<50} s")
    for name in runs[0]:
        print(f"  {name:<48} {statistics.median(r[name] for r in runs):6.2f}")
    wall, floor = statistics.median(walls), statistics.median(floors)
    print(f"command to first step (parent clock): {', '.join(f'{w:.2f}' for w in walls)} s; "
          f"import pytorch_lightning alone: {', '.join(f'{f:.2f}' for f in floors)} s")
    import torch  # after the timings: which device the runs trained on (accelerator auto)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"startup_s={wall:.2f} import_floor_s={floor:.2f} above_floor_s={wall - floor:.2f} device={device}")


if __name__ == "__main__":
    main()
