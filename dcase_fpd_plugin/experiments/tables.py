"""Tables over the runs of a comparison (pure: :class:`RunRecord` in, DataFrames and Markdown out): mean, std, best per recipe, gains, per class, energy."""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..report.energy_comparison import (EW_PSDS_PHASE, WORK_UNITS, energy_ratio, ew_psds,
    normalise_work)
from .records import ENERGY_METRIC, EXTRA_METRICS, HEADLINE_METRICS, LATE_PREFIX, LOWER_IS_BETTER_PREFIX, RunRecord, float_or_none, recipe_order, run_values


def describe(values: Iterable[float | None], lower_is_better: bool = False) -> dict[str, float]:
    """mean, std (sample, ddof=1; NaN with fewer than 2 values), best, n of the defined values."""
    arr = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    n = int(arr.size)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "best": math.nan, "n_seeds": 0}
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if n > 1 else math.nan,
        "best": float(arr.min() if lower_is_better else arr.max()),
        "n_seeds": n,
    }


def summarise(runs: Sequence[RunRecord], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per recipe x metric: ``recipe, metric, mean, std, best, n_seeds, gain``.

    ``std`` is the sample standard deviation (ddof = 1), NaN with one seed; ``best`` the maximum
    (the minimum for energy); ``gain`` the recipe's mean minus the first recipe's mean (recipes
    in the order they first appear in ``runs``). ``metrics`` defaults to the headline metrics,
    :data:`EXTRA_METRICS` and, when any run has energy figures, ``energy_kwh`` and
    ``energy_kwh_<phase>``. Values that are None (not computed) are left out of the statistics.
    """
    if not runs:
        raise ValueError("summarise: no runs to summarise")
    order = recipe_order(runs)
    values = [(run_values(r), r) for r in runs]
    if metrics is None:
        metrics = [m for m, _, _ in HEADLINE_METRICS] + list(EXTRA_METRICS)
        if any(r.late_metrics for r in runs):
            metrics += [f"{LATE_PREFIX}{m}" for m, _, _ in HEADLINE_METRICS]
        energy_keys = sorted({k for v, _ in values for k in v if k.startswith(ENERGY_METRIC)},
                             key=lambda k: (k != ENERGY_METRIC, k))
        metrics += energy_keys
    rows = []
    for name in order:
        for metric in metrics:
            stats = describe((v.get(metric) for v, r in values if r.recipe == name),
                             lower_is_better=metric.startswith(LOWER_IS_BETTER_PREFIX))
            rows.append({"recipe": name, "metric": metric, **stats})
    table = pd.DataFrame(rows, columns=["recipe", "metric", "mean", "std", "best", "n_seeds"])
    first = table[table["recipe"] == order[0]].set_index("metric")["mean"]
    table["gain"] = table["mean"] - table["metric"].map(first)
    return table


def runs_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run: recipe, seed, every scalar metric, energy (kWh, kind), wall_s, exp_dir."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {"recipe": r.recipe, "seed": r.seed}
        row.update(run_values(r))
        row["energy_kind"] = r.energy.kind if r.energy is not None else "not measured"
        row["wall_s"] = r.wall_s
        row["exp_dir"] = str(r.exp_dir) if r.exp_dir is not None else None
        rows.append(row)
    rank = {name: i for i, name in enumerate(recipe_order(runs))}
    rows.sort(key=lambda row: (rank[row["recipe"]], row["seed"]))
    table = pd.DataFrame(rows)
    tail = ["energy_kind", "wall_s", "exp_dir"]
    energy_cols = [c for c in table.columns if c.startswith(ENERGY_METRIC)]
    head = [c for c in table.columns if c not in tail and c not in energy_cols]
    return table[head + energy_cols + tail]


def per_class_table(runs: Sequence[RunRecord], metric: str = "event_f1") -> pd.DataFrame:
    """Mean and sample std (ddof=1) of ``per_class[metric][class]`` per recipe and class.

    Columns ``recipe, class, mean, std, n_seeds``; classes in the order they first appear.
    A class whose value is None (no reference events) in a run is left out for that run.
    """
    classes: list[str] = []
    for r in runs:
        for c in (r.metrics.get("per_class") or {}).get(metric, {}) or {}:
            if c not in classes:
                classes.append(c)
    rows = []
    for name in recipe_order(runs):
        mine = [r for r in runs if r.recipe == name]
        for c in classes:
            stats = describe(((r.metrics.get("per_class") or {}).get(metric, {}) or {}).get(c) for r in mine)
            rows.append({"recipe": name, "class": c, "mean": stats["mean"], "std": stats["std"],
                         "n_seeds": stats["n_seeds"]})
    return pd.DataFrame(rows, columns=["recipe", "class", "mean", "std", "n_seeds"])


def energy_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """Per recipe: mean kWh (total and per phase) over the runs with energy figures, and the
    training energy against the first recipe.

    Columns ``recipe, n_runs, n_with_energy, kind, mean_kwh, <phase>_kwh ..., kwh_ratio,
    normalised_by, ew_psds1, ew_psds2, same_hardware``. ``kind`` is measured / estimated / mixed /
    unknown over the recipe's runs, or ``not measured`` (then every kWh is NaN). ``kwh_ratio`` is
    the first recipe's mean training kWh, scaled to this recipe's mean work (training clips, else
    epochs, when every run of both recorded it and they differ), over this recipe's mean training
    kWh; ``normalised_by`` says how; ``ew_psds1/2`` = mean PSDS x ``kwh_ratio``; ``same_hardware``:
    whether the recipe's training runs recorded the hardware of the first recipe's (None: unknown).
    """
    phases: list[str] = []
    for r in runs:
        for p in (r.energy.phases if r.energy else {}):
            if p not in phases:
                phases.append(p)
    order = recipe_order(runs)
    rows = []
    for name in order:
        mine = [r for r in runs if r.recipe == name]
        with_energy = [r.energy for r in mine if r.energy is not None]
        kinds = {e.kind for e in with_energy}
        kind = "not measured" if not with_energy else kinds.pop() if len(kinds) == 1 else "mixed"
        row: dict[str, Any] = {"recipe": name, "n_runs": len(mine), "n_with_energy": len(with_energy),
                               "kind": kind,
                               "mean_kwh": describe(e.total_kwh for e in with_energy)["mean"]}
        for p in phases:
            row[f"{p}_kwh"] = describe(e.phases.get(p) for e in with_energy)["mean"]
        rows.append(row)
    first = _weighting_inputs(runs, order[0])
    for row in rows:
        mine = _weighting_inputs(runs, row["recipe"])
        work = normalise_work(EW_PSDS_PHASE, mine["work"], first["work"])
        ratio = energy_ratio(mine["kwh"], first["kwh"], work.scale)
        row["kwh_ratio"] = math.nan if ratio is None else ratio
        row["normalised_by"] = work.note if ratio is not None else f"no {EW_PSDS_PHASE} kWh"
        for metric in ("psds1", "psds2"):
            value = ew_psds(mine[metric], ratio)
            row[f"ew_{metric}"] = math.nan if value is None else value
        known = mine["hardware"] is not None and first["hardware"] is not None
        row["same_hardware"] = (mine["hardware"] == first["hardware"]) if known else None
    return pd.DataFrame(rows)


def _weighting_inputs(runs: Sequence[RunRecord], recipe: str) -> dict[str, Any]:
    """A recipe's mean training kWh, mean work per unit (when every such run recorded it), mean
    PSDS1/2 and the set of training hardware (None when a run did not record it)."""
    mine = [r for r in runs if r.recipe == recipe]
    measured = [r for r in mine if r.energy is not None and EW_PSDS_PHASE in r.energy.phases]
    kwh = describe(r.energy.phases[EW_PSDS_PHASE] for r in measured)["mean"]
    work = {}
    for unit in WORK_UNITS[EW_PSDS_PHASE]:
        counts = [(r.energy.work.get(EW_PSDS_PHASE) or {}).get(unit) for r in measured]
        if counts and all(c is not None for c in counts):
            work[unit] = float(np.mean(counts))
    hardware = [r.energy.hardware.get(EW_PSDS_PHASE) for r in measured]
    out: dict[str, Any] = {"kwh": None if math.isnan(kwh) else kwh, "work": work,
                           "hardware": frozenset(h for hs in hardware for h in hs)
                           if hardware and all(hardware) else None}
    for metric in ("psds1", "psds2"):
        mean = describe(float_or_none(r.metrics.get(metric)) for r in mine)["mean"]
        out[metric] = None if math.isnan(mean) else mean
    return out


# --------------------------------------------------------------------------- markdown


def _num(x: float, digits: int) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.3f} ± {_num(std, 4)}"


def _gain(gain: float, is_first: bool) -> str:
    if is_first:
        return "(reference)"
    return "n/a" if math.isnan(gain) else f"{gain:+.3f}"


def _bold_if(text: str, flag: bool) -> str:
    return f"**{text}**" if flag else text


def format_metric_table(summary: pd.DataFrame, metric: str, label: str) -> str:
    """Markdown table ``Model | Average <label> | Best <label> | Gain over <first>`` for a metric,
    the best mean and the best single run in bold (as in the paper)."""
    rows = summary[summary["metric"] == metric].reset_index(drop=True)
    first = rows["recipe"].iloc[0]
    # bold only where it singles something out: several recipes that do not all tie
    bold_mean, bold_best = rows["mean"].nunique() > 1, rows["best"].nunique() > 1
    top_mean = rows["mean"].max() if rows["mean"].notna().any() else math.nan
    top_best = rows["best"].max() if rows["best"].notna().any() else math.nan
    lines = [f"| Model | Average {label} | Best {label} | Gain over {first} (mean) |", "|---|---|---|---|"]
    for i, row in rows.iterrows():
        mean_cell = _bold_if(_mean_std(row["mean"], row["std"]), bold_mean and row["mean"] == top_mean)
        best_cell = _bold_if(_num(row["best"], 3), bold_best and row["best"] == top_best)
        lines.append(f"| {row['recipe']} | {mean_cell} | {best_cell} | {_gain(row['gain'], i == 0)} |")
    return "\n".join(lines)


def format_energy_section(energy: pd.DataFrame) -> str:
    """Markdown table of the mean energy per recipe, each figure marked estimated / measured, and
    the training energy against the first recipe (ratio, normalisation, EW-PSDS)."""
    phases = [c[: -len("_kwh")] for c in energy.columns if c.endswith("_kwh") and c != "mean_kwh"]
    first = energy["recipe"].iloc[0]
    head = ("| Model | Mean energy per run (kWh) | " + "".join(f"{p} (kWh) | " for p in phases)
            + f"{EW_PSDS_PHASE} kWh of {first} / of this | normalised | EW-PSDS1 | EW-PSDS2 | Runs with figures |")
    lines = [head, "|---|---|" + "---|" * len(phases) + "---|---|---|---|---|"]
    for _, row in energy.iterrows():
        if row["kind"] == "not measured":
            total = "not measured"
        else:
            total = f"{_num(row['mean_kwh'], 6)} ({row['kind']})"
        cells = "".join(f"{_num(row[f'{p}_kwh'], 6)} | " for p in phases)
        lines.append(f"| {row['recipe']} | {total} | {cells}{_num(row['kwh_ratio'], 3)} | {row['normalised_by']} | "
                     f"{_num(row['ew_psds1'], 4)} | {_num(row['ew_psds2'], 4)} | "
                     f"{row['n_with_energy']} of {row['n_runs']} |")
    note = ("Energy from each run's energy.json (codecarbon). \"estimated\": codecarbon had no power "
            "counters (RAPL / NVML) and modelled power x duration; \"measured\": read from the counters. "
            f"Ratio: the {EW_PSDS_PHASE} kWh of {first} over this recipe's (means over the seeds), {first}'s "
            "scaled to this recipe's work where they differ; EW-PSDS = mean PSDS x ratio (Ronchini & Serizel "
            "2023), as `dcase-fpd report --baseline`.")
    other = [str(r) for r, same in zip(energy["recipe"], energy["same_hardware"]) if same is False]
    if other:
        note += f" **Warning: {', '.join(other)} trained on other hardware than {first}: their ratios compare machines too.**"
    return note + "\n\n" + "\n".join(lines)


def format_summary_markdown(summary: pd.DataFrame, energy: pd.DataFrame | None,
                            runs: Sequence[RunRecord], title: str = "Comparison") -> str:
    """summary.md: one table per headline metric (the paper's Tables 1-3 layout), then energy."""
    order = recipe_order(runs)
    seeds = {name: sorted(r.seed for r in runs if r.recipe == name) for name in order}
    lines = [f"# {title}", ""]
    lines.append("Recipes (in order; the first is the reference for the gain): "
                 + ", ".join(f"{n} ({len(seeds[n])} seeds: {_seed_span(seeds[n])})" for n in order) + ".")
    lines.append("")
    lines.append("Average = mean ± sample standard deviation (ddof = 1; n/a with one seed) over the seeds; "
                 "Best = the best single seed; Gain = difference of the means, recipe minus "
                 f"{order[0]}. Bold: the highest average and the highest best.")
    lines += ["", format_protocol(runs)]
    for i, (metric, title_text, label) in enumerate(HEADLINE_METRICS, start=1):
        lines += ["", f"## Table {i}: {title_text} (`{metric}`)", ""]
        rows = summary[summary["metric"] == metric]
        if rows.empty or rows["n_seeds"].sum() == 0:
            lines.append(f"Not computed in these runs (`{metric}` is null in metrics.json"
                         + (", e.g. eval.psds=false)." if metric.startswith("psds") else ")."))
            continue
        lines.append(format_metric_table(summary, metric, label))
    late = format_late_table(summary, runs)
    if late:
        lines += ["", late]
    lines += ["", "## Energy", ""]
    if energy is None or energy.empty:
        lines.append("not measured")
    else:
        lines.append(format_energy_section(energy))
    lines += ["", "Files: summary.csv (all statistics), runs.csv (one row per run), per_class_f1.csv, energy.csv, "
              "event_f1_sorted.png, per_class_f1.png, psds1_vs_training_kwh.png, learning_curves.csv/.png "
              "(validation per epoch).", ""]
    return "\n".join(lines)


def format_protocol(runs: Sequence[RunRecord]) -> str:
    """Which clips chose each run's checkpoint and which were scored (from metrics.json), with a
    warning when any run was scored on the clips that chose its checkpoint."""
    sets = sorted({(str(r.metrics.get("validation_set", "?")), str(r.metrics.get("test_set", "?"))) for r in runs})
    flagged = [f"{r.recipe} seed {r.seed}" for r in runs if r.metrics.get("selection_on_test") is not False]
    text = "; ".join(f"checkpoint chosen on `{v}`, metrics on `{t}`" for v, t in sets) + "."
    if flagged:
        text = (f"**Warning: {len(flagged)} of {len(runs)} runs were scored on the clips that chose their "
                f"checkpoint (selection_on_test true or unknown: {', '.join(flagged[:6])}"
                f"{', ...' if len(flagged) > 6 else ''}); their figures are flattered.** " + text)
    stopped = [f"{r.recipe} seed {r.seed} after {r.metrics.get('epochs_trained', '?')} epochs" for r in runs
               if r.metrics.get("stopped_by_time_limit") is True]
    if stopped:
        text += (f" {len(stopped)} of {len(runs)} runs stopped at their time limit (training.max_train_s) before "
                 f"training.n_epochs: {', '.join(stopped[:6])}{', ...' if len(stopped) > 6 else ''}.")
    early = [f"{r.recipe} seed {r.seed} after {r.metrics.get('epochs_trained', '?')} epochs" for r in runs
             if r.metrics.get("stopped_early") is True]
    if early:
        text += (f" {len(early)} of {len(runs)} runs stopped early (training.early_stop_patience validations "
                 f"without a new best): {', '.join(early[:6])}{', ...' if len(early) > 6 else ''}.")
    return "Protocol: " + text


def format_late_table(summary: pd.DataFrame, runs: Sequence[RunRecord]) -> str:
    """Markdown table of the test metrics averaged over each run's last epochs, then over the seeds
    (empty string when no run has late-epoch tests)."""
    n_late = sorted({len(r.late_metrics) for r in runs if r.late_metrics})
    if not n_late:
        return ""
    names = [(m, label) for m, _, label in HEADLINE_METRICS]
    lines = [f"## Test metrics over each run's last {'/'.join(map(str, n_late))} epochs",
             "", "Each run's test metrics averaged over the checkpoints of its last epochs (no selection), "
             "then mean ± std over the seeds; the gain is against the first recipe.", "",
             "| Model | " + " | ".join(f"{m}" for m, _ in names) + " |", "|---|" + "---|" * len(names)]
    for recipe in recipe_order(runs):
        cells = []
        for m, _ in names:
            row = summary[(summary["recipe"] == recipe) & (summary["metric"] == f"{LATE_PREFIX}{m}")]
            if row.empty or row["n_seeds"].iloc[0] == 0:
                cells.append("n/a")
                continue
            r = row.iloc[0]
            gain = "" if recipe == recipe_order(runs)[0] or math.isnan(r["gain"]) else f" ({r['gain']:+.3f})"
            cells.append(_mean_std(r["mean"], r["std"]) + gain)
        lines.append(f"| {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _seed_span(seeds: Sequence[int]) -> str:
    if seeds and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)
