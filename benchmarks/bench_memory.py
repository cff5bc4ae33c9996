"""Memory of a training step: what the student keeps for its backward pass, per conv block, with and
without activation checkpointing (``net.crnn_checkpoint_blocks``), side by side in one run.

    python benchmarks/bench_memory.py [--recipe recipes/dcase2023_baseline.yaml] [--device cpu|cuda]
        [--checkpoint-blocks 2] [--limit-gb 2] [--cpu-peak] [key=value ...]

Counts the bytes of every tensor saved for backward (``torch.autograd.graph.saved_tensors_hooks``,
each storage once) during the student's forward on random input of the recipe's batch, under the
recipe's precision (bf16 autocast for ``bf16-mixed``, on CPU too: the CPU's autocast rules are close
to CUDA's, not identical). That is the part of a step's peak that grows with the batch; the model
state (weights, gradients, Adam moments, teacher) and the feature store are printed beside it. On
CUDA it also prints the peak allocated memory of the bare training step of ``bench_train.py``
(``torch.cuda.max_memory_allocated``) for each of ``net.crnn_checkpoint_blocks`` 0 / N and, with a mean
teacher, ``training.teacher_first`` off / on, that peak per phase of the step (student forward,
teacher forward, the rest: where the memory above the saved tensors goes), and the peak with cuDNN's
deterministic algorithms, with cuDNN off (its convolution workspaces count in the peak) and under
``training.gpu_memory_limit_gb`` (``--limit-gb``, 2) with a DESED-size float16 feature store beside
it on the device (as a real run), each with its milliseconds per step;
``CUDNN_CONV_WSCAP_DBG=<MiB>`` in the environment caps the workspaces cuDNN may pick. ``--cpu-peak``:
on the CPU, the peak of live tensors over a whole step per configuration (torch's memory profiler;
minutes at batch 48). Last line::

    saved_mb=X saved_mb_checkpointed=Y ratio=Z device=D
"""

from __future__ import annotations

import argparse
import collections
import copy
import gc
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def saved_bytes(model: torch.nn.Module, feats: torch.Tensor, bf16: bool) -> dict[str, int]:
    """Bytes saved for backward during ``model(feats)``, by top-level conv block ('cnn.K'), 'rnn',
    or 'other' (input normalisation, heads): each storage counted once."""
    where = ["other"]
    by_part: collections.Counter = collections.Counter()
    seen: set[tuple[int, torch.dtype]] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        key = (t.untyped_storage().data_ptr(), t.dtype)
        if key not in seen:
            seen.add(key)
            by_part[where[0]] += t.untyped_storage().nbytes()
        # detached: a saved output packed as itself holds its own grad_fn, a cycle through the graph that
        # Python's collector cannot see, so every saved tensor outlived the count (2.3 GB on the H100,
        # counted in each peak after it); no backward runs here
        return t.detach()

    handles = []
    for name, mod in model.named_modules():
        if (name.startswith("cnn.") and name.count(".") == 1) or name == "rnn":
            handles.append(mod.register_forward_pre_hook(lambda m, i, n=name: where.__setitem__(0, n)))
            handles.append(mod.register_forward_hook(lambda m, i, o: where.__setitem__(0, "other")))
    model.train()
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with torch.autocast(feats.device.type, dtype=torch.bfloat16, enabled=bf16):
                model(feats)
    finally:
        for h in handles:
            h.remove()
    return dict(by_part)


