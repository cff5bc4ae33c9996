"""``dcase-fpd synth``: regenerate a DESED-style synthetic strongly labelled set.

    dcase-fpd synth --spec dcase2023_2046 --soundbank DESED/soundbank \\
        --match DESED/metadata/validation/validation.tsv --out data/synth_2046 --workers 8

The lead's ``cli.py`` calls :func:`add_parser` on its subparsers; ``python -m
dcase_fpd_plugin.synth.command ...`` runs the same command stand-alone.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..data.tsv import DataError
from .generate import SynthError, generate_soundscapes
from .soundbank import SoundbankError
from .spec import SpecError


def _pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH (e.g. 6,30), got {text!r}") from None
    return lo, hi


def configure(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the synth options to ``p``."""
    p.add_argument("--soundbank", required=True, metavar="DIR", help="DESED-layout bank: foreground/<Class>[_nOn|_nOff|_nOn_nOff]/, background/")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (soundscapes/, soundscapes.tsv, weak.tsv, durations.tsv, report.*)")
    p.add_argument("--match", metavar="VALIDATION_TSV", help="strong-label TSV whose class distribution to follow, or desed_validation (the bundled measurement of the DESED validation set) (default: the same share for every class)")
    p.add_argument("--n-clips", type=int, metavar="N", help="clips to make (default: the spec's n_clips)")
    p.add_argument("--occurrences", type=int, metavar="M", help="total events to aim for (default: the spec's, else the target's events per clip)")
    p.add_argument("--spec", metavar="FILE", help="YAML settings: a file or a bundled name, e.g. dcase2023_2046 (default: DESED's values)")
    p.add_argument("--workers", type=int, default=1, metavar="K", help="processes (the output does not depend on it; default 1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the run (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite a previous run in --out (without it a matching run is resumed)")
    p.add_argument("--classes", metavar="A,B,...", help="restrict the target to these classes (comma-separated)")
    p.add_argument("--snr-db", type=_pair, metavar="LOW,HIGH", help="foreground-to-background SNR range in dB (default: the spec's, 6,30)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``synth`` on an ``argparse`` subparsers object; returns the new parser."""
    p = subparsers.add_parser(
        "synth",
        help="generate a DESED-format synthetic strongly labelled set with scaper",
        description=__doc__.split("\n\n")[0],
    )
    return configure(p)


def run(args: argparse.Namespace) -> int:
    """Execute the command; prints a summary and returns the exit status (errors -> 2)."""
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] if getattr(args, "classes", None) else None
    try:
        res = generate_soundscapes(
            args.soundbank,
            args.out,
            args.n_clips,
            match_tsv=args.match,
            occurrences=args.occurrences,
            spec=args.spec,
            workers=args.workers,
            seed=args.seed,
            force=args.force,
            classes=classes,
            snr_db=args.snr_db,
            progress=not args.no_progress,
        )
    except (SoundbankError, SpecError, SynthError, DataError, FileExistsError) as e:
        print(f"dcase-fpd synth: error: {e}", file=sys.stderr)
        return 2
    tot = res.report["totals"]
    print(
        f"{res.n_clips} clips in {res.out} ({res.rendered} made, {res.resumed} kept from a previous run) "
        f"in {res.seconds:.1f} s; {tot['occurrences']['achieved']} events (asked {tot['occurrences']['requested']}, "
        f"{tot['occurrences']['rel_error_pct']:+.2f} %); per-class share of clips within "
        f"{tot['max_abs_clip_share_diff_pp']} pp of the target; report: {res.report_json}"
    )
    for note in res.report.get("notes", []):
        print(f"note: {note}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = configure(argparse.ArgumentParser(prog="dcase-fpd synth", description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
