"""``dcase-fpd embeddings extract``: BEATs frame embeddings of a recipe's folders, in DESED_task's files.

    dcase-fpd embeddings extract RECIPE [key.path=value ...] --checkpoint BEATs_iter3_plus_AS2M.pt \\
        --out DIR [--batch-size N] [--device cpu|cuda] [--workers K] [--force]

Writes ``DIR/<set>.hdf5`` (``synth_train``, ``weak_train``, ``weak_val``, ``synth_val``, ``devtest``,
...) for every folder the recipe names; point ``data.embeddings_dir`` at DIR to train with them.
The extraction itself is :func:`.extract.extract_embeddings` (imported when the command runs, so
that ``--help`` prints without torch).
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence


def cmd_extract(args: argparse.Namespace) -> int:
    """Run the extraction; prints one line per set and the energy. User errors: status 2, one message."""
    from ..data.tsv import DataError
    from ..energy.record import format_kwh
    from ..models.beats import CheckpointError
    from ..recipe.loading import load_recipe
    from ..recipe.schema import RecipeError
    from .extract import ExtractionError, extract_embeddings

    try:
        recipe = load_recipe(args.recipe, args.overrides)
        result = extract_embeddings(recipe, args.checkpoint, args.out, batch_size=args.batch_size, device=args.device,
                                    force=args.force, progress=not args.no_progress, num_workers=args.workers)
    except (RecipeError, DataError, CheckpointError, ExtractionError, FileNotFoundError, FileExistsError) as exc:
        print(f"dcase-fpd embeddings extract: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ndcase-fpd embeddings extract: interrupted; the same command continues where it stopped "
              f"(the sets done so far are in {args.out}, the current one in its .partial file)", file=sys.stderr)
        return 130
    for s in result.sets:
        how = {"extracted": f"{s.extracted} clips extracted",
               "resumed": f"resumed: {s.extracted} clips extracted, {s.n_clips - s.extracted} done before",
               "kept": "kept (finished before; --force extracts it again)",
               "linked": f"the same folder as {s.source}: a hard link to its file",
               "copied": f"the same folder as {s.source}: a copy of its file"}[s.status]
        print(f"{s.name:<18} {s.n_clips:>6} clips  {s.path}  {how}")
    if result.energy is not None:
        print(f"\nenergy (phase embeddings): {format_kwh(result.energy['energy_kwh'], result.energy['method'])}, "
              f"{result.energy['duration_s']:.0f} s, in {result.out_dir / 'energy.json'}")
    print(f"\nTrain with them: data.embeddings_dir={result.out_dir}")
    return 0


def configure_extract(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("recipe", help="recipe file or bundled name: its data.*_folder keys say which folders to extract")
    p.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. data.weak_folder=DESED/weak/audio")
    p.add_argument("--checkpoint", required=True, metavar="FILE",
                   help="a released BEATs checkpoint on this machine, e.g. BEATs_iter3_plus_AS2M.pt (nothing downloads)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the <set>.hdf5 files (DESED_task's "
                   "layout: its extract_embeddings.py writes them under <output_dir>/beats/)")
    p.add_argument("--batch-size", type=int, default=8, metavar="N", help="clips per forward pass (default 8)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N for another GPU; default cpu)")
    p.add_argument("--workers", type=int, default=0, metavar="K",
                   help="processes reading the audio beside the model (default 0: the main process reads)")
    p.add_argument("--force", action="store_true", help="extract every set again (finished files and partial "
                   "ones are replaced); without it finished sets are kept and interrupted ones resumed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_extract)
    return p


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dcase-fpd embeddings extract ...`` on an ``argparse`` subparsers object; returns ``embeddings``'s parser."""
    p = subparsers.add_parser("embeddings", help="extract pretrained BEATs frame embeddings into DESED_task's HDF5 files",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="embeddings_command", required=True, metavar="extract")
    e = sub.add_parser("extract", help="BEATs embeddings of every folder a recipe names -> DIR/<set>.hdf5",
                       description=__doc__.split("\n\n")[0] + " Finished sets are kept, interrupted ones resume "
                       "where they stopped; the energy is recorded in DIR/energy.json (phase embeddings).")
    configure_extract(e)
    p.intermixed = [e]  # the CLI makes these take overrides after the options (``extract R --out D key=value``)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dcase_fpd_plugin.embeddings.command extract ...``: the same command stand-alone."""
    parser = argparse.ArgumentParser(prog="dcase-fpd")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["embeddings", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
