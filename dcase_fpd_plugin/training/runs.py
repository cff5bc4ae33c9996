"""Train / test / infer runs: the Lightning Trainer, the experiment folder and its files.

Experiment folder (``training.exp_dir``)::

    recipe.yaml                 the resolved recipe (defaults + file + overrides)
    checkpoints/best.ckpt       best epoch by ``training.monitor`` on the validation set
    checkpoints/last.ckpt       end of the last finished epoch (``--resume`` continues from it)
    logs/version_N/metrics.csv  CSV logs;  tb/version_N/  TensorBoard logs
    metrics.json  predictions.tsv  scores/<clip>.tsv     test outputs (see evaluation.metrics)
    raw_scores/val/  raw_scores/test/                     the tested checkpoint's frame probabilities before any
                                                          post-processing (evaluation.rescoring: dcase-fpd postprocess)
    postprocessing/<method>/                              eval.postprocessing tuned on raw_scores/val, scored on /test
    checkpoints/epoch_NNN.ckpt  the last ``training.test_last_n_epochs`` epochs (when > 0), and
    late_epochs/epoch_NNN/metrics.json                   their test metrics (the late-epoch reading)
    .lock                       while a run trains here: its pid, host and start (one run per folder, .lock)

The checkpoint is chosen on the validation set (``data.val_*`` + held-out weak clips) and tested
on ``data.test_*``; when the test set is the validation set, a warning says so and metrics.json
holds ``"selection_on_test": true``.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint, TQDMProgressBar
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

from ..atomic import atomic_write_text
from ..data.datamodule import SEDDataModule, folder_loader
from ..energy.callback import EnergyCallback, track_energy
from ..energy.record import experiment_dir_of
from .gpu_memory import GpuMemory
from ..data.tsv import write_tsv
from ..recipe.checks import SELECTION_ON_TEST_WARNING, check_data_paths, selection_on_test
from ..recipe.schema import RecipeError
from ..recipe.loading import dump_recipe
from .task import FIDELITY, FIDELITY_KEY, SEDTask, check_resume, load_task
from .callbacks import FinalEpochValidation, InterruptNotice, LATE_EPOCHS_DIR, LateEpochCheckpoints, TrainingTimeLimit, DropReplaced, late_checkpoints
from .precision import resolve_precision
from .lock import acquire_run_lock, rank_above_zero


class ExperimentExistsError(RuntimeError):
    """The experiment folder already holds a run and neither --resume nor --force was given."""


@dataclass
class RunResult:
    exp_dir: Path
    best_ckpt: Path | None
    last_ckpt: Path | None
    metrics: dict[str, Any] | None
    epochs_done: int


def test_late_epochs(recipe: dict[str, Any], exp_dir: Path) -> list[Path]:
    """Test the last ``training.test_last_n_epochs`` epoch checkpoints into
    ``late_epochs/epoch_NNN/metrics.json`` (energy not tracked: not a submission phase)."""
    n_last = recipe["training"]["test_last_n_epochs"]
    quiet = copy.deepcopy(recipe)
    quiet["energy"]["enabled"] = False
    quiet["training"]["progress_bar"] = False
    quiet["eval"]["psds"] = recipe["eval"]["psds"] and recipe["eval"]["psds_late_epochs"]
    written = []
    for epoch, ckpt in late_checkpoints(exp_dir)[-n_last:] if n_last else []:
        out = Path(exp_dir) / LATE_EPOCHS_DIR / f"epoch_{epoch:03d}"
        if not (out / "metrics.json").is_file():
            test(quiet, ckpt, out_dir=out, outputs=("metrics",))
        written.append(out / "metrics.json")
    return written


def _configure_torch(recipe: dict[str, Any]) -> None:
    n = recipe["training"]["num_threads"]
    if n and n > 0:
        torch.set_num_threads(n)


def build_trainer(recipe: dict[str, Any], exp_dir: Path, callbacks: Sequence[pl.Callback] = (),
                  checkpoints: bool = True, loggers: bool = True, single_device: bool = False) -> pl.Trainer:
    """A Trainer configured from ``recipe['training']``, writing into ``exp_dir``.

    ``training.strategy`` / ``devices`` / ``num_nodes`` pass through to Lightning (e.g. ``ddp``);
    ``single_device`` overrides them with one device (scoring and inference run on one process).
    """
    tr = dict(recipe["training"])
    if single_device:
        tr.update(devices=1, strategy="auto", num_nodes=1)
    cbs: list[pl.Callback] = list(callbacks)
    if checkpoints:
        # Two callbacks: Lightning >= 2.6 writes ``save_last`` only when the monitored checkpoint was
        # saved too, so "last" would not be the last epoch after an epoch without improvement.
        ckpt_dir = exp_dir / "checkpoints"
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=tr["monitor"], mode="max",
                                   save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False))
        cbs.append(ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                                   every_n_epochs=1, auto_insert_metric_name=False, enable_version_counter=False))
    if tr["progress_bar"]:
        # each refresh reads the logged tensors (a host sync): every step on the CPU, where steps are
        # slow, every log_every_n_steps steps on an accelerator
        on_cpu = tr["accelerator"] == "cpu" or (tr["accelerator"] == "auto" and not torch.cuda.is_available())
        cbs.append(TQDMProgressBar(refresh_rate=1 if on_cpu else max(1, int(tr["log_every_n_steps"]))))
    logger: Any = False
    if loggers:
        logger = [CSVLogger(exp_dir, name="logs"), TensorBoardLogger(exp_dir, name="tb", default_hp_metric=False)]
    return pl.Trainer(
        max_epochs=tr["n_epochs"],
        accelerator=tr["accelerator"],
        devices=tr["devices"],
        strategy=tr["strategy"],
        num_nodes=tr["num_nodes"],
        precision=resolve_precision(tr["precision"], tr["accelerator"]),
        callbacks=cbs,
        logger=logger,
        default_root_dir=exp_dir,
        log_every_n_steps=tr["log_every_n_steps"],
        check_val_every_n_epoch=tr["val_every_n_epochs"],
        limit_train_batches=tr["limit_train_batches"],
        num_sanity_val_steps=0,
        enable_progress_bar=tr["progress_bar"],
        enable_model_summary=False,
        use_distributed_sampler=False,  # MixedSourceBatchSampler shards by rank itself
        deterministic=False,
    )


def is_rank_above_zero(recipe: dict[str, Any]) -> bool:
    """True in a process of rank > 0 of the recipe's multi-process run (:func:`~.lock.rank_above_zero`:
    Lightning's launcher, torchrun or srun; ``RANK`` / ``SLURM_PROCID`` count only when the recipe uses
    several devices or nodes). Such a process only helps train: rank 0 holds the lock, prepares and
    writes the folder; the one rule every part of a run reads."""
    tr = recipe["training"]
    return rank_above_zero(tr.get("num_nodes", 1) != 1 or tr.get("devices", 1) not in (1, "1"))


def _prepare_exp_dir(exp_dir: Path, resume: bool, force: bool, helper: bool = False) -> Path | None:
    """The checkpoint to resume from (None: a fresh run), after refusing a folder that holds a run unless
    ``force``; ``helper`` (a rank > 0) only reads: rank 0 has prepared the folder."""
    last = exp_dir / "checkpoints" / "last.ckpt"
    if helper:  # rank 0 has prepared the folder; never delete anything from here
        return last if resume else None
    if resume:
        if not last.is_file():
            raise ExperimentExistsError(f"--resume: no checkpoint to resume from at {last}")
        return last
    has_run = (exp_dir / "checkpoints").is_dir() or (exp_dir / "metrics.json").is_file()
    if has_run and not force:
        raise ExperimentExistsError(
            f"{exp_dir} already holds a run; pass --resume to continue it or --force to replace it "
            "(or choose another training.exp_dir)"
        )
    return None


RUN_ENTRIES = ("checkpoints", "logs", "tb", "scores", LATE_EPOCHS_DIR, "tests", "energy", "metrics.json",
               "predictions.tsv", "recipe.yaml", "energy.json", "raw_scores", "postprocessing")


def _set_aside(exp_dir: Path) -> Path:
    """``--force``: move the old run's files into ``exp_dir/.replaced_*`` (removed once the new run has
    started training, put back if it fails before)."""
    aside = Path(tempfile.mkdtemp(dir=exp_dir, prefix=".replaced_"))
    for name in RUN_ENTRIES:
        if (exp_dir / name).exists():
            os.replace(exp_dir / name, aside / name)
    return aside


def _restore(exp_dir: Path, aside: Path) -> None:
    """Put a run set aside by :func:`_set_aside` back, over whatever the failed new run wrote."""
    for entry in aside.iterdir():
        target = exp_dir / entry.name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(entry, target)
    aside.rmdir()


def train(recipe: dict[str, Any], *, resume: bool = False, force: bool = False,
          callbacks: Sequence[pl.Callback] = (), run_test: bool = True, use_cache: bool = True) -> RunResult:
    """Train (or resume) the recipe, then test the best checkpoint and write the outputs.

    The run holds the lock of ``training.exp_dir`` (:mod:`.lock`) from before its first write to its
    end (also on an error or Ctrl-C): a second run into the folder is refused while this one lives,
    even with ``force``. Under DDP, rank 0 holds it for all ranks.

    Raises:
        lock.RunInUseError: another live run holds the folder. RecipeError: ``training.exp_dir`` cannot be
        created or written. ExperimentExistsError, DataError, ...: see the checks below.
    """
    kw = dict(resume=resume, force=force, callbacks=callbacks, run_test=run_test, use_cache=use_cache)
    if is_rank_above_zero(recipe):  # rank 0 holds the lock for the whole run
        return _train(recipe, **kw)
    with acquire_run_lock(recipe["training"]["exp_dir"]):
        return _train(recipe, **kw)


def _train(recipe: dict[str, Any], *, resume: bool = False, force: bool = False,
           callbacks: Sequence[pl.Callback] = (), run_test: bool = True, use_cache: bool = True) -> RunResult:
    """:func:`train`, in the folder whose lock this process holds."""
    exp_dir = Path(recipe["training"]["exp_dir"])
    helper = is_rank_above_zero(recipe)  # a rank > 0: reads the folder rank 0 prepared, writes nothing of its own
    check_data_paths(recipe, ["synth", "weak", "unlabeled", "val"])
    if recipe["data"]["test_tsv"]:
        check_data_paths(recipe, ["test"])
    energy_cb = EnergyCallback(exp_dir, recipe)  # validates energy.* before anything is written
    if run_test and selection_on_test(recipe) and not helper:
        warnings.warn(SELECTION_ON_TEST_WARNING, stacklevel=3)  # the caller of train()
    ckpt_path = _prepare_exp_dir(exp_dir, resume, force, helper)
    if ckpt_path is not None:
        check_resume(recipe, ckpt_path)  # a readable checkpoint whose weights fit the recipe, before anything is written
    energy_cb.prepare()  # codecarbon's hardware detection, in a thread during the checks and set-up below
    dm = checked_data(recipe, use_cache)  # every set read and checked before anything is written
    replace = force and not resume and not helper and (
        (exp_dir / "checkpoints").is_dir() or (exp_dir / "metrics.json").is_file())
    exp_dir.mkdir(parents=True, exist_ok=True)
    dropper = DropReplaced(_set_aside(exp_dir) if replace else None)
    try:
        return _fit_and_test(recipe, exp_dir, ckpt_path, [*callbacks, energy_cb, dropper], run_test, dm)
    except BaseException:
        if dropper.aside is not None:  # failed before training started: the old run comes back
            _restore(exp_dir, dropper.aside)
        raise


def checked_data(recipe: dict[str, Any], use_cache: bool = True) -> SEDDataModule:
    """The recipe's data module with every set the run uses (training, validation, test) read, parsed
    and checked: what :func:`train` does before anything is written, and ``compare`` for every recipe
    before its first run."""
    geometry = SEDTask(recipe)  # the model's output frames (its weights are drawn again, after seeding)
    dm = SEDDataModule.from_recipe(recipe, geometry.n_frames, geometry.frame_hop_s, use_cache=use_cache)
    dm.check_sets()
    return dm


def _fit_and_test(recipe: dict[str, Any], exp_dir: Path, ckpt_path: Path | None, callbacks: Sequence[pl.Callback],
                  run_test: bool, dm: SEDDataModule) -> RunResult:
    if not is_rank_above_zero(recipe):
        atomic_write_text(exp_dir / "recipe.yaml", dump_recipe(recipe))
    _configure_torch(recipe)
    pl.seed_everything(recipe["training"]["seed"], workers=True, verbose=False)
    task = SEDTask(recipe)
    if recipe["training"]["compile"]:  # in place: the checkpoint's keys stay those of the eager model
        task.model.compile()
    ckpt_dir = exp_dir / "checkpoints"
    limit_s = recipe["training"]["max_train_s"]
    patience = recipe["training"]["early_stop_patience"]
    timer = TrainingTimeLimit(limit_s)  # also without a limit: it reads (and lifts) a stored stop
    rolling = limit_s is not None or patience is not None  # the last epochs are not known in advance
    late = [timer, LateEpochCheckpoints(ckpt_dir, recipe["training"]["test_last_n_epochs"], rolling=rolling),
            FinalEpochValidation(), InterruptNotice(exp_dir)]
    early = None
    if patience is not None:  # its count is kept in the checkpoints: a resumed run goes on counting
        early = EarlyStopping(monitor=recipe["training"]["monitor"], mode="max", patience=int(patience),
                              check_on_train_epoch_end=False, verbose=False)
        late.append(early)
    gpu = GpuMemory(recipe)
    trainer = build_trainer(recipe, exp_dir, [*callbacks, *late, gpu])
    fit_t0 = time.perf_counter()
    trainer.fit(task, datamodule=dm, ckpt_path=str(ckpt_path) if ckpt_path else None)
    fit_s = time.perf_counter() - fit_t0
    best = ckpt_dir / "best.ckpt"
    last = ckpt_dir / "last.ckpt"
    metrics = None
    if run_test and trainer.is_global_zero:
        test_late_epochs(recipe, exp_dir)  # first: metrics.json marks a complete run (compare skips it)
        trained = {"epochs_trained": int(trainer.current_epoch),
                   "stopped_by_time_limit": timer.stopped_at_epoch is not None,
                   "stopped_early": bool(early is not None and early.stopped_epoch > 0),
                   "fit_wall_s": round(fit_s, 3),  # this process's trainer.fit (a resumed run: the last one's)
                   FIDELITY_KEY: FIDELITY}  # trained by code with 0.2's fidelity fixes (compare reuses only such runs)
        if gpu.peak_mb is not None:  # this process's fit, the store included (a resumed run: the last one's)
            trained["peak_gpu_mb"] = round(gpu.peak_mb)
        metrics = test(recipe, best if best.is_file() else last, out_dir=exp_dir, extra_fields=trained,
                       raw_scores=True).metrics
    return RunResult(exp_dir, best if best.is_file() else None, last if last.is_file() else None,
                     metrics, trainer.current_epoch)


def test(recipe: dict[str, Any], ckpt: str | Path, out_dir: str | Path | None = None,
         outputs: Sequence[str] = ("metrics", "predictions", "scores"), extra_fields: dict[str, Any] | None = None,
         raw_scores: bool = False):
    """Score ``ckpt`` on the test set (validation set if none) and write the output files
    (``outputs``: which of metrics.json, predictions.tsv and scores/ to write).

    ``metrics.json`` also says which sets chose and which scored: ``selection_on_test`` (true when
    the test set is the validation set), ``validation_set`` and ``test_set``; ``extra_fields`` are
    added to it (a training run: ``epochs_trained``, ``stopped_by_time_limit``, ``fit_wall_s``, and on a
    GPU ``peak_gpu_mb``). ``dcase-fpd test`` never writes into a training run's folder
    (:func:`training_run_mark`); :func:`train` does, through this function.

    ``raw_scores`` (:func:`train`): also write the checkpoint's raw frame scores of the test set and of the
    validation set (one more pass over it, outside the energy tracking) into ``raw_scores/`` before the other
    outputs, and with ``eval.postprocessing`` other than ``median`` (and ``metrics`` written), tune it on them
    into ``postprocessing/<method>/`` and add its ``<method>_*`` keys to ``metrics.json``.
    Returns the :class:`~dcase_fpd_plugin.evaluation.metrics.EvaluationResult`.
    """
    from ..evaluation.outputs import write_outputs

    if recipe["data"]["test_tsv"]:
        check_data_paths(recipe, ["test"])
    else:
        check_data_paths(recipe, ["val"])
    _configure_torch(recipe)
    task = load_task(ckpt, recipe)
    out_dir = Path(out_dir or recipe["training"]["exp_dir"])
    dm = SEDDataModule.from_recipe(task.recipe, task.n_frames, task.frame_hop_s)
    trainer = build_trainer(task.recipe, out_dir, checkpoints=False, loggers=False, single_device=True)
    with track_energy("devtest", out_dir, task.recipe) as measured:
        trainer.test(task, datamodule=dm, verbose=False)
        measured.work["clips"] = task.eval_inputs  # the work (clip-long model inputs), for report --baseline
    task.eval_result.metrics.update(protocol_fields(task.recipe, task.stored_recipe))
    task.eval_result.metrics.update(extra_fields or {})
    if raw_scores:
        _save_raw_scores(task, trainer, dm, out_dir, postprocess="metrics" in outputs)
    write_outputs(task.eval_result, out_dir, outputs)
    return task.eval_result


def _save_raw_scores(task: SEDTask, trainer: pl.Trainer, dm: SEDDataModule, out_dir: Path, postprocess: bool) -> None:
    """``raw_scores/{val,test}`` of the tested checkpoint (:func:`test`), then ``eval.postprocessing``."""
    from ..evaluation.postprocessing import StitchedProbs
    from ..evaluation.reference import read_reference
    from ..evaluation.rescoring import merge_into_run_metrics, postprocess_run, raw_score_frames, write_raw_scores

    data = task.recipe["data"]
    dm.setup("validate")
    store = StitchedProbs(dm.window_index("validate"))
    for batch in trainer.predict(task, dataloaders=dm.val_dataloader()) or []:
        for key, probs in batch.items():
            store.add(key, probs["frame"], probs["clip"])
    names = set(dm.val_set.filenames)  # not the held-out weak or soft clips of the same loader
    val = {k: v["frame"] for k, v in store.files().items() if k in names}
    test_tsv, test_dur = (data["test_tsv"], data["test_dur"]) if data["test_tsv"] else (data["val_tsv"], data["val_dur"])
    frames = [raw_score_frames(probs, task.frame_hop_s, task.classes,
                               read_reference(tsv, dur, task.classes, data["ground_truth"]).durations_s)
              for probs, tsv, dur in ((val, data["val_tsv"], data["val_dur"]),
                                      (task.test_frame_probs, test_tsv, test_dur))]
    write_raw_scores(out_dir, *frames)
    method = task.recipe["eval"]["postprocessing"]
    if postprocess and method != "median":
        merge_into_run_metrics(task.eval_result.metrics, postprocess_run(out_dir, data, task.recipe["eval"], method,
                                                                         force=True))


def training_run_mark(folder: str | Path) -> str | None:
    """What shows that ``folder`` is a training run's folder (``checkpoints/``, the ``recipe.yaml``
    training writes, its lock, a metrics.json with ``epochs_trained``), or None. ``dcase-fpd test``
    refuses such a folder as ``--out``: its results would replace the training's metrics.json
    (and drop ``epochs_trained``, ``fit_wall_s``, ``stopped_by_time_limit``)."""
    import json

    from .lock import LOCK_NAME

    folder = Path(folder)
    for name, mark in (("checkpoints", "checkpoints/"), ("recipe.yaml", "the recipe.yaml of a training"),
                       (LOCK_NAME, f"the lock {LOCK_NAME} of a training")):
        if (folder / name).exists():
            return mark
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    return "a metrics.json with epochs_trained" if isinstance(metrics, dict) and "epochs_trained" in metrics else None


def protocol_fields(recipe: dict[str, Any], trained_with: dict[str, Any] | None = None) -> dict[str, Any]:
    """What chose the checkpoint and what was scored, for ``metrics.json``.

    ``trained_with``: the recipe stored in the checkpoint (its ``data`` chose the checkpoint); by
    default ``recipe``'s. A checkpoint older than ``data.weak_val_fraction`` says nothing about a
    held-out weak share: the validation set then reads "(weak hold-out unknown)".
    """
    data = recipe["data"]
    chose = (trained_with or recipe)["data"]
    validation = str(chose.get("val_tsv"))
    if "weak_val_fraction" not in chose:
        validation += " (weak hold-out unknown)"
    elif chose["weak_val_fraction"] > 0:
        validation += f" + {chose['weak_val_fraction']:g} of {chose['weak_tsv']} (seed {chose.get('weak_val_seed', 0)})"
    test_tsv, test_folder = (data["test_tsv"], data["test_folder"]) if data["test_tsv"] else (data["val_tsv"], data["val_folder"])
    same = {"data": {"test_tsv": test_tsv, "test_folder": test_folder,
                     "val_tsv": chose.get("val_tsv"), "val_folder": chose.get("val_folder")}}
    return {"selection_on_test": selection_on_test(same), "validation_set": validation, "test_set": str(test_tsv)}


class _StitchWindows(pl.Callback):
    """Adds each predicted window's frame probabilities into an :class:`OverlapAdd` as batches
    end, so that ``trainer.predict`` need not keep every window's outputs."""

    def __init__(self, plans: dict[str, Any]):
        from ..evaluation.postprocessing import OverlapAdd

        self.plans = plans  # file name -> data.windows.FilePlan
        self.frames = OverlapAdd()
        self.windows = 0

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        from ..data.windows import split_key

        for key, probs in outputs.items():
            name, k = split_key(key)
            plan = self.plans[name]
            self.frames.add(name, plan.starts[k], probs["frame"], plan.n_frames)
            self.windows += 1


