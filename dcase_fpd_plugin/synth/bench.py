"""A DESED-size benchmark dataset from a soundbank: ``dcase-fpd bench build OUT``.

DESED's roles and sizes, each rendered with scaper from its own recordings::

    banks/{synth,weak,test}/   disjoint sub-banks (symlinks, split_soundbank): no foreground or
                               background recording is in two of them
    synth_train/   2046 clips, synthetic strongly-labelled training set (SS), synth/dcase2023_2046.yaml
                   (6032 events, pitch shift, reverb), SNR 6-30 dB, from banks/synth
    synth_val/     synthetic validation set (strong labels; selects the checkpoint), from banks/synth
    weak/          1578 clips standing in for the real weakly-labelled set (RW): other recordings and
                   backgrounds, SNR 0-20 dB, the target's events per clip; only weak/weak.tsv is
                   given to training
    test/          1168 strongly-labelled clips standing in for the DESED validation set (reported,
                   never used for selection), SNR 0-20 dB, the target's events per clip, from banks/test
    strong_train/  the upper reference's training set: links to synth_train's clips and to the weak
                   clips left for training (the held-out 10 % excluded), with their strong labels
    bench.json     sizes, seeds, build time, and the recipe overrides (``overrides``) pointing at it;
                   ``strong_reference_overrides`` trains on strong_train alone (strong labels on every
                   training clip), with the same validation and test sets

With ``--soft`` (off by default; the sets above are byte-identical with or without it), a
soft-labelled source in MAESTRO Real's format, for the DCASE 2024 mechanics (soft labels, a source
that annotates only some classes)::

    soft_train/    600 clips made like weak/ (from banks/weak, SNR 0-20 dB, the target's events per
                   clip, every bench class); soft_train/soft.tsv labels only the soft classes:
                   ``filename onset offset event_label score``, one row per 1-s segment where a class
                   sounds, score = the share of the segment its events cover; durations.tsv lists
                   every clip (a clip where no soft class sounds has no row)
    soft_val/      60 clips, the same, held out (the 2024 validation objective's MAESTRO part)
    soft_classes.txt  the classes soft.tsv annotates, one per line (also bench.json's ``soft``)

Every set follows the class distribution of the DESED validation set (the bundled measurement
``desed_validation``: share of clips per class, class co-occurrence, events per clip, event
durations), restricted to the classes the bank holds. The build is deterministic for a seed and
resumable (each set is resumed by :func:`generate_soundscapes`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..atomic import atomic_write_text
from .generate import generate_soundscapes
from .soft import DEFAULT_SEGMENT_S, SOFT_CLASSES_FILE, SOFT_TSV, choose_soft_classes, write_set_soft_tsv
from .soundbank import bank_classes, split_soundbank
from .spec import SPECS_DIR
from .target import resolve_match

SPEC_2046 = SPECS_DIR / "dcase2023_2046.yaml"  # bundled; synth/dcase2023_2046.yaml in a checkout
BANK_FRACTIONS = {"synth": 0.5, "weak": 0.25, "test": 0.25}
BENCH_FILE = "bench.json"


@dataclass(frozen=True)
class BenchSet:
    """One set of the bench: its folder, sub-bank, size, SNR range and generation seed offset."""

    name: str
    bank: str
    n_clips: int
    snr_db: tuple[float, float] | None  # None: the spec's
    seed_offset: int
    events_from: str = "spec"  # spec: the spec's events per clip (6032 / 2046) | target: the target's


def bench_sets(n_synth: int = 2046, n_synth_val: int = 500, n_weak: int = 1578, n_test: int = 1168
               ) -> list[BenchSet]:
    """The four sets, DESED's sizes by default (the synthetic validation set is smaller than
    DESED's 2500 clips to keep the per-epoch validation cheap)."""
    return [BenchSet("synth_train", "synth", n_synth, None, 0),
            BenchSet("synth_val", "synth", n_synth_val, None, 1),
            BenchSet("weak", "weak", n_weak, (0.0, 20.0), 2, "target"),
            BenchSet("test", "test", n_test, (0.0, 20.0), 3, "target")]


