"""The ``dcase-fpd`` command.

    dcase-fpd train RECIPE [key.path=value ...] [--resume | --force]   (RECIPE: a file or a bundled name)
    dcase-fpd test RECIPE --ckpt CKPT [key.path=value ...] [--out DIR]
    dcase-fpd infer --ckpt CKPT --audio DIR --out preds.tsv [--force]
    dcase-fpd demo [key.path=value ...]
    dcase-fpd synth ...            (see dcase-fpd synth --help)
    dcase-fpd compare RECIPE [RECIPE ...] --seeds N --out DIR [key.path=value ...]
    dcase-fpd report EXP_DIR [--baseline BASELINE_EXP_DIR [--meta OUT.yaml]]
    dcase-fpd embeddings extract RECIPE [key.path=value ...] --checkpoint BEATS.pt --out DIR [--force]
    dcase-fpd postprocess RUN --method class_median|csebb|median [--force] [--score-checkpoint]
    dcase-fpd recipes [show NAME [key.path=value ...]]

Errors in the user's input (recipe keys, data files, existing outputs) print one clear
message naming the file and exit with status 2; nothing is written before the input is valid.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence


def training_line(metrics: dict) -> str | None:
    """One line on the training process behind ``metrics`` (metrics.json of a run): epochs, the fit's
    wall time, and on a GPU its peak memory; None for metrics that carry none of it (a plain test)."""
    if "epochs_trained" not in metrics:
        return None
    line = f"trained {metrics['epochs_trained']} epochs"
    if metrics.get("stopped_by_time_limit"):
        line += " (stopped by training.max_train_s)"
    if metrics.get("stopped_early"):
        line += " (stopped early: no new best validation in training.early_stop_patience validations)"
    if metrics.get("fit_wall_s") is not None:
        line += f", fit {metrics['fit_wall_s']:.0f} s in this process"
    if metrics.get("peak_gpu_mb") is not None:
        line += f", peak GPU memory {metrics['peak_gpu_mb']} MB (store, model, steps, validation)"
    return line


def _print_metrics(metrics: dict, exp_dir: Path) -> None:
    from .evaluation.report import format_metrics_table as format_metrics

    print(format_metrics(metrics))
    trained = training_line(metrics)
    if trained:
        print(f"\n{trained}")
    print(f"\nOutputs in {exp_dir}/: metrics.json, predictions.tsv, scores/, checkpoints/, recipe.yaml, "
          "energy.json, logs/, tb/")


def cmd_train(args: argparse.Namespace) -> int:
    from .recipe.loading import load_recipe

    recipe = load_recipe(args.recipe, args.overrides)
    from .training.lock import rank_above_zero

    tr = recipe["training"]  # ranks > 0 track nothing (the rule of training.runs.is_rank_above_zero)
    helper = rank_above_zero(tr.get("num_nodes", 1) != 1 or tr.get("devices", 1) not in (1, "1"))
    if recipe["energy"]["enabled"] and not helper:  # codecarbon's hardware detection, beside the imports below
        from .energy.tracker import start_hardware_probe

        start_hardware_probe(recipe["energy"])
    from .training.runs import train

    result = train(recipe, resume=args.resume, force=args.force)
    if result.metrics is not None:
        _print_metrics(result.metrics, result.exp_dir)
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from .evaluation.report import format_metrics_table
    from .recipe.loading import load_recipe
    from .training.runs import test, training_run_mark

    recipe = load_recipe(args.recipe, args.overrides)
    default = Path(recipe["training"]["exp_dir"]) / "tests" / f"{Path(args.ckpt).stem}_<time>"
    if args.out:
        out = Path(args.out)
    else:  # a new folder: never over the training run's own metrics.json / predictions / scores
        import time

        out = default.with_name(default.name.replace("<time>", time.strftime('%Y%m%d-%H%M%S')))
    mark = training_run_mark(out)
    if mark is not None:  # even with --force: the training's metrics.json holds what only training knows
        raise FileExistsError(f"--out {out} is a training run's folder (it holds {mark}); its metrics.json, "
                              "predictions.tsv and scores/ are the training's results, and test results there "
                              "would replace them (dropping epochs_trained, fit_wall_s, stopped_by_time_limit), "
                              f"--force or not: choose another --out (without --out: {default}/)")
    if (out / "metrics.json").exists() and not args.force:
        raise FileExistsError(f"{out} already holds test results (metrics.json); pass --force to replace them "
                              "or choose another --out")
    result = test(recipe, args.ckpt, out_dir=out)
    print(format_metrics_table(result.metrics))
    print(f"\nOutputs in {out}/: metrics.json, predictions.tsv, scores/")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from .training.runs import infer

    n = infer(args.ckpt, args.audio, args.out, force=args.force, threshold=args.threshold,
              median_window=args.median_window, scores_dir=args.scores, skip_unreadable=args.skip_unreadable)
    print(f"{n} events written to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .data.demo import build_demo_dataset
    from .recipe.loading import load_recipe
    from .training.runs import train

    recipe_path = Path(args.recipe)
    recipe = load_recipe(recipe_path, args.overrides)
    data = recipe["data"]
    root = Path(data["synth_tsv"]).parent.parent
    print(f"Building the demo dataset under {root} (5 toy classes, DESED format) ...")
    build_demo_dataset(root, sample_rate=recipe["feats"]["sample_rate"], clip_s=recipe["feats"]["clip_s"])
    print(f"Training the weak baseline for {recipe['training']['n_epochs']} epochs "
          f"(recipe {recipe_path}, experiment folder {recipe['training']['exp_dir']}; a previous demo run "
          "there is replaced) ...")
    result = train(recipe, force=True)
    _print_metrics(result.metrics, result.exp_dir)
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from .recipe.loading import bundled_recipes, dump_recipe, load_recipe, recipe_summary

    if args.action == "keys":
        from .recipe.schema import keys_text

        print(keys_text(args.name, markdown=args.markdown))
        return 0
    if args.action == "show":
        if args.name is None:
            args.parser.error("show needs a recipe: dcase-fpd recipes show NAME")
        print(dump_recipe(load_recipe(args.name, args.overrides)), end="")
        return 0
    bundled = bundled_recipes()
    width = max(len(n) for n in bundled)
    for name, path in bundled.items():
        print(f"{name:<{width}}  {recipe_summary(path)}")
    print("\nUse one by name (dcase-fpd train NAME key.path=value ...) or copy it: dcase-fpd recipes show NAME "
          "> my.yaml prints it resolved (base: merged in). Files: " + str(next(iter(bundled.values())).parent))
    return 0


DESCRIPTION = ("Sound event detection in the DCASE Task 4 setting with the Frame Pairwise Distance (FPD) loss: "
               "train and test recipes (YAML), detect events in audio, compare recipes over seeds, regenerate "
               "the synthetic training set, report energy and model size for a DCASE submission.")


class IntermixedArgumentParser(argparse.ArgumentParser):
    """Lets overrides follow the options (``RECIPE ... --seeds N --out DIR key=value``): plain
    argparse only takes positionals in the first run before an option."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        if self._intermixing:
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


