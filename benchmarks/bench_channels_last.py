"""Speed of ``training.channels_last``: one training step of the weak model, both layouts side by side.

Builds the same SEDTask twice (``training.channels_last`` false / true) with the set-up of
``benchmarks/paper_tables.py`` (64 mels, CNN-3 32-64-128, 10 s clips = 626 STFT frames), and
times forward + weak BCE + backward of one batch under bf16 autocast, alternating the two
layouts ``--repeats`` times (these machines are noisy; the ratio is of the best times).

    python benchmarks/bench_channels_last.py [--batch 48] [--repeats 3] [--threads 1] [key=value ...]
"""

from __future__ import annotations

import argparse
import time

import torch

SETUP = ["feats.n_mels=64", "net.channels=[32, 64, 128]", "net.freq_pool=[4, 4, 4]",
         "data.classes=[a, b, c, d, e, f, g, h, i]"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=48, help="clips per step")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("overrides", nargs="*", help="recipe key=value, e.g. net.name=crnn")
    args = ap.parse_args()

    from dcase_fpd_plugin.recipe.loading import load_recipe
    from dcase_fpd_plugin.training.task import SEDTask

    torch.set_num_threads(args.threads)
    tasks = {}
    for layout in (False, True):
        torch.manual_seed(0)
        tasks[layout] = SEDTask(load_recipe(None, [*SETUP, *args.overrides, f"training.channels_last={layout}"]))
    n_mels = tasks[False].recipe["feats"]["n_mels"]
    feats = torch.randn(args.batch, n_mels, 626)  # (B, F, T_in): 10 s at hop 256
    target = (torch.rand(args.batch, len(tasks[False].classes)) > 0.7).float()  # (B, C)

    def step(task: SEDTask) -> float:
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            clip_probs = task(feats).clip_probs.float()  # (B, C)
        torch.nn.functional.binary_cross_entropy(clip_probs, target).backward()
        return time.perf_counter() - start

    for task in tasks.values():
        step(task)  # warm-up
    times = {layout: [] for layout in tasks}
    for _ in range(args.repeats):
        for layout, task in tasks.items():
            times[layout].append(step(task))
    plain, fast = min(times[False]), min(times[True])
    print(f"{args.batch}-clip step, bf16 autocast, {args.threads} thread(s), best of {args.repeats}:")
    print(f"  contiguous (channels_last=false): {plain:.3f} s")
    print(f"  channels-last (channels_last=true): {fast:.3f} s")
    print(f"  speed-up: {plain / fast:.2f}x")


if __name__ == "__main__":
    main()