@dataclass(frozen=True)
class SoftSource:
    """The optional soft-labelled source (MAESTRO Real's format): ``soft_train`` of ``n_train`` clips,
    ``soft_val`` of ``n_val``, labelled per ``segment_s`` segment for ``classes`` (a count or names:
    :func:`.soft.choose_soft_classes`; None: 5 of the bench's classes)."""

    n_train: int = 600
    n_val: int = 60
    classes: int | tuple[str, ...] | None = None
    segment_s: float = DEFAULT_SEGMENT_S

    def sets(self) -> list[BenchSet]:
        """Made like ``weak``: from the weak sub-bank (training recordings, never the test bank's), SNR
        0-20 dB, the target's events per clip and every bench class (only ``classes`` are labelled)."""
        return [BenchSet("soft_train", "weak", self.n_train, (0.0, 20.0), 4, "target"),
                BenchSet("soft_val", "weak", self.n_val, (0.0, 20.0), 5, "target")]


def soft_summary(out: Path, soft: SoftSource, soft_classes: Sequence[str], labelled: dict) -> dict:
    """bench.json's ``soft``: the classes, the segment length, each part's files and counts, and a
    ``data.sources`` entry (kind soft) naming the training part."""
    out = Path(out).absolute()
    parts = {}
    for part in ("soft_train", "soft_val"):
        parts[part] = {"folder": str(out / part / "soundscapes"), "tsv": str(out / part / SOFT_TSV),
                       "durations": str(out / part / "durations.tsv"), **labelled[part]}
    return {"classes": list(soft_classes), "segment_s": soft.segment_s,
            "classes_file": str(out / SOFT_CLASSES_FILE), **parts,
            "source_entry": {"name": "real_maestro_train", "kind": "soft", "folder": parts["soft_train"]["folder"],
                             "tsv": parts["soft_train"]["tsv"], "classes": list(soft_classes)}}


def bench_overrides(out: Path, classes: Sequence[str]) -> list[str]:
    """Recipe overrides (``data.key=value``) that point a recipe at the bench in ``out``."""
    out = Path(out).absolute()
    return [
        f"data.classes=[{', '.join(classes)}]",
        f"data.synth_folder={out / 'synth_train' / 'soundscapes'}",
        f"data.synth_tsv={out / 'synth_train' / 'soundscapes.tsv'}",
        f"data.weak_folder={out / 'weak' / 'soundscapes'}",
        f"data.weak_tsv={out / 'weak' / 'weak.tsv'}",
        f"data.val_folder={out / 'synth_val' / 'soundscapes'}",
        f"data.val_tsv={out / 'synth_val' / 'soundscapes.tsv'}",
        f"data.val_dur={out / 'synth_val' / 'durations.tsv'}",
        f"data.weak_val_fraction={WEAK_VAL_FRACTION}",
        f"data.test_folder={out / 'test' / 'soundscapes'}",
        f"data.test_tsv={out / 'test' / 'soundscapes.tsv'}",
        f"data.test_dur={out / 'test' / 'durations.tsv'}",
        "data.max_missing_fraction=0",
    ]


WEAK_VAL_FRACTION = 0.1  # DESED_task's weak_split 0.9; in bench_overrides and the strong reference
WEAK_VAL_SEED = 0  # the strong reference's overrides pin it: strong_train leaves out this seed's split


def strong_reference_overrides(out: Path, classes: Sequence[str], batch_size: int = 48) -> list[str]:
    """Overrides for the upper reference: strong labels on every training clip (``strong_train``:
    synthetic + weak training clips) in one batch slice of ``batch_size``, the weak slice off; the
    held-out weak clips still select and the test set still reports."""
    out = Path(out).absolute()
    return [*bench_overrides(out, classes),
            f"data.synth_folder={out / 'strong_train' / 'soundscapes'}",
            f"data.synth_tsv={out / 'strong_train' / 'soundscapes.tsv'}",
            f"data.weak_val_seed={WEAK_VAL_SEED}",  # the split strong_train left out (build_strong_train)
            f"training.batch_size=[{batch_size}, 0, 0]"]


