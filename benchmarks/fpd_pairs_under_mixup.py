"""How many FPD frame pairs mixup leaves, and how many the old 0.5 cut mislabelled.

Draws batch slices of ``--batch`` synthetic clips (strong labels of ``--strong-tsv``, at the CRNN's
output frame rate: 156 frames of 64 ms for 10 s), mixes each slice with a permutation of itself as
``training.mixup`` does (``lam ~ Beta(0.2, 0.2)``, soft labels ``lam y + (1 - lam) y[perm]``), and
counts same-time frame pairs per slice:

* ``unmixed``: the pairs of the clean labels (what half of all batches, those not mixed, give);
* ``cut at 0.5``: the mixed labels thresholded at 0.5 (this package before 0.2), and among its
  pairs the *mislabelled* ones: a negative whose two frames both hold some class at a non-zero
  share (the class is audible in both), or a positive whose frames differ in what they hold;
* ``certain only``: :func:`dcase_fpd_plugin.fpd.pair_masks` now, where a frame with a soft label
  takes part in no pair.

Usage: ``python benchmarks/fpd_pairs_under_mixup.py --strong-tsv BENCH/synth_train/soundscapes.tsv``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from dcase_fpd_plugin.data.labels import LabelEncoder
from dcase_fpd_plugin.data.tsv import read_strong_tsv
from dcase_fpd_plugin.fpd.sampler import CERTAIN_TOL, pair_masks

FRAME_HOP_S, N_FRAMES = 0.064, 156  # the DCASE 2023 CRNN's output frames for 10 s


def cut_at_half(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pre-0.2 rule, for comparison: labels > 0.5 are active, every frame pairs."""
    return pair_masks((labels > 0.5).float())


def mislabelled(labels: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> int:
    """Pairs whose verdict the soft labels contradict: negatives whose frames share an audible
    class (non-zero share in both), positives whose frames' audible class sets differ."""
    audible = (labels > CERTAIN_TOL).transpose(0, 1).float()  # (T, B, C), the sampler's tolerance
    shared = torch.bmm(audible, audible.transpose(1, 2)) > 0  # (T, B, B)
    n = audible.sum(-1)
    same = (torch.bmm(audible, audible.transpose(1, 2)) == n.unsqueeze(2)) & (n.unsqueeze(2) == n.unsqueeze(1))
    return int((negative & shared).sum() + (positive & ~same).sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--strong-tsv", required=True, help="a DESED strong TSV (e.g. the bench's synth_train)")
    ap.add_argument("--batch", type=int, default=24, help="clips per mixed slice (the recipes' 12 or 24)")
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--alpha", type=float, default=0.2, help="Beta(alpha, alpha) of mixup")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    events = read_strong_tsv(args.strong_tsv)
    classes = sorted({e.event_label for evs in events.values() for e in evs})
    encoder = LabelEncoder(classes, FRAME_HOP_S, N_FRAMES)
    clips = list(events)
    rng = np.random.default_rng(args.seed)
    totals = {k: 0 for k in ("unmixed_pos", "unmixed_neg", "cut_pos", "cut_neg", "cut_wrong", "new_pos", "new_neg",
                             "new_wrong")}
    for _ in range(args.slices):
        chosen = rng.choice(len(clips), size=args.batch, replace=False)
        y = torch.from_numpy(np.stack([encoder.encode_strong((e.onset, e.offset, e.event_label) for e in events[clips[i]]) for i in chosen])).float()  # (B, T, C)
        lam = float(rng.beta(args.alpha, args.alpha))
        mixed = (lam * y + (1 - lam) * y[torch.from_numpy(rng.permutation(args.batch))]).clamp(0, 1)
        for key, (pos, neg) in (("unmixed", pair_masks(y)), ("cut", cut_at_half(mixed)), ("new", pair_masks(mixed))):
            totals[f"{key}_pos"] += int(pos.sum())
            totals[f"{key}_neg"] += int(neg.sum())
            if key != "unmixed":
                totals[f"{key}_wrong"] += mislabelled(mixed, pos, neg)
    per = {k: v / args.slices for k, v in totals.items()}
    unmixed = per["unmixed_pos"] + per["unmixed_neg"]
    cut = per["cut_pos"] + per["cut_neg"]
    new = per["new_pos"] + per["new_neg"]
    print(f"{args.strong_tsv}: {len(clips)} clips, {len(classes)} classes; {args.slices} slices of {args.batch} clips, "
          f"each mixed (lam ~ Beta({args.alpha}, {args.alpha})); pairs per slice (positive + negative):")
    print(f"  unmixed labels           {per['unmixed_pos']:9.0f} + {per['unmixed_neg']:9.0f} = {unmixed:9.0f}")
    print(f"  mixed, cut at 0.5 (old)  {per['cut_pos']:9.0f} + {per['cut_neg']:9.0f} = {cut:9.0f}, "
          f"of which mislabelled {per['cut_wrong']:.0f} ({per['cut_wrong'] / max(cut, 1):.1%})")
    print(f"  mixed, certain only (new){per['new_pos']:9.0f} + {per['new_neg']:9.0f} = {new:9.0f} "
          f"({new / max(unmixed, 1):.1%} of the unmixed slice's pairs), of which mislabelled {per['new_wrong']:.0f}")
    print(f"  over all batches (mixup_prob 0.5): {(0.5 + 0.5 * new / max(unmixed, 1)):.1%} of the pairs "
          f"without mixup are left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