def phase_peaks(recipe: dict, steps: int = 3) -> dict[str, tuple[float, float]]:
    """CUDA memory per phase of the last of ``steps`` bare training steps (``bench_train.bare_step``):
    the student's forward, the teacher's, and what follows the later of the two (losses, backward,
    optimiser, EMA); each ``(MB allocated when it starts, peak MB allocated during it)``, from
    ``torch.cuda.max_memory_allocated`` reset at each boundary (forward hooks on the two models)."""
    from bench_train import bare_step

    task, step = bare_step(recipe, "cuda")
    mb, rest = 2**20, "losses, backward, optimiser + EMA"
    starts: dict[str, float] = {}
    phases: dict[str, tuple[float, float]] = {}

    def begin(name: str) -> None:
        torch.cuda.synchronize()
        starts[name] = torch.cuda.memory_allocated() / mb
        torch.cuda.reset_peak_memory_stats()

    def end(name: str) -> None:
        torch.cuda.synchronize()
        phases[name] = (starts[name], torch.cuda.max_memory_allocated() / mb)

    def hooks(name: str):  # both return None: a forward hook's return value would replace the output
        def before(module, args) -> None:
            begin(name)

        def after(module, args, output) -> None:
            end(name)
            begin(rest)

        return before, after

    models = {"student forward": task.model, "teacher forward": task.mean_teacher}
    handles = []
    for name, module in models.items():
        if module is not None:
            before, after = hooks(name)
            handles += [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        for k in range(steps):
            step(k)
            end(rest)
    finally:
        for h in handles:
            h.remove()
    return phases


def cpu_step_peak_mb(recipe: dict) -> float | None:
    """Peak MB of live tensors while the model and optimiser are built and a CPU bare training step
    (``bench_train.bare_step``, the recipe's precision) runs twice, from torch's memory profiler
    timeline (a private API: None where it is missing)."""
    from bench_train import bare_step

    try:
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import MemoryProfileTimeline
    except ImportError:
        return None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        _, step = bare_step(recipe, "cpu")
        step(0)
        step(1)
    try:
        _, sizes = MemoryProfileTimeline(prof._memory_profile())._coalesce_timeline(torch.device("cpu"))
    except Exception:  # a torch whose private profiler API moved
        return None
    return max(sum(row) for row in sizes) / 2**20 if sizes else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=str(REPO / "recipes" / "dcase2023_baseline.yaml"))
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--checkpoint-blocks", type=int, default=2, help="blocks checkpointed in the second count")
    ap.add_argument("--limit-gb", type=float, default=2.0,
                    help="CUDA: the leanest configuration is also run under training.gpu_memory_limit_gb=this")
    ap.add_argument("--cpu-peak", action="store_true",
                    help="on the CPU, also the peak memory of a whole training step per configuration (torch's "
                         "memory profiler, the recipe's precision: minutes at batch 48); CUDA always prints its peaks")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()

    from dcase_fpd_plugin.data.features import n_stft_frames
    from dcase_fpd_plugin.data.store import STORE_DTYPES, store_nbytes
    from dcase_fpd_plugin.recipe.loading import load_recipe
    from dcase_fpd_plugin.training.task import SEDTask
    from dcase_fpd_plugin.training.precision import resolve_precision

    recipe = load_recipe(args.recipe, args.overrides)
    if recipe["net"]["name"] != "crnn":
        raise SystemExit(f"{args.recipe}: net.name is {recipe['net']['name']!r}; checkpointing is the CRNN's")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    accel = "gpu" if args.device == "cuda" else "cpu"
    precision = resolve_precision(recipe["training"]["precision"], accel)
    bf16 = str(precision).startswith("bf16")
    batch = sum(recipe["training"]["batch_size"])
    task = SEDTask(recipe)
    model = task.model.to(args.device)
    f = recipe["feats"]
    n_in = n_stft_frames(int(round(f["clip_s"] * f["sample_rate"])), f["hop_length"])  # T_in, STFT frames
    feats = 20 * torch.randn(batch, f["n_mels"], n_in, device=args.device)  # (B, F, T_in)

    model.checkpoint_blocks = 0  # the plain column, whatever the recipe sets
    plain = saved_bytes(model, feats, bf16)
    ckpt_model = copy.deepcopy(model)
    ckpt_model.checkpoint_blocks = args.checkpoint_blocks
    ckpt = saved_bytes(ckpt_model, feats, bf16)
    del ckpt_model
    mb = 2**20
    print(f"recipe {args.recipe}: batch {batch}, {f['n_mels']} mels x {n_in} frames, "
          f"precision {precision}, device {args.device}, torch {torch.__version__}")
    print(f"{'saved for backward (MB)':<26}{'plain':>10}{f'ckpt {args.checkpoint_blocks}':>10}")
    for part in sorted(set(plain) | set(ckpt), key=lambda p: (p == "other", p == "rnn", p)):
        print(f"  {part:<24}{plain.get(part, 0) / mb:>10.1f}{ckpt.get(part, 0) / mb:>10.1f}")
    total, total_ckpt = sum(plain.values()) / mb, sum(ckpt.values()) / mb
    print(f"  {'total':<24}{total:>10.1f}{total_ckpt:>10.1f}")

    n_params = sum(p.numel() for p in model.parameters())
    state = n_params * 4 * (1 + 1 + 2 + (1 if task.mean_teacher is not None else 0))  # weights, grads, Adam, teacher
    print(f"model state: {n_params:,} parameters -> {state / mb:.0f} MB (fp32 weights, gradients, 2 Adam moments"
          f"{', teacher' if task.mean_teacher is not None else ''})")
    n_clips, n_classes = 2046 + 1420, len(recipe["data"]["classes"])  # DESED: synthetic + 90 % of the weak clips
    store_mb = {d: store_nbytes(n_clips, f["n_mels"], n_in, task.n_frames, n_classes, dt) / mb
                for d, dt in STORE_DTYPES.items()}
    sizes = [f"{d} {size:.0f} MB" for d, size in store_mb.items()]
    print(f"feature store of a DESED-size training set ({n_clips} clips; data.feature_store_dtype): {', '.join(sizes)}")
    configs = [(0, False), (args.checkpoint_blocks, False)]
    if task.mean_teacher is not None:  # training.teacher_first: the teacher's activations go before the student's stay
        configs += [(0, True), (args.checkpoint_blocks, True)]

    def configured(blocks: int, teacher_first: bool) -> dict:
        r = copy.deepcopy(recipe)
        r["net"]["crnn_checkpoint_blocks"] = blocks
        r["training"]["teacher_first"] = teacher_first
        r["training"]["accelerator"] = "gpu" if args.device == "cuda" else "cpu"
        return r

    del model, feats, task  # the step's peak, not this script's leftovers

    def release() -> None:  # a deleted SEDTask lives on in a reference cycle until collected
        gc.collect()
        if args.device == "cuda":
            torch.cuda.empty_cache()

    if args.device == "cuda":
        from bench_train import bare_step_seconds
        from dcase_fpd_plugin.training.gpu_memory import limit_gpu_memory

        for blocks, first in configs:
            r = configured(blocks, first)
            release()
            seconds, peak = bare_step_seconds(r, "cuda", 3, 5)
            print(f"bare training step, crnn_checkpoint_blocks={blocks}, teacher_first={first}: "
                  f"peak allocated {peak:.0f} MB, {1000 * seconds:.0f} ms per step")
            release()
            phases = phase_peaks(r)
            print("  by phase (allocated at its start -> its peak, MB): "
                  + ", ".join(f"{k} {a:.0f} -> {b:.0f}" for k, (a, b) in phases.items()))
        # cuDNN's convolution workspaces count in the peak: the leanest configuration again with cuDNN's
        # deterministic algorithms (mostly implicit GEMM, small workspaces), then without cuDNN (native
        # kernels, no workspace); CUDNN_CONV_WSCAP_DBG=<MiB> in the environment caps cuDNN's choice instead
        blocks, first = configs[-1]
        for label, flag in (("cuDNN deterministic", "deterministic"), ("cuDNN off", "enabled")):
            was = getattr(torch.backends.cudnn, flag)
            setattr(torch.backends.cudnn, flag, flag == "deterministic")
            try:
                release()
                seconds, peak = bare_step_seconds(configured(blocks, first), "cuda", 2, 3)
                print(f"bare training step, crnn_checkpoint_blocks={blocks}, teacher_first={first}, {label}: "
                      f"peak allocated {peak:.0f} MB, {1000 * seconds:.0f} ms per step")
            finally:
                setattr(torch.backends.cudnn, flag, was)
        cap = os.environ.get("CUDNN_CONV_WSCAP_DBG")
        print(f"(CUDNN_CONV_WSCAP_DBG={cap} MiB)" if cap else "(CUDNN_CONV_WSCAP_DBG unset)")
        # training.gpu_memory_limit_gb: the step under a cap (cuDNN passes over the algorithms whose workspace
        # does not fit), with a DESED-size float16 feature store on the device beside it as in a real run; the
        # peak cannot exceed the cap, so what counts is whether the step runs, and its time
        release()
        r = configured(blocks, first)
        r["training"]["gpu_memory_limit_gb"] = args.limit_gb
        store = None  # held on the device while the step runs, as a real run's store
        try:
            store = torch.empty(int(store_mb["float16"] * mb), dtype=torch.uint8, device="cuda")
            seconds, peak = bare_step_seconds(r, "cuda", 2, 3)
            shown = f"peak allocated {peak:.0f} MB, {1000 * seconds:.0f} ms per step"
        except torch.cuda.OutOfMemoryError:
            shown = "out of memory under the limit"
        finally:
            del store
            limit_gpu_memory(None, "cuda")
        print(f"bare training step, crnn_checkpoint_blocks={blocks}, teacher_first={first}, float16 store of "
              f"{store_mb['float16']:.0f} MB, training.gpu_memory_limit_gb={args.limit_gb}: {shown}")
    elif args.cpu_peak:
        for blocks, first in configs:
            release()
            peak = cpu_step_peak_mb(configured(blocks, first))
            shown = "unavailable (torch's memory profiler)" if peak is None else f"{peak:.0f} MB"
            print(f"training step on the CPU, crnn_checkpoint_blocks={blocks}, teacher_first={first}: peak {shown}")
    print("(tensors saved at the checkpointed blocks' boundaries count under 'other')")
    print(f"saved_mb={total:.0f} saved_mb_checkpointed={total_ckpt:.0f} ratio={total_ckpt / total:.2f} "
          f"device={args.device}")


if __name__ == "__main__":
    main()
