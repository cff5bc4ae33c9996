"""Running a planned comparison: the trainings (one process, or ``--jobs`` subprocesses), progress, the reports at the end."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic import atomic_write_text
from .plan import plan_runs
from .records import CompareError, ComparisonResult, PlannedRun, RUN_INFO_FILE, RunRecord, load_run_record
from .reports import write_reports


def _silent(_: str) -> None:
    """A log that prints nothing."""


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def progress_line(index: int, total: int, planned: PlannedRun, elapsed_s: float,
                  trained_s: Sequence[float], to_train_left: int) -> str:
    """``[3/8] weak seed 1: training (elapsed 0:01:05, ~0:02:10 left)``; the estimate is the mean
    time of the runs trained so far x the runs still to train (unknown before the first)."""
    verb = {"skip": "complete, skipped", "resume": "resuming from its last checkpoint",
            "restart": "restarting (partial run without a checkpoint)", "new": "training",
            "redo": "redoing (--force)"}[planned.action]
    if trained_s:
        left = f"~{_clock(float(np.mean(trained_s)) * to_train_left)} left"
    else:
        left = "time left unknown yet" if to_train_left else "nothing left to train"
    return f"[{index}/{total}] {planned.name} seed {planned.seed}: {verb} (elapsed {_clock(elapsed_s)}, {left})"


RUN_LOG_FILE = "compare.log"


def _train_in_subprocesses(planned: Sequence[PlannedRun], out: Path, overrides: Sequence[str], jobs: int,
                           force: bool, log: Callable[[str], None]) -> list[float]:
    """Train the runs that need it, ``jobs`` at a time, each in its own ``dcase-fpd compare`` process
    (one recipe, one seed; its output in ``<run folder>/compare.log``). The feature cache is shared
    (content-keyed, atomic writes). Returns the wall seconds of each trained run; raises CompareError
    naming the runs that failed and their logs."""
    import os
    import subprocess
    import sys
    import threading

    todo = [p for p in planned if p.action != "skip"]
    queue = list(reversed(todo))
    lock = threading.Lock()
    walls: list[float] = []
    failed: list[str] = []
    threads_per_run = max(1, (os.cpu_count() or 1) // jobs)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                p = queue.pop()
            extra = [f"training.num_threads={threads_per_run}"] if not p.recipe["training"]["num_threads"] else []
            cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "compare", str(p.recipe_path), "--out", str(out),
                   "--seeds", "1", "--seed-start", str(p.seed), "--run-only", *(["--force"] if force else []),
                   *overrides, *extra]
            p.exp_dir.mkdir(parents=True, exist_ok=True)
            t0 = time.monotonic()
            with open(p.exp_dir / RUN_LOG_FILE, "a") as f:
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
            wall = time.monotonic() - t0
            with lock:
                if rc:
                    failed.append(f"{p.name} seed {p.seed} (exit {rc}; see {p.exp_dir / RUN_LOG_FILE})")
                else:
                    walls.append(wall)
                log(f"  {p.name} seed {p.seed}: {'failed' if rc else 'done'} in {_clock(wall)} "
                    f"({len(walls) + len(failed)}/{len(todo)})")

    pool = [threading.Thread(target=worker) for _ in range(min(jobs, len(todo)))]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if failed:
        raise CompareError("runs failed: " + "; ".join(failed) + " (rerun the same command to resume)")
    return walls


def run_comparison(recipe_paths: Sequence[str | Path], n_seeds: int, out: str | Path,
                   overrides: Sequence[str] = (), *, seed_start: int = 0, force: bool = False,
                   log: Callable[[str], None] = print, jobs: int = 1, reports: bool = True) -> ComparisonResult:
    """Train and test every recipe with ``n_seeds`` seeds, then write the reports into ``out``.

    Everything is validated first (:func:`plan_runs`); complete runs are skipped, interrupted
    ones resumed. ``jobs > 1`` trains that many runs at once, each in its own process (one GPU is
    shared; on CPU each gets ``cpu_count // jobs`` torch threads unless its recipe sets
    ``training.num_threads``). ``reports=False`` only trains. Returns the run records and the
    report files.
    """
    from ..training import runs as training_runs

    if n_seeds < 1:
        raise CompareError(f"--seeds must be >= 1, got {n_seeds}")
    if seed_start < 0:
        raise CompareError(f"--seed-start must be >= 0, got {seed_start}")
    out = Path(out)
    seeds = list(range(seed_start, seed_start + n_seeds))
    planned = plan_runs(recipe_paths, seeds, out, overrides, force)
    # the extra processes of a multi-process (DDP) run only help train: global rank 0 tests and reports
    rank_zero = not any(training_runs.is_rank_above_zero(p.recipe) for p in planned)
    if not rank_zero:
        log = _silent
    to_train = sum(p.action != "skip" for p in planned)
    log(f"compare: {len(planned)} runs ({len(set(p.name for p in planned))} recipes x {n_seeds} seeds), "
        f"{len(planned) - to_train} already complete, {to_train} to train; output in {out}")
    if jobs < 1:
        raise CompareError(f"--jobs must be >= 1, got {jobs}")
    checked: set[str] = set()
    for p in planned:  # every recipe's every set, before the first run: a bad test TSV stops nothing half-done
        if p.action != "skip" and p.name not in checked:
            log(f"compare: checking the data of {p.name} (training, validation and test sets)")
            training_runs.checked_data(p.recipe)
            checked.add(p.name)
    start = time.monotonic()
    trained_s: list[float] = []
    records: list[RunRecord] = []
    if jobs > 1 and to_train and rank_zero:
        log(f"compare: {to_train} runs, {min(jobs, to_train)} at a time")
        trained_s = _train_in_subprocesses(planned, out, overrides, jobs, force, log)
        planned = [PlannedRun(p.name, p.recipe_path, p.seed, p.exp_dir, p.recipe, "skip") for p in planned]
    for i, p in enumerate(planned, start=1):
        left = to_train - len(trained_s)
        if p.action != "skip" or jobs == 1:
            log(progress_line(i, len(planned), p, time.monotonic() - start, trained_s, left))
        if p.action != "skip":
            t0 = time.monotonic()
            training_runs.train(p.recipe, resume=p.action == "resume", force=p.action in ("restart", "redo"))
            wall = time.monotonic() - t0
            trained_s.append(wall)
            info = {"recipe": str(p.recipe_path), "name": p.name, "seed": p.seed, "wall_s": round(wall, 3),
                    "action": p.action}
            if rank_zero:
                atomic_write_text(p.exp_dir / RUN_INFO_FILE, json.dumps(info, indent=2) + "\n")
        if not rank_zero:
            continue
        if not (p.exp_dir / "metrics.json").is_file():
            raise RuntimeError(f"{p.exp_dir}: training finished but wrote no metrics.json")
        records.append(load_run_record(p.exp_dir, p.name, p.seed))
    if not rank_zero or not reports:
        return ComparisonResult(records if rank_zero else [], {}, len(trained_s))
    files = write_reports(records, out, title=f"Comparison of {', '.join(dict.fromkeys(p.name for p in planned))}")
    log(f"compare: done in {_clock(time.monotonic() - start)} ({len(trained_s)} runs trained); "
        f"{files['summary.md']}, {files['summary.csv']}, {files['runs.csv']}, plots in {out}")
    return ComparisonResult(records, files, len(trained_s))
