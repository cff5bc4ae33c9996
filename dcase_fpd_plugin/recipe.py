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
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable

import yaml

from . import DESED_CLASSES, registry

BUNDLED_RECIPES_DIR = Path(__file__).resolve().parent / "recipes"

DEFAULTS: dict[str, Any] = {
    "data": {
        "classes": list(DESED_CLASSES),
        "synth_folder": None,  # SS: synthetic strongly-labelled clips
        "synth_tsv": None,
        "weak_folder": None,  # RW: real weakly-labelled clips
        "weak_tsv": None,
        "unlabeled_folder": None,  # UL: a folder of wavs (optional)
        "val_folder": None,  # strongly-labelled validation set: selects the checkpoint
        "val_tsv": None,  # (DCASE recipes: DESED's synthetic validation set, as DESED_task)
        "val_dur": None,
        "weak_val_fraction": 0.0,  # share of the weak clips held out for validation (DESED_task: 0.1)
        "weak_val_seed": 0,  # seed of that split (fixed: every training seed holds out the same clips)
        "test_folder": None,  # strongly-labelled test set: reported, never used for selection
        "test_tsv": None,  # (defaults to the validation set, with a warning: selection on test)
        "test_dur": None,
        "max_missing_fraction": 0.0,  # listed-but-absent audio allowed per set (0: none)
        "cache_dir": None,  # feature cache; default <exp_dir>/../.feature_cache
        "num_workers": 0,
        "feature_store": "auto",  # training clips held on the training device (data/store.py) | off
        "feature_store_max_gb": 4.0,  # auto: only when the store takes at most this much
        "feature_store_dtype": "float32",  # float32 (exact) | float16 (half the memory, ~0.03 dB rounding)
    },
    "feats": {
        "sample_rate": 16000,
        "clip_s": 10.0,
        "n_fft": 2048,
        "win_length": 2048,
        "hop_length": 256,
        "n_mels": 128,
        "f_min": 0.0,
        "f_max": 8000.0,
    },
    "net": {
        "name": "cnn3",  # cnn3: the paper's weak baseline | crnn: the DCASE 2023 baseline CRNN
        # cnn3 (models/encoder.py, weak_sed.py)
        "channels": [64, 128, 128],
        "kernel_size": 3,
        "time_pool": [2, 2, 1],  # output frame hop = hop_length * prod(time_pool) / sample_rate
        "freq_pool": [4, 4, 8],
        "dropout": 0.0,
        # crnn (models/crnn.py; DESED_task's confs/default.yaml values)
        "crnn_filters": [16, 32, 64, 128, 128, 128, 128],
        "crnn_pooling": [[2, 2], [2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2]],  # [time, freq] per block
        "crnn_kernel_size": 3,
        "crnn_dropout": 0.5,  # after each conv block and after the GRU
        "crnn_attention": "classes",  # softmax axis of the attention pooling: classes (DESED_task) | time
        "crnn_input_norm": "minmax",  # per-clip log-mel scaling: minmax to [0, 1] (DESED_task) | minmax_signed to [-1, 1] | standard
        "crnn_bn_momentum": 0.99,  # BatchNorm momentum, PyTorch meaning (DESED_task's value)
        "crnn_checkpoint_blocks": 0,  # first N conv blocks recompute activations in backward (less memory, same results)
        "rnn_hidden": 128,  # GRU units per direction: embeddings D = 2 * rnn_hidden
        "rnn_layers": 2,
        "rnn_dropout": 0.0,  # between GRU layers
    },
    "training": {
        "exp_dir": "exp/weak",
        "n_epochs": 12,
        "batch_size": [24, 24, 0],  # clips per batch from [synthetic, weak, unlabelled]
        "batch_size_val": 48,
        "seed": 42,
        "monitor": "val/obj",  # checkpoint selection: tagging F1 + segment F1 on validation
        "precision": "32-true",  # Lightning's; auto: bf16-mixed where the device has fast bf16, else 32-true
        "num_threads": 0,  # torch CPU threads; 0 = torch's default
        "channels_last": False,  # conv weights and activations in channels-last memory (faster CNN steps on CPU)
        "accelerator": "auto",
        "devices": 1,
        "strategy": "auto",
        "num_nodes": 1,
        "log_every_n_steps": 10,
        "progress_bar": True,
        "val_every_n_epochs": 1,
        "test_last_n_epochs": 0,  # also test the last N epochs' weights (late_epochs/ in the run folder)
        "max_train_s": None,  # seconds of training per process; stops after the last epoch expected to fit
        "limit_train_batches": 1.0,
        # DCASE 2023 baseline training scheme (all off by default: the weak baseline)
        "strong_loss": False,  # BCE on SS frame probabilities + weak BCE on RW clips only (DESED_task)
        "mean_teacher": False,  # EMA teacher + consistency loss on all clips (dcase_fpd_plugin/mean_teacher.py)
        "ema_factor": 0.999,  # teacher decay
        "teacher_first": False,  # teacher's forward before the student's: a lower peak memory, other dropout draws
        "gpu_memory_limit_gb": None,  # CUDA memory this process may allocate (cuDNN then picks leaner algorithms)
        "const_max": 2.0,  # consistency weight after the ramp-up
        "n_epochs_warmup": 50,  # epochs of the exp(-5 (1 - t)^2) ramp-up (consistency weight, opt.lr_warmup)
        "self_sup_loss": "mse",  # consistency loss: mse | bce
        "eval_model": "student",  # model validated, tested and used for inference: student | teacher
        "mixup": False,  # mixup within the SS and the RW slice (dcase_fpd_plugin/data/mixup.py)
        "mixup_prob": 0.5,  # probability per batch
        "mixup_alpha": 0.2,  # mixing weight ~ Beta(alpha, alpha)
        "mixup_label_type": "soft",  # soft: labels mixed like the features | hard: union of the labels
        "mixup_domain": "amplitude",  # mix mel amplitudes (DESED_task) | feature: mix the dB features
    },
    "opt": {
        "lr": 0.001,
        "weight_decay": 0.0,
        "lr_warmup": False,  # lr ramped up by exp(-5 (1 - t)^2) over training.n_epochs_warmup (DESED_task)
        "gradient_clip": 0.0,  # max gradient norm; 0 = no clipping (DESED_task's default)
    },
    "eval": {
        "median_window": 7,  # frames of the output frame rate
        "threshold": 0.5,
        "tagging_threshold": 0.5,
        "psds": True,
        "psds_late_epochs": True,  # PSDS for training.test_last_n_epochs too (false: the F1 families only)
        "psds_clips": "with_events",  # PSDS over the clips with reference events (DESED_task) | all
    },
    "energy": {  # codecarbon energy tracking (dcase_fpd_plugin.energy): kWh per phase in <exp_dir>/energy.json
        "enabled": True,
        "country_iso_code": "FRA",  # ISO 3166-1 alpha-3; sets the carbon intensity (kWh do not depend on it)
        "output_subdir": "energy",  # codecarbon's CSVs go to <exp_dir>/<output_subdir>/<phase>.csv
        "measure_power_secs": 15.0,  # seconds between codecarbon's power readings
        "tracking_mode": "machine",  # machine: the whole computer | process: this process only
    },
    "branches": {},
}

