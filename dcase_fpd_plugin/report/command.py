"""``dcase-fpd report``: its parser and command. The figures are computed by :mod:`.submission`, imported
only when the command runs (it needs torch to count MACs), so that ``dcase-fpd report --help`` prints
without it."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cmd_report(args: argparse.Namespace) -> int:
    from .energy_comparison import compare_runs, comparison_json, format_comparison
    from .meta import write_meta
    from .submission import format_report, resolve_baseline, resolve_run_folder, submission_figures

    def fail(msg: Any) -> int:
        print(f"dcase-fpd report: error: {msg}", file=sys.stderr)
        return 2

    baseline, meta = args.baseline, args.meta
    if meta and not baseline:
        return fail("--meta needs --baseline BASELINE (the meta file holds the baseline's energy "
                    "on the same hardware)")
    if meta and Path(meta).exists() and not args.force:
        return fail(f"{meta} exists; pass --force to replace it (nothing written)")
    try:
        exp_dir, named = resolve_run_folder(args.exp_dir)
        if named is not None:  # the demo's exp/demo holds its run in exp/demo/run: use it, and say so
            print(f"dcase-fpd report: {named} is not a run folder; reporting on the one run inside it: {exp_dir}",
                  file=sys.stderr)
        if baseline:
            baseline, named = resolve_baseline(baseline)
            if named is not None:
                used = getattr(baseline, "label", baseline)
                print(f"dcase-fpd report: --baseline {named} is not a run folder; using the one run inside it: "
                      f"{used}", file=sys.stderr)
        fig = submission_figures(exp_dir, ckpt=args.ckpt)
        cmp = compare_runs(exp_dir, baseline, args.allow_other_hardware) if baseline else None
    except (FileNotFoundError, ValueError) as exc:  # ReportError is a FileNotFoundError, ComparisonError a ValueError
        return fail(exc)
    if args.json:
        print(json.dumps({**fig, **({"baseline": comparison_json(cmp)} if cmp else {})}, indent=2, default=str))
    else:
        print(format_report(fig))
        if cmp is not None:
            print()
            print(format_comparison(cmp))
    if meta:
        try:
            written = write_meta(meta, fig, cmp, force=args.force)
        except (FileExistsError, OSError) as exc:
            return fail(exc)
        print(f"\nmeta block written to {written}", file=sys.stderr if args.json else sys.stdout)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dcase-fpd report EXP_DIR [--json] [--ckpt CKPT] [--baseline DIR [--meta OUT.yaml]]``."""
    p = subparsers.add_parser("report", help="print the DCASE submission figures of an experiment "
                                             "(energy kWh per phase, parameters, MACs per 10 s, hardware), "
                                             "against a baseline run on the same hardware (EW-PSDS)")
    p.add_argument("exp_dir", help="run folder (a run's training.exp_dir), e.g. exp/weak or exp/demo/run; a folder "
                                   "that holds exactly one run (the demo's exp/demo) stands for that run, "
                                   "one that holds several is refused with their list")
    p.add_argument("--ckpt", help="checkpoint to build the model from (default: checkpoints/best.ckpt, else last.ckpt)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--baseline", metavar="BASELINE",
                   help="the baseline, run on the same hardware: its run folder, or the official baseline's "
                        "codecarbon output as DESED_task writes it (its version_X folder with codecarbon/"
                        "emissions_baseline_*.csv (2024) or *_codecarbon/emissions.csv (2023), or one such "
                        "CSV): kWh ratio per phase and EW-PSDS1/2 = PSDS x kWh_baseline / kWh_system "
                        "(training energy)")
    p.add_argument("--allow-other-hardware", action="store_true",
                   help="compare with a baseline measured on other hardware (CPU model, GPU model or count)")
    p.add_argument("--meta", metavar="OUT.yaml",
                   help="write the complexity / energy block of the DCASE Task 4 submission meta file (needs --baseline)")
    p.add_argument("--force", action="store_true", help="replace an existing --meta file")
    p.set_defaults(func=cmd_report)
    return p
