"""Frame scores in sed_scores_eval's format, and their files.

A score frame is a ``pandas.DataFrame`` with columns ``onset, offset, <class 1>, ...``: one row
per output frame, times in **seconds**, row ``t`` covering ``[t * frame_hop_s, (t + 1) *
frame_hop_s)`` (the grid of :mod:`dcase_fpd_plugin.data.labels`). On disk: one TSV per clip,
``<audio_id>.tsv``, where the audio id is the clip file name without its extension
(``Y00aB_0.000_10.000.wav`` -> ``Y00aB_0.000_10.000``), as sed_scores_eval expects.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..atomic import atomic_write
from ..compat import import_sed_libraries


import_sed_libraries()

from sed_scores_eval.base_modules.scores import create_score_dataframe  # noqa: E402
from sed_scores_eval.base_modules.io import read_sed_scores, write_sed_scores  # noqa: E402

# A trailing ".wav"/".flac"/".mp3"...: a dot, a letter, then letters or digits. Names such as
# "Y00aB_0.000_10.000" (no extension) are kept whole, unlike sed_scores_eval's own TSV readers,
# which cut at the last dot ("Y00aB_0.000_10").
_AUDIO_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,4}$")


def audio_id(filename: str) -> str:
    """Clip key used by sed_scores_eval: the file name without its audio extension."""
    return _AUDIO_EXTENSION.sub("", str(filename))


def scores_dataframe(
    frame_probs: np.ndarray,
    frame_hop_s: float,
    classes: Sequence[str],
    *,
    duration_s: float | None = None,
) -> pd.DataFrame:
    """sed_scores_eval score frame from (T, C) frame probabilities.

    Args:
        frame_probs: (T, C) scores, C = ``len(classes)``.
        frame_hop_s: seconds between output frames.
        classes: class names, column order of ``frame_probs``.
        duration_s: clip length in seconds; if given, frames starting at or after it are
            dropped and the last offset is clipped to it (as events are clipped by
            :meth:`LabelEncoder.decode_strong`).

    Returns:
        DataFrame with T' <= T rows and columns ``onset, offset, *classes`` (seconds, rounded
        to the microsecond like decoded events).
    """
    x = np.asarray(frame_probs)
    if x.ndim != 2 or x.shape[1] != len(classes):
        raise ValueError(f"frame_probs must be (T, {len(classes)}), got shape {x.shape}")
    if frame_hop_s <= 0:
        raise ValueError(f"frame_hop_s must be > 0, got {frame_hop_s}")
    # Python's round(), as in LabelEncoder.decode_strong, so frame edges equal event times.
    timestamps = np.array([round(t * float(frame_hop_s), 6) for t in range(x.shape[0] + 1)])
    if duration_s is not None:
        n_kept = int(np.sum(timestamps[:-1] < duration_s))
        if n_kept == 0:
            raise ValueError(f"no frame starts before the clip duration {duration_s} s")
        timestamps = timestamps[: n_kept + 1].copy()
        timestamps[-1] = min(timestamps[-1], round(float(duration_s), 6))
        x = x[:n_kept]
    return create_score_dataframe(
        np.asarray(x, dtype=np.float64), timestamps, list(classes)
    )


def write_scores(folder: str | os.PathLike, scores: dict[str, pd.DataFrame]) -> None:
    """Write one ``<audio_id>.tsv`` per clip into ``folder`` (created if needed), each file
    atomically, in sed_scores_eval's format (``sed_scores_eval.io.write_sed_scores``).

    Other files already in ``folder`` are left alone; to replace a whole folder use
    :func:`dcase_fpd_plugin.evaluation.outputs.write_outputs`.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, frame in scores.items():
        if not key or "/" in key or os.sep in key or key.startswith("."):
            raise ValueError(f"invalid audio id for a score file name: {key!r}")
        atomic_write(
            folder / f"{key}.tsv",
            lambda tmp, frame=frame: write_sed_scores(frame, tmp),
        )


def read_scores(folder: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """Score frames from every ``*.tsv`` in ``folder``, keyed by audio id (file stem).

    Hidden files (leftover temporaries of an interrupted write) are skipped; any other
    non-TSV file is an error naming it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"scores folder not found: {folder}")
    scores = {}
    for file in sorted(folder.iterdir()):
        if file.name.startswith("."):
            continue
        if not file.is_file() or file.suffix != ".tsv":
            raise ValueError(f"scores folder must only hold .tsv files, found {file}")
        scores[file.name[: -len(".tsv")]] = read_sed_scores(file)
    return scores
