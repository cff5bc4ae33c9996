"""Planning a comparison: one run folder per recipe and seed, what to do with each (train, resume, reuse, refuse)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml
from .records import CompareError, IDENTITY_IGNORED, PlannedRun, RecipeMismatchError


def _normalised(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe as recipe.yaml stores it (YAML round trip), for comparisons."""
    from ..recipe.loading import dump_recipe

    return yaml.safe_load(dump_recipe(dict(recipe)))


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for k, v in d.items():
        path = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping) and v:
            flat.update(_flatten(v, path))
        else:
            flat[path] = v
    return flat


def _current_defaults(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """Flat default values of every key of ``recipe``: the recipe defaults and, for each of its
    branches, the branch plugin's ``default_config()`` (unknown plugins contribute nothing)."""
    from .. import registry
    from ..recipe.schema import DEFAULTS

    defaults = dict(DEFAULTS)
    branches = {}
    for name in (recipe.get("branches") or {}):
        try:
            branches[name] = registry.get("branches", name).default_config()
        except registry.UnknownPluginError:  # an uninstalled plugin: its keys have no known default
            continue
    defaults["branches"] = branches
    return _flatten(_normalised(defaults))


def recipe_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any],
                       ignored: Iterable[str] = IDENTITY_IGNORED) -> list[str]:
    """Key paths whose values differ between two resolved recipes, as ``key: old -> new``.

    A key missing from ``stored`` whose wanted value is its current default is no difference:
    the run predates the key, and a new key's default keeps the old behaviour.
    """
    a, b = _flatten(_normalised(stored)), _flatten(_normalised(wanted))
    defaults = _current_defaults(wanted)
    ignored = set(ignored)
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignored:
            continue
        if key not in a and key in defaults and b.get(key, "<absent>") == defaults[key]:
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            out.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return out


def run_action(planned: PlannedRun, force: bool = False) -> str:
    """What to do with a run folder: skip / resume / restart / new / redo (see PlannedRun).

    Raises:
        RecipeMismatchError: the folder holds a run of another recipe (or one whose recipe
            cannot be told), or one trained before 0.2's fidelity fixes, and ``force`` is false.
    """
    exp = planned.exp_dir
    has_metrics = (exp / "metrics.json").is_file()
    has_last = (exp / "checkpoints" / "last.ckpt").is_file()
    has_any = has_metrics or has_last or (exp / "checkpoints").is_dir() or (exp / "recipe.yaml").is_file()
    if not has_any:
        return "new"
    if force:
        return "redo"
    stored_path = exp / "recipe.yaml"
    if not stored_path.is_file():
        raise RecipeMismatchError(
            f"{exp} holds a run but no recipe.yaml, so it cannot be told whether it is a run of "
            f"{planned.recipe_path} (seed {planned.seed}); move it away or pass --force to redo it"
        )
    try:
        stored = yaml.safe_load(stored_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise RecipeMismatchError(f"{stored_path}: not valid YAML ({exc}); pass --force to redo the run") from None
    diffs = recipe_differences(stored, planned.recipe)
    if diffs:
        shown = "; ".join(diffs[:8]) + (f"; ... ({len(diffs)} keys in all)" if len(diffs) > 8 else "")
        raise RecipeMismatchError(
            f"{exp} holds a run of a different recipe than {planned.recipe_path} with these overrides "
            f"(seed {planned.seed}): {shown}. Use another --out, or pass --force to redo every run"
        )
    if has_metrics or has_last:
        _refuse_pre_fidelity_run(exp, has_metrics)
    if has_metrics:
        return "skip"
    return "resume" if has_last else "restart"


def _refuse_pre_fidelity_run(exp: Path, has_metrics: bool) -> None:
    """A run trained before 0.2's fidelity fixes (no fidelity mark in its metrics.json, or in its
    last checkpoint when unfinished) gives other numbers than the same recipe now: never reused."""
    from ..training.task import FIDELITY, FIDELITY_KEY, read_checkpoint

    if has_metrics:
        try:
            fidelity = json.loads((exp / "metrics.json").read_text()).get(FIDELITY_KEY, 1)
        except (ValueError, AttributeError):
            raise RecipeMismatchError(f"{exp / 'metrics.json'}: not a JSON object, so it cannot be told which "
                                      "code trained the run; pass --force to redo it") from None
        where = "metrics.json"
    else:
        fidelity = read_checkpoint(exp / "checkpoints" / "last.ckpt")[0].get(FIDELITY_KEY, 1)
        where = "checkpoints/last.ckpt"
    if fidelity < FIDELITY:
        raise RecipeMismatchError(
            f"{exp} holds a run trained before 0.2's fidelity fixes (no {FIDELITY_KEY} in its {where}; "
            "docs/results.md): its numbers are not comparable with new runs. Use another --out, or pass "
            "--force to redo every run")


def plan_runs(recipe_paths: Sequence[str | Path], seeds: Sequence[int], out: str | Path,
              overrides: Sequence[str] = (), force: bool = False) -> list[PlannedRun]:
    """Resolve and validate every (recipe, seed) run before anything is trained.

    Checks: at least one recipe and seed, distinct recipe names (file stems), no override of
    ``training.seed`` / ``training.exp_dir`` (compare sets them), every recipe loads with the
    overrides, its data paths exist, no run folder is in use by a live run (its lock), and every
    existing run folder matches (see run_action).

    Raises:
        CompareError, RecipeError, RecipeMismatchError: with the recipe and key named.
        RunInUseError: a run folder is in use.
    """
    from ..recipe.schema import RecipeError
    from ..recipe.checks import check_data_paths
    from ..recipe.loading import load_recipe, parse_override, recipe_name

    if not recipe_paths:
        raise CompareError("compare needs at least one recipe")
    if not seeds:
        raise CompareError("compare needs --seeds >= 1")
    for text in overrides:
        key, _ = parse_override(text)
        if key in ("training.seed", "training.exp_dir"):
            raise CompareError(f"override {text!r}: compare sets {key} itself "
                               "(use --seeds / --seed-start and --out)")
    paths = [Path(p) for p in recipe_paths]
    names = [recipe_name(p) for p in paths]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise CompareError(f"recipes must have distinct file names (they name the run folders and the "
                           f"table rows); given twice: {', '.join(dupes)}")
    out = Path(out)
    planned: list[PlannedRun] = []
    for path, name in zip(paths, names):
        for seed in seeds:
            run_ov = list(overrides) + [f"training.seed={seed}", f"training.exp_dir={out / name / f'seed_{seed}'}"]
            try:
                recipe = load_recipe(path, run_ov)
            except RecipeError as exc:
                msg = str(exc)
                raise RecipeError(msg if str(path) in msg else f"{path}: {msg}") from None
            if seed == seeds[0]:
                check_data_paths(recipe, ["synth", "weak", "unlabeled", "val"])
                if recipe["data"]["test_tsv"]:
                    check_data_paths(recipe, ["test"])
            planned.append(PlannedRun(name, path, seed, Path(recipe["training"]["exp_dir"]), recipe))
    from ..training.lock import check_not_in_use

    for p in planned:
        check_not_in_use(p.exp_dir)  # a run folder another live run holds: refused at once (even with --force)
        p.action = run_action(p, force)
    return planned
