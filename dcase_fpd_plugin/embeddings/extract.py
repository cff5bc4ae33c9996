"""BEATs frame embeddings of a recipe's folders, written as DESED_task's HDF5 files.

For every set of :data:`~dcase_fpd_plugin.data.embeddings.EMBEDDING_SETS` whose folder the recipe
names (``data.synth_folder`` -> ``synth_train``, ...), every audio file directly in that folder
(sorted by name) is read at 16 kHz mono (:func:`~dcase_fpd_plugin.data.audio.stream_mono`: downmix,
soxr resampling), zero-padded or cut to 10 s, and run through a frozen BEATs loaded from a local
checkpoint (:func:`~dcase_fpd_plugin.models.beats.load_beats`); ``<out>/<set>.hdf5`` gets
``frame_embeddings`` (N, D, T_e) float32 (BEATs: 768 x 496), ``global_embeddings`` (N, D) float32
and ``filenames`` (N,) the clips' stems, as DESED_task's ``extract_embeddings.py`` writes them.
DESED_task crops a clip longer than 10 s at a random offset; here it is its **first** 10 s, so that
two extractions give the same file. A set whose folder is the same as an earlier set's (DESED_task's
``weak_val`` is its weak folder again) is a hard link to that set's file (a copy where the file
system has no links).

**Resumable.** A set is written to ``<set>.hdf5.partial`` with a counter of the rows done (the HDF5
attribute ``rows_done``, saved after each batch); an interrupted run (Ctrl-C, an error, a time
limit) continues from there, with the same batches when the batch size is the same, so its file
is the one an uninterrupted run writes. The finished file is renamed into place in one step (atomic). A partial file whose clips,
checkpoint (its SHA-256) or clip length differ from this run's, or that cannot be read (a process
killed while writing can leave a damaged HDF5 file), is started over with a warning. A finished
file is kept unless ``force``.

**Energy.** The work is measured as the phase ``embeddings`` of ``<out>/energy.json``
(:func:`~dcase_fpd_plugin.energy.callback.track_energy`, the recipe's ``energy`` section): each run
that extracts something adds a segment (an interrupted one too, marked so), so the phase sums
all the work that built the folder; a fresh start (``force``, or nothing extracted there before)
starts the phase over when ``energy.json`` holds no other phase.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..atomic import atomic_write
from ..data.audio import stream_mono
from ..data.embeddings import EMBEDDING_SETS, EmbeddingFile, clip_key, embedding_sets, embeddings_path
from ..data.tsv import DataError, list_audio_folder
from ..models.beats import SAMPLE_RATE, BEATs, load_beats

CLIP_S = 10.0  # s, DESED_task pads (or crops) every clip to this
PHASE = "embeddings"  # the energy phase
PARTIAL = ".partial"


class ExtractionError(ValueError):
    """An extraction that cannot start: no set to extract, a bad batch size or device."""


@dataclass
class SetOutcome:
    """What one call did for one set: ``status`` is ``extracted`` (from the first clip), ``resumed``
    (from a partial file), ``kept`` (finished before), ``linked`` or ``copied`` (the same folder as
    ``source``); ``extracted``: clips run through the model in this call."""

    name: str
    folder: Path
    path: Path
    n_clips: int
    status: str
    extracted: int = 0
    source: str | None = None


@dataclass
class ExtractionResult:
    """The sets in :data:`EMBEDDING_SETS` order, and the energy segment this call recorded (None:
    nothing extracted, energy off, or tracking failed)."""

    out_dir: Path
    sets: list[SetOutcome] = field(default_factory=list)
    energy: dict[str, Any] | None = None


def partial_path(final: Path) -> Path:
    """``<set>.hdf5.partial``, where a set is written until it is complete."""
    return final.with_name(final.name + PARTIAL)


def read_first_seconds(path: str | os.PathLike, clip_s: float = CLIP_S, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first ``clip_s`` seconds of an audio file, mono at ``sample_rate``, zero-padded at the end:
    (round(clip_s x sample_rate),) float32 in [-1, 1]. DataError naming a file that cannot be read."""
    n = int(round(clip_s * sample_rate))
    out = np.zeros(n, dtype=np.float32)
    filled = 0
    blocks = stream_mono(path, sample_rate)
    try:
        for block in blocks:
            take = min(len(block), n - filled)
            out[filled:filled + take] = block[:take]
            filled += take
            if filled >= n:
                break
    finally:
        blocks.close()
    if filled == 0:
        raise DataError(f"{path}: audio file holds no samples")
    return out


