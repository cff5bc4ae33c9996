"""``dcase-fpd postprocess RUN --method M [--force] [--score-checkpoint]``: post-process a finished run again
from its saved frame scores, without training.

The method is tuned on the run's ``raw_scores/val`` (its validation set) and scored on ``raw_scores/test``
against the test TSVs of the run's ``recipe.yaml`` (:func:`~dcase_fpd_plugin.evaluation.rescoring.postprocess_run`),
into ``RUN/postprocessing/<method>/`` (metrics.json, params.json, predictions.tsv), beside the run's own
``metrics.json``, which is never written. A run trained before raw scores were saved has none: with
``--score-checkpoint`` its tested checkpoint (``checkpoints/best.ckpt``, else ``last.ckpt``) scores the
validation and test sets first (inference only, into ``raw_scores/``; nothing else of the run changes).
Heavy imports wait until the command runs, so that ``dcase-fpd --help`` stays fast.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

METHOD_CHOICES = ("class_median", "csebb", "median")


def _fail(message: str) -> int:
    print(f"dcase-fpd postprocess: error: {message}", file=sys.stderr)
    return 2


def score_checkpoint(run: Path, recipe: dict) -> Path:
    """Write ``run/raw_scores/`` from the run's tested checkpoint (inference on the validation and test sets;
    no metrics, no energy record, no other file of the run written). Returns the checkpoint used."""
    from .runs import test

    ckpt = next((p for p in (run / "checkpoints" / "best.ckpt", run / "checkpoints" / "last.ckpt") if p.is_file()),
                None)
    if ckpt is None:
        raise FileNotFoundError(f"{run}: no checkpoints/best.ckpt or last.ckpt to score")
    quiet = copy.deepcopy(recipe)
    quiet["energy"]["enabled"] = False
    quiet["eval"]["psds"] = False
    quiet["training"]["progress_bar"] = False
    test(quiet, ckpt, out_dir=run, outputs=(), raw_scores=True)
    return ckpt


def cmd_postprocess(args: argparse.Namespace) -> int:
    run = Path(args.run)
    if args.method == "csebb":  # the optional extra: one line, before anything is read or written
        from ..evaluation.csebb import sebbs_missing

        missing = sebbs_missing()
        if missing is not None:
            return _fail(missing)
    if not (run / "recipe.yaml").is_file():
        raise FileNotFoundError(f"{run}: not a run folder (no recipe.yaml; give a run's training.exp_dir)")
    from ..evaluation.rescoring import MissingScoresError, output_folder, postprocess_run, raw_scores_folders
    from ..recipe.loading import load_recipe

    out = output_folder(run, args.method)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out} exists (a previous dcase-fpd postprocess); pass --force to replace it")
    recipe = load_recipe(run / "recipe.yaml")
    try:
        raw_scores_folders(run)
    except MissingScoresError:
        if not args.score_checkpoint:
            raise
        print(f"scoring {score_checkpoint(run, recipe)} on the validation and test sets (raw scores) ...")
    metrics = postprocess_run(run, recipe["data"], recipe["eval"], args.method, force=args.force)
    print(format_postprocessed(metrics, _run_metrics(run)))
    print(f"\nOutputs in {out}/: metrics.json, params.json (tuned on the validation set), predictions.tsv")
    return 0


def _run_metrics(run: Path) -> dict:
    try:
        return json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}


def format_postprocessed(metrics: dict, run_metrics: dict) -> str:
    """The method's figures beside the run's own (its median post-processing, from metrics.json)."""
    m = metrics["postprocessing"]

    def v(x) -> str:
        return "-" if x is None else f"{x:.4f}"

    rows = [("event F1 (macro)", "event_f1"), ("segment F1 (macro)", "segment_f1"),
            ("intersection F1", "intersection_f1"), ("PSDS1", "psds1"), ("PSDS2", "psds2")]
    lines = [f"{'metric':<20}  {'run (median)':>12}  {m:>12}", f"{'-' * 20}  {'-' * 12}  {'-' * 12}"]
    lines += [f"{label:<20}  {v(run_metrics.get(key)):>12}  {v(metrics.get(f'{m}_{key}')):>12}" for label, key in rows]
    lines.append(f"{'PSDS1 unprocessed':<20}  {'':>12}  {v(metrics.get('psds1_unprocessed')):>12}")
    lines.append(f"\nclips: {metrics['n_clips']} (test set {metrics['test_set']}); "
                 f"tuned on: {metrics.get('tuned_on') or 'nothing (the recipe values)'}")
    if metrics.get("selection_on_test"):
        lines.append("warning: the test set is the validation set: the tuned figures are flattered")
    return "\n".join(lines)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``dcase-fpd postprocess RUN --method M [--force] [--score-checkpoint]``."""
    p = subparsers.add_parser(
        "postprocess", help="tune a post-processing on a run's validation scores and score its test scores again "
                            "(no training), into RUN/postprocessing/<method>/",
        description="Tune a post-processing on a finished run's saved validation frame scores (RUN/raw_scores/val) "
                    "and apply it to its saved test scores (RUN/raw_scores/test), scored against the test TSVs of "
                    "RUN/recipe.yaml. Writes RUN/postprocessing/<method>/metrics.json, params.json and "
                    "predictions.tsv; the run's own metrics.json is never written.")
    p.add_argument("run", help="a run folder (its training.exp_dir)")
    p.add_argument("--method", required=True, choices=METHOD_CHOICES,
                   help="class_median: a median window and a threshold per class; csebb: change-point event boxes "
                        "(needs the sebbs extra); median: the recipe's own window and threshold, re-scored")
    p.add_argument("--force", action="store_true", help="replace an existing RUN/postprocessing/<method>/")
    p.add_argument("--score-checkpoint", action="store_true",
                   help="a run without raw_scores/ (trained before they were saved): score its tested checkpoint "
                        "on the validation and test sets first (inference only)")
    p.set_defaults(func=cmd_postprocess)
    return p