def build_strong_train(out: Path, classes: Sequence[str], weak_val_seed: int = WEAK_VAL_SEED) -> dict:
    """``out/strong_train``: relative links to synth_train's clips (``synth_NNNN.wav``) and to the weak
    clips that training sees (``weak_NNNN.wav``; the same held-out split as a recipe with
    ``data.weak_val_fraction`` 0.1 and ``data.weak_val_seed`` ``weak_val_seed``), and their strong
    labels from the sets' ``soundscapes.tsv``. Returns ``{"n_clips", "occurrences"}``."""
    from ..data.datamodule import split_weak_validation
    from ..data.datasets import weak_records
    from ..data.tsv import read_strong_tsv, write_tsv

    out = Path(out)
    weak_train, _ = split_weak_validation(
        weak_records(out / "weak" / "soundscapes", out / "weak" / "weak.tsv", classes),
        WEAK_VAL_FRACTION, weak_val_seed)
    clips = [("synth", out / "synth_train" / "soundscapes" / name)
             for name in sorted(p.name for p in (out / "synth_train" / "soundscapes").glob("*.wav"))]
    clips += [("weak", r.path) for r in weak_train]
    labels = {"synth": read_strong_tsv(out / "synth_train" / "soundscapes.tsv", classes),
              "weak": read_strong_tsv(out / "weak" / "soundscapes.tsv", classes)}
    folder = out / "strong_train" / "soundscapes"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for source, path in clips:
        link = folder / f"{source}_{path.name}"
        target = os.path.relpath(path, folder)
        if not (link.is_symlink() and os.readlink(link) == target):
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        rows += [(link.name, f"{e.onset:.3f}", f"{e.offset:.3f}", e.event_label) for e in labels[source].get(path.name, [])]
    wanted = {f"{source}_{path.name}" for source, path in clips}
    for stale in folder.iterdir():  # links of an earlier build that this one does not make (only links)
        if stale.is_symlink() and stale.name not in wanted:
            stale.unlink()
    write_tsv(out / "strong_train" / "soundscapes.tsv", ("filename", "onset", "offset", "event_label"), rows)
    return {"n_clips": len(clips), "occurrences": len(rows)}


def _split_banks(soundbank: str | Path, banks_dir: Path, seed: int) -> dict[str, Path]:
    """The disjoint sub-banks, reused only when a complete split of the same bank and seed is there
    (``split.json``, written last); a partial split is redone; another bank or seed is refused."""
    marker = banks_dir / "split.json"
    wanted = {"soundbank": str(Path(soundbank).resolve()), "seed": seed, "fractions": BANK_FRACTIONS}
    if marker.is_file():
        found = json.loads(marker.read_text())
        if found != wanted:
            raise FileExistsError(f"{banks_dir} was split from {found['soundbank']} with seed {found['seed']}, "
                                  f"not {wanted['soundbank']} with seed {seed}: build into another folder")
        return {name: banks_dir / name for name in BANK_FRACTIONS}
    banks = split_soundbank(soundbank, banks_dir, BANK_FRACTIONS, seed=seed, force=True)
    atomic_write_text(marker, json.dumps(wanted, indent=2) + "\n")
    return banks