# Keys whose default is None (or that accept several types): the types allowed.
_TYPES: dict[str, tuple[type, ...]] = {
    "data.synth_folder": (str, type(None)),
    "data.synth_tsv": (str, type(None)),
    "data.weak_folder": (str, type(None)),
    "data.weak_tsv": (str, type(None)),
    "data.unlabeled_folder": (str, type(None)),
    "data.val_folder": (str, type(None)),
    "data.val_tsv": (str, type(None)),
    "data.val_dur": (str, type(None)),
    "data.test_folder": (str, type(None)),
    "data.test_tsv": (str, type(None)),
    "data.test_dur": (str, type(None)),
    "data.cache_dir": (str, type(None)),
    "data.feature_store": (str, bool),  # YAML reads a bare off / on as false / true
    "training.precision": (str, int),
    "training.devices": (int, str, list),
    "training.limit_train_batches": (int, float),
    "training.max_train_s": (int, float, type(None)),
    "training.gpu_memory_limit_gb": (int, float, type(None)),
}

DATA_KEYS_BY_SET = {
    "synth": ("synth_folder", "synth_tsv"),
    "weak": ("weak_folder", "weak_tsv"),
    "unlabeled": ("unlabeled_folder",),
    "val": ("val_folder", "val_tsv", "val_dur"),
    "test": ("test_folder", "test_tsv", "test_dur"),
}


class RecipeError(ValueError):
    """A recipe key is unknown, of the wrong type, or names a missing path."""


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
    data = yaml.load(text, Loader=yaml.SafeLoader) or {}
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
        allowed = _TYPES.get(path)
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
    """``{name: file}`` of the recipes shipped inside the package (``dcase_fpd_plugin/recipes``)."""
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
    _check_values(recipe)
    return recipe


