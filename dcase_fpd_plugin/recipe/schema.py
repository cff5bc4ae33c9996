"""What a recipe may hold: one typed schema per section, each key's type, default, allowed values and
one-line doc, in one place.

The sections are dataclasses (:class:`Data`, :class:`Feats`, :class:`Net`, :class:`Training`,
:class:`Opt`, :class:`Eval`, :class:`Energy`); ``branches`` is open (each branch plugin's
``default_config()``). From them come :data:`DEFAULTS` (the resolved recipe a file only changes),
the types the loader checks (:data:`TYPES`), the values a key may take (:data:`CHOICES`),
``dcase-fpd recipes keys`` and the key tables of ``docs/usage.md`` (:func:`keys_markdown`; a test
fails when they drift). A recipe stays a plain mapping of sections for the YAML files and
``recipe.yaml``; :func:`section_of` gives a room its own section, typed.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .. import DESED_CLASSES

BUNDLED_RECIPES_DIR = Path(__file__).resolve().parent / "bundled"


def key(default: Any, doc: str, choices: tuple[str, ...] | None = None) -> Any:
    """A recipe key: its default, one-line doc and (for a string) the values it may take."""
    meta = {"doc": doc, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: __import__("copy").deepcopy(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Data:
    """``data``: where the clips and their labels are (DESED layout), how they are read and held."""

    classes: list = key(list(DESED_CLASSES), "class names in index order (DESED's 10 by default)")
    synth_folder: str | None = key(None, "synthetic strongly-labelled clips (SS)")
    synth_tsv: str | None = key(None, "their strong TSV (filename, onset, offset, event_label)")
    weak_folder: str | None = key(None, "real weakly-labelled clips (RW)")
    weak_tsv: str | None = key(None, "their weak TSV (filename, event_labels)")
    unlabeled_folder: str | None = key(None, "a folder of unlabelled clips (UL; optional)")
    strong_folder: str | None = key(None, "real strongly-labelled clips (DESED_task 2024's AudioSet strong; a "
                                          "data.sources entry named strong)")
    strong_tsv: str | None = key(None, "their strong TSV")
    real_maestro_train_folder: str | None = key(None, "MAESTRO Real training clips (soft labels; a data.sources "
                                                      "entry named real_maestro_train)")
    real_maestro_train_tsv: str | None = key(None, "their soft-label TSV (filename, onset, offset, event_label, "
                                                   "score)")
    real_maestro_val_folder: str | None = key(None, "MAESTRO Real validation clips: a soft-labelled test set, "
                                                    "scored by segment mpAUC (DESED_task 2024's; selects nothing)")
    real_maestro_val_tsv: str | None = key(None, "their soft-label TSV")
    real_maestro_val_dur: str | None = key(None, "their durations TSV (clips without a labelled segment included)")
    sources: list | None = key(None, "training sources as a list of {name, kind (strong | weak | soft | "
                                     "unlabeled), folder, tsv, classes, aliases, embeddings, val_fraction}, one "
                                     "training.batch_size slice each (data/sources.py); null: [synth, weak, "
                                     "unlabeled], DESED_task 2023's")
    eval_classes: list | None = key(None, "the classes the validation and test sets annotate and are scored on "
                                          "(null: all data.classes; DESED_task 2024: DESED's 10 of its 27)")
    embeddings_dir: str | None = key(None, "pretrained frame embeddings: a folder of DESED_task's HDF5 files "
                                           "(synth_train.hdf5, weak_train.hdf5, ..., devtest.hdf5), fused in the "
                                           "CRNN (net.embedding_dim)")
    val_folder: str | None = key(None, "strongly-labelled validation set: it chooses the checkpoint "
                                       "(DCASE recipes: DESED's synthetic validation set, as DESED_task)")
    val_tsv: str | None = key(None, "the validation set's strong TSV")
    val_dur: str | None = key(None, "the validation set's durations TSV")
    weak_val_fraction: float = key(0.0, "share of the weak clips held out of training for validation "
                                        "(DESED_task: 0.1)")
    weak_val_seed: int = key(0, "seed of that split (fixed: every training seed holds out the same clips)")
    test_folder: str | None = key(None, "test set: reported, never used for selection (unset: the validation "
                                        "set, with a warning and selection_on_test in metrics.json)")
    test_tsv: str | None = key(None, "the test set's strong TSV")
    test_dur: str | None = key(None, "the test set's durations TSV")
    max_missing_fraction: float = key(0.0, "share of listed-but-absent clips allowed per set (real DESED "
                                           "misses a few)")
    ground_truth: str = key("refuse", "strong TSVs' duplicate event rows and events past the clip's duration: "
                                      "refuse (named by file and line), or repair (deduplicate, clip to the "
                                      "duration, drop those starting at its end; counted in metrics.json)",
                            ("refuse", "repair"))
    cache_dir: str | None = key(None, "log-mel cache (null: .feature_cache beside the experiment folder)")
    num_workers: int = key(0, "DataLoader worker processes")
    feature_store: str | bool = key("auto", "auto: the training clips' log-mels held on the training device "
                                             "(data/store.py); off: read from the disk cache every step",
                                    ("auto", "off"))
    feature_store_max_gb: float = key(4.0, "auto: only when the store takes at most this many GB")
    feature_store_dtype: str = key("float32", "float32 (exact) or float16 (half the memory, ~0.03 dB rounding)",
                                   ("float32", "float16"))


@dataclass
class Feats:
    """``feats``: the log-mel features (DESED_task's)."""

    sample_rate: int = key(16000, "Hz; audio at another rate is resampled")
    clip_s: float = key(10.0, "clip length in seconds: shorter clips are zero-padded; longer training clips are "
                               "refused, longer validation, test and infer files are read in windows of it")
    n_fft: int = key(2048, "FFT size in samples")
    win_length: int = key(2048, "window length in samples")
    hop_length: int = key(256, "hop in samples (the paper's 255: feats.hop_length=255)")
    n_mels: int = key(128, "mel bands")
    f_min: float = key(0.0, "lowest mel frequency, Hz")
    f_max: float = key(8000.0, "highest mel frequency, Hz")


@dataclass
class Net:
    """``net``: the encoder. ``cnn3`` reads the first five keys, ``crnn`` the ``crnn_*`` and ``rnn_*`` ones,
    ``conformer`` the ``conformer_*`` ones (``crnn`` and ``conformer`` also ``embedding_*``)."""

    name: str = key("cnn3", "cnn3: the paper's weak baseline; crnn: the DCASE 2023 baseline CRNN; conformer: a "
                            "Conformer encoder at the CRNN's frame rate (models/conformer.py)",
                    ("cnn3", "crnn", "conformer"))
    channels: list = key([64, 128, 128], "cnn3: channels per conv block (models/encoder.py)")
    kernel_size: int = key(3, "cnn3: convolution kernel size")
    time_pool: list = key([2, 2, 1], "cnn3: time pooling per block; frame hop = hop_length * prod / sample_rate")
    freq_pool: list = key([4, 4, 8], "cnn3: frequency pooling per block")
    dropout: float = key(0.0, "cnn3: dropout")
    crnn_filters: list = key([16, 32, 64, 128, 128, 128, 128], "crnn: channels per conv block (DESED_task's)")
    crnn_pooling: list = key([[2, 2], [2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2]],
                             "crnn: [time, freq] pooling per block")
    crnn_kernel_size: int = key(3, "crnn: convolution kernel size")
    crnn_dropout: float = key(0.5, "crnn: dropout after each conv block and after the GRU")
    crnn_attention: str = key("classes", "crnn: softmax axis of the attention pooling (classes: DESED_task)",
                              ("classes", "time"))
    crnn_input_norm: str = key("minmax", "crnn: per-clip scaling: minmax to [0, 1] (DESED_task), minmax_signed "
                                         "to [-1, 1] (before 0.2), standard", ("minmax", "minmax_signed", "standard"))
    crnn_bn_momentum: float = key(0.99, "crnn: BatchNorm momentum, PyTorch's meaning (DESED_task's value)")
    crnn_checkpoint_blocks: int = key(0, "crnn: the first N conv blocks recompute activations in backward "
                                         "(less memory, same results)")
    rnn_hidden: int = key(128, "crnn: GRU units per direction (embeddings: 2 x rnn_hidden)")
    rnn_layers: int = key(2, "crnn: GRU layers")
    rnn_dropout: float = key(0.0, "crnn: dropout between GRU layers")
    embedding_dim: int = key(0, "crnn, conformer: width of the pretrained frame embeddings fused before the GRU "
                                "(conformer: before its blocks) (BEATs: 768; 0: none; needs data.embeddings_dir)")
    embedding_aggregation: str = key("pool1d", "crnn, conformer: how the embedding sequence meets the CNN frames: "
                                               "pool1d (adaptive average pooling, DESED_task 2024)", ("pool1d",))
    conformer_d_model: int = key(144, "conformer: width of the blocks and of the frame embeddings (D)")
    conformer_heads: int = key(4, "conformer: attention heads (divides conformer_d_model)")
    conformer_blocks: int = key(3, "conformer: Conformer blocks")
    conformer_ff_expansion: int = key(4, "conformer: feed-forward inner width / conformer_d_model")
    conformer_conv_kernel: int = key(7, "conformer: depthwise convolution kernel in frames (odd)")
    conformer_dropout: float = key(0.1, "conformer: dropout in the blocks, after the front end and before the "
                                        "classifier")
    conformer_frontend_filters: list = key([16, 32, 64], "conformer: channels per front-end conv block (conv, batch "
                                                         "norm, GLU, pooling, as the CRNN's)")
    conformer_frontend_pooling: list = key([[2, 2], [2, 2], [1, 2]], "conformer: [time, freq] pooling per front-end "
                                                                     "block (time product 4: the CRNN's 64 ms frames)")
    conformer_frontend_dropout: float = key(0.1, "conformer: dropout after each front-end conv block")


@dataclass
class Training:
    """``training``: the run: its folder, epochs, batches, precision, devices and training scheme."""

    exp_dir: str = key("exp/weak", "the run folder (a recipe that sets none gets exp/<its name>)")
    n_epochs: int = key(12, "epochs to train")
    batch_size: list = key([24, 24, 0], "clips per batch from each training source, in their order ([synthetic, "
                                        "weak, unlabelled] by default)")
    batch_size_val: int = key(48, "clips per validation and test batch")
    seed: int = key(42, "seed of the weights, batches and augmentation")
    monitor: str = key("val/obj", "checkpoint selection: validation tagging F1 + intersection F1")
    precision: str | int = key("32-true", "Lightning's (32-true, bf16-mixed, ...) or auto: bf16 where the device "
                                          "has fast bf16, else fp32")
    num_threads: int = key(0, "torch CPU threads (0: torch's default)")
    channels_last: bool = key(False, "conv weights and activations in channels-last memory (faster CNN steps "
                                     "on CPU)")
    compile: bool = key(False, "torch.compile the student model for training (inductor): the same training within "
                               "float tolerance, its first steps pay the compile")
    accelerator: str = key("auto", "Lightning's accelerator (auto, cpu, gpu)")
    devices: int | str | list = key(1, "Lightning's devices")
    strategy: str = key("auto", "Lightning's strategy (ddp for several GPUs)")
    num_nodes: int = key(1, "machines")
    log_every_n_steps: int = key(10, "Lightning's logging interval")
    progress_bar: bool = key(True, "progress bars")
    val_every_n_epochs: int = key(1, "validate every N epochs")
    test_last_n_epochs: int = key(0, "also save and test the last N epochs' weights (late_epochs/)")
    max_train_s: int | float | None = key(None, "seconds of training per process; stops after the last epoch "
                                                "expected to fit")
    early_stop_patience: int | None = key(None, "stop after this many validations in a row without a new best "
                                                "training.monitor (DESED_task's early stopping; null: all n_epochs)")
    limit_train_batches: int | float = key(1.0, "Lightning's: share (float) or number (int) of training batches "
                                                "per epoch")
    strong_loss: bool = key(False, "DCASE 2023 scheme: BCE on SS frames + weak BCE on RW clips only (DESED_task)")
    mean_teacher: bool = key(False, "EMA teacher + consistency loss on all clips (training/mean_teacher.py)")
    ema_factor: float = key(0.999, "teacher decay")
    teacher_first: bool = key(False, "teacher's forward before the student's: a lower peak memory, other "
                                     "dropout draws")
    gpu_memory_limit_gb: int | float | None = key(None, "GB of CUDA memory this process may allocate during the "
                                                        "fit (null: no cap)")
    const_max: float = key(2.0, "consistency weight after the ramp-up")
    n_epochs_warmup: int = key(50, "epochs of the exp(-5 (1 - t)^2) ramp-up (consistency weight, opt.lr_warmup)")
    self_sup_loss: str = key("mse", "consistency loss", ("mse", "bce"))
    eval_model: str = key("student", "model validated, tested and used for inference", ("student", "teacher"))
    mixup: bool = key(False, "mixup within the SS and the RW slice (data/mixup.py)")
    mixup_prob: float = key(0.5, "probability of mixup per batch")
    mixup_alpha: float = key(0.2, "mixing weight ~ Beta(alpha, alpha)")
    mixup_label_type: str = key("soft", "soft: labels mixed like the features; hard: union of the labels",
                                ("soft", "hard"))
    mixup_domain: str = key("amplitude", "amplitude: mix mel amplitudes (DESED_task); feature: mix the dB features",
                            ("amplitude", "feature"))


@dataclass
class Opt:
    """``opt``: the optimiser (Adam)."""

    lr: float = key(0.001, "learning rate")
    weight_decay: float = key(0.0, "Adam's weight decay")
    lr_warmup: bool = key(False, "lr ramped up by exp(-5 (1 - t)^2) over training.n_epochs_warmup (DESED_task)")
    gradient_clip: float = key(0.0, "max gradient norm (0: no clipping, DESED_task's default)")


@dataclass
class Eval:
    """``eval``: post-processing and metrics."""

    median_window: int | list = key(7, "median filter in frames of the output rate (odd; 1: off), or a list of "
                                        "one per class of data.classes (DESED_task 2024: net.median_filter)")
    threshold: float = key(0.5, "decision threshold on frame probabilities")
    tagging_threshold: float = key(0.5, "decision threshold on clip probabilities")
    psds: bool = key(True, "compute PSDS1 and PSDS2 (the slow part)")
    psds_late_epochs: bool = key(True, "PSDS for training.test_last_n_epochs too (false: the F1 families only)")
    psds_clips: str = key("with_events", "PSDS over the clips with reference events (DESED_task) or all",
                          ("with_events", "all"))
    postprocessing: str = key("median", "median: median_window and threshold as given (metrics.json's own keys); "
                                        "class_median: a window and a threshold per class, tuned on the "
                                        "validation set; csebb: change-point event boxes (the sebbs extra), "
                                        "tuned on it. The tuned ones add <method>_* keys beside the median's "
                                        "and write postprocessing/<method>/ (dcase-fpd postprocess)",
                              ("median", "class_median", "csebb"))


@dataclass
class Energy:
    """``energy``: codecarbon energy tracking, kWh per phase in <exp_dir>/energy.json."""

    enabled: bool = key(True, "track the energy of training and inference")
    country_iso_code: str = key("FRA", "ISO 3166-1 alpha-3; sets the carbon intensity (kWh do not depend on it)")
    output_subdir: str = key("energy", "codecarbon's CSVs go to <exp_dir>/<output_subdir>/<phase>.csv")
    measure_power_secs: float = key(15.0, "seconds between codecarbon's power readings")
    tracking_mode: str = key("machine", "machine: the whole computer; process: this process only",
                             ("machine", "process"))


SECTIONS: dict[str, type] = {"data": Data, "feats": Feats, "net": Net, "training": Training, "opt": Opt,
                             "eval": Eval, "energy": Energy}


@dataclass(frozen=True)
class KeySpec:
    """One key of the schema: ``path`` as in a recipe (``training.seed``), its allowed Python ``types``."""

    path: str
    types: tuple[type, ...]
    default: Any
    doc: str
    choices: tuple[str, ...] | None

    @property
    def type_name(self) -> str:
        return " | ".join("null" if t is type(None) else t.__name__ for t in self.types)


def _runtime_types(annotation: Any) -> tuple[type, ...]:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return tuple(t for a in typing.get_args(annotation) for t in _runtime_types(a))
    if annotation is None or annotation is type(None):
        return (type(None),)
    return (typing.get_origin(annotation) or annotation,)


def section_keys(section: str) -> Iterator[KeySpec]:
    """The keys of one built-in section, in schema order."""
    cls = SECTIONS[section]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        yield KeySpec(f"{section}.{f.name}", _runtime_types(hints[f.name]), default, f.metadata["doc"],
                      f.metadata["choices"])


def all_keys() -> Iterator[KeySpec]:
    for section in SECTIONS:
        yield from section_keys(section)


def section_of(recipe: dict[str, Any], section: str) -> Any:
    """The ``section`` of a resolved recipe as its typed dataclass (a room's own view of the recipe)."""
    return SECTIONS[section](**recipe[section])


DEFAULTS: dict[str, Any] = {s: {k.path.split(".", 1)[1]: k.default for k in section_keys(s)} for s in SECTIONS}
DEFAULTS["branches"] = {}
TYPES: dict[str, tuple[type, ...]] = {k.path: k.types for k in all_keys()}
CHOICES: dict[str, tuple[str, ...]] = {k.path: k.choices for k in all_keys() if k.choices}


def _default_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and len(value) > 8:
        return f"({len(value)} entries)"
    return str(value)


def branch_keys(name: str, factory: Any) -> Iterator[KeySpec]:
    """The keys of ``branches.<name>``: the plugin's ``default_config()``, documented by its
    ``config_docs()`` where it has one."""
    docs = factory.config_docs() if hasattr(factory, "config_docs") else {}
    for k, default in factory.default_config().items():
        yield KeySpec(f"branches.{name}.{k}", (type(default),), default, docs.get(k, ""), None)


def keys_table(specs: Iterator[KeySpec], markdown: bool = False) -> str:
    """A table of keys: key, type, default, doc (with the allowed values)."""
    rows = []
    for k in specs:
        doc = k.doc + (f" ({' / '.join(k.choices)})" if k.choices else "")
        rows.append((k.path, k.type_name, _default_text(k.default), doc))
    if markdown:
        lines = ["| key | type | default | doc |", "|---|---|---|---|"]
        cell = lambda s: s.replace("|", "\\|")  # noqa: E731  (a type "str | null" inside a table)
        lines += [f"| `{p}` | {cell(t)} | `{d}` | {cell(doc)} |" for p, t, d, doc in rows]
        return "\n".join(lines)
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{p:<{w[0]}}  {t:<{w[1]}}  {d:<{w[2]}}  {doc}" for p, t, d, doc in rows)


def keys_text(section: str | None = None, markdown: bool = False) -> str:
    """Every key of ``section`` (all sections when None; ``branches``: each registered branch plugin's)
    with its type, default and doc: ``dcase-fpd recipes keys``, and with ``markdown`` the tables of
    ``docs/usage.md``."""
    from .. import registry

    known = [*SECTIONS, "branches"]
    if section is not None and section not in known:
        raise RecipeError(f"no recipe section {section!r}; sections: {', '.join(known)}")
    parts = []
    for name in [section] if section else known:
        if name == "branches":
            for branch in registry.available("branches"):
                title = f"branches.{branch}"
                table = keys_table(branch_keys(branch, registry.get("branches", branch)), markdown)
                parts.append(f"### `{title}`\n\n{table}" if markdown else f"{title}:\n{table}")
            continue
        about = SECTIONS[name].__doc__.split(": ", 1)[1]
        table = keys_table(section_keys(name), markdown)
        parts.append(f"### `{name}`\n\n{about}\n\n{table}" if markdown else f"{name}: {about}\n{table}")
    return "\n\n".join(parts)


DATA_KEYS_BY_SET = {
    "synth": ("synth_folder", "synth_tsv"),
    "weak": ("weak_folder", "weak_tsv"),
    "unlabeled": ("unlabeled_folder",),
    "strong": ("strong_folder", "strong_tsv"),
    "real_maestro_train": ("real_maestro_train_folder", "real_maestro_train_tsv"),
    "val": ("val_folder", "val_tsv", "val_dur"),
    "test": ("test_folder", "test_tsv", "test_dur"),
}


class RecipeError(ValueError):
    """A recipe key is unknown, of the wrong type, or names a missing path."""
