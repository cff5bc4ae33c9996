"""Peak memory of ``dcase-fpd infer`` against the recording's length (#27 item 6).

Writes 16 kHz mono recordings of several lengths (noise plus tones, beeps and sweeps; written block
by block) into a scratch folder, and runs ``dcase-fpd infer --scores`` on each, one file per folder,
in a fresh process under ``/usr/bin/time -v``; prints each run's maximum resident set size, wall time
and the windows scored, and the ratio of each peak to the shortest file's. Infer reads a long file
as a stream of windows, so the peak should barely grow with the length (the acceptance: 60 min
within 1.5x of 5 min); a whole-file decode alone would hold 230 MB of float32 samples for 60 min.

Without ``--ckpt`` a demo checkpoint is trained first (the bundled demo recipe, 10 s clips, 1 epoch
on a small demo set: a minute on 2 cores).

    python benchmarks/bench_infer_memory.py [--ckpt CKPT] [--minutes 5 60] [--workdir /tmp/bench_infer_memory]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SR = 16000


def synthesize(path: Path, seconds: float, seed: int = 0, block_s: float = 10.0) -> None:
    """Noise with a tone, beeps or a sweep in most 10 s blocks, written block by block (PCM 16)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n_total = int(round(seconds * SR))
    with sf.SoundFile(str(path), "w", SR, 1, subtype="PCM_16") as f:
        done = 0
        while done < n_total:
            n = min(int(block_s * SR), n_total - done)
            t = np.arange(n) / SR
            x = 0.05 * rng.standard_normal(n)
            kind = rng.integers(4)
            if kind == 1:
                x += 0.3 * np.sin(2 * np.pi * rng.uniform(200, 3000) * t)
            elif kind == 2:
                x += 0.3 * np.sin(2 * np.pi * rng.uniform(1000, 3000) * t) * (np.sin(2 * np.pi * 4 * t) > 0)
            elif kind == 3:
                f0, f1 = rng.uniform(300, 800), rng.uniform(2500, 5000)
                x += 0.3 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * max(t[-1], 1e-3))))
            f.write(np.clip(x, -1, 1).astype(np.float32))
            done += n


def demo_checkpoint(workdir: Path) -> Path:
    """A 1-epoch demo model (bundled demo recipe: 10 s clips) on a small demo set."""
    from dcase_fpd_plugin.data.demo import build_demo_dataset
    from dcase_fpd_plugin.recipe.loading import load_recipe
    from dcase_fpd_plugin.training.runs import train

    ckpt = workdir / "exp" / "checkpoints" / "last.ckpt"
    if ckpt.is_file():
        return ckpt
    data = build_demo_dataset(workdir / "data", n_synth=12, n_weak=12, n_val=6, n_test=6)
    overrides = [f"data.{k}={v}" for k, v in data.items()] + [
        f"data.cache_dir={workdir / 'cache'}", f"training.exp_dir={workdir / 'exp'}", "training.n_epochs=1",
        "training.batch_size=[6, 6, 0]", "training.progress_bar=false", "training.test_last_n_epochs=0",
        "eval.psds=false"]
    train(load_recipe("demo", overrides), force=True)
    return ckpt


def measure(ckpt: Path, audio_dir: Path, out: Path) -> dict[str, float]:
    """Max RSS (MB) and wall seconds of one ``dcase-fpd infer`` process."""
    exe = shutil.which("dcase-fpd") or str(Path(sys.executable).parent / "dcase-fpd")
    cmd = ["/usr/bin/time", "-v", exe, "infer", "--ckpt", str(ckpt), "--audio", str(audio_dir),
           "--out", str(out / "events.tsv"), "--scores", str(out / "scores"), "--force"]
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", run.stderr).group(1))
    return {"rss_mb": rss_kb / 1024, "wall_s": wall, "command": " ".join(cmd)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", type=Path, help="checkpoint to infer with (default: train a demo one)")
    ap.add_argument("--minutes", type=float, nargs="+", default=[5, 60], help="recording lengths")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/bench_infer_memory"))
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    ckpt = args.ckpt or demo_checkpoint(args.workdir)
    rows = []
    for minutes in sorted(args.minutes):
        folder = args.workdir / f"audio_{minutes:g}min"
        wav = folder / f"rec_{minutes:g}min.wav"
        if not wav.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            synthesize(wav, minutes * 60)
        out = args.workdir / f"out_{minutes:g}min"
        out.mkdir(exist_ok=True)
        m = measure(ckpt, folder, out)
        n_rows = sum(1 for _ in open(out / "scores" / f"{wav.stem}.tsv")) - 1
        rows.append((minutes, m, n_rows, wav.stat().st_size / 2**20))
        print(f"# {m['command']}", flush=True)
    base = rows[0][1]["rss_mb"]
    print(f"{'minutes':>8} {'file MB':>8} {'score rows':>10} {'max RSS MB':>11} {'x shortest':>10} {'wall s':>7}")
    for minutes, m, n_rows, size in rows:
        print(f"{minutes:8g} {size:8.1f} {n_rows:10d} {m['rss_mb']:11.1f} {m['rss_mb'] / base:10.3f} {m['wall_s']:7.1f}")


if __name__ == "__main__":
    main()
