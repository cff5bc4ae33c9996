"""Pretrained frame embeddings in DESED_task's HDF5 format (DCASE 2024 Task 4 baseline).

DESED_task's ``extract_embeddings.py`` writes one file per set, ``<embeddings_dir>/<set>.hdf5``,
and ``dcase-fpd embeddings extract`` writes the same (:mod:`dcase_fpd_plugin.embeddings`)::

    frame_embeddings   (N, D, T_e) float32   BEATs: D = 768, T_e = 496 per 10 s clip
    global_embeddings  (N, D)      float32   the mean of a clip's frame embeddings
    filenames          (N,)        strings   the clip's file STEM (``Path(path).stem``: no folder,
                                             no extension); read back as bytes

Row i of the three datasets is one clip. A clip is found by its stem, so that ``x.wav``, ``x.flac``
and ``folder/x.wav`` all find row ``x``. BEATs' 496 "frames" per 10 s are its patch tokens
(62 time steps x 8 frequency bands, time-major); DESED_task pools them along that axis like frames.

:data:`EMBEDDING_SETS` says which recipe folder each set of DESED_task holds. A clip a file lacks is
reported as missing audio is (:func:`check_clips`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from .tsv import AUDIO_EXTENSIONS, DataError

EMBEDDING_KEYS = ("frame_embeddings", "global_embeddings", "filenames")
SUFFIX = ".hdf5"

#: DESED_task's set names -> the ``data`` key of the folder whose clips each holds, in DESED_task's
#: order. DESED_task extracts the weak folder twice, as ``weak_train`` and ``weak_val`` (the same
#: clips). ``eval`` and ``maestro_real_dev`` come from DESED_task's ``eval_folder`` and
#: ``real_maestro_val_folder``, used only where a recipe has such keys. A key a recipe lacks or
#: leaves null: no file for that set.
EMBEDDING_SETS: dict[str, str] = {
    "synth_train": "synth_folder",
    "weak_train": "weak_folder",
    "strong_train": "strong_folder",
    "unlabeled_train": "unlabeled_folder",
    "synth_val": "val_folder",
    "weak_val": "weak_folder",
    "devtest": "test_folder",
    "eval": "eval_folder",
    "maestro_real_dev": "real_maestro_val_folder",
    "maestro_real_train": "real_maestro_train_folder",
}


def embeddings_path(embeddings_dir: str | os.PathLike, set_name: str) -> Path:
    """``<embeddings_dir>/<set_name>.hdf5``, the file of one set."""
    return Path(embeddings_dir) / f"{set_name}{SUFFIX}"


def embedding_sets(data: Mapping[str, Any]) -> dict[str, Path]:
    """``{set name: folder}`` for every set of :data:`EMBEDDING_SETS` whose folder key the ``data``
    section sets (keys read with ``.get``: a recipe without ``data.strong_folder`` has no strong_train)."""
    return {name: Path(data[key]) for name, key in EMBEDDING_SETS.items() if data.get(key)}


def clip_key(path_or_name: str | os.PathLike) -> str:
    """The name a clip has in a file: the stem of an audio file name (``a/b.wav`` -> ``b``); a name
    without an audio extension is taken as a stem already (``Y..._0.000_9.000`` stays whole)."""
    p = Path(path_or_name)
    return p.stem if p.suffix.lower() in AUDIO_EXTENSIONS else p.name


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, (bytes, np.bytes_)) else str(value)


class EmbeddingFile:
    """One set's HDF5 embeddings file, read by clip.

    Opening checks the three datasets (a DataError names the file, the missing keys and the keys it
    has), their shapes (N rows each) and reads the stems; rows are read on demand. The HDF5 handle is
    opened lazily in each process, so the object pickles into DataLoader workers.

    Args:
        path: the ``.hdf5`` file.
    Attributes:
        n_clips (N), dim (D), n_frames (T_e).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: embeddings file not found")
        h5py = _h5py()
        try:
            with h5py.File(self.path, "r") as f:
                have = sorted(f.keys())
                missing = [k for k in EMBEDDING_KEYS if k not in f]
                if missing:
                    raise DataError(f"{self.path}: not an embeddings file in DESED_task's format: missing "
                                    f"{', '.join(missing)} (it has: {', '.join(have) or 'nothing'}; expected "
                                    f"{', '.join(EMBEDDING_KEYS)})")
                frames, glob, names = (f[k] for k in EMBEDDING_KEYS)
                if (frames.ndim != 3 or glob.ndim != 2 or names.ndim != 1
                        or not frames.shape[0] == glob.shape[0] == names.shape[0] or frames.shape[1] != glob.shape[1]):
                    raise DataError(f"{self.path}: inconsistent shapes: frame_embeddings {frames.shape}, "
                                    f"global_embeddings {glob.shape}, filenames {names.shape} (expected (N, D, T), "
                                    "(N, D), (N,))")
                self.n_clips, self.dim, self.n_frames = (int(s) for s in frames.shape)
                stems = [_text(n) for n in names[()]]
        except OSError as exc:
            raise DataError(f"{self.path}: unreadable HDF5 file ({exc})") from None
        self._rows: dict[str, int] = {}
        dupes: list[str] = []
        for i, stem in enumerate(stems):
            if stem in self._rows:
                dupes.append(stem)
            else:
                self._rows[stem] = i
        if dupes:
            raise DataError(f"{self.path}: {len(dupes)} clip name(s) appear more than once in filenames: "
                            f"{', '.join(dupes[:10])}")
        self._h5: Any = None
        self._pid: int | None = None

    # -- lookup
    @property
    def stems(self) -> list[str]:
        """The clips' stems, in row order."""
        return list(self._rows)

    def __len__(self) -> int:
        return self.n_clips

    def __contains__(self, path_or_name: object) -> bool:
        return isinstance(path_or_name, (str, os.PathLike)) and clip_key(path_or_name) in self._rows

    def row(self, path_or_name: str | os.PathLike) -> int:
        """The row of a clip (a path, a file name or a stem); DataError naming the file if absent."""
        try:
            return self._rows[clip_key(path_or_name)]
        except KeyError:
            raise DataError(f"{self.path}: no embeddings for clip {clip_key(path_or_name)!r}") from None

    # -- reading
    def _file(self):
        if self._h5 is None or self._pid != os.getpid():  # a forked worker opens its own handle
            self._h5 = _h5py().File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def frames(self, path_or_name: str | os.PathLike) -> np.ndarray:
        """The clip's frame embeddings, (D, T_e) float32."""
        return np.asarray(self._file()["frame_embeddings"][self.row(path_or_name)], dtype=np.float32)

    def global_(self, path_or_name: str | os.PathLike) -> np.ndarray:
        """The clip's global embedding, (D,) float32."""
        return np.asarray(self._file()["global_embeddings"][self.row(path_or_name)], dtype=np.float32)

    def close(self) -> None:
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_h5": None, "_pid": None}

    def __repr__(self) -> str:
        return f"EmbeddingFile({str(self.path)!r}: {self.n_clips} clips x ({self.dim}, {self.n_frames}))"


