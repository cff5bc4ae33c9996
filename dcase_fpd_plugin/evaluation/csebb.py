"""Change-point-based sound event bounding boxes (cSEBBs; Ebbers, Germain, Wichern, Le Roux, "Sound Event
Bounding Boxes", Interspeech 2024) through the optional ``sebbs`` package.

``sebbs`` is AGPL-3.0: it is an optional extra (``pip install 'dcase-fpd-plugin[sebbs]'``), imported only
here and only when ``csebb`` is asked for; the rest of the package never imports it. :func:`sebbs_missing`
says (in one line) why it cannot be used, or None.

Tuning is sebbs's own: the candidate boxes of every combination of ``step_filter_length`` x
(``merge_threshold_abs`` or ``merge_threshold_rel``) on the validation set (the grid of
``sebbs.csebbs.tune``, built here because sebbs 1.0.2's ``tune`` builds candidates without classes, which hold
no box: :func:`_candidates`), and sebbs's selection functions choose, per class, the combination with the best

* collar-based F1 (``select_best_cbf``, DCASE's event-F1 collars), with the detection threshold on the
  boxes' confidence that gives it: these parameters make the **events** (event, segment and
  intersection F1);
* PSDS1 and PSDS2 (``select_best_psds`` with each scenario's settings; only when PSDS is computed):
  these make the **boxes scored** for ``csebb_psds1`` / ``csebb_psds2`` (threshold-free).

The grids are sebbs's defaults (the paper's): step filters 0.32, 0.48, 0.64 s; merge thresholds
0.15, 0.2, 0.3 (absolute) or 1.5, 2, 3 (relative).
"""

from __future__ import annotations

import importlib
import math
from typing import Mapping, Sequence

import pandas as pd

from .reference import STRONG_COLUMNS

EXTRA_INSTALL = "pip install 'dcase-fpd-plugin[sebbs]'"
STEP_FILTER_LENGTHS = (0.32, 0.48, 0.64)
MERGE_THRESHOLDS_ABS = (0.15, 0.2, 0.3)
MERGE_THRESHOLDS_REL = (1.5, 2.0, 3.0)
#: parameters of a class the validation set cannot tune (no reference event, no box, F = 0): the grids' middle values
UNTUNED = {"step_filter_length": 0.48, "merge_threshold_abs": 0.2, "merge_threshold_rel": math.inf}


def sebbs_missing() -> str | None:
    """None when the ``sebbs`` package imports; else one line naming the extra and how to install it."""
    try:
        importlib.import_module("sebbs.csebbs")
    except ImportError as exc:
        return (f"post-processing 'csebb' needs the optional extra 'sebbs' (the sebbs package, AGPL-3.0), which "
                f"cannot be imported ({type(exc).__name__}: {' '.join(str(exc).split())}): {EXTRA_INSTALL}")
    return None


def _csebbs():
    missing = sebbs_missing()
    if missing is not None:
        raise ImportError(missing)
    return importlib.import_module("sebbs.csebbs")


