"""What a recipe may hold: every key's default and type, the data keys of each set, :class:`RecipeError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


from .. import DESED_CLASSES


BUNDLED_RECIPES_DIR = Path(__file__).resolve().parent / "bundled"

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
        "mean_teacher": False,  # EMA teacher + consistency loss on all clips (dcase_fpd_plugin/training/mean_teacher.py)
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
