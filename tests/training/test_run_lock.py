"""#27 item 2: one run per experiment folder (``EXP_DIR/.lock``, training/lock.py)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.recipe.schema import RecipeError
from dcase_fpd_plugin.training.lock import (LOCK_NAME, RunInUseError, acquire_run_lock, check_not_in_use,
                                            lock_path)

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"


def _override(overrides: list[str], key: str) -> str:
    return next(o.split("=", 1)[1] for o in overrides if o.startswith(key + "="))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def sleeper():
    """A live process of this host (its pid goes into a lock, as if it were a run)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    yield proc
    proc.kill()
    proc.wait()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(exp: Path, pid: int, host: str | None = None, started: str = "2030-01-02 03:04:05 +0000") -> bytes:
    exp.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": started}) + "\n"
    lock_path(exp).write_text(text)
    return text.encode()


def test_a_live_run_refuses_train_force_resume_demo_and_compare(demo_overrides, sleeper, tmp_path, capsys):
    exp = Path(_override(demo_overrides, "training.exp_dir"))
    (exp / "checkpoints").mkdir(parents=True)
    (exp / "checkpoints" / "last.ckpt").write_bytes(b"the first run's checkpoint")
    (exp / "metrics.json").write_text('{"epochs_trained": 3}\n')
    _write_lock(exp, sleeper.pid)
    before = _files(exp)
    for extra in ([], ["--force"], ["--resume"]):
        assert main(["train", str(DEMO), *demo_overrides, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("dcase-fpd train: error: training.exp_dir")
        assert f"pid {sleeper.pid} on host {socket.gethostname()}, started 2030-01-02 03:04:05" in err, err
    assert main(["demo", *demo_overrides]) == 2
    assert f"pid {sleeper.pid}" in capsys.readouterr().err
    assert _files(exp) == before and not list(exp.glob(".replaced_*"))

    # compare: a run folder in use is refused while planning, before any run trains (even with --force)
    out = tmp_path / "cmp"
    _write_lock(out / "demo" / "seed_1", sleeper.pid)
    plain = [o for o in demo_overrides if not o.startswith("training.exp_dir=")]
    assert main(["compare", str(DEMO), "--seeds", "2", "--out", str(out), "--force", *plain]) == 2
    err = capsys.readouterr().err
    assert "seed_1 is in use by another run" in err and f"pid {sleeper.pid}" in err
    assert not (out / "demo" / "seed_0").exists()


def test_a_real_training_holds_the_lock_and_gives_it_back_on_ctrl_c(demo_overrides, capsys):
    """A first training in a subprocess: a second one into its folder is refused at once, naming it;
    Ctrl-C ends the first one and releases the lock."""
    import dcase_fpd_plugin.training.runs  # noqa: F401  (imported now: the refusal below must come at once)

    exp = Path(_override(demo_overrides, "training.exp_dir"))
    cmd = [sys.executable, "-m", "dcase_fpd_plugin.cli", "train", str(DEMO), *demo_overrides,
           "training.n_epochs=1000", "training.max_train_s=240"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (exp / "checkpoints" / "last.ckpt").is_file():  # training has started and saved an epoch
            assert first.poll() is None, first.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the first training did not start"
            time.sleep(0.2)
        holder = json.loads(lock_path(exp).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        t0 = time.monotonic()
        assert main(["train", str(DEMO), *demo_overrides, "--force"]) == 2
        assert time.monotonic() - t0 < 10  # at once: nothing was read or trained
        err = capsys.readouterr().err
        assert f"in use by another run: pid {first.pid} on host {socket.gethostname()}, started {holder['started']}" in err
        assert first.poll() is None and not list(exp.glob(".replaced_*"))
    finally:
        first.send_signal(signal.SIGINT)
        _, first_err = first.communicate(timeout=120)
    assert "training interrupted (SIGINT)" in first_err, first_err[-3000:]
    assert not lock_path(exp).exists()  # given back on Ctrl-C
    assert (exp / "checkpoints" / "last.ckpt").is_file()


def test_a_stale_lock_is_taken_over_with_a_message(demo_overrides, capsys):
    exp = Path(_override(demo_overrides, "training.exp_dir"))
    dead = _dead_pid()
    _write_lock(exp, dead)
    assert main(["train", str(DEMO), *demo_overrides]) == 0
    err = capsys.readouterr().err
    assert f"taking over the stale lock {exp / LOCK_NAME}" in err and f"pid {dead} on host" in err
    assert (exp / "metrics.json").is_file() and not lock_path(exp).exists()  # released at the end


def test_lock_rules(tmp_path, sleeper, monkeypatch):
    exp = tmp_path / "a" / "b" / "exp"
    said: list[str] = []
    with acquire_run_lock(exp, say=said.append) as lock:
        holder = json.loads(lock.path.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
        with pytest.raises(RunInUseError, match=f"pid {os.getpid()}"):  # one run per folder, this process too
            acquire_run_lock(exp)
        with pytest.raises(RunInUseError):
            check_not_in_use(exp)
    assert not (tmp_path / "a").exists() and not said  # folders made for the lock and left empty: removed

    exp.mkdir(parents=True)
    (exp / "kept.txt").write_text("x")
    acquire_run_lock(exp).release()
    assert sorted(p.name for p in exp.iterdir()) == ["kept.txt"]  # an existing folder stays

    # another host: cannot be checked, refused, the message names the file to delete
    _write_lock(exp, sleeper.pid, host="elsewhere")
    with pytest.raises(RunInUseError, match=r"on another host: pid \d+ on host elsewhere.*delete .*\.lock"):
        acquire_run_lock(exp)
    # a pid reused by another process (its start time differs) is not the holder
    lock_path(exp).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "started": "x",
                                          "proc_start": "1"}))
    if Path(f"/proc/{sleeper.pid}/stat").exists():
        acquire_run_lock(exp, say=said.append).release()
        assert said and "stale" in said.pop()
    # an unreadable lock: stale once old, "being written" while young
    lock_path(exp).write_text("")
    with pytest.raises(RunInUseError, match="being written"):
        acquire_run_lock(exp)
    old = time.time() - 3600
    os.utime(lock_path(exp), (old, old))
    acquire_run_lock(exp, say=said.append).release()
    assert "unreadable lock" in said.pop()
    # DDP ranks > 0 never check: their rank 0 holds the lock
    _write_lock(exp, sleeper.pid)
    monkeypatch.setenv("LOCAL_RANK", "1")
    check_not_in_use(exp)


def test_exp_dir_that_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RecipeError, match=r"training.exp_dir .*file/exp cannot be created: .*file is a file"):
        acquire_run_lock(tmp_path / "file" / "exp")
    with pytest.raises(RecipeError, match=r"training.exp_dir .*file is a file"):
        acquire_run_lock(tmp_path / "file")


def test_ddp_ranks_above_zero_do_not_take_the_lock(monkeypatch, tmp_path):
    from dcase_fpd_plugin.training import runs

    taken = []
    monkeypatch.setattr(runs, "acquire_run_lock", lambda exp_dir: taken.append(exp_dir) or acquire_run_lock(exp_dir))
    monkeypatch.setattr(runs, "_train", lambda recipe, **kw: "trained")
    exp = str(tmp_path / "exp")
    recipe = {"training": {"exp_dir": exp, "devices": 2, "num_nodes": 1}}
    for var in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID"):  # Lightning's launcher, torchrun, srun
        monkeypatch.setenv(var, "1")
        assert runs.train(recipe) == "trained" and taken == [], var
        monkeypatch.delenv(var)
    assert runs.train(recipe) == "trained" and taken == [exp]
    # srun's task ids and a cluster's RANK say nothing about a run of one process: it takes its folder's
    # lock (and the run treats it as rank 0: runs.is_rank_above_zero is the one rule)
    for var in ("SLURM_PROCID", "RANK"):
        monkeypatch.setenv(var, "3")
        assert runs.train({"training": {"exp_dir": exp, "devices": 1, "num_nodes": 1}}) == "trained"
        monkeypatch.delenv(var)
    assert taken == [exp, exp, exp] and not lock_path(tmp_path / "exp").exists()


def test_an_srun_rank_above_zero_never_prepares_the_folder(monkeypatch, tmp_path):
    """srun's rank 1 of a two-device run (SLURM_PROCID=1, no LOCAL_RANK) runs without the lock and must not act
    as rank 0 inside the run: --force must not set rank 0's folder aside, a finished run is not refused."""
    from dcase_fpd_plugin.training import runs

    exp = tmp_path / "exp"
    (exp / "checkpoints").mkdir(parents=True)
    (exp / "metrics.json").write_text("{}")
    recipe = {"training": {"exp_dir": str(exp), "devices": 2, "num_nodes": 1}}
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert runs.is_rank_above_zero(recipe)
    assert runs._prepare_exp_dir(exp, resume=False, force=True, helper=runs.is_rank_above_zero(recipe)) is None
    assert (exp / "metrics.json").is_file() and (exp / "checkpoints").is_dir()  # nothing set aside or refused
    monkeypatch.delenv("SLURM_PROCID")
    assert not runs.is_rank_above_zero(recipe)
    with pytest.raises(runs.ExperimentExistsError):  # rank 0 refuses a finished run without --force
        runs._prepare_exp_dir(exp, resume=False, force=False, helper=False)


def test_the_lock_is_given_back_when_the_run_fails(demo_overrides, tmp_path, capsys):
    exp = Path(_override(demo_overrides, "training.exp_dir"))
    bad = tmp_path / "weak.tsv"
    bad.write_text("filename\tevent_labels\nnope.wav\tnot_a_class\n")
    assert main(["train", str(DEMO), *demo_overrides, f"data.weak_tsv={bad}"]) == 2
    assert "not_a_class" in capsys.readouterr().err
    assert not exp.exists()  # nothing left behind: neither the lock nor the folder made for it


def test_a_lock_from_another_pid_namespace_is_not_taken_over(tmp_path):
    """A container sharing this host name (--network host) and the folder: its pids mean nothing here,
    so its lock is refused as one from another host, never judged stale by our pids."""
    from dcase_fpd_plugin.training import lock as lock_module

    if lock_module._pid_namespace() is None:
        pytest.skip("no /proc/self/ns/pid here")
    exp = tmp_path / "exp"
    exp.mkdir()
    text = json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": "2030-01-02 03:04:05 +0000",
                       "pid_ns": "1"}) + "\n"
    lock_path(exp).write_text(text)
    with pytest.raises(RunInUseError, match="another PID namespace"):
        with acquire_run_lock(exp):
            pass
    assert lock_path(exp).read_text() == text  # untouched
    with acquire_run_lock(tmp_path / "mine") as mine:  # our own lock records our namespace
        assert json.loads(mine.path.read_text())["pid_ns"] == lock_module._pid_namespace()
