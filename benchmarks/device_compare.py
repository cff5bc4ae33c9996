"""The #13 comparison in one GPU call: prewarm the feature caches, calibrate the concurrent
throughput, size the epochs to the deadline, run the CRNN (baseline / + FPD, 5 seeds), the strong-label
reference and the CNN-3 (weak / IP / Euc) runs at once, then pack the run folders (metrics, logs,
recipes; no checkpoints, no scores) into $OUT/gpu_runs.tar.gz for the reports.

    python3 benchmarks/device_compare.py --bench /tmp/bench --out /tmp/cmp --deadline UNIX_TS [--dry]

benchmarks/device_compare.sh is the whole device call (wheels, bench rendered there from the Opus
soundbank decoded by benchmarks/device_bank.py, MPS, this script; scripts/device_wheels.sh makes .whl/);
see docs/results.md for what session 6 saw. A run that dies is relaunched once while time is left:
`dcase-fpd compare` resumes it from its last.ckpt and then tests it. Instead of the comparison,
``--sizing EPOCHS`` times #12's 5 seeds x 3 CNN-3 recipes (sizing()) and ``--crnn-peak EPOCHS`` records
real CRNN runs' peak GPU memory (crnn_peak()). Dry run on CPU (Python 3.12 venv): --dry --only
crnn|cnn3 (or --dry --sizing / --crnn-peak) on a small bench.
"""
import argparse
import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
spec = importlib.util.spec_from_file_location("paper_tables", REPO / "benchmarks" / "paper_tables.py")
pt = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pt)
from dcase_fpd_plugin.atomic import atomic_write_text

ap = argparse.ArgumentParser()
ap.add_argument("--bench", type=Path, required=True)
ap.add_argument("--out", type=Path, required=True)
ap.add_argument("--deadline", type=float, required=True)
ap.add_argument("--dry", action="store_true", help="CPU dry run: 1 seed, tiny epochs")
ap.add_argument("--tail-s", type=float, default=110, help="seconds kept for the final tests and packing")
ap.add_argument("--max-epochs", type=int, default=60)
ap.add_argument("--only", help="dry runs: only this group")
ap.add_argument("--groups", default="crnn,strong,cnn3",
                help="comma-separated groups to run, in priority order of the plan (crnn, strong, cnn3)")
ap.add_argument("--rates", default="",
                help="per-process training clips/s with all runs at once, e.g. crnn=150: no calibration "
                     "for those models (each run also gets training.max_train_s, so a slower run still ends "
                     "and is tested in time)")
ap.add_argument("--rate-margin", type=float, default=1.8,
                help="calibrated clips/s are divided by this (session 6: the real runs went 1.8x slower)")
ap.add_argument("--mem-fraction", type=float, default=0.8, help="share of GPU memory the planned runs may take")
ap.add_argument("--sizing", type=int, metavar="EPOCHS",
                help="#12's sizing instead of the comparison: one `dcase-fpd compare --jobs 15` of the CNN-3 "
                     "recipes x 5 seeds x EPOCHS epochs (no time limit, warm feature cache), timed; killed at "
                     "the deadline, and resumed by the same command in a later call (the walls add up in "
                     "sizing.json)")
ap.add_argument("--crnn-peak", type=int, metavar="EPOCHS",
                help="#12's memory line instead: real CRNN runs (dcase2023_baseline, and + FPD) of EPOCHS epochs on the "
                     "bench, at once, as shipped and with the lean settings under training.gpu_memory_limit_gb=2 "
                     "(PEAK_VARIANTS); each run's peak_gpu_mb and fit wall go to crnn_peak.json (crnn_peak())")
args = ap.parse_args()
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:6.1f} s, {args.deadline - time.time():5.0f} s left] {msg}", flush=True)


bench = json.loads((args.bench / "bench.json").read_text())
cache = args.bench / "feature_cache"
COMMON = ["training.progress_bar=false", "training.num_threads=1", "training.test_last_n_epochs=5",
          "eval.psds_late_epochs=false", "energy.enabled=false", "data.feature_store_dtype=float16",
          f"data.cache_dir={cache}"]
