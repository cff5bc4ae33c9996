"""Where does FPD act? Frame-level diagnostics of trained runs on their validation set.

For each run folder (``<exp_dir>`` with ``checkpoints/best.ckpt``, e.g. the seed folders that
``paper_tables.py`` / ``dcase-fpd compare`` write), the best checkpoint is run on the recipe's
validation clips and three things are measured against the strong reference labels (frames of
``frame_hop_s`` seconds, as the model outputs them):

* ``frame_auc``: ROC AUC of the raw frame probabilities (before any median filter or threshold)
  for "class c active at this frame", over every validation frame, macro over classes.
  Threshold-free: detection quality of the frame outputs.
* ``localisation_auc``: the same, but only over the frames of clips whose reference contains c:
  can the frame outputs tell *where* an event of a present class is (tagging taken as given)?
* ``embedding_gap``: on the encoder's frame embeddings (what the classifier and the FPD branch
  share), mean cosine similarity of positive minus negative same-time frame pairs, with the
  pairs of the FPD sampler (``pair_masks``: identical non-empty label sets vs disjoint label
  sets, background vs background ignored) built from the reference labels. How much
  class-by-frame structure the shared embedding carries on unseen clips.
  ``projection_gap``: the same on the FPD branch's projection (what the FPD loss acts on; runs
  with an FPD branch only).

Each is measured on the validation clips (``val_*``) and on the synthetic-strong training clips
(``ss_*``, which the FPD loss saw with these very labels): a gap that grows on SS but not on
validation is structure that does not carry over to other recordings.

    python benchmarks/frame_diagnostics.py RUN_DIR [RUN_DIR ...] [--csv out.csv]

Prints one row per run and the mean ± std per recipe (the run folder's parent name).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def frame_aucs(probs: np.ndarray, labels: np.ndarray, clip_has: np.ndarray) -> tuple[float, float]:
    """Macro ROC AUC over classes: all frames, and only frames of clips that contain the class.

    Args:
        probs: (N, T, C) frame probabilities; labels: (N, T, C) in {0, 1};
        clip_has: (N, C) bool, clip's reference contains class c.
    Returns:
        (frame_auc, localisation_auc); classes whose frames are all one label are skipped.
    """
    from sklearn.metrics import roc_auc_score

    overall, local = [], []
    for c in range(probs.shape[2]):
        y, p = labels[:, :, c].ravel(), probs[:, :, c].ravel()
        if 0 < y.sum() < y.size:
            overall.append(roc_auc_score(y, p))
        inside = clip_has[:, c]
        y, p = labels[inside, :, c].ravel(), probs[inside, :, c].ravel()
        if 0 < y.sum() < y.size:
            local.append(roc_auc_score(y, p))
    return float(np.mean(overall)), float(np.mean(local))


def embedding_gap(embeddings: torch.Tensor, labels: torch.Tensor, max_clips: int = 96) -> float:
    """Mean cosine of positive minus negative same-time pairs (reference labels).

    Args:
        embeddings: (N, T, D) encoder frame embeddings; labels: (N, T, C) reference frame labels.
        max_clips: pairs are taken among the first ``max_clips`` clips (memory: T * N^2).
    """
    from dcase_fpd_plugin.fpd import pair_masks
    from dcase_fpd_plugin.fpd.distances import cosine_similarity

    emb, lab = embeddings[:max_clips].float(), labels[:max_clips].float()
    positive, negative = pair_masks(lab)  # (T, N, N) each
    sim = cosine_similarity(emb)  # (T, N, N)
    if not positive.any() or not negative.any():
        return float("nan")
    return float(sim[positive].mean() - sim[negative].mean())


def _outputs(task, loader) -> dict[str, torch.Tensor]:
    """Frame probabilities, encoder and projection embeddings and strong labels of a whole set."""
    fpd = task.branches["fpd"] if "fpd" in task.branches else None
    keep: dict[str, list[torch.Tensor]] = {"probs": [], "emb": [], "proj": [], "labels": []}
    for batch in loader:
        out = task.model(batch.feats, batch.frame_valid)
        keep["probs"].append(out.frame_probs.float())  # (B, T, C)
        keep["emb"].append(out.embeddings.float())  # (B, T, D)
        if fpd is not None:
            keep["proj"].append(fpd.projection(out.embeddings).float())  # (B, T, P)
        keep["labels"].append(batch.strong.float())  # (B, T, C)
    return {k: torch.cat(v) for k, v in keep.items() if v}


def _measures(o: dict[str, torch.Tensor], prefix: str) -> dict[str, float]:
    y = o["labels"]
    clip_has = (y.amax(1) > 0.5).numpy()
    frame_auc, local_auc = frame_aucs(o["probs"].numpy(), (y > 0.5).numpy().astype(np.int8), clip_has)
    row = {f"{prefix}frame_auc": frame_auc, f"{prefix}localisation_auc": local_auc,
           f"{prefix}embedding_gap": embedding_gap(o["emb"], y)}
    row[f"{prefix}projection_gap"] = embedding_gap(o["proj"], y) if "proj" in o else float("nan")
    return row


@torch.no_grad()
def diagnose(run_dir: Path) -> dict:
    from torch.utils.data import DataLoader

    from dcase_fpd_plugin.branch import SOURCE_SS
    from dcase_fpd_plugin.data.datasets import collate
    from dcase_fpd_plugin.data.datamodule import SEDDataModule
    from dcase_fpd_plugin.training.task import load_task

    task = load_task(run_dir / "checkpoints" / "best.ckpt")
    task.eval()
    task.recipe["data"]["feature_store"] = "off"  # only the SS set is read here
    dm = SEDDataModule.from_recipe(task.recipe, task.n_frames, task.frame_hop_s)
    dm.setup("fit")
    row = {"recipe": run_dir.parent.name, "run": run_dir.name}
    # the strong validation clips only (the held-out weak clips have no frame labels)
    row.update(_measures(_outputs(task, DataLoader(dm.val_set, batch_size=48, collate_fn=collate)), "val_"))
    ss = next(s for s in dm.train_sets if s.source == SOURCE_SS)
    row.update(_measures(_outputs(task, DataLoader(ss, batch_size=48, collate_fn=collate)), "ss_"))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders holding checkpoints/best.ckpt")
    ap.add_argument("--csv", type=Path, help="also write the per-run table here")
    args = ap.parse_args()

    from dcase_fpd_plugin.compat import quiet_dependencies

    quiet_dependencies()
    missing = [str(r) for r in args.runs if not (r / "checkpoints" / "best.ckpt").is_file()]
    if missing:
        raise SystemExit(f"no checkpoints/best.ckpt in: {', '.join(missing)}")
    torch.set_num_threads(1)
    rows = pd.DataFrame([diagnose(r) for r in args.runs])
    print(rows.round(4).to_string(index=False))
    cols = [c for c in rows.columns if c not in ("recipe", "run")]
    summary = rows.groupby("recipe", sort=False)[cols].agg(["mean", "std"])
    print()
    print(summary.round(4).to_string())
    if args.csv:
        rows.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
