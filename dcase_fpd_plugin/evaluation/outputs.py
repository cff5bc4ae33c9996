"""Writing an evaluation's outputs: metrics.json, predictions.tsv, scores/ (atomically)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from dcase_fpd_plugin.atomic import atomic_replace_folder
from dcase_fpd_plugin.evaluation.scores import atomic_write, write_scores
from .reference import STRONG_COLUMNS



def is_nan(x) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and math.isnan(x))


def jsonable(x):
    """Plain Python types for JSON: numpy scalars -> float/int, nan -> None (recursively)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(x) else float(x)
    return x


# --------------------------------------------------------------------------- outputs


def write_outputs(result: EvaluationResult, exp_folder: str | os.PathLike,
                  outputs: Sequence[str] = ("metrics", "predictions", "scores")) -> None:
    """Write ``metrics.json``, ``predictions.tsv`` and ``scores/<audio_id>.tsv`` into
    ``exp_folder`` (created if needed); ``outputs`` names which of the three to write.

    Each file is written atomically (temporary file + ``os.replace``). The ``scores`` folder is
    written beside the old one and swapped in whole, so it never mixes clips of two runs.
    """
    unknown = set(outputs) - {"metrics", "predictions", "scores"}
    if unknown:
        raise ValueError(f"write_outputs: unknown outputs {sorted(unknown)}")
    exp = Path(exp_folder)
    exp.mkdir(parents=True, exist_ok=True)
    if "metrics" in outputs:
        atomic_write(
            exp / "metrics.json",
            lambda tmp: tmp.write_text(json.dumps(result.metrics, indent=2, allow_nan=False) + "\n"),
        )
    if "predictions" in outputs:
        atomic_write(
            exp / "predictions.tsv",
            lambda tmp: result.predictions[STRONG_COLUMNS].to_csv(tmp, sep="\t", index=False),
        )
    if "scores" in outputs:
        _replace_scores_folder(exp / "scores", result.scores)


def _replace_scores_folder(folder: Path, scores: Mapping[str, pd.DataFrame]) -> None:
    atomic_replace_folder(folder, lambda staging: write_scores(staging, dict(scores)))


@dataclass
class EvaluationResult:
    """What :func:`evaluate` returns.

    Attributes:
        metrics: JSON-serialisable dict (its keys: :mod:`dcase_fpd_plugin.evaluation.metrics`).
        predictions: DESED strong-format events (filename, onset, offset, event_label; seconds).
        scores: median-filtered sed_scores_eval score frames, keyed by audio id.
        timings_s: wall-clock seconds per evaluation stage (not part of ``metrics``).
    """

    metrics: dict
    predictions: pd.DataFrame
    scores: dict[str, pd.DataFrame]
    timings_s: dict[str, float] = field(default_factory=dict)
