"""One run per experiment folder: the lock file ``EXP_DIR/.lock``.

A training run (``dcase-fpd train``, a ``compare`` run, ``demo``) takes the lock of its
``training.exp_dir`` before it writes anything there and gives it back when it ends, also on an
error or Ctrl-C. The lock is created atomically (``O_CREAT | O_EXCL``) and holds JSON
``{"pid", "host", "started"}`` (plus, on Linux, the holder's PID namespace, so that a run in another
container of the same host name is not judged by this one's pids, and its process start time, so that a pid
reused by another program is not taken for the holder).

A second run into a folder in use is refused at once (:class:`RunInUseError`), naming the
holder; ``--force`` does not change that. A lock left by a process that no longer runs on this
host (killed, crashed machine) is stale: it is taken over, with a message. A lock taken on another
host cannot be checked from here and is refused; the message says which file to delete once that
run is known to be over. Under DDP only rank 0 takes the lock (the other ranks run inside it).

This module imports neither torch nor Lightning.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Callable

LOCK_NAME = ".lock"


class RunInUseError(FileExistsError):
    """Another live run holds the experiment folder's lock (or one on another host that cannot be checked)."""


def lock_path(exp_dir: str | os.PathLike) -> Path:
    return Path(exp_dir) / LOCK_NAME


def _proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux ``/proc``), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (2nd field) may hold spaces and parentheses: split after its last ')'
        return stat[stat.rindex(")") + 2:].split()[19]
    except (ValueError, IndexError):
        return None


def _pid_namespace() -> str | None:
    """This process's PID namespace (Linux: the inode of ``/proc/self/ns/pid``), None elsewhere: two
    containers can share a host name (``--network host``) and a folder, but not their pids."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return None


def _alive(holder: dict[str, Any]) -> bool:
    """Whether the process of ``holder`` (a lock of this host) still runs."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, under another user
        pass
    except OSError:
        return False
    started = holder.get("proc_start")
    now = _proc_start(pid)
    return not (started and now and started != now)  # the pid now belongs to another process


def _describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"started {holder.get('started', 'at an unknown time')}")


