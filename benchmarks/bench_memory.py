"""Memory of a training step: what the student keeps for its backward pass, per conv block, with and
without activation checkpointing (``net.crnn_checkpoint_blocks``), side by side in one run.

    python benchmarks/bench_memory.py [--recipe recipes/dcase2023_baseline.yaml] [--device cpu|cuda]
        [--checkpoint-blocks 2] [key=value ...]

Counts the bytes of every tensor saved for backward (``torch.autograd.graph.saved_tensors_hooks``,
each storage once) during the student's forward on random input of the recipe's batch, under the
recipe's precision (bf16 autocast for ``bf16-mixed``, on CPU too: the CPU's autocast rules are close
to CUDA's, not identical). That is the part of a step's peak that grows with the batch; the model
state (weights, gradients, Adam moments, teacher) and the feature store are printed beside it. On
CUDA it also prints the peak allocated memory of the bare training step of ``bench_train.py``
(``torch.cuda.max_memory_allocated``), that peak per phase of the step (student forward, teacher
forward, backward, optimiser + EMA: where the memory above the saved tensors goes), and the peak with
cuDNN off (its convolution workspaces count in the peak). Last line::

    saved_mb=X saved_mb_checkpointed=Y ratio=Z device=D
"""

from __future__ import annotations

import argparse
import collections
import copy
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
        return t

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


def phase_peaks(recipe: dict, device: str = "cuda", steps: int = 3) -> dict[str, tuple[float, float]]:
    """Per phase of a bare CRNN training step (student forward, teacher forward, backward,
    optimiser + EMA): (MB allocated when it starts, peak MB allocated during it), from
    ``torch.cuda.max_memory_allocated`` reset at each phase; the last of ``steps`` steps. On the CPU
    (a dry run of the same steps, fp32) the figures are 0."""
    import pytorch_lightning as pl

    from bench_train import random_batch
    from dcase_fpd_plugin.mean_teacher import consistency_loss
    from dcase_fpd_plugin.task import SEDTask

    pl.seed_everything(0, verbose=False)
    cuda = device == "cuda"
    task = SEDTask(recipe).to(device)
    task.train()
    batch = random_batch(task, recipe, device)
    optimizer = torch.optim.Adam(task.trained_parameters(), lr=recipe["opt"]["lr"], **({"fused": True} if cuda else {}))
    tr, mb = recipe["training"], 2**20
    phases: dict[str, tuple[float, float]] = {}

    def phase(name: str, fn):
        if not cuda:
            out = fn()
            phases[name] = (0.0, 0.0)
            return out
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated() / mb
        torch.cuda.reset_peak_memory_stats()
        out = fn()
        torch.cuda.synchronize()
        phases[name] = (start, torch.cuda.max_memory_allocated() / mb)
        return out

    for k in range(steps):
        b = task._mixup(batch)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=cuda):
            first = task.mean_teacher is not None and tr["teacher_first"]
            if first:
                teacher = phase("teacher forward", lambda: task.mean_teacher(b.feats, b.frame_valid))
            out = phase("student forward", lambda: task.model(b.feats, b.frame_valid))
            if tr["strong_loss"]:  # as bench_train's bare step
                loss = task.strong_loss(out.frame_probs, b) + task.weak_loss(out.clip_probs, b, mask=~b.has_strong)
            else:
                loss = task.weak_loss(out.clip_probs, b)
            if task.mean_teacher is not None:
                if not first:
                    teacher = phase("teacher forward", lambda: task.mean_teacher(b.feats, b.frame_valid))
                loss = loss + 0.5 * consistency_loss(out, teacher, b.frame_valid, tr["self_sup_loss"])
        phase("backward", loss.backward)
        del out, loss

        def update():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if task.mean_teacher is not None:
                task.mean_teacher.update(task.model, k + 1)

        phase("optimiser + EMA", update)
    return phases


def cpu_step_peak_mb(recipe: dict) -> float | None:
    """Peak MB of live tensors while a CPU bare training step runs twice (model and optimiser
    included), from torch's memory profiler timeline (a private API: None where it is missing)."""
    try:
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import MemoryProfileTimeline
    except ImportError:
        return None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        phase_peaks(recipe, "cpu", steps=2)  # the model, its optimiser and two steps
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
    ap.add_argument("--cpu-peak", action="store_true",
                    help="on the CPU, also the peak memory of a whole training step per configuration (torch's "
                         "memory profiler; fp32 unless the recipe says otherwise: slow at batch 48)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_intermixed_args()

    from dcase_fpd_plugin.data.features import n_stft_frames
    from dcase_fpd_plugin.data.store import STORE_DTYPES, store_nbytes
    from dcase_fpd_plugin.recipe import load_recipe
    from dcase_fpd_plugin.task import SEDTask
    from dcase_fpd_plugin.training import resolve_precision

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
    sizes = [f"{d} {store_nbytes(n_clips, f['n_mels'], n_in, task.n_frames, n_classes, dt) / mb:.0f} MB"
             for d, dt in STORE_DTYPES.items()]
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
    if args.device == "cuda":
        from bench_train import bare_step_seconds

        torch.cuda.empty_cache()
        for blocks, first in configs:
            r = configured(blocks, first)
            _, peak = bare_step_seconds(r, "cuda", 3, 5)
            print(f"bare training step, crnn_checkpoint_blocks={blocks}, teacher_first={first}: "
                  f"peak allocated {peak:.0f} MB")
            phases = phase_peaks(r, "cuda")
            print("  by phase (allocated at its start -> its peak, MB): "
                  + ", ".join(f"{k} {a:.0f} -> {b:.0f}" for k, (a, b) in phases.items()))
        # cuDNN's convolution workspaces count in the peak; without cuDNN (native kernels) they do not
        torch.backends.cudnn.enabled = False
        try:
            blocks, first = configs[-1]
            _, peak = bare_step_seconds(configured(blocks, first), "cuda", 2, 2)
            print(f"bare training step, crnn_checkpoint_blocks={blocks}, teacher_first={first}, cuDNN off: "
                  f"peak allocated {peak:.0f} MB")
        finally:
            torch.backends.cudnn.enabled = True
    elif args.cpu_peak:
        for blocks, first in configs:
            peak = cpu_step_peak_mb(configured(blocks, first))
            shown = "unavailable (torch's memory profiler)" if peak is None else f"{peak:.0f} MB"
            print(f"training step on the CPU, crnn_checkpoint_blocks={blocks}, teacher_first={first}: peak {shown}")
    print(f"(tensors saved at the checkpointed blocks' boundaries count under 'other')")
    print(f"saved_mb={total:.0f} saved_mb_checkpointed={total_ckpt:.0f} ratio={total_ckpt / total:.2f} "
          f"device={args.device}")


if __name__ == "__main__":
    main()
