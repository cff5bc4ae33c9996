"""Target vs achieved, per class: ``report.json`` and ``report.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .spec import SynthSpec
from .target import Target


def _pp(x: float) -> float:
    """A fraction as percentage points, rounded to 0.01."""
    return round(100.0 * x, 2)


def build_report(
    target: Target,
    achieved: Target,
    n_requested: int,
    occurrences_requested: int,
    spec: SynthSpec,
    seed: int,
    soundbank: str | Path,
    match_tsv: str | Path | None,
    timing: dict[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> dict[str, Any]:
    """A JSON-friendly comparison; shares in percent (of clips / of all events), durations in s."""
    t_clip, a_clip = target.clip_share(), achieved.clip_share()
    t_occ, a_occ = target.occurrence_share(), achieved.occurrence_share()
    t_dur, a_dur = target.duration_stats(), achieved.duration_stats()
    achieved_total = int(round(achieved.total_occurrences()))
    per_class = {}
    for c in target.classes:
        per_class[c] = {
            "clip_share_pct": {"target": _pp(t_clip[c]), "achieved": _pp(a_clip[c]), "diff_pp": _pp(a_clip[c] - t_clip[c])},
            "occurrence_share_pct": {"target": _pp(t_occ[c]), "achieved": _pp(a_occ[c]), "diff_pp": _pp(a_occ[c] - t_occ[c])},
            "occurrences": {"target": round(t_occ[c] * occurrences_requested, 1), "achieved": int(round(achieved.occurrences.get(c, 0)))},
            "mean_duration_s": {"target": t_dur.get(c, {}).get("mean"), "achieved": a_dur.get(c, {}).get("mean")},
        }
    t_co, a_co = target.cooccurrence(), achieved.cooccurrence()
    off_diag = ~np.eye(len(target.classes), dtype=bool)
    return {
        "per_class": per_class,
        "totals": {
            "clips": {"requested": n_requested, "achieved": int(achieved.n_clips)},
            "occurrences": {
                "requested": occurrences_requested,
                "achieved": achieved_total,
                "rel_error_pct": round(100.0 * (achieved_total - occurrences_requested) / max(occurrences_requested, 1), 2),
            },
            "events_per_clip": {"target": round(target.events_per_clip(), 3), "achieved": round(achieved.events_per_clip(), 3)},
            "max_abs_clip_share_diff_pp": max(abs(v["clip_share_pct"]["diff_pp"]) for v in per_class.values()),
            "max_abs_occurrence_share_diff_pp": max(abs(v["occurrence_share_pct"]["diff_pp"]) for v in per_class.values()),
            "cooccurrence_mean_abs_diff": round(float(np.abs(a_co - t_co)[off_diag].mean()), 4) if off_diag.any() else 0.0,
        },
        "target": target.summary(),
        "achieved": achieved.summary(),
        "settings": {
            "spec": spec.to_dict(),
            "seed": int(seed),
            "soundbank": str(soundbank),
            "match_tsv": None if match_tsv is None else str(match_tsv),
        },
        "timing": timing or {},
        "notes": list(notes),
    }


def plot_report(report: dict[str, Any], path: str | Path) -> Path:
    """Bar charts of target vs achieved per class (share of clips, share of events, mean duration)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg, without touching pyplot's backend
    from matplotlib.figure import Figure

    per = report["per_class"]
    classes = list(per)
    x = np.arange(len(classes))
    panels = [("clip_share_pct", "clips holding the class (%)"), ("occurrence_share_pct", "share of all events (%)"),
              ("mean_duration_s", "mean event duration (s)")]
    fig = Figure(figsize=(max(6.0, 0.8 * len(classes) + 2), 8.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, sharex=True)
    for ax, (key, title) in zip(axes, panels):
        for off, who, color in ((-0.2, "target", "tab:gray"), (0.2, "achieved", "tab:blue")):
            vals = [per[c][key][who] if per[c][key][who] is not None else np.nan for c in classes]
            ax.bar(x + off, vals, width=0.4, label=who, color=color)
        ax.set_ylabel(title)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend()
    tot = report["totals"]
    axes[0].set_title(
        f"{tot['clips']['achieved']} clips, {tot['occurrences']['achieved']} events "
        f"(asked {tot['occurrences']['requested']}); max clip-share diff {tot['max_abs_clip_share_diff_pp']} pp"
    )
    axes[-1].set_xticks(x, classes, rotation=30, ha="right")
    fig.tight_layout()
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp.png"
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
    return path