def _check_values(recipe: dict) -> None:
    data, training, net = recipe["data"], recipe["training"], recipe["net"]
    classes = data["classes"]
    if not classes or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise RecipeError("'data.classes' must be a non-empty list of distinct class names")
    bs = training["batch_size"]
    if len(bs) != 3 or not all(isinstance(b, int) and b >= 0 for b in bs) or sum(bs[:2]) == 0:
        raise RecipeError(
            f"'training.batch_size' must be [synthetic, weak, unlabelled] clip counts with at least one "
            f"labelled slice > 0, got {bs}"
        )
    if len(net["time_pool"]) != len(net["channels"]) or len(net["freq_pool"]) != len(net["channels"]):
        raise RecipeError("'net.time_pool' and 'net.freq_pool' need one entry per 'net.channels' block")
    if training["n_epochs"] < 1:
        raise RecipeError(f"'training.n_epochs' must be >= 1, got {training['n_epochs']}")
    if not 0.0 <= data["max_missing_fraction"] <= 1.0:
        raise RecipeError("'data.max_missing_fraction' must lie in [0, 1]")
    if not 0.0 <= data["weak_val_fraction"] < 1.0:
        raise RecipeError(f"'data.weak_val_fraction' must lie in [0, 1), got {data['weak_val_fraction']}")
    if not 0 <= training["test_last_n_epochs"] <= training["n_epochs"]:
        raise RecipeError(f"'training.test_last_n_epochs' must lie in [0, training.n_epochs="
                          f"{training['n_epochs']}], got {training['test_last_n_epochs']}")
    for key, unit in (("max_train_s", "seconds"), ("gpu_memory_limit_gb", "GB")):
        value = training[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise RecipeError(f"'training.{key}' must be a number of {unit} > 0 or null, got {value!r}")
    if training["batch_size_val"] < 1:
        raise RecipeError(f"'training.batch_size_val' must be >= 1, got {training['batch_size_val']}")
    _check_eval(recipe["eval"])
    _check_training_scheme(recipe)
    _check_branches(recipe)
    _check_crnn_frequency(recipe)


def _check_branches(recipe: dict) -> None:
    """Each enabled branch's own checks (``Branch.check_config``), so that a bad value is refused at
    load time and not after the run folder was written."""
    for name, section in recipe["branches"].items():
        factory = registry.get("branches", name)
        check = getattr(factory, "check_config", None)
        if not section.get("enabled", False) or check is None:
            continue
        try:
            check(section)
        except (ValueError, TypeError, registry.UnknownPluginError) as exc:
            msg = str(exc)
            raise RecipeError(msg if msg.startswith("branches.") else f"branches.{name}: {msg}") from None


def _check_crnn_frequency(recipe: dict) -> None:
    """The CRNN's frequency pooling must leave at least one mel band (64 mels under the default 128-mel
    pooling used to fail when the model was built)."""
    net = recipe["net"]
    if net["name"] != "crnn":
        return
    bands = recipe["feats"]["n_mels"]
    for t_pool, f_pool in net["crnn_pooling"]:
        bands //= f_pool
    if bands < 1:
        raise RecipeError(f"'net.crnn_pooling' pools {recipe['feats']['n_mels']} mels (feats.n_mels) below one band "
                          f"(frequency factors {[f for _, f in net['crnn_pooling']]}); use fewer or smaller "
                          "frequency factors, or more mels")


def _check_eval(ev: dict) -> None:
    """Post-processing values, checked at load time so that a bad one does not surface only at the
    first validation, after an epoch of training."""
    from dcase_fpd_plugin.evaluation.postprocessing import median_windows

    try:
        median_windows(ev["median_window"], 1)
    except ValueError as exc:
        raise RecipeError(f"'eval.median_window': {exc}") from None
    for key in ("threshold", "tagging_threshold"):
        if not 0.0 <= ev[key] <= 1.0:
            raise RecipeError(f"'eval.{key}' is a probability and must lie in [0, 1], got {ev[key]}")


_CHOICES = {
    "data.feature_store": ("auto", "off"),
    "data.feature_store_dtype": ("float32", "float16"),
    "net.name": ("cnn3", "crnn"),
    "net.crnn_attention": ("classes", "time"),
    "net.crnn_input_norm": ("minmax", "minmax_signed", "standard"),
    "eval.psds_clips": ("with_events", "all"),
    "training.self_sup_loss": ("mse", "bce"),
    "training.eval_model": ("student", "teacher"),
    "training.mixup_label_type": ("soft", "hard"),
    "training.mixup_domain": ("amplitude", "feature"),
}


def _check_training_scheme(recipe: dict) -> None:
    """Values of the CRNN / mean-teacher / mixup keys (types are checked by the merge)."""
    store = recipe["data"]["feature_store"]
    if isinstance(store, bool):  # YAML 1.1: off -> False, on -> True
        recipe["data"]["feature_store"] = "auto" if store else "off"
    for path, choices in _CHOICES.items():
        section, key = path.split(".")
        if recipe[section][key] not in choices:
            raise RecipeError(f"{path!r} must be one of {', '.join(choices)}, got {recipe[section][key]!r}")
    net, training, opt = recipe["net"], recipe["training"], recipe["opt"]
    pooling = net["crnn_pooling"]
    if len(pooling) != len(net["crnn_filters"]) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and v >= 1 for v in p) for p in pooling):
        raise RecipeError(f"'net.crnn_pooling' needs one [time, freq] pair of positive integers per "
                          f"'net.crnn_filters' block, got {pooling}")
    blocks = net["crnn_checkpoint_blocks"]
    if isinstance(blocks, bool) or not isinstance(blocks, int) or not 0 <= blocks <= len(net["crnn_filters"]):
        raise RecipeError(f"'net.crnn_checkpoint_blocks' must be an integer in [0, {len(net['crnn_filters'])}] "
                          f"(conv blocks that recompute their activations), got {blocks!r}")
    if not 0.0 <= training["ema_factor"] < 1.0:
        raise RecipeError(f"'training.ema_factor' must lie in [0, 1), got {training['ema_factor']}")
    if not 0.0 <= training["mixup_prob"] <= 1.0:
        raise RecipeError(f"'training.mixup_prob' must lie in [0, 1], got {training['mixup_prob']}")
    if training["mixup_alpha"] <= 0:
        raise RecipeError(f"'training.mixup_alpha' must be > 0, got {training['mixup_alpha']}")
    if training["n_epochs_warmup"] < 0 or training["const_max"] < 0 or opt["gradient_clip"] < 0:
        raise RecipeError("'training.n_epochs_warmup', 'training.const_max' and 'opt.gradient_clip' must be >= 0")
    if training["teacher_first"] and not training["mean_teacher"]:
        raise RecipeError("'training.teacher_first: true' needs 'training.mean_teacher: true'")
    if training["eval_model"] == "teacher" and not training["mean_teacher"]:
        raise RecipeError("'training.eval_model: teacher' needs 'training.mean_teacher: true'")