def tune_csebb(val_scores: Mapping[str, pd.DataFrame], ground_truth: Mapping[str, list],
               durations_s: Mapping[str, float], classes: Sequence[str], default_threshold: float | Sequence[float],
               psds: Mapping[str, dict] | None = None, psds_ids: Sequence[str] | None = None) -> dict:
    """cSEBB parameters per class, chosen on the validation set only (sebbs's ``tune``).

    Args:
        val_scores: audio id -> raw score frames of the validation clips.
        ground_truth: audio id -> ``[(onset, offset, label)]``; durations_s: audio id -> seconds.
        classes: the classes to tune (the scored ones). default_threshold: the recipe's threshold, a scalar
            or one per class of ``classes``.
        psds: ``{"psds1": settings, "psds2": settings}`` (sed_scores_eval's keyword arguments) to also tune
            the boxes for each PSDS; None: F1 only. psds_ids: the audio ids the PSDS covers.

    Returns:
        ``{"cbf": {param: {class: value}}, "psds1": {...}, "psds2": {...}, "val_values": {selection:
        {class: value}}, "untuned": {selection: [classes]}}``; ``cbf`` also holds ``detection_threshold``.
        A class is untuned (:data:`UNTUNED`, the recipe's threshold) without validation events, without a box
        under some setting (a flat score) or when every setting scores 0 on it.
    """
    csebbs = _csebbs()
    classes = list(classes)
    thresholds = dict(zip(classes, _per_class(default_threshold, len(classes))))
    referenced = {label for events in ground_truth.values() for _, _, label in events}
    tuned = [c for c in classes if c in referenced]
    selections: dict = {}
    if tuned:
        frames = {k: v[["onset", "offset", *tuned]] for k, v in val_scores.items()}

        def select(candidates, gt, durations):
            # A class with no box at all under some setting (a flat score: no change point) has an empty F1
            # curve, which sed_scores_eval's best_fscore cannot take: it is left untuned.
            boxed = [c for c in tuned if all(any(box[2] == c for boxes in sebbs.values() for box in boxes)
                                             for _, sebbs in candidates)]
            if not boxed:
                return {}
            candidates = [(predictor, {k: [box for box in boxes if box[2] in boxed] for k, boxes in sebbs.items()})
                          for predictor, sebbs in candidates]
            for predictor, _ in candidates:  # sebbs 1.0.2 leaves them None: a clip without boxes then fails
                predictor.sound_classes = list(boxed)
            gt = {k: [e for e in events if e[2] in boxed] for k, events in gt.items()}
            out = {"cbf": csebbs.select_best_cbf(candidates, gt, durations, onset_collar=0.2,
                                                 offset_collar=0.2, offset_collar_rate=0.2)}
            for name, settings in (psds or {}).items():
                settings = {k: v for k, v in settings.items() if k != "alpha_st"}  # per class: no alpha_st term
                if len(boxed) == 1:  # one class cannot cross-trigger another
                    settings.update(cttc_threshold=None, alpha_ct=0.0)
                out[name] = csebbs.select_best_psds(candidates, gt, durations, audio_ids=psds_ids,
                                                    **settings)
            return out

        selections = select(_candidates(csebbs, frames, tuned), dict(ground_truth), dict(durations_s))
    params: dict = {"untuned": {}, "val_values": {}}
    for name in ["cbf", *(psds or {})]:
        predictor, values = selections.get(name, (None, {}))
        chosen = predictor.to_dict() if predictor is not None else {}
        ok = [c for c in classes if c in values and values[c] > 0]  # 0 whatever the setting: nothing to choose
        keys = [*UNTUNED, *(["detection_threshold"] if name == "cbf" else [])]
        params[name] = {k: {c: float(chosen[k][c] if c in ok else UNTUNED.get(k, thresholds[c])) for c in classes}
                        for k in keys}
        params["val_values"][name] = {c: float(values[c]) if c in values else math.nan for c in classes}
        params["untuned"][name] = [c for c in classes if c not in ok]
    return params


def _candidates(csebbs, frames: Mapping[str, pd.DataFrame], classes: list[str]) -> list:
    """sebbs's tuning grid, ``(predictor, boxes)`` for every step filter x merge threshold (absolute or
    relative, as ``tune(either_abs_or_rel_threshold=True)``), the change points found once per step filter.

    This is the loop of ``sebbs.csebbs.tune``, which sebbs 1.0.2 runs with predictors that know no class
    (``sound_classes=None``): its candidates then hold no box at all. Here they are given the classes."""
    out = []
    for step in STEP_FILTER_LENGTHS:
        change = csebbs.CSEBBsPredictor(step_filter_length=step, sound_classes=classes)._run_change_detection(
            frames, classes)
        grid = [(a, math.inf) for a in MERGE_THRESHOLDS_ABS] + [(math.inf, r) for r in MERGE_THRESHOLDS_REL]
        for abs_threshold, rel_threshold in grid:
            predictor = csebbs.CSEBBsPredictor(step_filter_length=step, merge_threshold_abs=abs_threshold,
                                               merge_threshold_rel=rel_threshold, sound_classes=classes)
            out.append((predictor, predictor._get_sebbs_from_change_detection(change, classes)))
    return out


def apply_csebb(scores: Mapping[str, pd.DataFrame], params: Mapping, classes: Sequence[str],
                durations_s: Mapping[str, float], filenames: Mapping[str, str]
                ) -> tuple[pd.DataFrame, dict[str, dict[str, pd.DataFrame]]]:
    """(events, {psds name: box score frames}) of ``scores`` (audio id -> raw score frames) under tuned
    ``params`` (:func:`tune_csebb`): the events from the ``cbf`` parameters and thresholds, the boxes of each
    tuned PSDS as score frames (each box's confidence over its extent, -inf elsewhere) for sed_scores_eval."""
    csebbs = _csebbs()
    from sebbs.utils import sed_scores_from_sebbs

    classes = list(classes)
    frames = {k: v[["onset", "offset", *classes]] for k, v in scores.items()}

    def predictor(name: str):
        p = params[name]
        return csebbs.CSEBBsPredictor(**{k: dict(p[k]) for k in UNTUNED}, sound_classes=classes,
                                      detection_threshold=dict(p["detection_threshold"]) if "detection_threshold" in p
                                      else None)

    cbf = predictor("cbf")
    detections = cbf.detection_thresholding(cbf.predict(frames))
    rows = sorted((filenames[key], round(float(on), 6), round(float(off), 6), label)
                  for key, events in detections.items() for on, off, label in events)
    boxes = {}
    for name in params:
        if name.startswith("psds"):
            sebbs = predictor(name).predict(frames)
            boxes[name] = sed_scores_from_sebbs(sebbs, classes, audio_duration=dict(durations_s))
    return pd.DataFrame(rows, columns=STRONG_COLUMNS), boxes


def _per_class(value, n: int) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * n
    return [float(v) for v in value]

