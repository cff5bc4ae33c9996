"""Training callbacks: the final-epoch validation, late-epoch checkpoints, the training time limit, the interrupt notice."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl


LATE_EPOCHS_DIR = "late_epochs"


class FinalEpochValidation(pl.Callback):
    """Validates the final epoch whatever ``training.val_every_n_epochs`` says, so that the last
    epoch is always checkpointed (``last.ckpt`` is written after a validation) and can be selected:
    with ``n_epochs=3 val_every_n_epochs=2`` epoch 3 used to be lost, and with an interval above
    ``n_epochs`` no checkpoint was written at all."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs:
            trainer.check_val_every_n_epoch = 1


def late_checkpoint_name(epoch: int) -> str:
    """``epoch_NNN.ckpt`` for the weights after ``epoch`` finished epochs (counted from 1)."""
    return f"epoch_{epoch:03d}.ckpt"


class LateEpochCheckpoints(pl.Callback):
    """Saves ``checkpoints/epoch_NNN.ckpt`` at the end of each of the last ``n_last`` epochs, so
    that their test metrics can be averaged (a reading that no checkpoint selection flatters).

    ``rolling``: save every epoch and keep the newest ``n_last`` (a run that a time limit may stop
    before ``n_epochs`` does not know in advance which epochs are its last). A resumed run first
    drops the epoch checkpoints of epochs after the one it resumes from (written by the process
    that died), so that they cannot be tested as its own."""

    def __init__(self, ckpt_dir: Path, n_last: int, rolling: bool = False):
        self.ckpt_dir, self.n_last, self.rolling = Path(ckpt_dir), int(n_last), bool(rolling)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            for epoch, stale in late_checkpoints(self.ckpt_dir.parent):
                if epoch > trainer.current_epoch:
                    stale.unlink(missing_ok=True)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        done = trainer.current_epoch + 1
        if self.n_last > 0 and (self.rolling or done > (trainer.max_epochs or 0) - self.n_last):
            check = getattr(pl_module, "_check_finite", None)
            if check is not None:  # never save diverged weights (the NaN check is deferred on GPUs)
                check()
            trainer.save_checkpoint(self.ckpt_dir / late_checkpoint_name(done))  # rank 0 writes, then a barrier
            if self.rolling and trainer.is_global_zero:
                for _, old in late_checkpoints(self.ckpt_dir.parent)[:-self.n_last]:
                    old.unlink(missing_ok=True)


class TrainingTimeLimit(pl.Callback):
    """``training.max_train_s``: ends training after the last epoch expected to finish within
    ``limit_s`` seconds of this process's training start (mean epoch time so far, validation
    included). At least one epoch runs. With a limit, every epoch is validated (whatever
    ``training.val_every_n_epochs`` says), so the epoch it stops after is checkpointed and can be
    selected. Under DDP the ranks stop together (rank decisions reduced: any rank out of time).

    The stop is kept in the checkpoints: a run resumed with a limit (any) after its limit stopped
    it trains no further and is tested as it is; resumed without one (``limit_s`` None), it trains
    on to ``n_epochs``. The epoch count is in metrics.json (``epochs_trained``,
    ``stopped_by_time_limit``).

    Not Lightning's ``Timer`` (``max_time``): that one stops when the time is spent, possibly in the
    middle of an epoch or after an epoch with no validation, counts the time of earlier processes
    across a resume, and leaves no stop for a resumed run to honour."""

    def __init__(self, limit_s: float | None):
        self.limit_s = None if limit_s is None else float(limit_s)
        self.stopped_at_epoch: int | None = None
        self._t0 = 0.0
        self._epochs = 0

    def state_dict(self) -> dict[str, Any]:
        return {"stopped_at_epoch": self.stopped_at_epoch}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.stopped_at_epoch = state_dict.get("stopped_at_epoch")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._t0, self._epochs = time.monotonic(), 0
        if self.limit_s is None:
            self.stopped_at_epoch = None  # no limit now: a stored stop is lifted
            return
        trainer.check_val_every_n_epoch = 1
        if self.stopped_at_epoch is not None:
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.limit_s is None:
            return
        self._epochs += 1
        elapsed = time.monotonic() - self._t0
        out_of_time = elapsed + elapsed / self._epochs > self.limit_s
        out_of_time = bool(trainer.strategy.reduce_boolean_decision(out_of_time, all=False))
        last = trainer.max_epochs is not None and trainer.current_epoch + 1 >= trainer.max_epochs
        if out_of_time and not last:
            trainer.should_stop = True
            self.stopped_at_epoch = trainer.current_epoch + 1


class InterruptNotice(pl.Callback):
    """Ctrl-C (SIGINT) during training: Lightning shuts down and exits with status 1 without a word;
    this says what was kept and how to continue."""

    def __init__(self, exp_dir: Path):
        self.exp_dir = Path(exp_dir)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, KeyboardInterrupt) or not trainer.is_global_zero:
            return
        last = self.exp_dir / "checkpoints" / "last.ckpt"
        kept = (f"{last} holds the last finished epoch" if last.is_file()
                else "no epoch had finished, so nothing was checkpointed")
        import sys

        print(f"\ndcase-fpd: training interrupted (SIGINT) in epoch {trainer.current_epoch + 1}; {kept}. "
              f"Continue with `dcase-fpd train RECIPE --resume` (same recipe and overrides).", file=sys.stderr)


class DropReplaced(pl.Callback):
    """Removes the run set aside by ``--force`` once the new run has started training cleanly."""

    def __init__(self, aside: Path | None):
        self.aside = aside

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.aside is not None and self.aside.exists():
            shutil.rmtree(self.aside)
        self.aside = None


def late_checkpoints(exp_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, path) of the run's ``checkpoints/epoch_NNN.ckpt``, by epoch."""
    found = []
    for p in (Path(exp_dir) / "checkpoints").glob("epoch_*.ckpt"):
        try:
            found.append((int(p.stem.split("_", 1)[1]), p))
        except ValueError:
            continue
    return sorted(found)  # by epoch number (epoch_1000 after epoch_999)
