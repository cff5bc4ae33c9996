"""``dcase-fpd compare``: its parser and command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

# The comparison's modules (pandas, the training) are imported by the command, not here, so that
# `dcase-fpd compare --help` prints without them.


def split_recipes_and_overrides(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Positional words: ``key.path=value`` overrides vs recipe files (an existing file whose name
    holds '=' counts as a recipe)."""
    recipes, overrides = [], []
    for item in items:
        (overrides if "=" in item and not Path(item).is_file() else recipes).append(item)
    return recipes, overrides


def cmd_compare(args: argparse.Namespace) -> int:
    from .records import CompareError
    from .run import run_comparison

    recipes, overrides = split_recipes_and_overrides(args.items)
    if not recipes:
        raise CompareError("compare needs at least one recipe (file or bundled name) before the key=value overrides")
    result = run_comparison(recipes, args.seeds, args.out, overrides, seed_start=args.seed_start,
                            force=args.force, jobs=args.jobs, reports=not args.run_only)
    if "summary.md" in result.files:  # absent in the helper processes of a DDP run
        print()
        print(result.files["summary.md"].read_text())
    return 0


def _compare_main(args: argparse.Namespace) -> int:
    from .records import CompareError, RecipeMismatchError

    """cmd_compare, with the comparison's own refusals reported as user errors (exit 2)."""
    import sys

    try:
        return cmd_compare(args)
    except (CompareError, RecipeMismatchError) as exc:
        print(f"dcase-fpd compare: error: {exc}", file=sys.stderr)
        return 2


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dcase-fpd compare`` on the ``dcase-fpd`` sub-command parsers."""
    p = subparsers.add_parser(
        "compare",
        help="train and test several recipes with N seeds each; write the paper's tables and plots",
        description="\n\n".join(sys.modules[__package__].__doc__.split("\n\n")[:2]),  # the package docstring
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("items", nargs="+", metavar="RECIPE|key=value",
                   help="recipe YAML files or bundled names, then key.path=value overrides applied to every recipe")
    p.add_argument("--seeds", type=int, required=True, metavar="N", help="seeds per recipe")
    p.add_argument("--seed-start", type=int, default=0, metavar="S", help="first seed (default 0): seeds S .. S+N-1")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (run folders, summary.md, ...)")
    p.add_argument("--force", action="store_true",
                   help="redo every run, even complete ones or ones made by a different recipe")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="runs trained at once, each in its own process (one GPU shared, or the CPU cores "
                        "split between them); default 1")
    p.add_argument("--run-only", action="store_true", help=argparse.SUPPRESS)  # the --jobs workers
    p.set_defaults(func=_compare_main)
    return p