def build_bench(soundbank: str | Path, out: str | Path, *, seed: int = 0, workers: int = 1,
                sets: Sequence[BenchSet] | None = None, spec: str | Path = SPEC_2046,
                match: str | Path = "desed_validation", classes: Sequence[str] | None = None,
                progress: bool = True, soft: SoftSource | None = None, **spec_overrides) -> dict:
    """Build (or resume) the bench under ``out``; returns the content of ``bench.json``.

    Args:
        soundbank: DESED-layout bank, only read (e.g. ``../shared/soundbank``).
        out: output folder.
        seed: seeds the bank split and every set's generation (set k uses ``seed * 10 + k``).
        workers: processes per set (the output does not depend on it).
        sets: the sets to build (default :func:`bench_sets`, DESED's sizes).
        spec: synthesis settings of every set (default ``synth/dcase2023_2046.yaml``).
        match: target class distribution (default the bundled DESED validation measurement).
        classes: restrict to these classes (default: every class the bank holds).
        soft: also build the soft-labelled source (``soft_train``, ``soft_val``, ``soft_classes.txt``;
            bench.json's ``soft``); None (default): not built, and nothing else changes with it.
        **spec_overrides: passed to :func:`generate_soundscapes` (e.g. ``reverb=None`` for speed).
    """
    t0 = time.perf_counter()
    out = Path(out)
    sets = list(sets) if sets is not None else bench_sets()
    classes = list(classes) if classes else bank_classes(soundbank)
    soft_classes = choose_soft_classes(classes, soft.classes) if soft is not None else None  # refused before any work
    if soft is not None and soft.segment_s <= 0:
        raise ValueError(f"the soft source's segment length must be > 0 s, got {soft.segment_s}")
    banks = _split_banks(soundbank, out / "banks", seed)
    target = resolve_match(match, classes)
    built = {}
    for s in sets + (soft.sets() if soft is not None else []):
        occurrences = round(s.n_clips * target.events_per_clip()) if s.events_from == "target" else None
        res = generate_soundscapes(banks[s.bank], out / s.name, s.n_clips, match_tsv=match, spec=spec,
                                   occurrences=occurrences, workers=workers, seed=seed * 10 + s.seed_offset,
                                   classes=classes, snr_db=s.snr_db, progress=progress, report_png=False,
                                   **spec_overrides)
        built[s.name] = {"bank": s.bank, "n_clips": res.n_clips, "occurrences": res.occurrences,
                         "rendered": res.rendered, "seconds": round(res.seconds, 1)}
    strong_train = build_strong_train(out, classes)
    if soft is not None:
        labelled = {s.name: write_set_soft_tsv(out / s.name, soft_classes, soft.segment_s) for s in soft.sets()}
        atomic_write_text(out / SOFT_CLASSES_FILE, "".join(f"{c}\n" for c in soft_classes))
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    info = {
        "soundbank": str(Path(soundbank).resolve()),
        "seed": seed,
        "match": str(match),
        "spec": str(spec),
        "classes": classes,
        "bank_fractions": BANK_FRACTIONS,
        "sets": built,
        "strong_train": strong_train,
        "build_seconds": round(time.perf_counter() - t0, 1),
        "size_bytes": size,
        "overrides": bench_overrides(out, classes),
        "strong_reference_overrides": strong_reference_overrides(out, classes),
    }
    if soft is not None:
        info["soft"] = soft_summary(out, soft, soft_classes, labelled)
    atomic_write_text(out / BENCH_FILE, json.dumps(info, indent=2) + "\n")
    return info


def read_bench(out: str | Path) -> dict:
    """``bench.json`` of a built bench (raises FileNotFoundError naming it when absent)."""
    path = Path(out) / BENCH_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no bench here; build it with `dcase-fpd bench build {out}`")
    return json.loads(path.read_text())


def _default_soundbank() -> Path:
    import os

    env = os.environ.get("DCASE_FPD_SOUNDBANK")
    return Path(env) if env else Path("../shared/soundbank")


