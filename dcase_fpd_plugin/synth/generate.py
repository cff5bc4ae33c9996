"""Generating a DESED-format synthetic set with scaper: one clip, many clips, the whole run.

Output (``out/``)::

    soundscapes/<name>.wav      the mixtures (16 kHz mono by default)
    soundscapes/<name>.jams     scaper's annotation of each mixture (as DESED ships them)
    soundscapes/<name>.txt      scaper's raw labels (onset, offset, label); written last: a clip
                                is complete when its .txt exists
    soundscapes.tsv             strong labels, post-processed as DESED
    weak.tsv                    the same clips' weak labels (filename, event_labels)
    durations.tsv               filename, duration (s)
    report.json, report.png     target vs achieved per class
    synth_config.json           the settings; a rerun with the same settings resumes

Every clip is a pure function of ``(plan, bank, spec, seed, clip index)``: it gets its own random
streams from ``SeedSequence([seed, CLIP_STREAM, index])``, so the output does not depend on the
number of worker processes nor on the order clips are made in. Files are written to a hidden
temporary name and renamed, so an interrupted run leaves only complete files behind; rerunning
makes the missing clips only.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import soundfile as sf

from ..data.tsv import write_tsv
from .fastpaths import scaper_fast_paths
from .placement import ClipLayout, clip_rngs, layout_clip
from .plan import ClipPlan, make_plan, plan_digest
from .postprocess import postprocess_labels
from .soundbank import Soundbank, bank_classes, scan_soundbank
from .spec import SynthSpec, load_spec, make_spec
from .target import BUNDLED_TARGETS, Target, measure_events, resolve_match, uniform_target

CONFIG_NAME = "synth_config.json"
AUDIO_DIR = "soundscapes"
#: Files and folders a run owns inside ``out/`` (``force`` removes these and nothing else).
OUTPUTS = (AUDIO_DIR, "soundscapes.tsv", "weak.tsv", "durations.tsv", "report.json", "report.png", CONFIG_NAME)


class SynthError(RuntimeError):
    """A run cannot start (existing output, conflicting settings) or a clip failed (named)."""


# --------------------------------------------------------------------------------------------
# One clip
# --------------------------------------------------------------------------------------------


def clip_name(index: int, n_clips: int) -> str:
    """File stem of clip ``index``: zero-padded so names sort like indices (``0042``)."""
    return f"{index:0{max(4, len(str(n_clips - 1)))}d}"


def render_layout(layout: ClipLayout, bank: Soundbank, spec: SynthSpec, scaper_seed: int, fast: bool = True):
    """Mix one clip with scaper, in memory (``fast``: with :func:`scaper_fast_paths`).

    Returns:
        ``(audio, jam, labels)``: audio ``(n_samples, 1)`` float, the ``jams.JAMS`` annotation,
        and scaper's raw foreground labels ``[(onset_s, offset_s, label), ...]``.
    """
    from ..compat import import_scaper

    scaper = import_scaper()  # heavy import, kept out of module import time; numpy 2 shim
    from scaper.scaper_warnings import ScaperWarning

    bg = layout.background
    sc = scaper.Scaper(
        spec.duration,
        fg_path=bank.fg_path,
        bg_path=os.path.dirname(os.path.dirname(bg.path)),
        random_state=scaper_seed,
    )
    sc.sr = spec.sample_rate
    sc.ref_db = spec.ref_db
    sc.add_background(label=("const", bg.label), source_file=("const", bg.path), source_time=("const", layout.background_time))
    for e in layout.events:
        sc.add_event(
            label=("const", e.label),
            source_file=("const", e.source_file),
            source_time=("const", e.source_time),
            event_time=("const", e.event_time),
            event_duration=("const", e.event_duration),
            snr=("const", e.snr),
            pitch_shift=None if e.pitch_shift is None else ("const", e.pitch_shift),
            time_stretch=None if e.time_stretch is None else ("const", e.time_stretch),
        )
    with warnings.catch_warnings(), (scaper_fast_paths() if fast else nullcontext()):
        warnings.simplefilter("ignore", ScaperWarning)
        audio, jam, labels, _ = sc.generate(
            audio_path=None,
            jams_path=None,
            reverb=spec.reverb,
            fix_clipping=spec.fix_clipping,
            disable_sox_warnings=True,
            disable_instantiation_warnings=True,
        )
    return audio, jam, [(float(a), float(b), str(c)) for a, b, c in labels]


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    tmp = path.parent / f".{path.name}.tmp{os.getpid()}"
    try:
        write(str(tmp))
        os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def write_clip(folder: Path, name: str, audio: np.ndarray, jam, labels, spec: SynthSpec) -> None:
    """Write ``name``.wav, .jams, then .txt (the completion marker), each atomically."""
    wav, jams_path, txt = folder / f"{name}.wav", folder / f"{name}.jams", folder / f"{name}.txt"
    _atomic_write(wav, lambda p: sf.write(p, audio, spec.sample_rate, subtype=spec.subtype, format="WAV"))
    ann = jam.annotations.search(namespace="scaper")[0]
    ann.sandbox.scaper.audio_path = str(wav)
    ann.sandbox.scaper.jams_path = str(jams_path)

    def dump_jams(p: str) -> None:  # jams' own save() re-validates the schema (slow); same JSON
        with open(p, "w", encoding="utf-8") as f:
            json.dump(jam.__json__, f)

    _atomic_write(jams_path, dump_jams)
    text = "".join(f"{on!r}\t{off!r}\t{lab}\n" for on, off, lab in labels)
    _atomic_write(txt, lambda p: Path(p).write_text(text, encoding="utf-8"))


def read_clip_labels(txt: Path) -> list[tuple[float, float, str]]:
    """Raw labels of a finished clip (its .txt sidecar)."""
    out = []
    for lineno, line in enumerate(txt.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                on, off, lab = line.split("\t")
                out.append((float(on), float(off), lab))
            except ValueError:
                raise SynthError(f"{txt}:{lineno}: malformed label line {line!r}") from None
    return out


# --------------------------------------------------------------------------------------------
# Many clips (worker processes)
# --------------------------------------------------------------------------------------------


@dataclass
class _Job:
    """Everything a worker needs (inherited by fork, pickled otherwise)."""

    plan: list[ClipPlan]
    bank: Soundbank
    spec: SynthSpec
    seed: int
    folder: Path
    target_durations: dict[str, list[float]]


_JOB: _Job | None = None


def _init_worker(job: _Job) -> None:
    global _JOB
    _JOB = job
    warnings.filterwarnings("ignore")


def make_clip(index: int, job: _Job | None = None) -> int:
    """Lay out, mix and write clip ``index``; returns its number of events."""
    job = job or _JOB
    assert job is not None, "worker not initialised"
    name = clip_name(index, len(job.plan))
    try:
        rng, scaper_seed = clip_rngs(job.seed, index)
        layout = layout_clip(job.plan[index], job.bank, job.spec, rng, job.target_durations)
        audio, jam, labels = render_layout(layout, job.bank, job.spec, scaper_seed)
        write_clip(job.folder, name, audio, jam, labels, job.spec)
    except Exception as e:
        raise SynthError(f"clip {name} ({job.plan[index].events}): {type(e).__name__}: {e}") from None
    return len(labels)


def is_complete(folder: Path, name: str) -> bool:
    return all((folder / f"{name}{ext}").is_file() for ext in (".wav", ".jams", ".txt"))


def render_clips(job: _Job, indices: Sequence[int], workers: int = 1, progress: bool = True) -> None:
    """Make the clips ``indices`` over ``workers`` processes, with a progress bar."""
    from tqdm import tqdm

    bar = tqdm(total=len(indices), desc="synth", unit="clip", disable=not progress or not indices)
    try:
        if workers <= 1 or len(indices) <= 1:
            for i in indices:
                make_clip(i, job)
                bar.update()
            return
        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        chunk = max(1, min(8, len(indices) // (workers * 8)))
        with ctx.Pool(workers, initializer=_init_worker, initargs=(job,)) as pool:
            for _ in pool.imap_unordered(make_clip, indices, chunksize=chunk):
                bar.update()
    finally:
        bar.close()


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


@dataclass
class SynthResult:
    """What a run produced (paths) and how it went."""

    out: Path
    strong_tsv: Path
    weak_tsv: Path
    durations_tsv: Path
    report_json: Path
    report_png: Path | None
    n_clips: int
    occurrences: int
    rendered: int
    resumed: int
    seconds: float
    report: dict[str, Any] = field(default_factory=dict)


def _bank_digest(bank: Soundbank) -> str:
    root = bank.root.absolute()
    items = [(os.path.relpath(s.path, root), round(s.duration, 6)) for c in bank.classes for s in bank.foreground[c]]
    items += [(os.path.relpath(s.path, root), round(s.duration, 6)) for s in bank.background]
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def _prepare_out(out: Path, config: dict, force: bool) -> None:
    """Create ``out`` or accept it for resuming; refuse to overwrite without ``force``."""
    cfg_path = out / CONFIG_NAME
    if force and out.exists():
        for name in OUTPUTS:
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()
    elif out.exists() and any(out.iterdir()):
        if not cfg_path.is_file():
            raise SynthError(f"{out}: output folder exists and is not a synth run (no {CONFIG_NAME}); pass --force (force=True in Python) to overwrite it")
        try:
            old = json.loads(cfg_path.read_text(encoding="utf-8"))["fingerprint"]
        except (ValueError, KeyError):
            raise SynthError(f"{cfg_path}: unreadable run settings; pass --force (force=True in Python) to start over") from None
        new = config["fingerprint"]
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            raise SynthError(
                f"{out}: output folder holds a run with other settings ({', '.join(diff)} differ); "
                "pass --force (force=True in Python) to overwrite it, or choose another output folder"
            )
    (out / AUDIO_DIR).mkdir(parents=True, exist_ok=True)
    for tmp in (out / AUDIO_DIR).glob(".*.tmp*"):  # leftovers of an interrupted run
        tmp.unlink()
    write_json(cfg_path, config)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp + rename)."""
    _atomic_write(path, lambda p: Path(p).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8"))


def _fmt(t: float) -> str:
    return f"{t:.3f}"


def write_label_tsvs(out: Path, clips: Mapping[str, list[tuple[float, float, str]]], duration: float) -> tuple[Path, Path, Path]:
    """Write soundscapes.tsv (strong), weak.tsv and durations.tsv for ``{filename: events}``."""
    names = sorted(clips)
    strong = out / "soundscapes.tsv"
    weak = out / "weak.tsv"
    durs = out / "durations.tsv"
    write_tsv(strong, ("filename", "onset", "offset", "event_label"),
              ([n, _fmt(on), _fmt(off), lab] for n in names for on, off, lab in clips[n]))
    write_tsv(weak, ("filename", "event_labels"), ([n, ",".join(sorted({lab for _, _, lab in clips[n]}))] for n in names))
    write_tsv(durs, ("filename", "duration"), ([n, _fmt(duration)] for n in names))
    return strong, weak, durs


def _target_notes(target: Target) -> list[str]:
    empty = target.class_sets.get((), 0.0) / target.n_clips
    if empty > 0:
        return [f"{100 * empty:.1f} % of the target's clips hold no event of {target.classes}; "
                "as many background-only clips are made"]
    return []


def resolve_target(match_tsv, classes, soundbank) -> Target:
    """The target: measured from ``match_tsv`` (a strong TSV, an event-list .json or a bundled name
    such as ``desed_validation``: :func:`.target.resolve_match`), else uniform over ``classes``
    (or the bank's)."""
    if match_tsv is not None:
        return resolve_match(match_tsv, classes=classes)
    return uniform_target(list(classes) if classes else bank_classes(soundbank))


def generate_soundscapes(
    soundbank: str | Path,
    out: str | Path,
    n_clips: int | None = None,
    *,
    match_tsv: str | Path | None = None,
    occurrences: int | None = None,
    spec: str | Path | Mapping[str, Any] | SynthSpec | None = None,
    workers: int = 1,
    seed: int = 0,
    force: bool = False,
    classes: Sequence[str] | None = None,
    snr_db: tuple[float, float] | None = None,
    progress: bool = True,
    report_png: bool = True,
    **spec_overrides: Any,
) -> SynthResult:
    """Generate a DESED-format strongly labelled synthetic set with scaper.

    Args:
        soundbank: DESED-layout bank (``foreground/<Class>[_nOn|_nOff|_nOn_nOff]/``, ``background/``).
        out: output folder (see the module docstring for its layout).
        n_clips: clips to make; ``None`` takes the spec's ``n_clips``.
        match_tsv: a strong-label TSV (e.g. the validation set) whose per-class share of clips and
            of occurrences, events per clip and co-occurrence the set follows; ``None``: the same
            share for every class of ``classes`` (or of the bank).
        occurrences: total events to aim for; ``None``: the spec's (scaled by ``n_clips / spec n_clips``
            when ``n_clips`` differs from the spec's), else the target's events per clip.
        spec: a YAML path, mapping or :class:`SynthSpec` (defaults: DESED's).
        workers: processes; the output is identical for any number.
        seed: the run's seed; clip ``i`` is seeded from ``(seed, i)``.
        force: delete a previous run in ``out`` instead of refusing / resuming.
        classes: restrict the target to these classes (every one must be in the bank).
        snr_db: ``(low, high)`` foreground-to-background SNR in dB (overrides the spec).
        progress: show a tqdm bar.
        report_png: draw report.png (matplotlib, Agg).
        **spec_overrides: any other :class:`SynthSpec` key (``duration``, ``ref_db``, ``reverb``...).

    Returns:
        a :class:`SynthResult`. Raises ``SoundbankError`` / ``DataError`` / ``SpecError`` /
        :class:`SynthError` naming the culprit before any clip is written.
    """
    t0 = time.perf_counter()
    overrides = dict(spec_overrides)  # given explicitly: applied as is (None turns an option off)
    if snr_db is not None:
        overrides["snr_db"] = snr_db
    if classes is not None:
        overrides["classes"] = list(classes)
    if int(seed) < 0:
        raise SynthError(f"seed must be a non-negative integer, got {seed}")
    cfg = make_spec(overrides, base=load_spec(spec))
    n = n_clips if n_clips is not None else cfg.n_clips
    if n is None or int(n) <= 0:
        raise SynthError(f"n_clips must be a positive number (got {n}); give it or set it in the spec")
    n = int(n)
    occ = occurrences if occurrences is not None else cfg.occurrences
    if occurrences is None and cfg.occurrences and cfg.n_clips and n != cfg.n_clips:
        occ = int(round(cfg.occurrences * n / cfg.n_clips))  # keep the spec's events per clip
    workers = max(1, int(workers))
    target = resolve_target(match_tsv, cfg.classes, soundbank)
    bank = scan_soundbank(soundbank, target.used_classes())  # fails here, before any clip
    with warnings.catch_warnings(record=True) as plan_warnings:
        warnings.simplefilter("always")
        plan = make_plan(target, n, occ, seed, cfg.max_events_per_clip, cfg.max_events_per_class)
    occ_planned = sum(p.n_events for p in plan)
    out = Path(out)
    config = {
        "fingerprint": {
            "n_clips": n,
            "occurrences": occ_planned,
            "seed": int(seed),
            "spec": cfg.to_dict(),
            "classes": target.classes,
            "plan": plan_digest(plan),
            "soundbank": _bank_digest(bank),
        },
        "soundbank": str(Path(soundbank).absolute()),
        "match_tsv": None if match_tsv is None else (
            str(match_tsv) if str(match_tsv) in BUNDLED_TARGETS else str(Path(match_tsv).absolute())),
        "occurrences_requested": occ,
    }
    _prepare_out(out, config, force)
    folder = out / AUDIO_DIR
    names = [clip_name(i, n) for i in range(n)]
    pending = [i for i, name in enumerate(names) if not is_complete(folder, name)]
    job = _Job(plan, bank, cfg, int(seed), folder, target.durations)
    t_render = time.perf_counter()
    render_clips(job, pending, workers, progress)
    render_s = time.perf_counter() - t_render

    clips = {
        f"{name}.wav": postprocess_labels(read_clip_labels(folder / f"{name}.txt"), cfg.duration, cfg.min_event_length, cfg.min_gap)
        for name in names
    }
    strong, weak, durs = write_label_tsvs(out, clips, cfg.duration)
    achieved = measure_events(clips, classes=target.classes, source=str(strong))

    from .report import build_report, plot_report

    seconds = time.perf_counter() - t0
    report = build_report(
        target, achieved, n_requested=n, occurrences_requested=occ if occ is not None else occ_planned,
        spec=cfg, seed=seed, soundbank=soundbank, match_tsv=match_tsv,
        timing={"rendered": len(pending), "resumed": n - len(pending), "workers": workers,
                "render_seconds": round(render_s, 3), "total_seconds": round(seconds, 3),
                "clips_per_second": round(len(pending) / render_s, 3) if pending and render_s > 0 else None},
        notes=[str(w.message) for w in plan_warnings] + _target_notes(target),
    )
    report_json = out / "report.json"
    write_json(report_json, report)
    png = plot_report(report, out / "report.png") if report_png else None
    return SynthResult(out, strong, weak, durs, report_json, png, n, report["totals"]["occurrences"]["achieved"],
                       len(pending), n - len(pending), time.perf_counter() - t0, report)
