"""FPD loss cost: the (T, B, B) implementation against a loop and pytorch-metric-learning.

Prints, for B = 48 clips, D = 128 and T = 156 / 628 frames, side by side from one run:
forward+backward time of the loss (median of repeats, 1 CPU thread) and peak extra memory,
for

* ``fpd``:        ``dcase_fpd_plugin.fpd.fpd_loss`` (same-time pairs in (T, B, B));
* ``loop_t``:     a straightforward loop over the T timestamps, each an explicit (B, B) block;
* ``loop_pairs``: a plain Python loop over the used pairs, one autograd op chain per pair.
                  Timed on the first ``--pair-subsample`` used pairs and extrapolated
                  linearly to all used pairs (marked ``~``); its memory is that of the subsample;
* ``pml``:        pytorch-metric-learning's ``ContrastiveLoss`` given the same pairs as an
                  ``indices_tuple`` over the flattened (B*T) frames, so it builds the full
                  (B*T)^2 distance matrix (the point of the comparison). Skipped, with the
                  memory it would need, where that exceeds ``--pml-max-gb``.

All losses use the consistent formulation with the same pairs (masks from
``pair_masks`` on random multi-event labels); ``fpd``, ``loop_t`` and ``loop_pairs`` compute
the same number (checked), ``pml`` its own contrastive loss (the cost is what is compared).

Peak memory: each measurement runs in a fresh child process; the child resets the kernel's
peak-RSS counter (``/proc/self/clear_refs`` = 5) after building its inputs and reads
``VmHWM - VmRSS_before`` after one forward+backward (falls back to the ``ru_maxrss`` delta).
It is the process's extra resident memory, in MiB, so it includes the autograd graph.

FPD's share of a full training step (``--step-frames``, default 156): one optimiser step of the
weak-baseline recipe (CNN-3 encoder, attention pooling; 24 SS + 24 RW clips, random log-mels)
with and without the FPD branch (WPS active from epoch 0), timed side by side, alternating,
median of ``--step-repeats``. T = 156 is the default encoder (time pooling 2, 2, 1, hop 256);
T = 628 is hop 255 without time pooling (the paper's frame rate).

Run: ``python benchmarks/bench_fpd.py`` (``--help`` for options; pml needs the ``bench``
extra: ``pip install pytorch-metric-learning``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

B, D = 48, 128
FRAMES = (156, 628)
DISTANCES = ("ip", "euc")
METHODS = ("fpd", "loop_t", "loop_pairs", "pml")
ALPHA = 0.1


# ---------------------------------------------------------------- inputs -----------------------
def make_inputs(T: int, distance: str, seed: int = 0):
    """Embeddings (B, T, D) and pair masks from random DESED-like labels (10 classes, SS+RW)."""
    import torch

    from dcase_fpd_plugin.fpd import pair_masks

    gen = torch.Generator().manual_seed(seed)
    labels = torch.zeros(B, T, 10)
    for b in range(B):  # 1-3 events per clip, random class, onset and length
        for _ in range(int(torch.randint(1, 4, (1,), generator=gen))):
            c = int(torch.randint(0, 10, (1,), generator=gen))
            on = int(torch.randint(0, T, (1,), generator=gen))
            length = int(torch.randint(T // 10, T // 2, (1,), generator=gen))
            labels[b, on : on + length, c] = 1.0
    positive, negative = pair_masks(labels)
    emb = torch.randn(B, T, D, generator=gen) * (0.05 if distance == "euc" else 1.0)
    return emb.requires_grad_(True), positive, negative


# ---------------------------------------------------------------- baselines --------------------
def consistent_terms(sim, is_positive: bool, distance: str):
    import torch

    relu = torch.relu
    if distance == "euc":
        return (1 - sim) ** 2 if is_positive else relu(sim - ALPHA)
    return relu(ALPHA - sim) + (1 - sim) ** 2 if is_positive else relu(sim + ALPHA) + (1 + sim) ** 2


def loop_t_loss(emb, positive, negative, distance):
    """Loop over timestamps; each t an explicit (B, B) block of similarities."""
    import torch

    total = emb.new_zeros(())
    for t in range(emb.shape[1]):
        x = emb[:, t]  # (B, E)
        if distance == "euc":
            sim = 1.0 / (1.0 + torch.cdist(x, x))
        else:
            u = torch.nn.functional.normalize(x, dim=-1)
            sim = u @ u.T
        total = total + consistent_terms(sim[positive[t]], True, distance).sum()
        total = total + consistent_terms(sim[negative[t]], False, distance).sum()
    return total / max(int(positive.sum() + negative.sum()), 1)


def pair_list(positive, negative):
    """[(t, i, j, is_positive)] for every used pair, in (t, i, j) order."""
    import torch

    pairs = [(t, i, j, True) for t, i, j in torch.nonzero(positive).tolist()]
    pairs += [(t, i, j, False) for t, i, j in torch.nonzero(negative).tolist()]
    return sorted(pairs)


def loop_pairs_loss(emb, pairs, n_total: int, distance):
    """One pair at a time, as a literal reading of 'sum over all pairs' would write it."""
    import torch

    total = emb.new_zeros(())
    # unbind once (one autograd node), not emb[i, t] per pair (each would allocate a
    # (B, T, E) gradient buffer in backward and make the loop ~10x slower still)
    frames = [clip.unbind(0) for clip in emb.unbind(0)]  # frames[i][t]: (E,)
    for t, i, j, is_positive in pairs:
        a, b = frames[i][t], frames[j][t]
        if distance == "euc":
            sim = 1.0 / (1.0 + torch.sqrt(((a - b) ** 2).sum() + 1e-12))
        else:
            sim = (a @ b) / (a.norm() * b.norm())
        total = total + consistent_terms(sim, is_positive, distance)
    return total / n_total


def pml_inputs(emb, positive, negative):
    """Flattened (B*T, E) embeddings and the pairs as an indices_tuple over B*T frames."""
    import torch

    T = emb.shape[1]
    pos, neg = torch.nonzero(positive), torch.nonzero(negative)  # (n, 3) rows (t, i, j)
    a1, p = pos[:, 1] * T + pos[:, 0], pos[:, 2] * T + pos[:, 0]
    a2, n = neg[:, 1] * T + neg[:, 0], neg[:, 2] * T + neg[:, 0]
    return (a1, p, a2, n)


def pml_loss_fn(distance):
    try:
        from pytorch_metric_learning import distances, losses
    except ImportError:
        raise SystemExit(
            "pytorch-metric-learning is not installed: pip install 'dcase-fpd-plugin[bench]' "
            "(or pip install pytorch-metric-learning), or run with --methods fpd loop_t loop_pairs"
        )
    if distance == "euc":
        return losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0, distance=distances.LpDistance())
    return losses.ContrastiveLoss(pos_margin=1.0, neg_margin=ALPHA, distance=distances.CosineSimilarity())


# ---------------------------------------------------------------- measurement (child) ----------
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def measure(method: str, T: int, distance: str, repeats: int, pair_subsample: int) -> dict:
    """One forward+backward for memory, then ``repeats`` timed runs (after one warm-up)."""
    import gc

    import torch

    from dcase_fpd_plugin.fpd import fpd_loss

    torch.set_num_threads(1)
    emb, positive, negative = make_inputs(T, distance)
    n_used = int(positive.sum() + negative.sum())
    info = {"n_pos": int(positive.sum()), "n_neg": int(negative.sum()), "scale": 1.0}

    if method == "fpd":
        step = lambda: fpd_loss(emb, positive, negative, distance=distance, alpha=ALPHA)  # noqa: E731
    elif method == "loop_t":
        step = lambda: loop_t_loss(emb, positive, negative, distance)  # noqa: E731
    elif method == "loop_pairs":
        pairs = pair_list(positive, negative)
        sub = pairs[:pair_subsample]
        info["scale"] = len(pairs) / len(sub)
        step = lambda: loop_pairs_loss(emb, sub, n_used, distance)  # noqa: E731
    elif method == "pml":
        loss_fn = pml_loss_fn(distance)
        indices = pml_inputs(emb, positive, negative)
        step = lambda: loss_fn(emb.reshape(-1, D), indices_tuple=indices)  # noqa: E731
    else:
        raise ValueError(f"unknown method {method!r}")

    gc.collect()
    rss_before = _status_kib("VmRSS")
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    reset = _reset_peak()
    loss = step()
    loss.backward()
    if reset and rss_before is not None:
        peak_kib = _status_kib("VmHWM") - rss_before
        info["mem_how"] = "VmHWM"
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before
        info["mem_how"] = "ru_maxrss"
    info["peak_mib"] = max(peak_kib, 0) / 1024
    info["loss"] = float(loss)  # loop_pairs: the subsample's share of the loss only
    del loss
    emb.grad = None

    times = []
    for k in range(repeats + 1):
        t0 = time.perf_counter()
        loss = step()
        loss.backward()
        dt = time.perf_counter() - t0
        emb.grad = None
        if k > 0:  # the first run is a warm-up
            times.append(dt)
    info["time_s"] = statistics.median(times) * info["scale"]
    return info


# ---------------------------------------------------------------- driver -----------------------
def run_child(method, T, distance, repeats, pair_subsample) -> dict:
    args = [sys.executable, os.path.abspath(__file__), "--child", json.dumps([method, T, distance, repeats, pair_subsample])]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(args, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"error": tail[0]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


#: pml's peak in (B*T)^2 fp32 matrices, measured at T=628 (ip ~2.0, euc ~3.3), with margin.
PML_MATRICES = {"ip": 2.3, "euc": 3.6}


def pml_need_gb(T: int, distance: str) -> float:
    """Rough peak memory of pml: a few (N, N) fp32 matrices, N = B*T frames."""
    n = B * T
    return PML_MATRICES[distance] * n * n * 4 / 2**30


def fmt_time(info) -> str:
    if "error" in info:
        return "error"
    if "skipped" in info:
        return "skipped"
    mark = "~" if info.get("scale", 1.0) > 1.0 else ""
    return f"{mark}{info['time_s'] * 1e3:.1f}"


def fmt_mem(info) -> str:
    if "error" in info or "skipped" in info:
        return "-"
    return f"{info['peak_mib']:.0f}"


def fmt_ratio(info, ref) -> str:
    if "time_s" not in info or "time_s" not in ref:
        return "-"
    return f"{info['time_s'] / ref['time_s']:.1f}x"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=list(FRAMES))
    ap.add_argument("--distances", nargs="+", default=list(DISTANCES), choices=DISTANCES)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--pair-subsample", type=int, default=2000, help="pairs timed by loop_pairs")
    ap.add_argument("--pml-max-gb", type=float, default=8.0, help="skip pml where it would need more")
    ap.add_argument("--step-frames", type=int, nargs="*", default=[156],
                    help="T values for the training-step share (156, 628); none to skip")
    ap.add_argument("--step-repeats", type=int, default=5)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        method, T, distance, repeats, pair_subsample = json.loads(args.child)
        print(json.dumps(measure(method, T, distance, repeats, pair_subsample)))
        return

    print(f"FPD loss, forward+backward, B={B}, D={D}, 1 CPU thread, median of {args.repeats} "
          f"(loop_pairs: {args.pair_subsample} pairs timed, extrapolated, marked ~)")
    print("memory: peak extra resident memory of a fresh process during one forward+backward, MiB")
    header = f"{'T':>4} {'dist':>4} {'pos pairs':>9} {'neg pairs':>9} | " + " | ".join(
        f"{m + ' ms':>13} {'MiB':>6}" for m in args.methods
    ) + " | " + " ".join(f"{m + '/fpd':>15}" for m in args.methods if m != "fpd")
    print(header)
    print("-" * len(header))
    notes = []
    for T in args.frames:
        for distance in args.distances:
            res = {}
            for method in args.methods:
                if method == "pml" and pml_need_gb(T, distance) > args.pml_max_gb:
                    res[method] = {"skipped": True}
                    notes.append(
                        f"pml at T={T} skipped: its (B*T)^2 = {(B * T) ** 2 / 1e6:.0f} M-entry matrix needs "
                        f"~{pml_need_gb(T, distance):.1f} GB for {distance} (> --pml-max-gb {args.pml_max_gb})"
                    )
                    continue
                res[method] = run_child(method, T, distance, args.repeats, args.pair_subsample)
                if "error" in res[method]:
                    notes.append(f"{method} T={T} {distance}: {res[method]['error']}")
            ref = res.get("fpd", {})
            counts = next((r for r in res.values() if "n_pos" in r), {"n_pos": 0, "n_neg": 0})
            cells = " | ".join(f"{fmt_time(res[m]):>13} {fmt_mem(res[m]):>6}" for m in args.methods)
            ratios = " ".join(f"{fmt_ratio(res[m], ref):>15}" for m in args.methods if m != "fpd")
            print(f"{T:>4} {distance:>4} {counts['n_pos']:>9} {counts['n_neg']:>9} | {cells} | {ratios}")
            if "fpd" in res and "loop_t" in res and "loss" in res["fpd"] and "loss" in res["loop_t"]:
                a, b = res["fpd"]["loss"], res["loop_t"]["loss"]
                if not math.isclose(a, b, rel_tol=1e-4):
                    notes.append(f"MISMATCH T={T} {distance}: fpd {a} vs loop_t {b}")
    for note in notes:
        print("note:", note)
    if args.step_frames:
        print()
        print_step_share(args.step_frames, args.step_repeats)


def _step_recipe(T: int, fpd: bool) -> dict:
    from dcase_fpd_plugin.recipe.loading import load_recipe

    ov = ["training.batch_size=[24, 24, 0]", f"branches.fpd.enabled={str(fpd).lower()}",
          "branches.fpd.wps_start_epoch=0"]
    if T == 628:
        ov += ["feats.hop_length=255", "net.time_pool=[1, 1, 1]"]
    elif T != 156:
        raise SystemExit(f"--step-frames supports 156 and 628, got {T}")
    return load_recipe(None, ov)


def time_training_steps(T: int, repeats: int) -> dict[str, float]:
    """Median seconds of one optimiser step (forward, losses, backward, Adam) with/without FPD."""
    import torch

    from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, Batch
    from dcase_fpd_plugin.training.task import SEDTask

    torch.set_num_threads(1)
    tasks = {}
    for name, fpd in (("weak", False), ("weak+fpd", True)):
        torch.manual_seed(0)
        task = SEDTask(_step_recipe(T, fpd))
        task.train()
        tasks[name] = (task, torch.optim.Adam(task.parameters(), lr=1e-3))
    task0 = tasks["weak"][0]
    g = torch.Generator().manual_seed(0)
    n_in = {156: 626, 628: 628}[T]
    strong = torch.zeros(B, task0.n_frames, 10)
    for b in range(B):  # one or two events per clip
        for _ in range(1 + b % 2):
            c, a = int(torch.randint(10, (1,), generator=g)), int(torch.randint(task0.n_frames - 20, (1,), generator=g))
            strong[b, a:a + 20, c] = 1
    batch = Batch(feats=torch.randn(B, 128, n_in, generator=g), strong=strong,
                  has_strong=torch.arange(B) < 24, weak=(strong.amax(1) > 0).float(),
                  has_weak=torch.ones(B, dtype=torch.bool),
                  source=torch.where(torch.arange(B) < 24, SOURCE_SS, SOURCE_RW),
                  frame_valid=torch.ones(B, task0.n_frames, dtype=torch.bool))
    times: dict[str, list[float]] = {k: [] for k in tasks}

    def step(task, opt):
        out = task.model(batch.feats, batch.frame_valid)
        loss = task.weak_loss(out.clip_probs, batch)
        for branch in task.branches.values():
            loss = loss + branch(out, batch, 0).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    for name, (task, opt) in tasks.items():  # warm-up
        step(task, opt)
    for r in range(repeats):
        for name in (list(tasks) if r % 2 == 0 else list(tasks)[::-1]):
            t0 = time.perf_counter()
            step(*tasks[name])
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def print_step_share(frames, repeats: int) -> None:
    print(f"FPD share of one training step: weak-baseline recipe, B={B} (24 SS + 24 RW), fp32, 1 CPU thread, "
          f"median of {repeats} alternating steps (IP distance, consistent, all source pairs)")
    print(f"{'T':>4} | {'weak s':>8} | {'weak+fpd s':>10} | {'fpd adds':>8}")
    for T in frames:
        t = time_training_steps(T, repeats)
        share = (t["weak+fpd"] - t["weak"]) / t["weak"]
        print(f"{T:>4} | {t['weak']:>8.3f} | {t['weak+fpd']:>10.3f} | {share:>7.1%}")
    print("target: FPD adds under 10 % to a training step at T=156")


if __name__ == "__main__":
    main()