# Sub-commands defined in the module of their concept (``add_parser(subparsers)`` there).
MODULE_COMMANDS = {"synth": "synth.command", "bench": "synth.bench", "compare": "experiments.command",
                   "report": "report.command", "embeddings": "embeddings.command",
                   "postprocess": "training.postprocess"}
# Their one-line help in `dcase-fpd --help`, which imports none of them.
MODULE_HELP = {"synth": "generate a DESED-format synthetic strongly labelled set with scaper",
               "bench": "build the DESED-size benchmark dataset from a soundbank",
               "compare": "train and test several recipes with N seeds each; write the paper's tables and plots",
               "report": "print the DCASE submission figures of a run (kWh per phase, parameters, MACs, "
                         "hardware), optionally against a baseline run (EW-PSDS)",
               "embeddings": "extract pretrained BEATs frame embeddings into DESED_task's HDF5 files",
               "postprocess": "tune a post-processing (class_median, csebb) on a run's saved validation scores and "
                              "score its saved test scores again, without training"}
INTERMIXED_COMMANDS = ("compare",)  # module sub-commands whose overrides may follow their options


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word not starting with '-'), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``dcase-fpd`` parser; with ``command``, the other module sub-commands are placeholders
    (their modules are not imported); with ``command=""`` all of them are (``dcase-fpd --help``)."""
    p = argparse.ArgumentParser(prog="dcase-fpd", description=DESCRIPTION, epilog="Each command's options: "
                                "dcase-fpd COMMAND --help. Errors in a recipe, a data file or an existing output "
                                "print one message naming the file and exit with status 2.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a recipe, then test its best checkpoint")
    t.add_argument("recipe", help="recipe YAML file or bundled recipe name (e.g. weak, my/recipe.yaml; "
                                  "see dcase-fpd recipes)")
    t.add_argument("overrides", nargs="*", help="key.path=value overrides, e.g. training.seed=3")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--resume", action="store_true", help="continue from checkpoints/last.ckpt in training.exp_dir")
    g.add_argument("--force", action="store_true", help="replace an existing run in training.exp_dir")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("test", help="score a checkpoint on the recipe's test (or validation) set")
    s.add_argument("recipe", help="recipe YAML file or bundled recipe name")
    s.add_argument("overrides", nargs="*")
    s.add_argument("--ckpt", required=True, help="checkpoint file (e.g. exp/weak/checkpoints/best.ckpt)")
    s.add_argument("--out", help="output folder (default: a new folder EXP_DIR/tests/<checkpoint>_<time>)")
    s.add_argument("--force", action="store_true", help="replace the test results already in --out")
    s.set_defaults(func=cmd_test)

    i = sub.add_parser("infer", help="detect events in every audio file of a folder")
    i.add_argument("--ckpt", required=True)
    i.add_argument("--audio", required=True, help="folder of audio files (any rate, any channels)")
    i.add_argument("--out", required=True, help="output TSV in DESED strong format")
    i.add_argument("--scores", help="also write per-clip score TSVs (sed_scores_eval format) here")
    i.add_argument("--threshold", type=float, help="decision threshold (default: the recipe's eval.threshold)")
    i.add_argument("--median-window", type=int, help="median filter in frames (default: eval.median_window)")
    i.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    i.add_argument("--skip-unreadable", action="store_true",
                   help="go on without audio files that cannot be read (named in a warning); default: refuse")
    i.set_defaults(func=cmd_infer)

    d = sub.add_parser("demo", help="build a tiny toy dataset, train the weak baseline on it, print the metrics")
    d.add_argument("overrides", nargs="*")
    d.add_argument("--recipe", default="demo", help="recipe file or bundled name (default: the bundled demo)")
    d.set_defaults(func=cmd_demo)

    r = sub.add_parser("recipes", help="list the bundled recipes; 'recipes show NAME' prints one resolved; "
                                       "'recipes keys [SECTION]' every key",
                       description="Without arguments: the recipes bundled with the package, each with its first "
                                   "comment line. 'show NAME [key.path=value ...]': the recipe fully resolved "
                                   "(defaults, its base: chain, overrides), as saved in a run's recipe.yaml. "
                                   "'keys [SECTION]': every key of a section (data, feats, net, training, opt, "
                                   "eval, energy, branches; default: all) with its type, default and doc.")
    r.add_argument("action", nargs="?", choices=["show", "keys"],
                   help="show: print one recipe resolved; keys: the recipe keys")
    r.add_argument("name", nargs="?", help="bundled recipe name or recipe file (with show); a section (with keys)")
    r.add_argument("overrides", nargs="*", help="key.path=value overrides (with show)")
    r.add_argument("--markdown", action="store_true", help="with keys: Markdown tables (as in docs/usage.md)")
    r.set_defaults(func=cmd_recipes, parser=r)

    # Overrides may follow the options (`test R --ckpt C eval.threshold=0.9`), as compare allows.
    for parser in (t, s, d):
        parser.__class__ = IntermixedArgumentParser  # (compare's below)

    # Sub-commands that live beside their concept: each module has add_parser(subparsers). Only the
    # module of the command asked for is imported (compare's pulls in pandas, report's torch: ~1 s).
    import importlib

    for name, module in MODULE_COMMANDS.items():
        if command is not None and command != name:
            sub.add_parser(name, help=MODULE_HELP[name])
            continue
        parser = importlib.import_module(f"{__package__}.{module}").add_parser(sub)
        # the parsers that take overrides after their options: the command's, or those it names
        for intermixed in getattr(parser, "intermixed", [parser] if name in INTERMIXED_COMMANDS else []):
            intermixed.__class__ = IntermixedArgumentParser
    return p


_BUILTIN_COMMANDS = ("train", "test", "infer", "demo", "recipes")


def main(argv: Sequence[str] | None = None) -> int:
    from .compat import quiet_dependencies
    from .data.tsv import DataError
    from .recipe.schema import RecipeError
    from .registry import UnknownPluginError

    quiet_dependencies()
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    known = command in MODULE_COMMANDS or command in _BUILTIN_COMMANDS
    args = build_parser(command if known else "").parse_args(argv)  # unknown or none: the top-level help
    user_errors: tuple[type[BaseException], ...] = (RecipeError, DataError, UnknownPluginError,
                                                    FileNotFoundError, FileExistsError)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `dcase-fpd recipes keys | head`: the reader left; no traceback
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (Python flushes stdout again at exit)
        return 0
    except Exception as exc:
        # the training module (Lightning: ~6 s) is not imported here for its error class: a command
        # that raised one has imported it
        training = sys.modules.get(f"{__package__}.training.runs")
        if not isinstance(exc, user_errors) and not (training and isinstance(exc, training.ExperimentExistsError)):
            raise
        print(f"dcase-fpd {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