def check_data_paths(recipe: dict, sets: Iterable[str]) -> None:
    """Refuse missing data paths of the named sets (``synth``, ``weak``, ``val``, ...).

    A set is required when named; ``synth``/``weak``/``unlabeled`` are skipped when their
    batch size is 0. Raises RecipeError naming the key and the path.
    """
    data = recipe["data"]
    bs = dict(zip(("synth", "weak", "unlabeled"), recipe["training"]["batch_size"]))
    for name in sets:
        if bs.get(name, 1) == 0:
            continue
        for key in DATA_KEYS_BY_SET[name]:
            value = data[key]
            if value is None:
                raise RecipeError(f"'data.{key}' is required (the {name} set is used) but not set")
            p = Path(value)
            if key.endswith("folder") and not p.is_dir():
                raise RecipeError(f"'data.{key}': folder not found: {p}")
            if not key.endswith("folder") and not p.is_file():
                raise RecipeError(f"'data.{key}': file not found: {p}")


def _same_file(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


def selection_on_test(recipe: dict) -> bool:
    """True when the test set is the validation set that selects the checkpoint: ``data.test_tsv``
    unset (the test falls back to the validation set) or naming the same TSV and folder as
    ``data.val_*``. Its metrics are then flattered by the selection."""
    data = recipe["data"]
    if not data["test_tsv"]:
        return True
    return _same_file(data["test_tsv"], data["val_tsv"]) and _same_file(data["test_folder"], data["val_folder"])


SELECTION_ON_TEST_WARNING = (
    "the test set is the validation set that selects the checkpoint (data.test_* unset or equal to "
    "data.val_*): its metrics are flattered by that selection, and metrics.json says "
    "\"selection_on_test\": true. Set data.test_folder/test_tsv/test_dur to a held-out set.")


def enabled_branches(recipe: dict) -> dict[str, dict]:
    """``{name: section}`` of the branches whose ``enabled`` flag is true."""
    return {n: s for n, s in recipe["branches"].items() if s.get("enabled", False)}


def dump_recipe(recipe: dict) -> str:
    """The resolved recipe as YAML text (written to the experiment folder)."""
    return yaml.safe_dump(recipe, sort_keys=False)