if args.dry:
    COMMON += ["training.accelerator=cpu", "training.test_last_n_epochs=1", "training.batch_size=[4, 4, 0]"]
CRNN_BASE = [*bench["overrides"], "training.batch_size=[24, 24, 0]", *COMMON]
CRNN_STRONG = [*bench["strong_reference_overrides"], *COMMON]
CNN3 = [*bench["overrides"], *pt.DEFAULT_OVERRIDES, *COMMON]

recipes_dir = args.out / "recipes"
recipes_dir.mkdir(parents=True, exist_ok=True)
strong_recipe = recipes_dir / "crnn_strong_reference.yaml"
strong_recipe.write_text("# Upper reference: the DCASE 2023 CRNN with strong labels on every training clip (the bench's\n"
                         "# strong_train: synthetic + weak training clips), same validation and test sets.\n"
                         + (REPO / "recipes" / "dcase2023_baseline.yaml").read_text())
R = REPO / "recipes"
seeds = [0] if args.dry else list(range(5))
# (group, recipe, seed, model) in priority order: CRNN pair first, then the reference, then CNN-3.
plan = [("crnn", R / r, s, "crnn") for s in seeds for r in ("dcase2023_baseline.yaml", "dcase2023_baseline_fpd.yaml")]
plan += [("strong", strong_recipe, 0, "crnn")]
plan += [("cnn3", r, s, "cnn3") for s in seeds for r in pt.RECIPES]


def feats_of(overrides, recipe=R / "dcase2023_baseline.yaml"):
    from dcase_fpd_plugin.recipe.loading import load_recipe
    return load_recipe(recipe, overrides)["feats"]


def _warm(job):
    import torch
    torch.set_num_threads(1)
    from dcase_fpd_plugin.data.features import FeatureExtractor
    feats, paths = job
    fx = FeatureExtractor(feats, cache)
    for p in paths:
        fx(p)
    return len(paths)


def prewarm(models):
    clips = sorted(str(p) for s in ("synth_train", "synth_val", "weak", "test")
                   for p in (args.bench / s / "soundscapes").glob("*.wav"))
    jobs = []
    configs = {"crnn": feats_of(CRNN_BASE), "cnn3": feats_of(CNN3, pt.RECIPES[0])}
    for feats in (configs[m] for m in sorted(models)):
        jobs += [(feats, clips[i::32]) for i in range(32)]
    with ProcessPoolExecutor(min(16, os.cpu_count())) as ex:
        n = sum(ex.map(_warm, jobs))
    log(f"feature caches warm: {n} clip x config")


def gpu_mem_gb():
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True).stdout
        return float(out.split()[0]) / 1024
    except Exception:
        return 0.0


def overrides_for(group, recipe, n_epochs, max_train_s=None):
    # at least 30 s (one epoch runs anyway): a run launched late may end after the deadline
    limit = [f"training.max_train_s={max(30, int(max_train_s))}"] if max_train_s is not None else []
    if group == "cnn3":
        ov = [*CNN3, f"training.n_epochs={n_epochs}", *limit]
        if "fpd" in recipe.stem:
            ov.append(f"branches.fpd.wps_start_epoch={max(1, round(n_epochs / 3))}")
        return ov
    ov = [*(CRNN_STRONG if group == "strong" else CRNN_BASE), f"training.n_epochs={n_epochs}",
          f"training.n_epochs_warmup={max(1, round(n_epochs / 4))}", *limit]
    if "fpd" in recipe.stem:
        ov.append(f"branches.fpd.wps_start_epoch={max(1, round(n_epochs / 4))}")
    return ov