def add_parser(subparsers) -> None:
    """Register ``dcase-fpd bench build OUT``."""
    import argparse

    p = subparsers.add_parser("bench", help="build the DESED-size benchmark dataset from a soundbank",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="bench_command", required=True)
    b = sub.add_parser("build", help="build (or resume) the bench in OUT", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("out", help="output folder")
    b.add_argument("--soundbank", type=Path, default=_default_soundbank(),
                   help="DESED-layout bank (default: $DCASE_FPD_SOUNDBANK or ../shared/soundbank)")
    b.add_argument("--seed", type=int, default=0, help="seed of the split and of every set (default 0)")
    b.add_argument("--workers", type=int, default=1, help="processes (the output does not depend on it)")
    for name, default in (("synth", 2046), ("synth-val", 500), ("weak", 1578), ("test", 1168)):
        b.add_argument(f"--n-{name}", type=int, default=default, help=f"clips (default {default})")
    b.add_argument("--soft", action="store_true",
                   help="also build the soft-labelled source in MAESTRO's format (soft_train, soft_val)")
    b.add_argument("--n-soft", type=int, default=None, help="soft_train clips (default 600; needs --soft)")
    b.add_argument("--n-soft-val", type=int, default=None, help="soft_val clips (default 60; needs --soft)")
    b.add_argument("--soft-classes", default=None, metavar="N|A,B,...",
                   help="how many classes the soft source annotates (evenly spaced over the sorted bench "
                        "classes), or their names (default 5; needs --soft)")
    b.add_argument("--soft-segment", type=float, default=None, metavar="S",
                   help=f"segment length of the soft labels in s (default {DEFAULT_SEGMENT_S:g}, MAESTRO's; needs --soft)")
    b.add_argument("--no-progress", action="store_true", help="no progress bars")
    b.set_defaults(func=_cmd_build)


def _soft_source(args) -> SoftSource | None:
    """The :class:`SoftSource` of the command line (None without ``--soft``); ValueError on bad values."""
    given = [f"--{k.replace('_', '-')}" for k in ("n_soft", "n_soft_val", "soft_classes", "soft_segment")
             if getattr(args, k) is not None]
    if not args.soft:
        if given:
            raise ValueError(f"{', '.join(given)} need(s) --soft")
        return None
    default = SoftSource()
    n_train = default.n_train if args.n_soft is None else args.n_soft
    n_val = default.n_val if args.n_soft_val is None else args.n_soft_val
    if n_train < 1 or n_val < 1:
        raise ValueError("--n-soft and --n-soft-val must be >= 1")
    classes: int | tuple[str, ...] | None = None
    if args.soft_classes is not None:
        text = args.soft_classes.strip()
        classes = int(text) if text.isdigit() else tuple(c.strip() for c in text.split(",") if c.strip())
    segment = default.segment_s if args.soft_segment is None else args.soft_segment
    if not segment > 0:
        raise ValueError(f"--soft-segment must be > 0, got {segment}")
    return SoftSource(n_train, n_val, classes, segment)


def _cmd_build(args) -> int:
    import sys

    from ..data.tsv import DataError
    from .generate import SynthError
    from .soundbank import SoundbankError
    from .spec import SpecError

    for key in ("n_synth", "n_synth_val", "n_weak", "n_test"):
        if getattr(args, key) < 1:
            print(f"dcase-fpd bench build: error: --{key.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    sets = bench_sets(args.n_synth, args.n_synth_val, args.n_weak, args.n_test)
    try:
        soft = _soft_source(args)
        if soft is not None:  # the class choice is refused here, before the bank is split
            from .soundbank import bank_classes
            choose_soft_classes(bank_classes(args.soundbank), soft.classes)
    except (ValueError, SoundbankError) as exc:
        print(f"dcase-fpd bench build: error: {exc}", file=sys.stderr)
        return 2
    try:
        info = build_bench(args.soundbank, args.out, seed=args.seed, workers=args.workers, sets=sets,
                           progress=not args.no_progress, soft=soft)
    except (SoundbankError, SpecError, SynthError, DataError, FileExistsError) as exc:
        print(f"dcase-fpd bench build: error: {exc}", file=sys.stderr)
        return 2
    print(f"bench ready in {args.out}: " + ", ".join(f"{k} {v['n_clips']} clips ({v['occurrences']} events)"
                                                      for k, v in info["sets"].items()))
    print(f"build {info['build_seconds']:.0f} s (this call), {info['size_bytes'] / 2**30:.2f} GiB; "
          f"classes {', '.join(info['classes'])}")
    print("recipe overrides (also in bench.json):\n  " + " \\\n  ".join(info["overrides"]))
    if "soft" in info:
        sf = info["soft"]
        print(f"soft source ({sf['segment_s']:g}-s segments; classes {', '.join(sf['classes'])}, also in "
              f"{sf['classes_file']}): {sf['soft_train']['tsv']} ({sf['soft_train']['rows']} rows), "
              f"{sf['soft_val']['tsv']} ({sf['soft_val']['rows']} rows); bench.json's soft.source_entry "
              "is its data.sources entry")
    return 0


__all__ = ["BenchSet", "SoftSource", "bench_sets", "bench_overrides", "strong_reference_overrides", "build_bench", "read_bench", "BANK_FRACTIONS"]
