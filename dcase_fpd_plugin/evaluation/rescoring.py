"""Post-processing of a finished run from its saved frame scores: tuned on the validation set, scored on the
test set, without the model.

A run keeps the **raw** frame probabilities (no median filter, no threshold) of its tested checkpoint::

    raw_scores/val/<audio_id>.tsv    the validation set (data.val_*): what the tuning may read
    raw_scores/test/<audio_id>.tsv   the test set (data.test_*, else the validation set)

(sed_scores_eval's format, as ``scores/``; ``scores/`` holds the test scores after the recipe's median
filter). :func:`postprocess_run` tunes a method on ``raw_scores/val`` and the validation TSVs only, then
applies it to ``raw_scores/test`` and scores it against the test TSVs, and writes
``postprocessing/<method>/``: ``metrics.json``, ``params.json`` (what the tuning chose), ``predictions.tsv``.

Methods (``eval.postprocessing``):

* ``median``: the recipe's ``eval.median_window`` and ``eval.threshold``, nothing tuned (the run's own
  post-processing, from the raw scores: its event F1 equals the run's ``event_f1``);
* ``class_median``: a median window and a threshold per class (:mod:`.tuning`);
* ``csebb``: change-point sound event bounding boxes (:mod:`.csebb`, the optional ``sebbs`` extra).

``metrics.json`` keys, ``M`` the method: ``M_event_f1``, ``M_segment_f1`` (sed_eval, DCASE settings, as
:mod:`.metrics`) with their ``_micro`` and ``_zero_filled`` variants, ``M_intersection_f1`` (dtc = gtc =
0.5) -- all three on the method's events; ``M_psds1``, ``M_psds2`` on the method's output scores
(``median``/``class_median``: the filtered frames; ``csebb``: the boxes tuned for that PSDS); ``psds1_unprocessed``,
``psds2_unprocessed`` on the raw scores, the same for every method (DCASE's PSDS is threshold-free: it is
computed on scores before any post-processing; the run's own ``psds1`` is on its median-filtered scores).
PSDS values are None when ``eval.psds`` is false. Also ``postprocessing`` (the method), ``tuned_on``,
``tuning_objective``, ``M_n_predicted_events``, ``M_undetected_classes``, ``per_class`` {``M_event_f1``,
``M_segment_f1``, ``M_intersection_f1``}, ``scored_classes``, ``classes_without_reference``, ``n_clips``,
``n_missing_clips``, ``n_val_clips``, ``psds_clips``, ``n_psds_clips``, ``validation_set``, ``test_set``,
``selection_on_test``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..atomic import atomic_replace_folder
from .metrics import (INTERSECTION_F1, PSDS1, PSDS2, _ground_truth_by_audio_id, _reference_of, _sed_eval_summary,
                      psds_clip_set, sed_eval_metrics)
from .outputs import jsonable
from .postprocessing import median_windows
from .reference import STRONG_COLUMNS, Reference, read_reference
from .scores import audio_id, read_scores, scores_dataframe, write_scores
from .tuning import apply_class_median, frames_from_events, tune_class_median

import sed_scores_eval  # noqa: E402  (imported through the shim of .scores)

RAW_SCORES_DIR = "raw_scores"
POSTPROCESSING_DIR = "postprocessing"
METHODS = ("median", "class_median", "csebb")
OBJECTIVES = {
    "median": None,
    "class_median": "per class: the median window and threshold of the highest event-based F1 on the validation "
                    "set (sed_scores_eval collar-based F1; onset collar 0.2 s, offset collar max(0.2 s, 20 %))",
    "csebb": "per class: sebbs's select_best_cbf (event-based F1, DCASE collars) for the events and their "
             "threshold, select_best_psds for the boxes of each PSDS, on the validation set",
}


class MissingScoresError(FileNotFoundError):
    """The run has no saved raw scores (trained before they were saved)."""


# --------------------------------------------------------------------------- raw scores of a run


def raw_score_frames(frame_probs: Mapping[str, np.ndarray], frame_hop_s: float, classes: Sequence[str],
                     durations_s: Mapping[str, float]) -> dict[str, pd.DataFrame]:
    """Audio id -> score frames of raw ``(T, C)`` frame probabilities (file name -> array), the frames
    clipped to each clip's duration as the test's ``scores/`` are."""
    return {audio_id(f): scores_dataframe(p, frame_hop_s, classes, duration_s=durations_s.get(f))
            for f, p in sorted(frame_probs.items())}


def write_raw_scores(run_dir: str | os.PathLike, val: Mapping[str, pd.DataFrame],
                     test: Mapping[str, pd.DataFrame]) -> Path:
    """Write ``raw_scores/val`` and ``raw_scores/test`` of a run at once: a new folder beside the old one,
    swapped in whole (never a mix of two runs' scores)."""
    def fill(staging: Path) -> None:
        write_scores(staging / "val", dict(val))
        write_scores(staging / "test", dict(test))

    return atomic_replace_folder(Path(run_dir) / RAW_SCORES_DIR, fill)


def raw_scores_folders(run_dir: str | os.PathLike) -> tuple[Path, Path]:
    """``(raw_scores/val, raw_scores/test)`` of a run. MissingScoresError when absent."""
    run = Path(run_dir)
    val, test = run / RAW_SCORES_DIR / "val", run / RAW_SCORES_DIR / "test"
    if not (val.is_dir() and test.is_dir()):
        raise MissingScoresError(
            f"{run}: no saved raw scores ({RAW_SCORES_DIR}/val and {RAW_SCORES_DIR}/test): the run was trained "
            "before they were saved. Score its tested checkpoint again, without training, with dcase-fpd "
            f"postprocess {run} --method METHOD --score-checkpoint (writes {RAW_SCORES_DIR}/ only; needs the "
            "recipe's data), or train the recipe again")
    return val, test


# --------------------------------------------------------------------------- sets


@dataclass
class ScoredSet:
    """One evaluation set: its raw score frames and reference, keyed by audio id, on the scored classes."""

    scores: dict[str, pd.DataFrame]  # audio id -> raw frames (every class of the model)
    reference: Reference  # present clips only, scored classes' events only
    filenames: dict[str, str]  # audio id -> clip file name
    durations: dict[str, float]  # audio id -> seconds
    n_missing: int
    tsv: str

    @property
    def ground_truth(self) -> dict[str, list]:
        return _ground_truth_by_audio_id(self.reference)


def load_set(scores_folder: str | os.PathLike, tsv: str, dur: str, classes: Sequence[str],
             scored: Sequence[str], ground_truth: str = "refuse") -> ScoredSet:
    """The raw scores of ``scores_folder`` with the reference of ``tsv``/``dur``: the clips of the durations
    TSV that have scores (the others are counted missing); ValueError for scores of clips it does not list."""
    scores = read_scores(scores_folder)
    reference = read_reference(tsv, dur, list(classes), ground_truth)
    by_id = {audio_id(f): f for f in reference.durations_s}
    unknown = sorted(set(scores) - set(by_id))
    if unknown:
        raise ValueError(f"{scores_folder}: {len(unknown)} score file(s) of clips not in {dur}: {unknown[:10]}")
    if not scores:
        raise ValueError(f"{scores_folder}: no score file")
    missing = [f for k, f in by_id.items() if k not in scores]
    if missing:
        reference = Reference(reference.events[~reference.events["filename"].isin(missing)].reset_index(drop=True),
                              {f: d for f, d in reference.durations_s.items() if f not in missing}, reference.repairs)
    reference = _reference_of(reference, scored)
    filenames = {k: f for k, f in by_id.items() if k in scores}
    return ScoredSet(scores, reference, filenames, {k: float(reference.durations_s[f]) for k, f in filenames.items()},
                     len(missing), str(tsv))


def scored_classes(data: Mapping[str, Any]) -> list[str]:
    """``data.eval_classes`` in the model's class order, or every class."""
    wanted = data.get("eval_classes")
    return [c for c in data["classes"] if not wanted or c in wanted]


def recipe_defaults(data: Mapping[str, Any], ev: Mapping[str, Any], scored: Sequence[str]) -> tuple[list[int], list[float]]:
    """The recipe's median window and threshold of each scored class."""
    classes = list(data["classes"])
    windows = median_windows(ev["median_window"], len(classes))
    th = ev["threshold"]
    thresholds = [float(th)] * len(classes) if np.isscalar(th) else [float(t) for t in th]
    return [windows[classes.index(c)] for c in scored], [thresholds[classes.index(c)] for c in scored]


# --------------------------------------------------------------------------- tune (validation) and apply (test)


def tune(method: str, val: ScoredSet, data: Mapping[str, Any], ev: Mapping[str, Any]) -> dict:
    """The method's parameters, from the validation set ``val`` only (nothing else is passed in)."""
    scored = scored_classes(data)
    windows, thresholds = recipe_defaults(data, ev, scored)
    if method == "median":
        return {"median_window": dict(zip(scored, windows)), "threshold": dict(zip(scored, thresholds)),
                "untuned": list(scored)}
    if method == "class_median":
        return tune_class_median(val.scores, val.ground_truth, scored, windows, thresholds)
    if method == "csebb":
        from .csebb import tune_csebb

        psds = {"psds1": PSDS1, "psds2": PSDS2} if ev["psds"] else None
        ids = [audio_id(f) for f in psds_clip_set(val.reference, ev["psds_clips"])]
        return tune_csebb(val.scores, val.ground_truth, val.durations, scored, thresholds, psds=psds, psds_ids=ids)
    raise ValueError(f"unknown post-processing {method!r}; one of {', '.join(METHODS)}")


def apply(method: str, params: Mapping, test: ScoredSet, scored: Sequence[str]
          ) -> tuple[pd.DataFrame, dict[str, dict[str, pd.DataFrame]]]:
    """(events, {"psds1": frames, "psds2": frames}) of the method on the test set: the events it decides and
    the score frames each PSDS is computed on."""
    if method in ("median", "class_median"):
        events, frames = apply_class_median(test.scores, params, scored, test.filenames)
        return events, {"psds1": frames, "psds2": frames}
    from .csebb import apply_csebb

    return apply_csebb(test.scores, params, scored, test.durations, test.filenames)


def score(method: str, events: pd.DataFrame, psds_frames: Mapping[str, Mapping[str, pd.DataFrame]],
          test: ScoredSet, scored: Sequence[str], ev: Mapping[str, Any]) -> dict:
    """The metrics (module docstring) of ``events`` and ``psds_frames`` on the test set."""
    ref = test.reference
    filenames = ref.filenames
    events = events[events["event_label"].isin(list(scored))].reset_index(drop=True)
    referenced = set(ref.events["event_label"])
    evaluated = [c for c in scored if c in referenced]
    event_m, segment_m = sed_eval_metrics(ref.events, events, filenames, scored)
    event, segment = _sed_eval_summary(event_m, scored, evaluated), _sed_eval_summary(segment_m, scored, evaluated)
    gt = test.ground_truth
    inter, inter_per_class = math.nan, {c: math.nan for c in scored}
    if evaluated:
        binary = frames_from_events(events, evaluated, test.durations, test.filenames)
        f, *_ = sed_scores_eval.intersection_based.fscore(binary, gt, 0.5, **INTERSECTION_F1)
        inter = f["macro_average"]
        inter_per_class.update({c: f[c] for c in evaluated})
    psds_ids = [audio_id(f) for f in psds_clip_set(ref, ev["psds_clips"])]
    raw = {"psds1": test.scores, "psds2": test.scores}
    unprocessed = _psds(raw, gt, test.durations, evaluated, psds_ids) if ev["psds"] else {}
    processed = _psds(psds_frames, gt, test.durations, evaluated, psds_ids) if ev["psds"] else {}
    predicted = set(events["event_label"])
    m = method
    return jsonable({
        "postprocessing": m,
        f"{m}_event_f1": event["macro"], f"{m}_segment_f1": segment["macro"], f"{m}_intersection_f1": inter,
        f"{m}_psds1": processed.get("psds1"), f"{m}_psds2": processed.get("psds2"),
        "psds1_unprocessed": unprocessed.get("psds1"), "psds2_unprocessed": unprocessed.get("psds2"),
        f"{m}_event_f1_micro": event["micro"], f"{m}_segment_f1_micro": segment["micro"],
        f"{m}_event_f1_zero_filled": event["zero_filled"], f"{m}_segment_f1_zero_filled": segment["zero_filled"],
        f"{m}_n_predicted_events": int(len(events)),
        f"{m}_undetected_classes": [c for c in evaluated if c not in predicted],
        "per_class": {f"{m}_event_f1": event["per_class"], f"{m}_segment_f1": segment["per_class"],
                      f"{m}_intersection_f1": inter_per_class},
        "scored_classes": list(scored), "classes_without_reference": [c for c in scored if c not in evaluated],
        "n_clips": len(filenames), "n_missing_clips": test.n_missing,
        "psds_clips": ev["psds_clips"], "n_psds_clips": len(psds_ids) if ev["psds"] else None,
    })


def _psds(frames: Mapping[str, Mapping[str, pd.DataFrame]], gt: Mapping[str, list], durations: Mapping[str, float],
          evaluated: Sequence[str], ids: Sequence[str]) -> dict[str, float]:
    """PSDS1 and PSDS2 (DCASE settings, :mod:`.metrics`) of ``frames[name]`` on the clips ``ids``."""
    if not evaluated:
        return {"psds1": math.nan, "psds2": math.nan}
    out = {}
    for name, settings in (("psds1", PSDS1), ("psds2", PSDS2)):
        if len(evaluated) == 1 and "cttc_threshold" in settings:  # as metrics: no other class to cross-trigger
            settings = {**settings, "cttc_threshold": None, "alpha_ct": 0.0}
        scores = {k: frames[name][k][["onset", "offset", *evaluated]] for k in ids}
        out[name], *_ = sed_scores_eval.intersection_based.psds(
            scores, {k: gt[k] for k in ids}, {k: durations[k] for k in ids}, **settings)
    return out


# --------------------------------------------------------------------------- a run


def output_folder(run_dir: str | os.PathLike, method: str) -> Path:
    return Path(run_dir) / POSTPROCESSING_DIR / method


def test_sets(data: Mapping[str, Any]) -> tuple[str, str, bool]:
    """(strong TSV, durations TSV, selection on test) of the run's test set (the validation set if none)."""
    tsv, dur = data["test_tsv"] or data["val_tsv"], data["test_dur"] or data["val_dur"]
    return tsv, dur, not data["test_tsv"] or str(data["test_tsv"]) == str(data["val_tsv"])


def tune_on_validation(run_dir: str | os.PathLike, data: Mapping[str, Any], ev: Mapping[str, Any],
                       method: str) -> tuple[dict, ScoredSet]:
    """(parameters, validation set): reads ``raw_scores/val`` and ``data.val_tsv`` / ``val_dur``, nothing else."""
    val_dir, _ = raw_scores_folders(run_dir)
    val = load_set(val_dir, data["val_tsv"], data["val_dur"], data["classes"], scored_classes(data),
                   data.get("ground_truth", "refuse"))
    return tune(method, val, data, ev), val


def postprocess_run(run_dir: str | os.PathLike, data: Mapping[str, Any], ev: Mapping[str, Any], method: str,
                    *, force: bool = False) -> dict:
    """Tune ``method`` on the run's validation scores, score it on its test scores, write
    ``postprocessing/<method>/`` (metrics.json, params.json, predictions.tsv; the folder swapped in whole).

    ``data``, ``ev``: the run's recipe sections. Returns the metrics. Raises FileExistsError when the folder
    exists and not ``force`` (before any work), MissingScoresError without saved raw scores."""
    if method not in METHODS:
        raise ValueError(f"unknown post-processing {method!r}; one of {', '.join(METHODS)}")
    out = output_folder(run_dir, method)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists (a previous post-processing); pass --force to replace it")
    raw_scores_folders(run_dir)
    params, val = tune_on_validation(run_dir, data, ev, method)  # the validation set only
    scored = scored_classes(data)
    tsv, dur, on_test = test_sets(data)
    test = load_set(Path(run_dir) / RAW_SCORES_DIR / "test", tsv, dur, data["classes"], scored,
                    data.get("ground_truth", "refuse"))
    events, psds_frames = apply(method, params, test, scored)
    metrics = score(method, events, psds_frames, test, scored, ev)
    metrics.update({"tuned_on": None if method == "median" else f"validation set {val.tsv} ({len(val.filenames)} clips)",
                    "tuning_objective": OBJECTIVES[method], "params_file": "params.json",
                    "n_val_clips": len(val.filenames), "validation_set": str(data["val_tsv"]), "test_set": str(tsv),
                    "selection_on_test": on_test})

    def fill(staging: Path) -> None:
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
        (staging / "params.json").write_text(json.dumps(_json_params(params), indent=2, allow_nan=False) + "\n")
        events[STRONG_COLUMNS].to_csv(staging / "predictions.tsv", sep="\t", index=False)

    atomic_replace_folder(out, fill)
    return metrics


def merge_into_run_metrics(run_metrics: dict, pp: Mapping[str, Any]) -> None:
    """Add a post-processing's figures to a run's metrics (its own keys untouched): the method's ``M_*`` keys,
    ``psds*_unprocessed``, ``postprocessing``, ``postprocessing_tuned_on`` and the method's per-class F1s."""
    method = pp["postprocessing"]
    for key, value in pp.items():
        if key.startswith(f"{method}_") or key.endswith("_unprocessed"):
            run_metrics[key] = value
    run_metrics["postprocessing"] = method
    run_metrics["postprocessing_tuned_on"] = pp.get("tuned_on")
    run_metrics.setdefault("per_class", {}).update(pp.get("per_class", {}))


def _json_params(params: Any) -> Any:
    """Parameters for JSON: infinities as the strings "inf" / "-inf", nan as null."""
    if isinstance(params, dict):
        return {str(k): _json_params(v) for k, v in params.items()}
    if isinstance(params, (list, tuple)):
        return [_json_params(v) for v in params]
    if isinstance(params, (float, np.floating)) and math.isinf(params):
        return "inf" if params > 0 else "-inf"
    return jsonable(params)



