"""Training throughput of a recipe against the model's own bound, measured side by side in one run.

    python benchmarks/bench_train.py --recipe recipes/dcase2023_baseline.yaml [--device cpu|cuda]
        [--steps 20] [--warmup 5] [--data DIR] [--compile] [key=value ...]

(a) bound: the bare training step of the recipe's model on random input of the recipe's shape and
    batch, in a plain loop: mixup (when the recipe mixes), student forward + backward, teacher
    forward, the recipe's losses and branches, Adam, the EMA update; no Lightning, no data.
(b) pipeline: the recipe's real training (``dcase_fpd_plugin.training.runs.train``: Lightning, the
    DataModule, the feature store or the disk cache, logging, checkpoints) on real clips with a warm
    cache, timed from step ``warmup`` to step ``warmup + steps`` (epoch boundaries included,
    validation only after the timed window).

Both use the recipe's precision, threads and channels-last setting. Data: a DESED-format folder
(``--data``, with the layout of ``dcase_fpd_plugin.data.demo``; the DCASE recipes' unlabelled slice
reads the weak clips' audio) or, by default, the demo dataset built in a temp folder at 10 s.
Prints peak memory per phase, the FPD branch's share of a bare step when the recipe enables it,
the time from ``train()`` to the first training step, and as its last line::

    pipeline_clips_per_s=X bound_clips_per_s=Y ratio=Z device=D
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device: str) -> float:
    from dcase_fpd_plugin.training.gpu_memory import peak_gpu_mb

    if device == "cuda":
        return peak_gpu_mb(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS, kB -> MB


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def random_batch(task, recipe: dict, device: str):
    """A batch of the recipe's shape: random dB log-mels, random strong labels, the recipe's slices."""
    from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, SOURCE_UL, Batch

    sizes = recipe["training"]["batch_size"]
    n = sum(sizes)
    feats_cfg = recipe["feats"]
    from dcase_fpd_plugin.data.features import n_stft_frames

    t_in = n_stft_frames(int(round(feats_cfg["clip_s"] * feats_cfg["sample_rate"])), feats_cfg["hop_length"])
    g = torch.Generator().manual_seed(0)
    source = torch.tensor([SOURCE_SS] * sizes[0] + [SOURCE_RW] * sizes[1] + [SOURCE_UL] * sizes[2])
    strong = (torch.rand(n, task.n_frames, len(task.classes), generator=g) > 0.9).float()
    strong[source != SOURCE_SS] = 0.0
    weak = (torch.rand(n, len(task.classes), generator=g) > 0.8).float()
    weak[source == SOURCE_SS] = strong[source == SOURCE_SS].amax(1)
    weak[source == SOURCE_UL] = 0.0
    batch = Batch(
        feats=torch.rand(n, feats_cfg["n_mels"], t_in, generator=g) * 100 - 50,
        strong=strong, has_strong=source == SOURCE_SS, weak=weak, has_weak=source != SOURCE_UL,
        source=source, frame_valid=torch.ones(n, task.n_frames, dtype=torch.bool), filenames=[""] * n,
        source_host=source)
    return batch.to(device)


def bare_step(recipe: dict, device: str):
    """The recipe's model, optimiser and a random batch of its shape on ``device``, and ``step(k)``:
    one bare training step (mixup, student and teacher in ``SEDTask.forward_student_teacher``'s
    order, losses, branches, backward, Adam, EMA after ``k + 1`` steps), under the recipe's precision.
    Returns ``(task, step)``."""
    from dcase_fpd_plugin.training.mean_teacher import consistency_loss
    from dcase_fpd_plugin.training.task import SEDTask
    from dcase_fpd_plugin.training.gpu_memory import limit_gpu_memory
    from dcase_fpd_plugin.training.precision import resolve_precision

    pl.seed_everything(0, verbose=False)
    limit_gpu_memory(recipe["training"]["gpu_memory_limit_gb"], device)  # as training's GpuMemory callback
    task = SEDTask(recipe).to(device)
    task.train()
    batch = random_batch(task, recipe, device)
    tr, opt_cfg = recipe["training"], recipe["opt"]
    fused = {"fused": True} if device == "cuda" else {}  # as SEDTask.configure_optimizers
    optimizer = torch.optim.Adam(task.trained_parameters(), lr=opt_cfg["lr"], weight_decay=opt_cfg["weight_decay"],
                                 **fused)
    bf16 = resolve_precision(tr["precision"], "gpu" if device == "cuda" else "cpu") in ("bf16-mixed", "bf16")
    if tr["channels_last"]:
        batch.feats = batch.feats.contiguous()

    def step(k: int) -> None:
        b = task._mixup(batch)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            out, teacher = task.forward_student_teacher(b)
            if tr["strong_loss"]:
                loss = task.strong_loss(out.frame_probs, b) + task.weak_loss(out.clip_probs, b, mask=~b.has_strong)
            else:
                loss = task.weak_loss(out.clip_probs, b)
            if teacher is not None:
                loss = loss + 0.5 * consistency_loss(out, teacher, b.frame_valid, tr["self_sup_loss"])
            for branch in task.branches.values():
                loss = loss + branch(out, b, 10**6).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if task.mean_teacher is not None:
            task.mean_teacher.update(task.model, k + 1)

    return task, step


def bare_step_seconds(recipe: dict, device: str, warmup: int, steps: int) -> tuple[float, float]:
    """Seconds per bare training step of the recipe (:func:`bare_step`), and peak memory (MB)."""
    _, step = bare_step(recipe, device)
    _reset_peak(device)
    for k in range(warmup):
        step(k)
    _sync(device)
    t0 = time.perf_counter()
    for k in range(steps):
        step(warmup + k)
    _sync(device)
    return (time.perf_counter() - t0) / steps, _peak_mb(device)


class StepTimer(pl.Callback):
    """Times training steps ``warmup`` .. ``warmup + steps`` (wall clock, device synchronised at both
    ends), then stops the fit; also the time from its creation to the first step."""

    def __init__(self, warmup: int, steps: int, device: str, profile: Path | None = None, profile_steps: int = 5):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.created = time.perf_counter()
        self.first_step_s: float | None = None
        self.seconds: float | None = None
        self.n = 0
        self.profile, self.profile_steps, self._prof = profile, profile_steps, None
        self.sync_log: Path | None = None  # set: list the host-device synchronisations of 2 steps here
        self._syncs: dict[str, int] = {}

    def _sync_debug(self, on: bool) -> None:
        """Record where the device is synchronised with the host (torch's sync debug mode) during
        two training steps, grouped by the Python stack that asked for it."""
        import traceback
        import warnings

        if on:
            self._old_show = warnings.showwarning

            def show(message, category, filename, lineno, file=None, line=None):
                if "synchroniz" in str(message):
                    stack = "".join(traceback.format_stack(limit=12)[:-2])
                    self._syncs[stack] = self._syncs.get(stack, 0) + 1
                else:
                    self._old_show(message, category, filename, lineno, file, line)

            warnings.showwarning = show
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
        else:
            torch.cuda.set_sync_debug_mode(0)
            warnings.showwarning = self._old_show
            n = sum(self._syncs.values())
            text = f"{n} synchronising calls in 2 pipeline steps, {len(self._syncs)} distinct stacks\n\n"
            text += "\n".join(f"--- {k} x\n{stack}" for stack, k in sorted(self._syncs.items(), key=lambda x: -x[1]))
            self.sync_log.write_text(text)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.first_step_s is None:
            self.first_step_s = time.perf_counter() - self.created
        if self.sync_log is not None and self.device == "cuda" and self.n == self.warmup - 2:
            self._sync_debug(True)
        if self.sync_log is not None and self.device == "cuda" and self.n == self.warmup:
            self._sync_debug(False)
        if self.n == self.warmup:
            _sync(self.device)
            _reset_peak(self.device)
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.n += 1
        end = self.warmup + self.steps
        if self.n == end:
            _sync(self.device)
            self.seconds = time.perf_counter() - self.t0
            if self.profile is None:
                trainer.should_stop = True
            else:  # profile a few more steps (after the timed window: profiling slows them)
                from torch.profiler import ProfilerActivity, profile

                acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device == "cuda" else [])
                self._prof = profile(activities=acts)
                self._prof.__enter__()
        elif self._prof is not None and self.n == end + self.profile_steps:
            _sync(self.device)
            self._prof.__exit__(None, None, None)
            key = "self_cuda_time_total" if self.device == "cuda" else "self_cpu_time_total"
            table = self._prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=40)
            table_dev = self._prof.key_averages().table(sort_by=key, row_limit=25)
            self.profile.write_text(f"{self.profile_steps} pipeline steps\n\nby self CPU time\n{table}\n\n"
                                    f"by {key}\n{table_dev}\n")
            self._prof = None
            trainer.should_stop = True


def warm_cache(recipe: dict) -> int:
    """Compute every clip's features into the cache (what the first epoch of a real run does)."""
    from dcase_fpd_plugin.data.datamodule import SEDDataModule
    from dcase_fpd_plugin.training.task import SEDTask

    task = SEDTask(recipe)
    recipe = copy.deepcopy(recipe)
    recipe["data"]["feature_store"] = "off"
    dm = SEDDataModule.from_recipe(recipe, task.n_frames, task.frame_hop_s)
    dm.setup("fit")
    n = 0
    for s in dm.train_sets + [dm.val_set]:
        for r in s.records:
            dm.features(r.path)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    ap.add_argument("--data", type=Path, help="DESED-format folder with the demo layout (default: demo data, built)")
    ap.add_argument("--clips", type=int, default=240, help="clips per source of the built demo data (default 240)")
    ap.add_argument("--skip-bound", action="store_true", help="time the pipeline only")
    ap.add_argument("--compile", action="store_true",
                    help="the pipeline with training.compile=true (torch.compile), against the eager bound")
    ap.add_argument("--profile", type=Path, help="write a torch.profiler table of 5 pipeline steps (after the timed ones) here")
    ap.add_argument("--sync-log", type=Path, help="CUDA: list the host-device synchronisations of 2 warm-up steps here")
    ap.add_argument("overrides", nargs="*", help="key.path=value, applied to the recipe")
    args = ap.parse_intermixed_args()

    from dcase_fpd_plugin.compat import quiet_dependencies

    quiet_dependencies()
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    try:
        _measure(args, tmp)
    finally:  # the demo data, its feature cache and the run's checkpoints: ~100 MB per call
        shutil.rmtree(tmp, ignore_errors=True)


def _measure(args: argparse.Namespace, tmp: Path) -> None:
    from dcase_fpd_plugin.data.demo import build_demo_dataset, demo_overrides
    from dcase_fpd_plugin.recipe.checks import enabled_branches
    from dcase_fpd_plugin.recipe.loading import load_recipe
    from dcase_fpd_plugin.training.runs import train

    data = args.data or tmp / "data"
    if args.data and data.exists() and any(data.iterdir()) and not (data / ".complete").is_file():
        raise SystemExit(f"--data {data}: not a demo-layout folder built by this script (no .complete); "
                         "give an empty or new folder")
    t_build = time.perf_counter()
    paths = build_demo_dataset(data, n_synth=args.clips, n_weak=args.clips, n_val=24, n_test=8)
    t_build = time.perf_counter() - t_build
    n_synth = len(list(Path(paths["synth_folder"]).glob("*.wav")))  # the folder's, whatever --clips says
    n_weak = len(list(Path(paths["weak_folder"]).glob("*.wav")))
    data_ov = demo_overrides(paths, data / "feature_cache")
    accel = ["training.accelerator=gpu" if args.device == "cuda" else "training.accelerator=cpu"]
    recipe = load_recipe(args.recipe, data_ov + accel + args.overrides)
    tr = recipe["training"]
    if tr["num_threads"]:
        torch.set_num_threads(tr["num_threads"])
    bs = tr["batch_size"]
    clips_per_step = sum(bs)
    steps_per_epoch = min(n // b for n, b in ((n_synth, bs[0]), (n_weak, bs[1]), (n_weak, bs[2])) if b)
    n_epochs = math.ceil((args.warmup + args.steps + (5 if args.profile else 0)) / steps_per_epoch) + 1
    t_warm = time.perf_counter()
    n_cached = warm_cache(recipe)
    t_warm = time.perf_counter() - t_warm
    print(f"recipe {args.recipe}: net {recipe['net']['name']}, batch {bs}, precision {tr['precision']}, "
          f"channels_last {tr['channels_last']}, threads {torch.get_num_threads()}, feature store "
          f"{recipe['data']['feature_store']} ({recipe['data']['feature_store_dtype']}); data {data} "
          f"({n_synth} synthetic and {n_weak} weak clips, {steps_per_epoch} steps per epoch, built/checked in {t_build:.0f} s; "
          f"cache warm: {n_cached} clips, {t_warm:.0f} s)")
    print(f"device {args.device}" + (f" ({torch.cuda.get_device_name()})" if args.device == "cuda" else
                                     f" ({platform.processor() or platform.machine()})")
          + f", torch {torch.__version__}, Lightning {pl.__version__}")

    bound_s = math.nan
    if not args.skip_bound:
        bound_s, bound_mb = bare_step_seconds(recipe, args.device, args.warmup, args.steps)
        print(f"bound: {bound_s * 1000:.1f} ms per step, {clips_per_step / bound_s:.1f} clips/s, "
              f"peak memory {bound_mb:.0f} MB")
        if enabled_branches(recipe):
            bare = copy.deepcopy(recipe)
            for section in bare["branches"].values():
                section["enabled"] = False
            plain_s, _ = bare_step_seconds(bare, args.device, args.warmup, args.steps)
            print(f"branches {', '.join(enabled_branches(recipe))}: {(bound_s - plain_s) / bound_s:.1%} of a bare step "
                  f"({bound_s * 1000:.1f} vs {plain_s * 1000:.1f} ms without)")

    run = load_recipe(args.recipe, data_ov + accel + args.overrides + (["training.compile=true"] if args.compile else []) + [
        f"training.exp_dir={tmp / 'exp'}", f"training.n_epochs={n_epochs}", f"training.val_every_n_epochs={n_epochs}",
        "training.progress_bar=false", "training.test_last_n_epochs=0"])
    timer = StepTimer(args.warmup, args.steps, args.device, args.profile)
    timer.sync_log = args.sync_log
    train(run, run_test=False, callbacks=[timer])
    if timer.seconds is None:
        raise SystemExit(f"the run stopped before {args.warmup + args.steps} steps")
    pipe_s = timer.seconds / args.steps
    print(f"pipeline{' (compiled; the compile is in the warm-up steps)' if args.compile else ''}: "
          f"{pipe_s * 1000:.1f} ms per step, {clips_per_step / pipe_s:.1f} clips/s, peak memory "
          f"{_peak_mb(args.device):.0f} MB; first step {timer.first_step_s:.1f} s after train() was called")
    print(f"pipeline_clips_per_s={clips_per_step / pipe_s:.1f} bound_clips_per_s={clips_per_step / bound_s:.1f} "
          f"ratio={bound_s / pipe_s:.2f} device={args.device}" + (" pipeline=compiled bound=eager" if args.compile else ""))


if __name__ == "__main__":
    main()
