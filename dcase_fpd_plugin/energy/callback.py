"""Energy tracking wired into runs: the Lightning callback for the training phase, a context manager for the inference phases."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytorch_lightning as pl

from .tracker import start_hardware_probe
from .phase import ACCUMULATE_BY_DEFAULT, PhaseTracker, _is_global_zero, _warn, energy_config
from .record import energy_json_path, format_kwh, live_record_path, record_segment, recover_killed_segment, reset_energy, write_live_record


def batch_size_of(batch: Any) -> int | None:
    """Clips in a batch: ``len`` of a batch object, the first dimension of a tensor (or of the
    first tensor of a tuple, list or dict); None when it cannot be told."""
    shape = getattr(batch, "shape", None)
    if shape is not None and len(shape):
        return int(shape[0])
    if isinstance(batch, (list, tuple)) and batch:
        return batch_size_of(batch[0])
    if isinstance(batch, Mapping) and batch:
        return batch_size_of(next(iter(batch.values())))
    try:
        return int(len(batch))
    except TypeError:
        return None


# --------------------------------------------------------------------------- public trackers
@dataclass
class EnergyMeasurement:
    """What :func:`track_energy` yields; ``segment`` is filled when the block ends (None if not tracked).

    The block may fill ``work`` (e.g. ``{"clips": 1168}``): it is stored in the segment.
    """

    phase: str
    exp_dir: Path
    segment: dict[str, Any] | None = None
    work: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def track_energy(phase: str, exp_dir: str | Path, config: Mapping[str, Any] | None = None, *,
                 accumulate: bool | None = None) -> Iterator[EnergyMeasurement]:
    """Measure the energy of the ``with`` block as one segment of ``phase`` in ``EXP_DIR/energy.json``.

    ``config``: a recipe, its ``energy`` section, or None (defaults); ``enabled: false`` makes this
    a no-op. If the block raises, a ``training`` segment (accumulating) is still recorded with
    ``interrupted: true``; other phases record nothing. Tracking failures only warn. Only the
    global-zero process tracks, and a block nested in a tracker of the same phase and folder is
    not tracked again::

        with track_energy("devtest", exp_dir, recipe):
            trainer.test(task, datamodule=dm)
    """
    cfg = energy_config(config)
    result = EnergyMeasurement(phase, Path(exp_dir))
    if accumulate is None:
        accumulate = ACCUMULATE_BY_DEFAULT.get(phase, False)
    if not cfg["enabled"] or not _is_global_zero():
        yield result
        return
    tracker = PhaseTracker(phase, Path(exp_dir), cfg)
    tracker.start()
    try:
        yield result
    except BaseException:
        segment = tracker.stop(interrupted=True, work=result.work)
        if segment is not None and accumulate:
            _safe_record(exp_dir, phase, segment, accumulate)
        raise
    segment = tracker.stop(work=result.work)
    if segment is not None:
        result.segment = segment
        _safe_record(exp_dir, phase, segment, accumulate)


def _safe_record(exp_dir: str | Path, phase: str, segment: Mapping[str, Any], accumulate: bool) -> None:
    try:
        record_segment(exp_dir, phase, segment, accumulate)
    except Exception as exc:
        _warn(f"could not write {energy_json_path(exp_dir)} ({type(exc).__name__}: {exc}); "
              f"phase {phase!r}: {format_kwh(segment['energy_kwh'], segment['method'])}")


class EnergyCallback(pl.Callback):
    """Lightning callback: codecarbon energy of the Trainer's stages, into ``EXP_DIR/energy.json``.

    ``phases`` maps a Trainer stage (``fit``, ``test``, ``predict``) to a phase name; by default
    only ``fit`` is tracked, as ``training`` (``on_fit_start`` to ``on_fit_end``: training and
    validation epochs, checkpointing; not the data set-up before it). A fit that does not resume
    from a checkpoint starts a new energy.json (:func:`reset_energy`); a resumed one adds a segment,
    after the segment of a killed predecessor (:func:`recover_killed_segment`). During fit, a live
    record of the figures so far is rewritten about every ``measure_power_secs`` (on batch and epoch
    ends). A fit that raises records its segment with ``interrupted: true``. Only global zero tracks;
    a second tracker of the same phase and folder in this process (another EnergyCallback, an
    enclosing :func:`track_energy`) does nothing, so nothing is counted twice. Each segment
    records its ``work``: clips (global zero's batches x the number of processes), completed
    epochs and steps for ``fit``; clips for ``test`` and ``predict``.
    """

    def __init__(self, exp_dir: str | Path, config: Mapping[str, Any] | None = None,
                 phases: Mapping[str, str] | None = None, reset_on_fresh_fit: bool = True):
        super().__init__()
        self.exp_dir = Path(exp_dir)
        self.config = energy_config(config)
        self.phases = dict(phases or {"fit": "training"})
        unknown = set(self.phases) - {"fit", "test", "predict"}
        if unknown:
            raise ValueError(f"EnergyCallback phases: unknown Trainer stages {sorted(unknown)} (fit, test, predict)")
        self.reset_on_fresh_fit = reset_on_fresh_fit
        self._trackers: dict[str, PhaseTracker] = {}
        self._work: dict[str, dict[str, int]] = {}  # per tracked stage: clips, epochs, steps
        self.segments: list[dict[str, Any]] = []  # recorded in this process, for callers and tests
        self.recovered: list[dict[str, Any]] = []  # killed runs' figures recorded on resume (recover_killed_segment)
        self._live: tuple[Path, str] | None = None  # the running fit's live record and its id
        self._last_beat = 0.0
        self._beat_failed = False

    def prepare(self) -> threading.Thread | None:
        """Start codecarbon's hardware detection now, if not yet started in this process
        (:func:`~dcase_fpd_plugin.energy.tracker.start_hardware_probe`), so that it overlaps the data
        and model set-up before fit; None when this callback will track nothing here."""
        if not self.config["enabled"] or not _is_global_zero():
            return None
        return start_hardware_probe(self.config)

    def _start(self, trainer: pl.Trainer, stage: str) -> None:
        if stage not in self.phases or not self.config["enabled"] or not trainer.is_global_zero:
            return
        tracker = PhaseTracker(self.phases[stage], self.exp_dir, self.config)
        if tracker.already_tracked:  # e.g. a second EnergyCallback on the same Trainer
            return
        if stage == "fit" and trainer.ckpt_path:
            self._recover(tracker.phase, trainer.ckpt_path)
        elif stage == "fit" and self.reset_on_fresh_fit:
            reset_energy(self.exp_dir, self.config)
        if tracker.start():
            self._trackers[stage] = tracker
            self._work[stage] = {"clips": 0, "epochs": 0, "steps": 0} if stage == "fit" else {"clips": 0}
            if stage == "fit":
                self._live = (live_record_path(self.exp_dir, tracker.phase, self.config), uuid.uuid4().hex)
                self._beat(force=True)

    def _recover(self, phase: str, ckpt_path: Any) -> None:
        """A resumed fit: record the segment of a run that was killed (:func:`recover_killed_segment`)."""
        try:
            alive = Path(str(ckpt_path)).stat().st_mtime
        except OSError:
            alive = None
        try:
            found = recover_killed_segment(self.exp_dir, phase, self.config, alive_unix=alive)
        except Exception as exc:
            _warn(f"could not record the energy of the killed run in {energy_json_path(self.exp_dir)} "
                  f"({type(exc).__name__}: {exc})")
            return
        if found is not None:
            self.recovered.append(found)

    def _beat(self, force: bool = False) -> None:
        """Write the live record of the running fit (at most once per ``measure_power_secs``, the
        interval of codecarbon's readings), so that a killed run leaves its figures behind."""
        tracker = self._trackers.get("fit")
        if tracker is None or self._live is None:
            return
        now = time.monotonic()
        if not force and now - self._last_beat < float(self.config["measure_power_secs"]):
            return
        self._last_beat = now
        try:
            write_live_record(self._live[0], tracker, self._live[1], self._work.get("fit"))
        except Exception as exc:
            if not self._beat_failed:
                self._beat_failed = True
                _warn(f"could not write {self._live[0]} ({type(exc).__name__}: {exc}); if this run is "
                      f"killed, its energy will be recorded as unmeasured from its last record")

    def _count(self, stage: str, batch: Any, processes: int = 1) -> None:
        """One batch of a tracked stage: its clips (x ``processes``), and a step for ``fit``."""
        work = self._work.get(stage)
        if work is None:
            return
        if stage == "fit":
            work["steps"] += 1
        if "clips" in work:
            n = batch_size_of(batch)
            if n is None:  # a batch we cannot size: the segment says nothing about its clips
                del work["clips"]
            else:
                work["clips"] += n * processes

    def _stop(self, stage: str, interrupted: bool = False) -> None:
        tracker = self._trackers.pop(stage, None)
        work = self._work.pop(stage, None)
        if tracker is None:
            return
        segment = tracker.stop(interrupted=interrupted, work=work)
        live, self._live = (self._live, None) if stage == "fit" else (None, self._live)
        if segment is None:
            return  # the live record stays: a resume recovers what it holds
        accumulate = stage == "fit" or ACCUMULATE_BY_DEFAULT.get(tracker.phase, False)
        if interrupted and not accumulate:
            return  # an interrupted inference run must not replace a complete one
        self.segments.append(segment)
        _safe_record(self.exp_dir, tracker.phase, segment, accumulate)
        if live is not None:  # stopped and recorded, not killed: the live record is done with
            live[0].unlink(missing_ok=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._count("fit", batch, processes=max(1, int(getattr(trainer, "world_size", 1) or 1)))
        self._beat()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._beat()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if "fit" in self._work:
            self._work["fit"]["epochs"] += 1
        self._beat()

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start(trainer, "fit")

    def on_fit_end(self, trainer, pl_module) -> None:
        self._stop("fit")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._count("test", batch)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._count("predict", batch)

    def on_test_start(self, trainer, pl_module) -> None:
        self._start(trainer, "test")

    def on_test_end(self, trainer, pl_module) -> None:
        self._stop("test")

    def on_predict_start(self, trainer, pl_module) -> None:
        self._start(trainer, "predict")

    def on_predict_end(self, trainer, pl_module) -> None:
        self._stop("predict")

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        for stage in list(self._trackers):
            self._stop(stage, interrupted=True)
