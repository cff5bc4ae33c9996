"""Per-class post-processing tuned on the validation set: ``class_median`` (one median window and one
threshold per class), and the pieces every post-processing method shares (score frames filtered,
decoded into events, events turned back into score frames).

The functions here work on **score frames** (sed_scores_eval's format, :mod:`.scores`) of the raw frame
probabilities: ``onset, offset, <class>...``, one row per output frame. They never read files: what they
are given is all they see, so a tuning that is handed the validation set's frames and reference cannot
see a test clip (:mod:`.rescoring` reads the files).

``class_median`` chooses, for each class on its own, the median window (frames, from
:data:`CLASS_MEDIAN_WINDOWS` plus the recipe's own window) and the decision threshold that give that
class the highest **event-based F1** on the validation set (DCASE's collars: 200 ms on onsets, on
offsets the larger of 200 ms and 20 % of the event; sed_scores_eval's collar-based F1, which scores
every threshold of a class in one pass, so the threshold is exact, not from a grid). Event-based F1,
not intersection F1, because it is the F1 our tables report and the one that the window moves most:
it judges onsets and offsets to 200 ms, where the intersection criteria (dtc = gtc = 0.5) accept an
event whose boundaries are off by a quarter of its length, so a tuning on them would favour long
windows that blur boundaries; cSEBBs' collar-based selection (``select_best_cbf``) uses the same
criterion, so both tuned methods aim at the same figure. A class without reference events in the
validation set cannot be tuned, nor one whose F1 is 0 whatever the window and threshold: it keeps the
recipe's window and threshold (listed in ``untuned``).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ..data.labels import active_runs
from .postprocessing import median_filter, median_windows
from .reference import STRONG_COLUMNS
from .scores import create_score_dataframe

#: median windows (frames of the output rate) tried for each class; the recipe's own is added.
#: 1 (no filter) to 41 frames (2.6 s at the DCASE CRNN's 64 ms): DESED_task 2024's 27 tuned windows lie
#: between 1 and 17 frames.
CLASS_MEDIAN_WINDOWS = (1, 3, 5, 7, 9, 11, 13, 15, 17, 21, 25, 31, 41)
#: DCASE's event-based F1 (sed_eval t_collar 0.2 s, percentage_of_length 0.2) in sed_scores_eval's terms
COLLARS = dict(onset_collar=0.2, offset_collar=0.2, offset_collar_rate=0.2)


def frame_times(frame: pd.DataFrame) -> np.ndarray:
    """The ``T + 1`` frame boundaries (s) of a score frame."""
    return np.append(frame["onset"].to_numpy(dtype=float), float(frame["offset"].iloc[-1]))


def filtered_frames(scores: Mapping[str, pd.DataFrame], classes: Sequence[str],
                    windows: int | Sequence[int]) -> dict[str, pd.DataFrame]:
    """Score frames of ``classes`` median-filtered along time, one window for all or one per class
    (:func:`~.postprocessing.median_filter`); the frames' times are kept."""
    out = {}
    for key, frame in scores.items():
        values = median_filter(frame[list(classes)].to_numpy(dtype=float), windows)
        out[key] = create_score_dataframe(values, frame_times(frame), list(classes))
    return out


def events_from_frames(scores: Mapping[str, pd.DataFrame], classes: Sequence[str],
                       thresholds: Sequence[float], filenames: Mapping[str, str]) -> pd.DataFrame:
    """DESED strong events: each run of frames of a class **strictly above** its threshold, from the
    onset of its first frame to the offset of its last (as :meth:`LabelEncoder.decode_strong` decodes
    the frames of a clip, so these are the events a threshold on those frames means).

    ``filenames``: audio id -> clip file name (the events' ``filename``)."""
    th = np.asarray(thresholds, dtype=float)
    rows = []
    for key in sorted(scores):
        frame = scores[key]
        times = frame_times(frame)
        active = frame[list(classes)].to_numpy(dtype=float) > th
        events = []
        for c, label in enumerate(classes):
            for a, b in active_runs(active[:, c]):
                events.append((round(float(times[a]), 6), c, round(float(times[b]), 6), label))
        rows += [(filenames[key], on, off, label) for on, _, off, label in sorted(events)]
    return pd.DataFrame(rows, columns=STRONG_COLUMNS)


