"""All-or-nothing file writes: a hidden temporary file beside the target, then one rename.

An interrupted or failing write leaves the previous file (or none) in place, never half a file; a
whole folder (:func:`atomic_replace_folder`) is written beside its target and swapped in.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def default_mode(directory: bool = False) -> int:
    """The permissions a plain ``open`` / ``mkdir`` would give under the current umask (``mkstemp``
    and ``mkdtemp`` make 0600 / 0700, which would hide results from the user's group)."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` fills a temporary file beside ``path``, which then replaces ``path``
    (with the permissions of a plain write under the umask).

    On any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_replace_folder(folder: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """``fill(staging)`` writes a new folder beside ``folder``, which then replaces it whole (the old one is
    removed only after the swap; on any error nothing of the new one stays)."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    os.chmod(staging, default_mode(directory=True))
    try:
        fill(staging)
        for path in staging.rglob("*"):
            os.chmod(path, default_mode(directory=path.is_dir()))
        if folder.exists():
            old = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.old."))
            os.replace(folder, old / folder.name)
            os.replace(staging, folder)
            shutil.rmtree(old)
        else:
            os.replace(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
