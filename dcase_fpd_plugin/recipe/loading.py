"""Reading a recipe: YAML with file-and-line positions, ``base:`` composition, overrides, bundled recipes, the resolved dump."""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml

from .. import registry
from .checks import check_values
from .schema import BUNDLED_RECIPES_DIR, DEFAULTS, TYPES, RecipeError


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping key (``key path -> line``)."""


def _load_with_lines(text: str, source: str) -> tuple[dict, dict[str, int]]:
    try:
        root = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from exc
    lines: dict[str, int] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                lines[path] = key_node.start_mark.line + 1
                walk(value_node, path)

    if root is not None:
        walk(root, "")
    try:
        data = yaml.load(text, Loader=yaml.SafeLoader) or {}
    except yaml.constructor.ConstructorError as exc:  # a tag such as !!python/object: never constructed
        mark = exc.problem_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise RecipeError(f"{where}: {exc.problem}; a recipe holds plain YAML values only (nothing in it is "
                          "run or built)") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a mapping of sections, got {type(data).__name__}")
    return data, lines


def _type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in allowed:
        return False
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, allowed)


def _yaml11_float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _where(path: str, lines: dict[str, int], source: str) -> str:
    if path in lines:
        return f"{source}:{lines[path]}: "
    return f"{source}: " if source else ""


def _merge_checked(
    base: dict, update: dict, prefix: str, lines: dict[str, int], source: str, open_keys: bool = False
) -> None:
    """Merge ``update`` into ``base`` in place, refusing unknown keys and wrong types."""
    for key, value in update.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in base and not open_keys:
            hint = difflib.get_close_matches(str(key), [str(k) for k in base], n=1)
            did = f"; did you mean {(prefix + '.' if prefix else '') + hint[0]!r}?" if hint else ""
            known = ", ".join(sorted(str(k) for k in base))
            raise RecipeError(f"{_where(path, lines, source)}unknown key {path!r}{did} (known: {known})")
        if path == "branches":
            if not isinstance(value, dict):
                raise RecipeError(f"{_where(path, lines, source)}'branches' must be a mapping of branch names")
            for name, section in value.items():
                bpath = f"branches.{name}"
                if section is None:
                    section = {}
                if not isinstance(section, dict):
                    raise RecipeError(f"{_where(bpath, lines, source)}{bpath!r} must be a mapping")
                if name not in base["branches"]:
                    try:
                        factory = registry.get("branches", name)
                    except registry.UnknownPluginError as exc:
                        raise RecipeError(f"{_where(bpath, lines, source)}{bpath}: {exc}") from None
                    base["branches"][name] = copy.deepcopy(factory.default_config())
                    base["branches"][name].setdefault("enabled", False)
                _merge_checked(base["branches"][name], section, bpath, lines, source)
            continue
        current = base.get(key)
        if isinstance(current, dict) and not open_keys:
            if not isinstance(value, dict):
                raise RecipeError(f"{_where(path, lines, source)}{path!r} must be a mapping, got {value!r}")
            _merge_checked(current, value, path, lines, source)
            continue
        allowed = TYPES.get(path)
        if allowed is None:
            allowed = (type(current),) if current is not None else (object,)
        if float in allowed and isinstance(value, str):
            value = _yaml11_float(value)  # YAML 1.1 reads "1e-4" (no dot) as a string
        if not _type_ok(value, allowed):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
            raise RecipeError(
                f"{_where(path, lines, source)}{path!r} must be {names}, got {value!r} ({type(value).__name__})"
            )
        if isinstance(current, float) and isinstance(value, int):
            value = float(value)
        base[key] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"training.seed=3"`` -> ``("training.seed", 3)``; the value is parsed as YAML."""
    if "=" not in text:
        raise RecipeError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise RecipeError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"override {text!r}: value is not valid YAML: {exc}") from exc
    return key, value


def _nest(key: str, value: Any) -> dict:
    out: Any = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def bundled_recipes() -> dict[str, Path]:
    """``{name: file}`` of the recipes shipped inside the package (``dcase_fpd_plugin/recipe/bundled``)."""
    return {p.stem: p for p in sorted(BUNDLED_RECIPES_DIR.glob("*.yaml"))}


