"""Clips per second: ``dcase-fpd synth --workers 2`` vs a single-process loop over desed's generator.

Both make the same number of 10-s, 16-kHz clips from the same soundbank, with the same
reference level (-50 LUFS), SNR range (6..30 dB), no pitch shift / time stretch / reverb, a
uniform class distribution and ~2.5 events per clip:

* desed: ``desed.generate_synthetic.SoundscapesGenerator.generate_by_label_occurence`` (desed
  1.3.8; every class equally likely as the main class and as a co-occurring one,
  ``min_events=1, max_events=5``), one process; timed alone, and with desed's
  ``post_process_txt_labels`` writing the strong TSV;
* ours: the ``dcase-fpd synth`` command (``command.run``), i.e. bank scan, plan, rendering,
  labels post-processing, the three TSVs, report.json and report.png, with ``--workers 2``
  (and ``--workers 1`` for reference).

Each is run ``--repeats`` times, interleaved; the best time counts (the machine is shared).
Prints ratios, asserts nothing. Usage::

    python benchmarks/bench_synth.py [--clips 300] [--soundbank DIR] [--repeats 2]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcase_fpd_plugin.synth import command
from dcase_fpd_plugin.synth.soundbank import bank_classes


def default_bank() -> Path:
    env = os.environ.get("DCASE_FPD_SOUNDBANK")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "soundbank"


def run_desed(bank: Path, out: Path, n_clips: int, seed: int) -> tuple[float, float]:
    """Seconds for desed's generation loop, and for its label post-processing into a TSV."""
    from desed.generate_synthetic import SoundscapesGenerator
    from desed.post_process import post_process_txt_labels

    classes = bank_classes(bank)
    p = [1.0 / len(classes)] * len(classes)
    occurrences = {c: {"proba": p[0], "co-occurences": {"max_events": 5, "min_events": 1, "classes": classes, "probas": p}} for c in classes}
    t0 = time.perf_counter()
    gen = SoundscapesGenerator(10.0, str(bank / "foreground"), str(bank), ref_db=-50, samplerate=16000, random_state=seed)
    gen.generate_by_label_occurence(occurrences, n_clips, str(out), min_events=1, max_events=5, bg_labels="background",
                                    snr=("uniform", 6, 30), pitch_shift=None, time_stretch=None)
    t_gen = time.perf_counter() - t0
    post_process_txt_labels(str(out), output_tsv=str(out / "soundscapes.tsv"))
    return t_gen, time.perf_counter() - t0


def run_ours(bank: Path, out: Path, n_clips: int, seed: int, workers: int) -> float:
    parser = command.configure(argparse.ArgumentParser())
    args = parser.parse_args(["--soundbank", str(bank), "--out", str(out), "--n-clips", str(n_clips),
                              "--occurrences", str(int(2.5 * n_clips)), "--workers", str(workers), "--seed", str(seed),
                              "--snr-db", "6,30", "--force", "--no-progress"])
    t0 = time.perf_counter()
    with open(os.devnull, "w") as null:
        stdout, sys.stdout = sys.stdout, null
        try:
            rc = command.run(args)
        finally:
            sys.stdout = stdout
    if rc != 0:
        raise SystemExit(f"dcase-fpd synth failed with status {rc}")
    return time.perf_counter() - t0


def label_stats(tsv: Path, n_clips: int) -> str:
    import pandas as pd

    df = pd.read_csv(tsv, sep="\t")
    return f"{len(df) / n_clips:.2f} events/clip, mean event {float((df.offset - df.onset).mean()):.2f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--soundbank", type=Path, default=default_bank())
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not (args.soundbank / "foreground").is_dir():
        raise SystemExit(f"soundbank not found at {args.soundbank} (set DCASE_FPD_SOUNDBANK or --soundbank)")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    import scaper  # noqa: F401  (import cost outside the timings, for both sides)

    n = args.clips
    tmp = Path(tempfile.mkdtemp(prefix="bench_synth_"))
    best = {"desed": np.inf, "desed+tsv": np.inf, "w1": np.inf, "w2": np.inf}
    try:
        for r in range(args.repeats):
            shutil.rmtree(tmp / "desed", ignore_errors=True)
            t_gen, t_all = run_desed(args.soundbank, tmp / "desed", n, args.seed + r)
            best["desed"], best["desed+tsv"] = min(best["desed"], t_gen), min(best["desed+tsv"], t_all)
            best["w2"] = min(best["w2"], run_ours(args.soundbank, tmp / "ours", n, args.seed + r, workers=2))
            best["w1"] = min(best["w1"], run_ours(args.soundbank, tmp / "ours1", n, args.seed + r, workers=1))
        rate = {k: n / v for k, v in best.items()}
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"bench_synth: {n} clips of 10 s from {args.soundbank}; {os.cpu_count()} CPU cores, load average {load:.2f}; best of {args.repeats}")
        print(f"  desed SoundscapesGenerator, 1 process (generation only): {rate['desed']:7.1f} clips/s  ({label_stats(tmp / 'desed' / 'soundscapes.tsv', n)})")
        print(f"  desed generation + post_process_txt_labels (TSV):      {rate['desed+tsv']:7.1f} clips/s")
        print(f"  dcase-fpd synth --workers 1 (everything):               {rate['w1']:7.1f} clips/s")
        print(f"  dcase-fpd synth --workers 2 (everything):               {rate['w2']:7.1f} clips/s  ({label_stats(tmp / 'ours' / 'soundscapes.tsv', n)})")
        print(f"  ratio synth --workers 2 / desed generation only:  {rate['w2'] / rate['desed']:.2f}x (target >= 1.7x)")
        print(f"  ratio synth --workers 2 / desed generation + TSV: {rate['w2'] / rate['desed+tsv']:.2f}x")
        print(f"  ratio synth --workers 1 / desed generation only:  {rate['w1'] / rate['desed']:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
