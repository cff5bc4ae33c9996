"""Recipe YAML: defaults, validation and command-line overrides.

A recipe has DESED_task-like sections (``data``, ``feats``, ``net``, ``training``, ``opt``,
``eval``) plus ``branches`` (one sub-section per branch plugin, e.g. ``branches.fpd``).
Every key has a default here (branches: the plugin's ``default_config()``); a recipe file only
states what differs. Unknown keys and wrong types are refused with the key path (and the
file and line where the key was written); overrides ``a.b=value`` are parsed as YAML.

A recipe may build on another: ``base: NAME`` (a recipe bundled with the package, see
:func:`bundled_recipes`) or ``base: path/to/file.yaml`` (relative to the recipe's own file). The
recipe's keys override its base's (mappings are merged key by key; lists and scalars replace),
bases may have bases, and the resolved recipe holds no ``base`` key. A recipe whose chain never
sets ``training.exp_dir`` gets ``exp/<its name>``, so a variant never shares its base's folder.

Relative data paths are resolved against the current working directory, as in DESED_task.

Modules: ``schema`` (every key's default and type), ``loading`` (YAML with positions, ``base:``, overrides), ``checks``. Owns what a recipe may hold. May import ``evaluation`` (post-processing names), the registry (plugin defaults) and the root modules; never ``training`` or above.
"""

from .checks import check_data_paths, enabled_branches, selection_on_test
from .loading import bundled_recipes, dump_recipe, load_recipe, parse_override, resolve_recipe
from .schema import DEFAULTS, RecipeError

__all__ = ["DEFAULTS", "RecipeError", "bundled_recipes", "check_data_paths", "dump_recipe", "enabled_branches",
           "load_recipe", "parse_override", "resolve_recipe", "selection_on_test"]
