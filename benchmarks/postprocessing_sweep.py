"""How much of a low event F1 is post-processing? Tune threshold and median window on validation,
apply them to the test set.

For each run folder (``checkpoints/best.ckpt``), the best checkpoint's raw frame probabilities are
computed once on the strongly-labelled validation clips (``data.val_*``, the clips that chose the
checkpoint) and on the test clips (``data.test_*``). Then, for every (threshold, median window)
of the grid, the validation event F1 is computed (sed_eval, DCASE settings: 200 ms collar, 20 %
offset tolerance, macro over classes); the best setting is applied to the test clips. Printed per
run: validation event F1 at the recipe's setting and at the best one; test event and segment F1 at
both; the test's frame AUC (threshold-free, before any median filter). Nothing is tuned on the
test clips.

    python benchmarks/postprocessing_sweep.py RUN_DIR [RUN_DIR ...] [--csv out.csv]
        [--thresholds 0.3 0.4 0.5 0.6 0.7] [--windows 1 7 15 21 31]
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import torch


@torch.no_grad()
def set_outputs(task, dataset) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(file name -> (T, C) frame probabilities, (N, T, C) probabilities, (N, T, C) labels) of a set."""
    from torch.utils.data import DataLoader

    from dcase_fpd_plugin.data.datasets import collate

    probs, stacked, labels = {}, [], []
    for batch in DataLoader(dataset, batch_size=48, collate_fn=collate):
        out = task.eval_model()(batch.feats, batch.frame_valid)
        fp = out.frame_probs.float().numpy()
        for name, p in zip(batch.filenames, fp):
            probs[name] = p
        stacked.append(fp)
        labels.append(batch.strong.numpy())
    return probs, np.concatenate(stacked), np.concatenate(labels)


def f1_scores(frame_probs, reference, classes, frame_hop_s, threshold, window) -> tuple[float, float]:
    """(event F1, segment F1), sed_eval macros, of one post-processing setting."""
    from dcase_fpd_plugin.evaluation.metrics import _sed_eval_summary, predict_events, sed_eval_metrics

    events, _ = predict_events(frame_probs, frame_hop_s=frame_hop_s, classes=classes,
                               durations_s=reference.durations_s, median_window=window, threshold=threshold)
    evaluated = [c for c in classes if c in set(reference.events["event_label"])]
    ev, seg = sed_eval_metrics(reference.events, events, reference.filenames, classes)
    return (_sed_eval_summary(ev, classes, evaluated)["macro"] or 0.0,
            _sed_eval_summary(seg, classes, evaluated)["macro"] or 0.0)


def sweep(run_dir: Path, thresholds, windows) -> dict:
    from frame_diagnostics import frame_aucs

    from dcase_fpd_plugin.data.datamodule import SEDDataModule
    from dcase_fpd_plugin.evaluation.reference import read_reference
    from dcase_fpd_plugin.training.task import load_task

    task = load_task(run_dir / "checkpoints" / "best.ckpt")
    task.eval()
    recipe, data = task.recipe, task.recipe["data"]
    if not data["test_tsv"]:
        raise SystemExit(f"{run_dir}: its recipe has no test set (data.test_*); nothing to apply the tuning to")
    dm = SEDDataModule.from_recipe(recipe, task.n_frames, task.frame_hop_s)
    dm.setup("validate")
    dm.setup("test")
    classes, hop = task.classes, task.frame_hop_s
    val_probs, _, _ = set_outputs(task, dm.val_set)
    test_probs, test_stack, test_labels = set_outputs(task, dm.test_set)
    val_ref = read_reference(data["val_tsv"], data["val_dur"], classes)
    test_ref = read_reference(data["test_tsv"], data["test_dur"], classes)
    default = (recipe["eval"]["threshold"], recipe["eval"]["median_window"])
    grid = {(t, w): f1_scores(val_probs, val_ref, classes, hop, t, w)[0]
            for t, w in itertools.product(thresholds, windows)}
    if default not in grid:
        grid[default] = f1_scores(val_probs, val_ref, classes, hop, *default)[0]
    best = max(grid, key=grid.get)
    test_default = f1_scores(test_probs, test_ref, classes, hop, *default)
    test_best = f1_scores(test_probs, test_ref, classes, hop, *best)
    clip_has = test_labels.max(1) > 0.5
    frame_auc, local_auc = frame_aucs(test_stack, (test_labels > 0.5).astype(np.int8), clip_has)
    return {"recipe": run_dir.parent.name, "run": run_dir.name,
            "val_event_f1_default": grid[default], "val_event_f1_tuned": grid[best],
            "threshold": best[0], "median_window": best[1],
            "test_event_f1_default": test_default[0], "test_event_f1_tuned": test_best[0],
            "test_segment_f1_default": test_default[1], "test_segment_f1_tuned": test_best[1],
            "test_frame_auc": frame_auc, "test_localisation_auc": local_auc}


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--thresholds", nargs="+", type=float, default=[0.3, 0.4, 0.5, 0.6, 0.7])
    ap.add_argument("--windows", nargs="+", type=int, default=[1, 7, 15, 21, 31], help="median windows in frames (odd)")
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args()

    from dcase_fpd_plugin.compat import quiet_dependencies

    quiet_dependencies()
    torch.set_num_threads(1)
    rows = pd.DataFrame([sweep(r, args.thresholds, args.windows) for r in args.runs])
    print(rows.round(4).to_string(index=False))
    cols = [c for c in rows.columns if c not in ("recipe", "run", "threshold", "median_window")]
    print()
    print(rows.groupby("recipe", sort=False)[cols].agg(["mean", "std"]).round(4).T.to_string())
    if args.csv:
        rows.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