def frames_from_events(events: pd.DataFrame, classes: Sequence[str], durations_s: Mapping[str, float],
                       filenames: Mapping[str, str]) -> dict[str, pd.DataFrame]:
    """Binary score frames (1 inside an event, 0 elsewhere) of every clip of ``durations_s`` (audio id ->
    seconds): the events of any post-processing, in the form sed_scores_eval's intersection-based F1
    scores at a threshold of 0.5."""
    by_clip: dict[str, list[tuple[float, float, str]]] = {}
    for f, on, off, label in events[STRONG_COLUMNS].itertuples(index=False, name=None):
        by_clip.setdefault(f, []).append((float(on), float(off), label))
    c_index = {c: i for i, c in enumerate(classes)}
    out = {}
    for key, duration in durations_s.items():
        clip = [e for e in by_clip.get(filenames[key], []) if e[2] in c_index]
        times = np.unique(np.round([0.0, float(duration)] + [t for on, off, _ in clip for t in (on, off)], 6))
        times = times[times <= round(float(duration), 6)]
        values = np.zeros((len(times) - 1, len(classes)))
        for on, off, label in clip:
            values[(times[:-1] >= round(on, 6)) & (times[1:] <= round(off, 6)), c_index[label]] = 1.0
        out[key] = create_score_dataframe(values, times, list(classes))
    return out


def tune_class_median(val_scores: Mapping[str, pd.DataFrame], ground_truth: Mapping[str, list],
                      classes: Sequence[str], default_window: int | Sequence[int],
                      default_threshold: float | Sequence[float]) -> dict:
    """One median window and one threshold per class, chosen on the validation set only.

    Args:
        val_scores: audio id -> raw score frames of the validation clips (columns ``classes`` at least).
        ground_truth: audio id -> ``[(onset, offset, label)]`` of the same clips (sed_scores_eval's form).
        classes: the classes to tune (the scored ones).
        default_window, default_threshold: the recipe's ``eval.median_window`` / ``eval.threshold`` (a
            scalar or one per class of ``classes``): tried among the windows, and kept for a class
            without reference events.

    Returns:
        ``{"median_window": {class: frames}, "threshold": {class: p}, "val_event_f1": {class: F on
        validation}, "windows_tried": [...], "untuned": [classes without validation events, or with F1 0
        under every setting: the recipe's values]}``.
    """
    from sed_scores_eval import collar_based

    classes = list(classes)
    defaults_w = median_windows(default_window, len(classes))
    defaults_t = [float(t) for t in np.broadcast_to(np.asarray(default_threshold, dtype=float), (len(classes),))]
    referenced = {label for events in ground_truth.values() for _, _, label in events}
    tuned = [c for c in classes if c in referenced]
    windows = sorted(set(CLASS_MEDIAN_WINDOWS) | set(defaults_w))
    best: dict[str, tuple[float, int, float]] = {}
    if tuned:
        arrays = {k: (frame_times(v), v[tuned].to_numpy(dtype=float)) for k, v in val_scores.items()}
        for w in windows:  # ascending: on a tie the shorter window stays
            frames = {k: create_score_dataframe(median_filter(x, w), times, tuned) for k, (times, x) in arrays.items()}
            f, _, _, thresholds, _ = collar_based.best_fscore(frames, ground_truth, **COLLARS)
            for c in tuned:
                if c not in best or f[c] > best[c][0] + 1e-12:
                    best[c] = (float(f[c]), w, _probability(thresholds[c]))
    best = {c: b for c, b in best.items() if b[0] > 0}  # F = 0 whatever the setting: nothing to choose from
    params = {"median_window": {}, "threshold": {}, "val_event_f1": {}, "windows_tried": windows,
              "untuned": [c for c in classes if c not in best]}
    for i, c in enumerate(classes):
        f, w, t = best.get(c, (math.nan, defaults_w[i], defaults_t[i]))
        params["median_window"][c], params["threshold"][c], params["val_event_f1"][c] = w, t, f
    return params


def apply_class_median(scores: Mapping[str, pd.DataFrame], params: Mapping, classes: Sequence[str],
                       filenames: Mapping[str, str]) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """(events, filtered score frames) of ``scores`` under tuned ``params`` (:func:`tune_class_median`)."""
    windows = [int(params["median_window"][c]) for c in classes]
    thresholds = [float(params["threshold"][c]) for c in classes]
    frames = filtered_frames(scores, classes, windows)
    return events_from_frames(frames, classes, thresholds, filenames), frames


def _probability(threshold: float) -> float:
    """sed_scores_eval's best threshold (a midpoint between two scores; -inf: every frame active, +inf:
    none) as a probability in [0, 1] (``p > 0`` keeps every frame of a sigmoid's output)."""
    return float(min(max(float(threshold), 0.0), 1.0))