def recipe_summary(path: str | Path) -> str:
    """A recipe file's first comment line, without the ``#`` (empty when it has none)."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("#"):
            return line.strip().lstrip("#").strip()
    return ""


def _is_name(ref: str) -> bool:
    """A bare recipe name (``weak``), as opposed to a path (``recipes/weak.yaml``, ``./weak``)."""
    return "/" not in ref and "\\" not in ref and not Path(ref).suffix and ref not in (".", "..")


def resolve_recipe(ref: str | Path) -> Path:
    """The file of a recipe reference: an existing file, else a bundled recipe's name.

    Raises:
        RecipeError: neither, naming the reference and the bundled recipes.
    """
    path = Path(ref)
    if path.is_file():
        return path
    bundled = bundled_recipes()
    if _is_name(str(ref)) and str(ref) in bundled:
        return bundled[str(ref)]
    raise RecipeError(f"recipe file not found: {ref} (bundled recipes, usable by name: {', '.join(bundled)})")


def _resolve_base(ref: Any, child: Path, lines: dict[str, int]) -> Path:
    """The file named by ``base:`` in ``child``: a bundled name, or a path relative to ``child``'s folder."""
    where = _where("base", lines, str(child))
    if not isinstance(ref, str) or not ref.strip():
        raise RecipeError(f"{where}'base' must be a bundled recipe name or a path to a recipe file, got {ref!r}")
    bundled = bundled_recipes()
    if _is_name(ref):
        if ref in bundled:
            return bundled[ref]
        raise RecipeError(f"{where}base {ref!r} is not a bundled recipe (bundled: {', '.join(bundled)}); "
                          f"name a file as a path, e.g. base: ./{ref}.yaml")
    path = Path(ref).expanduser()
    if not path.is_absolute():
        path = child.parent / path
    if not path.is_file():
        raise RecipeError(f"{where}base file not found: {path} (base: {ref}, relative to {child.parent})")
    return path


def recipe_chain(path: str | Path) -> list[tuple[Path, dict, dict[str, int]]]:
    """``[(file, keys, key lines), ...]`` from the first base to the recipe itself; ``base`` keys removed.

    Raises:
        RecipeError: a missing file or base, or a cycle (naming every file in it).
    """
    chain: list[tuple[Path, dict, dict[str, int]]] = []
    seen: list[Path] = []
    current = resolve_recipe(path)
    while True:
        key = current.resolve()
        if key in seen:
            cycle = " -> ".join(str(p) for p in [*(c[0] for c in chain[seen.index(key):]), current])
            raise RecipeError(f"recipe bases form a cycle (each file names the next as its base): {cycle}")
        seen.append(key)
        data, lines = _load_with_lines(current.read_text(encoding="utf-8"), str(current))
        base = data.pop("base", None)
        chain.append((current, data, lines))
        if base is None:
            return chain[::-1]
        current = _resolve_base(base, current, lines)


def recipe_name(path: str | Path) -> str:
    """A recipe's name: its file stem (a bundled name is its own stem)."""
    return Path(path).stem


def load_recipe(path: str | Path | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Defaults <- bases <- recipe file <- overrides, validated; returns a plain nested dict.

    ``path`` is a file or a bundled recipe's name (``dcase2023_baseline``). Without a
    ``training.exp_dir`` anywhere in the chain or the overrides, the run folder is ``exp/<name>``.

    Raises:
        RecipeError: unknown key, wrong type, bad YAML, a missing base or a cycle of bases, naming
            the key path and the file and line (or the command-line override) it came from.
    """
    recipe = copy.deepcopy(DEFAULTS)
    exp_dir_set = False
    if path is not None:
        for file, data, lines in recipe_chain(path):
            _merge_checked(recipe, data, "", lines, str(file))
            exp_dir_set |= "exp_dir" in (data.get("training") or {})
        if not exp_dir_set:
            recipe["training"]["exp_dir"] = f"exp/{recipe_name(path)}"
    for text in overrides:
        key, value = parse_override(text)
        _merge_checked(recipe, _nest(key, value), "", {}, f"override {text!r}")
    check_values(recipe)
    return recipe


def dump_recipe(recipe: dict) -> str:
    """The resolved recipe as YAML text (written to the experiment folder)."""
    return yaml.safe_dump(recipe, sort_keys=False)
