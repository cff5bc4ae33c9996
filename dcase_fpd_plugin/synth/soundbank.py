"""A DESED-layout soundbank: scanning, validating and splitting it.

Layout (as DESED's soundbank)::

    <bank>/foreground/<Class>/*.<audio>            isolated events with onset and offset
    <bank>/foreground/<Class>_nOn/*.<audio>        events cut at the start (no onset)
    <bank>/foreground/<Class>_nOff/*.<audio>       events cut at the end (no offset)
    <bank>/foreground/<Class>_nOn_nOff/*.<audio>   events cut at both ends
    <bank>/background/*.<audio>                    backgrounds, flat ...
    <bank>/background/<group>/*.<audio>            ... or one folder per group (DESED: sins, ...)

Any format soundfile reads is accepted. Every problem (a class asked for but absent, an empty
folder, a file soundfile cannot read) raises :class:`SoundbankError` naming it, so a run fails
before any clip is written.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import soundfile as sf

#: Folder-name suffixes of DESED's border variants, longest first (for stripping).
VARIANTS = ("_nOn_nOff", "_nOn", "_nOff")
#: The variant of a complete event (onset and offset inside the clip).
COMPLETE = ""


class SoundbankError(ValueError):
    """The soundbank lacks a class or folder, or holds a file soundfile cannot read."""


@dataclass(frozen=True)
class Source:
    """One audio file of the bank.

    Attributes:
        path: absolute path of the file.
        duration: length in seconds.
        label: scaper label = name of the parent folder (``Cat``, ``Cat_nOn``, ``sins``...).
        variant: ``""`` (complete event), ``"_nOn"``, ``"_nOff"`` or ``"_nOn_nOff"``;
            always ``""`` for backgrounds.
    """

    path: str
    duration: float
    label: str
    variant: str = COMPLETE


@dataclass
class Soundbank:
    """A scanned bank.

    Attributes:
        root: the bank folder.
        foreground: ``{class: [Source, ...]}`` over every variant folder of the class, sorted by path.
        background: background sources, sorted by path.
    """

    root: Path
    foreground: dict[str, list[Source]] = field(default_factory=dict)
    background: list[Source] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        """Class names (variant suffixes stripped), sorted."""
        return sorted(self.foreground)

    @property
    def fg_path(self) -> str:
        """scaper's ``fg_path``: the folder holding one subfolder per label."""
        return str(self.root / "foreground")


def class_of_folder(name: str) -> tuple[str, str]:
    """Split a foreground folder name into ``(class, variant)``: ``Cat_nOn`` -> ``("Cat", "_nOn")``."""
    for suffix in VARIANTS:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], suffix
    return name, COMPLETE


def strip_variant(label: str) -> str:
    """``Cat_nOn_nOff`` -> ``Cat``; a label without suffix is returned as is."""
    return class_of_folder(label)[0]


def bank_classes(root: str | Path) -> list[str]:
    """Classes present in ``<root>/foreground`` (folder names, variant suffixes stripped), sorted."""
    fg = Path(root) / "foreground"
    if not fg.is_dir():
        raise SoundbankError(f"{fg}: foreground folder not found (expected the DESED layout foreground/<Class>/)")
    return sorted({class_of_folder(d.name)[0] for d in fg.iterdir() if d.is_dir() and not d.name.startswith(".")})