def calibrate(runs):
    """Per-process training clips/s of each model with all `runs` going at once (bench_train, pipeline only)."""
    procs = []
    for i, (group, recipe, seed, model) in enumerate(runs):
        ov = overrides_for(group, recipe, 3)
        cmd = [sys.executable, str(REPO / "benchmarks" / "bench_train.py"), "--recipe", str(recipe), "--skip-bound",
               "--clips", "48", "--warmup", "3" if args.dry else "20", "--steps", "2" if args.dry else "25",
               "--data", str(args.out / "calib_data" / str(i)),
               "--device", "cpu" if args.dry else "cuda", *ov, "training.test_last_n_epochs=0"]
        f = open(args.out / f"calib_{i}.log", "w")
        procs.append((model, subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT), f))
    rates = {}
    limit = time.time() + 120
    for model, p, f in procs:
        try:
            p.wait(timeout=max(1, limit - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
        f.close()
        m = re.search(r"pipeline_clips_per_s=([\d.]+)", Path(f.name).read_text())
        if m:
            rates.setdefault(model, []).append(float(m.group(1)))
        else:
            log(f"calibration process failed: {f.name}\n" + Path(f.name).read_text()[-3000:])
    out = {k: min(v) for k, v in rates.items()}
    for model, fallback in (("crnn", 120.0), ("cnn3", 200.0)):  # conservative per-process clips/s with ~20 at once
        if model not in out:
            log(f"no calibration for {model}: assuming {fallback} clips/s per process")
            out[model] = fallback
    return out


def wait_until_deadline(proc):
    """The exit status of ``proc`` (started with ``start_new_session``), or "killed at the deadline" after
    killing its whole process group (a compare's workers too) 20 s before ``--deadline``."""
    try:
        return proc.wait(timeout=max(1, args.deadline - 20 - time.time()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        return "killed at the deadline"


def sizing(n_epochs):
    """#12: 5 seeds x 3 CNN-3 recipes x n_epochs through `dcase-fpd compare --jobs 15`, as a user would run it;
    writes sizing.json (wall of each call, its exit, how far each run got) and packs the run folders."""
    prewarm({"cnn3"})
    out = args.out / "sizing"
    record_path = args.out / "sizing.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {"calls": []}
    n_seeds = 1 if args.dry else 5
    jobs = len(pt.RECIPES) * n_seeds
    n_epochs = 2 if args.dry else n_epochs
    cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "compare", *map(str, pt.RECIPES), "--seeds", str(n_seeds),
           "--jobs", str(jobs), "--out", str(out), *CNN3, f"training.n_epochs={n_epochs}"]
    log(f"sizing: {' '.join(cmd[3:7])} ... --jobs {jobs}, {n_epochs} epochs")
    t0 = time.time()
    with open(args.out / "sizing_compare.log", "a") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        rc = wait_until_deadline(proc)
    wall = time.time() - t0
    runs = {}
    for metrics_csv in sorted(out.glob("*/seed_*/logs/version_*/metrics.csv")):
        run = metrics_csv.parents[2]
        with open(metrics_csv, newline="") as f:  # validated epochs: the rows with the objective
            epochs = [float(row["epoch"]) for row in csv.DictReader(f) if row.get("val/obj") and row.get("epoch")]
        done = run / "metrics.json"
        m = json.loads(done.read_text()) if done.is_file() else {}
        runs[f"{run.parent.name}/{run.name}"] = {"epochs_validated": int(max(epochs)) + 1 if epochs else 0,
                                                 "complete": done.is_file(), "fit_wall_s": m.get("fit_wall_s"),
                                                 "peak_gpu_mb": m.get("peak_gpu_mb")}
    record["calls"].append({"wall_s": round(wall, 1), "rc": rc})
    record.update(n_epochs=n_epochs, jobs=jobs, total_wall_s=round(sum(c["wall_s"] for c in record["calls"]), 1),
                  runs=runs, complete=sum(r["complete"] for r in runs.values()))
    atomic_write_text(record_path, json.dumps(record, indent=2))  # the next call adds to it
    log(f"sizing: rc {rc}, {wall:.0f} s this call, {record['total_wall_s']:.0f} s in all; "
        f"{record['complete']} of {jobs} runs complete")
    pack()


LEAN = ["net.crnn_checkpoint_blocks=2", "training.teacher_first=true"]
CAP = ["training.gpu_memory_limit_gb=2"]
PEAK_VARIANTS = {  # name: (recipe, overrides beside CRNN_BASE: float16 store on the device, the recipe's 32-true)
    "baseline_fp32": ("dcase2023_baseline.yaml", []),  # as shipped (DESED_task's precision): the reference
    "baseline_bf16_lean_cap2": ("dcase2023_baseline.yaml", ["training.precision=bf16-mixed", *LEAN, *CAP]),
    "fpd_bf16_lean_cap2": ("dcase2023_baseline_fpd.yaml", ["training.precision=bf16-mixed", *LEAN, *CAP]),
    "baseline_fp32_lean_nostore_cap2": ("dcase2023_baseline.yaml", [*LEAN, "data.feature_store=off", *CAP]),
}


def crnn_peak(n_epochs):
    """#12: each PEAK_VARIANTS run trained for n_epochs at once (batch 48, float16 feature store on the device, as
    the comparison's CRNN runs), killed at the deadline; crnn_peak.json gets each run's exit, epochs trained,
    fit wall and peak_gpu_mb (torch.cuda.max_memory_allocated over the fit: store, model, steps, validation)."""
    prewarm({"crnn"})
    n_epochs = 1 if args.dry else n_epochs
    procs, used = {}, {}
    for name, (recipe, extra) in PEAK_VARIANTS.items():
        exp = args.out / "crnn_peak" / name
        if args.dry:  # the CPU: no cap, and fp32 (bf16 autocast is slow without bf16 units)
            extra = [o for o in extra if not o.startswith(("training.gpu_memory_limit_gb", "training.precision"))]
        used[name] = extra
        ov = [*overrides_for("crnn", R / recipe, n_epochs), *extra, f"training.exp_dir={exp}",
              "training.test_last_n_epochs=1"]
        shutil.rmtree(exp, ignore_errors=True)  # a measurement: never an earlier call's run, resumed or reported
        exp.mkdir(parents=True)
        f = open(exp.parent / f"{name}.log", "w")
        cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "train", str(R / recipe), *ov]
        procs[name] = (subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True), f)
    log(f"crnn peak: {len(procs)} CRNN runs of {n_epochs} epochs at once: {', '.join(procs)}")
    record = {"n_epochs": n_epochs, "runs": {}}
    for name, (proc, f) in procs.items():
        rc = wait_until_deadline(proc)
        f.close()
        exp = args.out / "crnn_peak" / name
        m = json.loads((exp / "metrics.json").read_text()) if rc == 0 and (exp / "metrics.json").is_file() else {}
        record["runs"][name] = {"rc": rc, "overrides": used[name], "recipe": PEAK_VARIANTS[name][0],
                                "peak_gpu_mb": m.get("peak_gpu_mb"), "fit_wall_s": m.get("fit_wall_s"),
                                "epochs_trained": m.get("epochs_trained"),
                                "complete": bool(m)}
        if rc != 0:
            log(f"crnn peak: {name} exited {rc}:\n" + Path(f.name).read_text()[-2000:])
        log(f"crnn peak: {name}: {record['runs'][name]}")
    atomic_write_text(args.out / "crnn_peak.json", json.dumps(record, indent=2))
    pack()


def main():
    args.out.mkdir(parents=True, exist_ok=True)
    if args.sizing:
        return sizing(args.sizing)
    if args.crnn_peak:
        return crnn_peak(args.crnn_peak)
    groups = [g for g in args.groups.split(",") if g]
    models = {m for g, _, _, m in plan if g in groups}
    prewarm(models)
    mem = gpu_mem_gb()
    per_run = {"crnn": 4.6, "cnn3": 3.2}  # GB: model + bf16 activations + float16 store + context (estimate)
    runs, used = [], 2.0
    for r in plan:
        if (args.only and r[0] != args.only) or r[0] not in groups:
            continue
        if args.dry or used + per_run[r[3]] <= args.mem_fraction * mem:
            runs.append(r)
            used += per_run[r[3]]
    log(f"GPU {mem:.0f} GB: {len(runs)} of {len(plan)} planned runs at once (~{used:.0f} GB)")
    fixed = {}
    for kv in filter(None, args.rates.split(",")):
        model, _, rate = kv.partition("=")
        if model not in per_run or not rate:
            sys.exit(f"--rates {args.rates!r}: expected MODEL=CLIPS_PER_S with MODEL in {sorted(per_run)}")
        fixed[model] = float(rate)
    to_calibrate = [r for r in runs if r[3] not in fixed]
    rates = {**(calibrate(to_calibrate) if to_calibrate else {}), **fixed}
    rates = {m: rates[m] for m in {r[3] for r in runs}}
    log(f"per-process clips/s with {len(runs)} at once: {rates} (given: {sorted(fixed)})")
    n_weak_train = round(bench["sets"]["weak"]["n_clips"] * 0.9)
    steps = n_weak_train // 24
    n_val = bench["sets"]["synth_val"]["n_clips"] + bench["sets"]["weak"]["n_clips"] - n_weak_train
    start_s = 45  # imports, store, Lightning set-up per run under load
    budget = args.deadline - time.time() - args.tail_s - start_s
    epochs = {}
    for model, rate in rates.items():
        if model not in fixed:  # a calibrated rate (short bench_train runs) overstates the real runs'
            rate /= args.rate_margin
        epoch_s = steps * 48 / rate + n_val / (3 * rate) + 1.5  # training + validation inference + metrics
        epochs[model] = max(2, min(args.max_epochs, int(budget / epoch_s)))
        log(f"{model}: {epoch_s:.1f} s per epoch -> {epochs[model]} epochs in {budget:.0f} s")
    if args.dry:
        epochs = {k: 2 for k in epochs}
    info = {"rates": rates, "rates_given": sorted(fixed), "epochs": epochs, "runs": [(g, r.stem, s) for g, r, s, _ in runs], "gpu_mem_gb": mem}
    (args.out / "plan.json").write_text(json.dumps(info, indent=2))
    def launch(group, recipe, seed, model):
        # the run's training budget: what is left before the tests' tail, less its start-up
        ov = overrides_for(group, recipe, epochs[model], args.deadline - time.time() - args.tail_s - start_s)
        cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "compare", str(recipe), "--out",
               str(args.out / f"runs_{group}"), "--seeds", "1", "--seed-start", str(seed), *ov]
        f = open(args.out / f"run_{group}_{recipe.stem}_{seed}.log", "a")
        return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=REPO), f

    live = {(g, r, s, m): [*launch(g, r, s, m), 0] for g, r, s, m in runs if m in epochs}
    log(f"launched {len(live)} runs")
    status = {}
    while live and time.time() < args.deadline - 25:
        time.sleep(2)
        for key, (p, f, tries) in list(live.items()):
            rc = p.poll()
            if rc is None:
                continue
            f.close()
            name = f"{key[0]}/{key[1].stem}/seed_{key[2]}"
            if rc != 0 and tries == 0 and args.deadline - time.time() > 90:
                log(f"{name}: rc {rc}, relaunched (compare resumes from last.ckpt)")
                live[key] = [*launch(*key), 1]
                continue
            status[name] = rc
            del live[key]
            log(f"{name}: rc {rc}")
    for key, (p, f, _) in live.items():
        p.kill()
        f.close()
        status[f"{key[0]}/{key[1].stem}/seed_{key[2]}"] = "killed at the deadline"
    (args.out / "status.json").write_text(json.dumps(status, indent=2))
    pack()


def pack():
    keep = re.compile(r"(metrics\.json|recipe\.yaml|compare_run\.json|metrics\.csv|compare\.log|\.log|plan\.json|"
                      r"status\.json|sizing\.json|crnn_peak\.json|\.yaml)$")
    tar_path = Path(os.environ.get("OUT", args.out)) / "gpu_runs.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for p in sorted(args.out.rglob("*")):
            if p.is_file() and keep.search(p.name) and "calib_data" not in p.parts and "checkpoints" not in p.parts:
                tar.add(p, arcname=str(p.relative_to(args.out)))
    log(f"packed {tar_path} ({tar_path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