def _read(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(the holder, the raw text) of a lock file; holder None: unreadable or not a lock's JSON;
    raises FileNotFoundError when the lock has gone."""
    text = path.read_text(errors="replace")
    try:
        holder = json.loads(text)
    except ValueError:
        return None, text
    return (holder if isinstance(holder, dict) else None), text


_HALF_WRITTEN_S = 10.0  # an empty or partial lock this young may be another run's, being written


def _judge(path: Path, holder: dict[str, Any] | None, exp_dir: Path) -> str | None:
    """None when the lock at ``path`` is stale (may be taken over), else why the folder is in use."""
    this_host = socket.gethostname()
    hint = "wait for it to end or choose another training.exp_dir (--force does not replace a running run)"
    if holder is None:
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return None
        if age < _HALF_WRITTEN_S:
            return f"training.exp_dir {exp_dir} is being taken by another run (its lock {path} is being written); {hint}"
        return None
    if holder.get("host") != this_host:
        return (f"training.exp_dir {exp_dir} is in use by a run on another host: {_describe(holder)} "
                f"(this is {this_host}; whether it still runs cannot be checked from here). {hint[0].upper()}{hint[1:]}; "
                f"if that run is over, delete {path}")
    ours, theirs = _pid_namespace(), holder.get("pid_ns")
    if ours is not None and theirs is not None and theirs != ours:
        return (f"training.exp_dir {exp_dir} is in use by a run in another PID namespace (another container?) of "
                f"this host: {_describe(holder)}; whether it still runs cannot be checked from here. "
                f"{hint[0].upper()}{hint[1:]}; if that run is over, delete {path}")
    if _alive(holder):
        return f"training.exp_dir {exp_dir} is in use by another run: {_describe(holder)} (lock {path}); {hint}"
    return None


def check_not_in_use(exp_dir: str | os.PathLike) -> None:
    """Refuse (:class:`RunInUseError`) when a live run holds ``exp_dir``'s lock; writes nothing.
    For planning (``compare`` checks every run folder before its first run). In the processes of
    DDP ranks > 0 nothing is checked: their rank 0 holds the lock."""
    if rank_above_zero():
        return
    path = lock_path(exp_dir)
    try:
        holder, _ = _read(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError:
        return  # unreadable: acquiring it will say why
    why = _judge(path, holder, Path(exp_dir))
    if why is not None:
        raise RunInUseError(why)


def rank_above_zero(several_processes: bool = True) -> bool:
    """True in a process of rank > 0 of a multi-process (DDP) run, which runs inside its rank 0's lock:
    one started by Lightning's launcher (``LOCAL_RANK``, ``NODE_RANK``)
    or, when the run uses ``several_processes``, by torchrun (``RANK``) or SLURM's srun (``SLURM_PROCID``).
    A one-device run in an environment that happens to set ``RANK`` (a cluster job's worker) takes the
    lock and runs as rank 0. ``runs.is_rank_above_zero`` applies it to a recipe, for every part of a run."""
    env = os.environ
    if any(env.get(k, "0") not in ("0", "") for k in ("LOCAL_RANK", "NODE_RANK")):
        return True
    return several_processes and any(env.get(k, "0") not in ("0", "") for k in ("RANK", "SLURM_PROCID"))


class RunLock:
    """The lock of one experiment folder, held by this process (:func:`acquire_run_lock`)."""

    def __init__(self, path: Path, token: str, created: list[Path]):
        self.path = path
        self.token = token  # the lock file's contents: it is ours while they are unchanged
        self.created = created  # folders made for the lock (innermost first): removed again if left empty
        self.held = True

    def release(self) -> None:
        """Delete the lock (if still ours) and the folders made for it that stayed empty."""
        if not self.held:
            return
        self.held = False
        try:
            if self.path.read_text(errors="replace") == self.token:
                self.path.unlink()
        except OSError:
            pass
        _remove_empty(self.created)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def _make_folder(exp_dir: Path) -> list[Path]:
    """Create ``exp_dir`` (and missing parents); the folders created, innermost first. Refuses
    (RecipeError naming ``training.exp_dir``) a path through a file or into a folder that cannot be written."""
    from ..recipe.schema import RecipeError

    missing = []
    p = exp_dir
    while not p.exists() and not p.is_symlink() and p != p.parent:
        missing.append(p)
        p = p.parent
    if p.exists() and not p.is_dir():
        what = "is a file" if p == exp_dir else f"cannot be created: {p} is a file, not a folder"
        raise RecipeError(f"training.exp_dir {exp_dir} {what}; choose another training.exp_dir")
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:  # made meanwhile by another process: fine if it is a folder
                if not folder.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(folder)) from None
                continue
            created.insert(0, folder)
    except OSError as exc:
        _remove_empty(created)
        raise RecipeError(f"training.exp_dir {exp_dir} cannot be created ({_reason(exc)}); "
                          "choose another training.exp_dir") from None
    return created


def _reason(exc: OSError) -> str:
    where = f" {exc.filename}" if exc.filename else ""
    if isinstance(exc, PermissionError):
        return f"permission denied:{where}"
    if isinstance(exc, NotADirectoryError):
        return f"not a folder:{where}"
    return f"{exc.strerror or type(exc).__name__}:{where}"


def _remove_empty(created: list[Path]) -> None:
    """Remove the folders made for a lock (innermost first) as long as they are empty."""
    for folder in created:
        try:
            folder.rmdir()
        except OSError:
            break


def _create(path: Path, token: str) -> bool:
    """Create the lock file holding ``token`` atomically; False when a lock exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    try:
        os.write(fd, token.encode())
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)
    return True


def _take_over(path: Path, stale_text: str, say: Callable[[str], None], holder: dict[str, Any] | None) -> None:
    """Remove the stale lock ``path`` (whose contents were ``stale_text``) unless another run has
    replaced it meanwhile; ``say`` tells the user."""
    aside = path.with_name(f"{LOCK_NAME}.stale.{os.getpid()}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another run took it over first
        return
    if aside.read_text(errors="replace") != stale_text:  # a new holder's lock, not the stale one: put it back
        try:  # link, not replace: never over a lock that a third run created meanwhile
            os.link(aside, path)
        except FileExistsError:
            pass  # that third run holds the folder now; the moved holder finds its lock gone when it ends
        aside.unlink(missing_ok=True)
        return
    aside.unlink(missing_ok=True)
    who = _describe(holder) if holder is not None else "an unreadable lock"
    say(f"dcase-fpd: {path.parent}: taking over the stale lock {path} of a run that no longer runs ({who})")


def _say(message: str) -> None:
    print(message, file=sys.stderr)


def acquire_run_lock(exp_dir: str | os.PathLike, say: Callable[[str], None] = _say) -> RunLock:
    """Take ``exp_dir``'s lock for this process, creating the folder if needed: the first write of
    a run. Returns the :class:`RunLock` (a context manager; :meth:`RunLock.release` gives it back).

    Raises:
        RunInUseError: a live run holds it (or a run on another host).
        RecipeError: ``exp_dir`` is a file, lies under a file or cannot be written (naming ``training.exp_dir``).
    """
    from ..recipe.schema import RecipeError

    exp_dir = Path(exp_dir)
    try:
        created = _make_folder(exp_dir)
    except OSError as exc:  # e.g. a parent that cannot even be looked into
        raise RecipeError(f"training.exp_dir {exp_dir} cannot be created ({_reason(exc)}); "
                          "choose another training.exp_dir") from None
    path = lock_path(exp_dir)
    holder_info = {"pid": os.getpid(), "host": socket.gethostname(),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    start = _proc_start(os.getpid())
    if start is not None:
        holder_info["proc_start"] = start
    namespace = _pid_namespace()
    if namespace is not None:
        holder_info["pid_ns"] = namespace
    token = json.dumps(holder_info) + "\n"
    try:
        for _ in range(5):
            if _create(path, token):
                return RunLock(path, token, created)
            try:
                holder, text = _read(path)
            except FileNotFoundError:  # released meanwhile
                continue
            why = _judge(path, holder, exp_dir)
            if why is not None:
                raise RunInUseError(why)
            _take_over(path, text, say, holder)
        raise RunInUseError(f"training.exp_dir {exp_dir}: could not take its lock {path} (other runs keep "
                            "taking it); choose another training.exp_dir")
    except OSError as exc:
        _remove_empty(created)
        if isinstance(exc, RunInUseError):
            raise
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR,
                         errno.ENOENT, errno.ENOSPC):
            raise RecipeError(f"training.exp_dir {exp_dir} cannot be written ({_reason(exc)}); "
                              "choose another training.exp_dir") from None
        raise
