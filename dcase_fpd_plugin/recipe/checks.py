"""Checks of a resolved recipe: values, branches, the CRNN's frequency axis, the Conformer's keys, eval, the training
scheme, data paths."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .. import registry
from .schema import CHOICES, DATA_KEYS_BY_SET, RecipeError


def check_values(recipe: dict) -> None:
    data, training, net = recipe["data"], recipe["training"], recipe["net"]
    classes = data["classes"]
    if not classes or not all(isinstance(c, str) for c in classes) or len(set(classes)) != len(classes):
        raise RecipeError("'data.classes' must be a non-empty list of distinct class names")
    if len(net["time_pool"]) != len(net["channels"]) or len(net["freq_pool"]) != len(net["channels"]):
        raise RecipeError("'net.time_pool' and 'net.freq_pool' need one entry per 'net.channels' block")
    if training["n_epochs"] < 1:
        raise RecipeError(f"'training.n_epochs' must be >= 1, got {training['n_epochs']}")
    if not 0.0 <= data["max_missing_fraction"] <= 1.0:
        raise RecipeError("'data.max_missing_fraction' must lie in [0, 1]")
    if not 0.0 <= data["weak_val_fraction"] < 1.0:
        raise RecipeError(f"'data.weak_val_fraction' must lie in [0, 1), got {data['weak_val_fraction']}")
    _check_sources(recipe)
    if not 0 <= training["test_last_n_epochs"] <= training["n_epochs"]:
        raise RecipeError(f"'training.test_last_n_epochs' must lie in [0, training.n_epochs="
                          f"{training['n_epochs']}], got {training['test_last_n_epochs']}")
    for key, unit in (("max_train_s", "seconds"), ("gpu_memory_limit_gb", "GB")):
        value = training[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise RecipeError(f"'training.{key}' must be a number of {unit} > 0 or null, got {value!r}")
    patience = training["early_stop_patience"]
    if patience is not None and (isinstance(patience, bool) or patience < 1):
        raise RecipeError(f"'training.early_stop_patience' must be a number of validations >= 1 or null, "
                          f"got {patience!r}")
    if training["batch_size_val"] < 1:
        raise RecipeError(f"'training.batch_size_val' must be >= 1, got {training['batch_size_val']}")
    _check_eval(recipe["eval"], classes)
    _check_training_scheme(recipe)
    _check_branches(recipe)
    _check_crnn_frequency(recipe)
    _check_conformer(recipe)


def _check_sources(recipe: dict) -> None:
    """``data.sources`` and ``training.batch_size`` (one slice per source), and pretrained embeddings
    only with a CRNN that fuses them."""
    from ..data.sources import SourceError, resolve_sources

    data, training, net = recipe["data"], recipe["training"], recipe["net"]
    bs = training["batch_size"]
    if data.get("sources") is None and (len(bs) != 3 or not all(isinstance(b, int) and b >= 0 for b in bs)
                                        or sum(bs[:2]) == 0):
        raise RecipeError(
            f"'training.batch_size' must be [synthetic, weak, unlabelled] clip counts with at least one "
            f"labelled slice > 0, got {bs}"
        )
    try:
        resolve_sources(data, bs)
    except SourceError as exc:
        raise RecipeError(str(exc)) from None
    scored = data.get("eval_classes")
    if scored is not None and (not scored or any(c not in data["classes"] for c in scored)):
        raise RecipeError(f"'data.eval_classes' must be a non-empty list of data.classes, got {scored!r}")
    emb_dim = net.get("embedding_dim", 0)
    if isinstance(emb_dim, bool) or not isinstance(emb_dim, int) or emb_dim < 0:
        raise RecipeError(f"'net.embedding_dim' must be an integer >= 0, got {emb_dim!r}")
    if emb_dim and net["name"] not in ("crnn", "conformer"):
        raise RecipeError(f"'net.embedding_dim: {emb_dim}' fuses pretrained embeddings in the CRNN or the Conformer; "
                          f"net.name is "
                          f"{net['name']!r}")
    if bool(emb_dim) != bool(data.get("embeddings_dir")):
        raise RecipeError("'data.embeddings_dir' and 'net.embedding_dim' go together: the folder of embeddings "
                          f"and their width (data.embeddings_dir={data.get('embeddings_dir')!r}, "
                          f"net.embedding_dim={emb_dim})")


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


def _check_conformer(recipe: dict) -> None:
    """The ``net.conformer_*`` values (types are checked by the merge), with ``net.name: conformer`` only."""
    net = recipe["net"]
    if net["name"] != "conformer":
        return

    def positive(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1

    for k in ("d_model", "heads", "blocks", "ff_expansion"):
        if not positive(net[f"conformer_{k}"]):
            raise RecipeError(f"'net.conformer_{k}' must be an integer >= 1, got {net[f'conformer_{k}']!r}")
    if net["conformer_d_model"] % net["conformer_heads"]:
        raise RecipeError(f"'net.conformer_d_model' ({net['conformer_d_model']}) must be a multiple of "
                          f"'net.conformer_heads' ({net['conformer_heads']})")
    kernel = net["conformer_conv_kernel"]
    if not positive(kernel) or kernel % 2 == 0:
        raise RecipeError(f"'net.conformer_conv_kernel' must be an odd number of frames >= 1, got {kernel!r}")
    for k in ("dropout", "frontend_dropout"):
        if not 0.0 <= net[f"conformer_{k}"] < 1.0:
            raise RecipeError(f"'net.conformer_{k}' must lie in [0, 1), got {net[f'conformer_{k}']!r}")
    filters, pooling = net["conformer_frontend_filters"], net["conformer_frontend_pooling"]
    if not filters or not all(positive(f) for f in filters):
        raise RecipeError(f"'net.conformer_frontend_filters' must be a non-empty list of channel counts >= 1, "
                          f"got {filters!r}")
    if len(pooling) != len(filters) or not all(
            isinstance(p, list) and len(p) == 2 and all(positive(v) for v in p) for p in pooling):
        raise RecipeError(f"'net.conformer_frontend_pooling' needs one [time, freq] pair of positive integers per "
                          f"'net.conformer_frontend_filters' block, got {pooling}")
    bands = recipe["feats"]["n_mels"]
    for _, f_pool in pooling:
        bands //= f_pool
    if bands < 1:
        raise RecipeError(f"'net.conformer_frontend_pooling' pools {recipe['feats']['n_mels']} mels (feats.n_mels) "
                          f"below one band (frequency factors {[f for _, f in pooling]}); use fewer or smaller "
                          "frequency factors, or more mels")


def _check_eval(ev: dict, classes: list) -> None:
    """Post-processing values, checked at load time so that a bad one does not surface only at the
    first validation, after an epoch of training. ``eval.median_window`` is one window for every class
    or a list of one per class of ``data.classes`` (``classes``)."""
    from dcase_fpd_plugin.evaluation.postprocessing import median_windows

    window = ev["median_window"]
    if isinstance(window, list):
        if len(window) != len(classes):
            raise RecipeError(f"'eval.median_window' lists {len(window)} windows for the {len(classes)} classes of "
                              f"'data.classes': give one odd number of frames per class, or one for all")
        for name, w in zip(classes, window):
            if isinstance(w, bool) or not isinstance(w, int) or w < 1 or w % 2 == 0:
                raise RecipeError(f"'eval.median_window': the window of class {name!r} must be an odd number of "
                                  f"frames >= 1, got {w!r}")
    try:
        median_windows(window, len(classes))
    except ValueError as exc:
        raise RecipeError(f"'eval.median_window': {exc}") from None
    for key in ("threshold", "tagging_threshold"):
        if not 0.0 <= ev[key] <= 1.0:
            raise RecipeError(f"'eval.{key}' is a probability and must lie in [0, 1], got {ev[key]}")
    if ev.get("postprocessing") == "csebb":  # the optional extra, refused before anything runs
        from dcase_fpd_plugin.evaluation.csebb import sebbs_missing

        missing = sebbs_missing()
        if missing is not None:
            raise RecipeError(f"'eval.postprocessing: csebb': {missing}")


def _check_training_scheme(recipe: dict) -> None:
    """Values of the CRNN / mean-teacher / mixup keys (types are checked by the merge)."""
    store = recipe["data"]["feature_store"]
    if isinstance(store, bool):  # YAML 1.1: off -> False, on -> True
        recipe["data"]["feature_store"] = "auto" if store else "off"
    for path, choices in CHOICES.items():
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

    A set is required when named; a training source (``synth``, ``weak``, ``unlabeled``, any
    ``data.sources`` entry: all of them are checked when one is named) is left out when its slice of
    ``training.batch_size`` is 0 or its folder is null (the latter with a warning, when its slice is
    not 0). Raises RecipeError naming the key and the path.
    """
    import warnings

    from ..data.sources import NAMED_SOURCES, resolve_sources

    data = recipe["data"]
    sources = resolve_sources(data, recipe["training"]["batch_size"])
    names = {src.name for src in sources} | {"synth", "weak", "unlabeled"}
    sets = list(sets)
    if any(name in names for name in sets):
        for src in sources:
            if src.batch_size == 0:
                continue
            named = data.get("sources") is None or src.name in NAMED_SOURCES
            folder_key = f"data.{src.name}_folder" if named and "folder" not in _entry(data, src.index) else \
                f"data.sources[{src.index}].folder"
            if src.folder is None:
                warnings.warn(f"training source {src.name!r} left out: {folder_key} is null (its slice of "
                              f"{src.batch_size} clips per batch is not drawn)", stacklevel=3)
                continue
            if not Path(src.folder).is_dir():
                raise RecipeError(f"'{folder_key}': folder not found: {src.folder}")
            if src.kind != "unlabeled":
                tsv_key = folder_key.replace("folder", "tsv")
                if src.tsv is None:
                    raise RecipeError(f"'{tsv_key}' is required (the {src.name} source is used) but not set")
                if not Path(src.tsv).is_file():
                    raise RecipeError(f"'{tsv_key}': file not found: {src.tsv}")
    for name in sets:
        if name in names:
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
    if "test" in sets and (data.get("real_maestro_val_tsv") or data.get("real_maestro_val_folder")):
        for key in ("real_maestro_val_folder", "real_maestro_val_tsv"):
            value = data.get(key)
            if value is None:
                raise RecipeError(f"'data.{key}' is required (the soft-labelled test set is used) but not set")
            if not (Path(value).is_dir() if key.endswith("folder") else Path(value).is_file()):
                raise RecipeError(f"'data.{key}': {'folder' if key.endswith('folder') else 'file'} not found: {value}")
    emb_dir = data.get("embeddings_dir")
    if emb_dir and not Path(emb_dir).is_dir():
        raise RecipeError(f"'data.embeddings_dir': folder not found: {emb_dir}")


def _entry(data: dict, index: int) -> dict:
    """The raw ``data.sources`` entry ``index`` ({} without data.sources)."""
    sources = data.get("sources")
    return dict(sources[index]) if sources is not None else {}


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