class _Clips(torch.utils.data.Dataset):
    """Waveforms (N,) float32 of a list of files (picklable for DataLoader workers)."""

    def __init__(self, paths: Sequence[Path], clip_s: float):
        self.paths, self.clip_s = list(paths), clip_s

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(read_first_seconds(self.paths[i], self.clip_s))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise ExtractionError(f"--device {name!r}: not a torch device ({exc}); use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ExtractionError(f"--device {name}: torch sees no CUDA device here; use --device cpu")
    return device


def _folder_clips(name: str, folder: Path) -> list[Path]:
    """The audio files of a set's folder, sorted; DataError for a missing or empty folder, or two
    files of one stem (a file's stem is its key in the HDF5 file)."""
    where = f"{folder} (data.{EMBEDDING_SETS[name]}, set {name})"
    try:
        names = list_audio_folder(folder)
    except DataError:
        raise DataError(f"{where}: folder not found") from None
    if not names:
        raise DataError(f"{where}: no audio files in it")
    seen: dict[str, str] = {}
    for n in names:
        other = seen.setdefault(clip_key(n), n)
        if other != n:
            raise DataError(f"{where}: {other} and {n} have the same stem, the name a clip has in the "
                            "embeddings file; keep one")
    return [folder / n for n in names]


def _h5py():
    import h5py

    return h5py


def _resume_point(partial: Path, stems: list[str], dim: int, n_frames: int, digest: str, clip_s: float) -> tuple[int | None, str]:
    """``(rows done, "")`` of a partial file this run can continue, else ``(None, why not)``."""
    if not partial.is_file():
        return None, ""
    h5py = _h5py()
    try:
        with h5py.File(partial, "r") as f:
            n = len(stems)
            if (f["frame_embeddings"].shape != (n, dim, n_frames) or f["global_embeddings"].shape != (n, dim)
                    or f["filenames"].shape != (n,)):
                return None, "its shapes are not this run's"
            if [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in f["filenames"][()]] != stems:
                return None, "the folder's clips changed since"
            if f.attrs.get("checkpoint_sha256") != digest:
                return None, "it was written with another checkpoint"
            if float(f.attrs.get("clip_s", -1)) != clip_s:
                return None, "it was written with another clip length"
            rows = int(f.attrs["rows_done"])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        return None, f"it cannot be read ({type(exc).__name__}: {str(exc)[:120]}; killed while writing?)"
    return (rows, "") if 0 <= rows <= len(stems) else (None, f"its row counter {rows} is out of range")


def _new_partial(partial: Path, stems: list[str], dim: int, n_frames: int, digest: str, checkpoint: Path,
                 clip_s: float) -> None:
    h5py = _h5py()
    with h5py.File(partial, "w") as f:
        n = len(stems)
        f.create_dataset("frame_embeddings", (n, dim, n_frames), dtype=np.float32)
        f.create_dataset("global_embeddings", (n, dim), dtype=np.float32)
        f.create_dataset("filenames", data=stems, dtype=h5py.string_dtype())
        f.attrs.update({"checkpoint": checkpoint.name, "checkpoint_sha256": digest, "clip_s": clip_s,
                        "sample_rate": SAMPLE_RATE, "written_by": "dcase-fpd embeddings extract", "rows_done": 0})


def _extract_set(model: BEATs, name: str, folder: Path, paths: list[Path], final: Path, *, checkpoint: Path,
                 digest: str, device: torch.device, batch_size: int, num_workers: int, clip_s: float,
                 progress: bool, on_batch: Callable[[int], None]) -> SetOutcome:
    """Write (or continue) one set's partial file, then rename it to ``final``."""
    from tqdm import tqdm

    h5py = _h5py()
    stems = [clip_key(p) for p in paths]
    n_samples = int(round(clip_s * SAMPLE_RATE))
    dim, n_frames = model.dim, model.n_tokens(n_samples)
    partial = partial_path(final)
    start, why = _resume_point(partial, stems, dim, n_frames, digest, clip_s)
    if start is None:
        if why:
            warnings.warn(f"{partial}: starting set {name} over: {why}", stacklevel=3)
        _new_partial(partial, stems, dim, n_frames, digest, checkpoint, clip_s)
        start = 0
    loader = torch.utils.data.DataLoader(_Clips(paths[start:], clip_s), batch_size=batch_size, shuffle=False,
                                         num_workers=num_workers, pin_memory=device.type == "cuda")
    row = start
    with h5py.File(partial, "r+") as f, tqdm(total=len(paths), initial=start, desc=name, unit="clip",
                                              disable=not progress, dynamic_ncols=True) as bar:
        frames, glob = f["frame_embeddings"], f["global_embeddings"]
        for wave in loader:  # (b, n_samples)
            with torch.inference_mode():
                emb = model(wave.to(device, non_blocking=True))
            b = wave.shape[0]
            frames[row:row + b] = emb["frame"].cpu().numpy()  # (b, D, T_e)
            glob[row:row + b] = emb["global"].cpu().numpy()  # (b, D)
            row += b
            f.attrs["rows_done"] = row
            f.flush()
            bar.update(b)
            on_batch(b)
        del f.attrs["rows_done"]
    os.replace(partial, final)
    return SetOutcome(name, folder, final, len(paths), "resumed" if start else "extracted", row - start)


def _alias(name: str, folder: Path, source: SetOutcome, final: Path) -> SetOutcome:
    """``final`` as a hard link to (else a copy of) the source set's file, put in place atomically."""
    how = "linked"

    def write(tmp: Path) -> None:
        nonlocal how
        tmp.unlink()
        try:
            os.link(source.path, tmp)
        except OSError:
            how = "copied"
            shutil.copyfile(source.path, tmp)

    atomic_write(final, write)
    return SetOutcome(name, folder, final, source.n_clips, how, source=source.name)


def _check_kept(name: str, final: Path, paths: list[Path], digest: str | None) -> None:
    """Warn when a finished file no longer matches the folder or the checkpoint (it is kept)."""
    try:
        have = set(EmbeddingFile(final).stems)
        h5py = _h5py()
        with h5py.File(final, "r") as f:
            stored = f.attrs.get("checkpoint_sha256")
    except (DataError, OSError) as exc:
        warnings.warn(f"{final}: kept, but it cannot be read ({exc}); pass --force to extract set {name} again",
                      stacklevel=3)
        return
    absent = [p.name for p in paths if clip_key(p) not in have]
    if absent:
        warnings.warn(f"{final}: kept (finished before), but {len(absent)} clip(s) of the folder are not in it "
                      f"({', '.join(absent[:5])}{', ...' if len(absent) > 5 else ''}); pass --force to extract "
                      f"set {name} again", stacklevel=3)
    if digest is not None and stored is not None and stored != digest:
        warnings.warn(f"{final}: kept (finished before) although written with another checkpoint; pass --force "
                      "to extract it again with this one", stacklevel=3)


def _start_energy_afresh(out: Path, recipe: Mapping[str, Any]) -> None:
    """Forget the previous ``embeddings`` phase: its codecarbon CSV, and ``energy.json`` when it holds
    no other phase (a folder that also holds another phase's figures keeps them, and this phase
    accumulates there)."""
    from ..energy.phase import energy_config
    from ..energy.record import energy_json_path, read_energy

    try:
        data = read_energy(out)
    except ValueError:  # unreadable: the record replaces it, with a warning
        return
    if data is not None and set(data.get("phases", {})) <= {PHASE}:
        energy_json_path(out).unlink(missing_ok=True)
        (out / energy_config(recipe)["output_subdir"] / f"{PHASE}.csv").unlink(missing_ok=True)


def extract_embeddings(recipe: Mapping[str, Any], checkpoint: str | os.PathLike, out_dir: str | os.PathLike, *,
                       batch_size: int = 8, device: str = "cpu", force: bool = False, progress: bool = True,
                       num_workers: int = 0, clip_s: float = CLIP_S) -> ExtractionResult:
    """Write ``<out_dir>/<set>.hdf5`` for every set whose folder the resolved ``recipe`` names (module
    docstring), with the BEATs of the local ``checkpoint`` (released format) on ``device``.

    Args:
        recipe: a resolved recipe (``recipe.loading.load_recipe``): its ``data`` folders and its
            ``energy`` section.
        batch_size: clips per forward pass. num_workers: DataLoader processes reading audio (0: none).
        force: extract every set again (finished and partial files are replaced).
        clip_s: seconds per clip (DESED_task: 10).
    Raises:
        DataError: a missing or empty folder, an unreadable audio file (named). CheckpointError,
        FileNotFoundError: the checkpoint. ExtractionError: nothing to extract, a bad option.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ExtractionError(f"--batch-size must be a whole number >= 1, got {batch_size!r}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ExtractionError(f"--workers must be a whole number >= 0, got {num_workers!r}")
    out, checkpoint = Path(out_dir), Path(checkpoint)
    sets = embedding_sets(recipe["data"])
    if not sets:
        keys = ", ".join(dict.fromkeys(f"data.{k}" for k in EMBEDDING_SETS.values()))
        raise ExtractionError(f"the recipe names no folder for any embeddings set (set one of {keys})")
    dev = _device(device)
    clips: dict[str, list[Path]] = {}  # sets with a folder of their own -> its files
    aliases: dict[str, str] = {}  # a set whose folder an earlier set has -> that set
    first: dict[Path, str] = {}
    for name, folder in sets.items():
        key = folder.resolve()
        if key in first:
            aliases[name] = first[key]
        else:
            first[key] = name
            clips[name] = _folder_clips(name, folder)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"BEATs checkpoint not found: {checkpoint}")
    finals = {name: embeddings_path(out, name) for name in sets}
    fresh = force or not any(f.is_file() or partial_path(f).is_file() for f in finals.values())
    to_do = [n for n in clips if force or not finals[n].is_file()]
    model = load_beats(checkpoint).to(dev) if to_do else None  # a bad checkpoint fails before anything is written
    digest = _sha256(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    if force:
        for f in finals.values():
            f.unlink(missing_ok=True)
            partial_path(f).unlink(missing_ok=True)
    result = ExtractionResult(out)
    done: dict[str, SetOutcome] = {}
    if to_do:
        from ..energy.callback import track_energy

        if fresh:
            _start_energy_afresh(out, recipe)
        with track_energy(PHASE, out, recipe, accumulate=True) as measured:
            measured.work["clips"] = 0

            def count(b: int) -> None:
                measured.work["clips"] += b

            for name in to_do:
                done[name] = _extract_set(model, name, sets[name], clips[name], finals[name], checkpoint=checkpoint,
                                          digest=digest, device=dev, batch_size=batch_size, num_workers=num_workers,
                                          clip_s=clip_s, progress=progress, on_batch=count)
        result.energy = measured.segment
    for name in sets:
        if name in clips and name not in done:
            _check_kept(name, finals[name], clips[name], digest)
            done[name] = SetOutcome(name, sets[name], finals[name], len(clips[name]), "kept")
        elif name in aliases:
            source = done[aliases[name]]
            if finals[name].is_file() and source.status == "kept":
                done[name] = SetOutcome(name, sets[name], finals[name], source.n_clips, "kept", source=source.name)
            else:
                done[name] = _alias(name, sets[name], source, finals[name])
        result.sets.append(done[name])
    return result