def _audio_files(folder: Path) -> list[Path]:
    """Regular, non-hidden files directly inside ``folder`` (symlinks followed), sorted."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file())


def _read_source(path: Path, label: str, variant: str) -> Source:
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises RuntimeError / LibsndfileError / TypeError
        raise SoundbankError(f"{path}: unreadable audio file ({e})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise SoundbankError(f"{path}: audio file holds no samples")
    return Source(os.path.abspath(path), info.frames / info.samplerate, label, variant)


def _scan_folder(folder: Path, label: str, variant: str) -> list[Source]:
    files = _audio_files(folder)
    if not files:
        raise SoundbankError(f"{folder}: empty folder (no audio file)")
    return [_read_source(p, label, variant) for p in files]


def scan_soundbank(root: str | Path, classes: Sequence[str] | None = None) -> Soundbank:
    """Scan and validate a DESED-layout bank.

    Args:
        root: bank folder holding ``foreground/`` and ``background/``.
        classes: classes that must be present; ``None`` takes every class found. Folders of other
            classes are ignored (not read).

    Returns:
        the bank with the duration (s) of every file.

    Raises:
        SoundbankError: a missing folder or class, an empty folder, an unreadable file (named).
    """
    root = Path(root)
    if not root.is_dir():
        raise SoundbankError(f"{root}: soundbank folder not found")
    fg_root, bg_root = root / "foreground", root / "background"
    for folder in (fg_root, bg_root):
        if not folder.is_dir():
            raise SoundbankError(f"{folder}: folder not found (a DESED soundbank holds foreground/ and background/)")
    present = bank_classes(root)
    wanted = list(present) if classes is None else list(dict.fromkeys(classes))
    missing = [c for c in wanted if c not in present]
    if missing:
        raise SoundbankError(
            f"{fg_root}: class(es) {missing} asked for but absent (no folder foreground/<Class>[_nOn|_nOff|_nOn_nOff]); "
            f"the bank has {present}; restrict the target to the bank's classes (classes=... / --classes)"
        )
    if not wanted:
        raise SoundbankError(f"{fg_root}: no class folder found")
    bank = Soundbank(root=root)
    for cls in wanted:
        sources: list[Source] = []
        for variant in (COMPLETE,) + VARIANTS:
            folder = fg_root / f"{cls}{variant}"
            if folder.is_dir():
                sources += _scan_folder(folder, folder.name, variant)
        bank.foreground[cls] = sources
    bank.background = _scan_background(bg_root)
    return bank


def _scan_background(bg_root: Path) -> list[Source]:
    """Backgrounds directly in ``background/`` (label ``background``) and in its group subfolders."""
    sources: list[Source] = []
    direct = _audio_files(bg_root)
    sources += [_read_source(p, bg_root.name, COMPLETE) for p in direct]
    groups = sorted(d for d in bg_root.iterdir() if d.is_dir() and not d.name.startswith("."))
    for group in groups:
        sources += _scan_folder(group, group.name, COMPLETE)
    if not sources:
        raise SoundbankError(f"{bg_root}: empty folder (no background audio)")
    return sources


# --------------------------------------------------------------------------------------------
# Splitting a bank into disjoint sub-banks
# --------------------------------------------------------------------------------------------


def _split_counts(n_files: int, fractions: Sequence[float], where: Path) -> list[int]:
    """Files per part: one each first, the rest by largest remainder of the fractions."""
    k = len(fractions)
    if n_files < k:
        raise SoundbankError(f"{where}: {n_files} file(s), too few to give each of the {k} parts at least one")
    rest = n_files - k
    share = np.asarray(fractions, dtype=float) * rest
    counts = np.floor(share).astype(int)
    order = np.argsort(-(share - counts), kind="stable")
    counts[order[: rest - counts.sum()]] += 1
    return [1 + int(c) for c in counts]


def _folder_seed(seed: int, rel: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(rel.encode())]))


def _link_file(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source.resolve(), dest)


def split_soundbank(
    soundbank: str | Path,
    out_dir: str | Path,
    fractions: Mapping[str, float],
    seed: int = 0,
    force: bool = False,
) -> dict[str, Path]:
    """Partition a bank into disjoint sub-banks of symlinks (DESED layout).

    The files of every class (its ``_nOn``/``_nOff`` variant folders pooled, each file keeping its
    folder) and the background files are shuffled (seeded by ``seed`` and the class name) and cut
    by ``fractions``; each part gets at least one file of every class and one background, so every
    sub-bank holds every class. Use it to build a
    synthetic-strong set, a 'real-weak' set and a validation set from disjoint recordings.
    The source bank is only read.

    Args:
        soundbank: the bank to split.
        out_dir: where the parts go: ``out_dir/<part>/{foreground,background}/...``.
        fractions: ``{part: fraction}``; normalised to sum 1.
        seed: shuffling seed.
        force: replace existing part folders (they only hold symlinks) instead of failing.

    Returns:
        ``{part: path of its bank}``.
    """
    src = Path(soundbank)
    bank = scan_soundbank(src)  # validates the source bank
    names = list(fractions)
    frac = np.asarray([float(fractions[n]) for n in names])
    if not names or (frac < 0).any() or frac.sum() <= 0:
        raise ValueError(f"fractions must be non-negative with a positive sum, got {dict(fractions)}")
    for n in names:
        if not n or "/" in n or n.startswith("."):
            raise ValueError(f"part name {n!r} is not a plain folder name")
    frac = frac / frac.sum()
    out = Path(out_dir)
    parts = {n: out / n for n in names}
    for n, p in parts.items():
        if p.exists() and any(p.iterdir()):
            if not force:
                raise FileExistsError(f"{p}: sub-bank folder exists; pass force=True to rebuild it")
            _remove_symlink_tree(p)

    # one group per class (all its variant folders pooled) and one for the backgrounds
    groups = {f"foreground/{c}": bank.foreground[c] for c in bank.classes}
    groups["background"] = bank.background
    root = bank.root.absolute()
    for group, sources in groups.items():
        listed = sorted(Path(os.path.relpath(s.path, root)) for s in sources)  # keeps each file's folder
        order = _folder_seed(seed, group).permutation(len(listed))
        counts = _split_counts(len(listed), frac, src / group)
        start = 0
        for name, c in zip(names, counts):
            for i in order[start : start + c]:
                _link_file(src / listed[i], parts[name] / listed[i])
            start += c
    return parts


def _remove_symlink_tree(path: Path) -> None:
    """Remove a sub-bank made by :func:`split_soundbank`; refuses anything but folders and symlinks."""
    for dirpath, dirnames, filenames in os.walk(path):
        for f in filenames:
            if not os.path.islink(os.path.join(dirpath, f)):
                raise FileExistsError(f"{os.path.join(dirpath, f)}: not a symlink; refusing to delete {path}")
    for dirpath, dirnames, filenames in os.walk(path, topdown=False):
        for f in filenames:
            os.unlink(os.path.join(dirpath, f))
        os.rmdir(dirpath)