def check_clips(file: EmbeddingFile | str | os.PathLike, paths: Iterable[str | os.PathLike], what: str,
                max_missing_fraction: float, knob: str = "data.max_missing_fraction") -> list[Path]:
    """The ``paths`` whose clips ``file`` holds. Clips it lacks are reported as missing audio is
    (``datasets._filter_present``): their count and the first 10 names; above ``max_missing_fraction``
    of ``paths`` a DataError names ``knob``, else a warning and the run goes on without them.

    ``what``: the TSV or folder the clips were listed in (the start of the message).
    """
    file = file if isinstance(file, EmbeddingFile) else EmbeddingFile(file)
    paths = [Path(p) for p in paths]
    missing = [p for p in paths if p not in file]
    if not missing:
        return paths
    frac = len(missing) / max(len(paths), 1)
    shown = "\n  ".join(p.name for p in missing[:10]) + ("\n  ..." if len(missing) > 10 else "")
    msg = (f"{what}: {len(missing)} of {len(paths)} listed clips have no embeddings in {file.path}:\n  {shown}")
    if frac > max_missing_fraction:
        raise DataError(
            msg + f"\n({frac:.1%} missing > {knob}={max_missing_fraction}; raise it to go on without these clips, "
            "or extract their embeddings)" if knob.startswith("data.") else
            msg + f"\n(pass {knob} to go on without these clips)")
    warnings.warn(msg + f"\n(going on without them: {frac:.1%} <= {knob})", stacklevel=2)
    lost = set(missing)
    return [p for p in paths if p not in lost]


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover
        raise DataError("reading embeddings files needs h5py (pip install h5py)") from None
    return h5py