def infer(ckpt: str | Path, audio_dir: str | Path, out_tsv: str | Path, *, force: bool = False,
          threshold: float | None = None, median_window: int | None = None, scores_dir: str | Path | None = None,
          skip_unreadable: bool = False, overlap: float | None = None) -> int:
    """Detect events in every audio file of ``audio_dir``; write DESED strong TSV ``out_tsv``.

    Files of any length and sample rate (:mod:`dcase_fpd_plugin.data.windows`): a file no longer than
    the model's ``feats.clip_s`` is one clip, as in testing; a longer one is read as a stream in
    windows of the clip length sharing ``overlap`` of a window (default 0.5), whose frame
    probabilities are averaged where they overlap; median filter and threshold then run on the whole
    file's probabilities, so events lie anywhere in it (seconds from its start) and may span windows.
    A file below the model's sample rate is resampled up with a warning. ``scores_dir`` gets one
    sed_scores_eval TSV per file, over the whole file.

    Returns the number of events written.
    """
    from ..data.labels import LabelEncoder
    from ..data.windows import DEFAULT_OVERLAP
    from ..evaluation.postprocessing import decide, median_filter

    out_tsv = Path(out_tsv)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise RecipeError(f"--threshold is a probability and must lie in [0, 1], got {threshold}")
    if median_window is not None:
        from ..evaluation.postprocessing import median_windows

        try:
            median_windows(median_window, 1)
        except ValueError as exc:
            raise RecipeError(f"--median-window: {exc}") from None
    if out_tsv.is_dir():
        raise FileExistsError(f"--out {out_tsv} is a folder; give the TSV file to write (e.g. {out_tsv / 'predictions.tsv'})")
    if out_tsv.exists() and not force:
        raise FileExistsError(f"{out_tsv} exists; pass --force to overwrite it")
    task = load_task(ckpt)
    recipe = task.recipe
    if recipe["net"].get("embedding_dim"):
        raise RecipeError(f"{ckpt}: its model fuses pretrained embeddings (net.embedding_dim: "
                          f"{recipe['net']['embedding_dim']}), which dcase-fpd infer does not compute for a folder of "
                          "recordings; score such a model with dcase-fpd test on a set whose embeddings are in "
                          "data.embeddings_dir")
    ev = recipe["eval"]
    threshold = ev["threshold"] if threshold is None else threshold
    median_window = ev["median_window"] if median_window is None else median_window
    loader = folder_loader(audio_dir, recipe["data"], recipe["feats"], task.n_frames, task.frame_hop_s,
                           skip_unreadable=skip_unreadable, overlap=DEFAULT_OVERLAP if overlap is None else overlap)
    plans = loader.dataset.plans
    stitch = _StitchWindows({p.name: p for p in plans})
    trainer = build_trainer(recipe, Path(tempfile.gettempdir()), callbacks=[stitch], checkpoints=False,
                            loggers=False, single_device=True)
    with track_energy("evaluation", experiment_dir_of(ckpt, out_tsv.parent), recipe) as measured:
        trainer.predict(task, dataloaders=loader, return_predictions=False)
        measured.work["clips"] = stitch.windows  # the work (clip-long model inputs), for report --baseline
    encoder = LabelEncoder(task.classes, task.frame_hop_s, task.n_frames)
    rows, scores = [], {}
    clip_s = recipe["feats"]["clip_s"]
    for plan in plans:
        filtered = median_filter(stitch.frames.pop(plan.name), median_window)
        duration = plan.duration_s if plan.windowed else None  # a clip: its frames and events as in testing
        scores[plan.name] = filtered, duration
        for e in encoder.decode_strong(decide(filtered, threshold), plan.name, duration or clip_s):
            rows.append((e.filename, f"{e.onset:.3f}", f"{e.offset:.3f}", e.event_label))
    write_tsv(out_tsv, ("filename", "onset", "offset", "event_label"), rows)
    if scores_dir is not None:
        from ..evaluation.scores import scores_dataframe, write_scores

        for name, (filtered, duration) in scores.items():  # one table at a time: a long file's is large
            write_scores(scores_dir, {Path(name).stem: scores_dataframe(filtered, task.frame_hop_s, task.classes,
                                                                         duration_s=duration)})
    return len(rows)
