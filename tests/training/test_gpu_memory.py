"""dcase_fpd_plugin.training.gpu_memory: the cap a recipe sets, the peak a fit records, the out-of-memory hint.
No CUDA here: torch's CUDA memory calls are replaced by fakes as strict as torch's."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from dcase_fpd_plugin.training import gpu_memory
from dcase_fpd_plugin.training.gpu_memory import GpuMemory, limit_gpu_memory, memory_levers
from dcase_fpd_plugin.recipe.schema import RecipeError
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recipes" / "demo.yaml"


class Interrupt(Exception):
    pass


class _FakeProps:
    total_memory = 80 * 2**30


def _strict_fraction_setter(calls):
    """As torch's: the device must be an index (``cuda`` alone is refused)."""
    def set_fraction(fraction, device=None):
        if not isinstance(device, int):
            raise ValueError(f"Expected a torch.device with a specified index or an integer, but got:{device}")
        calls.append((fraction, device))
    return set_fraction


def test_gpu_memory_limit_sets_the_fraction_of_the_cuda_device(monkeypatch):
    set_calls, expanded = [], []
    monkeypatch.setattr(gpu_memory, "expand_cuda_segments", lambda: expanded.append(len(set_calls)))
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: _FakeProps())
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", _strict_fraction_setter(set_calls))
    assert limit_gpu_memory(2, "cuda:1") == pytest.approx(2 / 80)
    assert limit_gpu_memory(4, "cuda") == pytest.approx(4 / 80)  # no index: the current device
    assert limit_gpu_memory(None, torch.device("cuda", 1)) is None  # lifts the cap
    assert set_calls == [(pytest.approx(2 / 80), 1), (pytest.approx(4 / 80), 3), (1.0, 1)]
    assert expanded == [1, 2]  # segments made expandable with each cap (after it), not when it is lifted
    assert limit_gpu_memory(2, "cpu") is None and limit_gpu_memory(None, "cpu") is None  # no cap on a CPU
    assert len(set_calls) == 3 and len(expanded) == 2
    with pytest.raises(RecipeError, match="gpu_memory_limit_gb.*more than cuda:0 holds"):
        limit_gpu_memory(81, "cuda:0")
    assert len(set_calls) == 3 and len(expanded) == 2


def test_gpu_memory_limit_holds_for_the_fit_only_and_bad_values_are_refused(demo_overrides, monkeypatch):
    seen = []
    monkeypatch.setattr(gpu_memory, "limit_gpu_memory", lambda gb, device: seen.append((gb, torch.device(device).type)))
    train(load_recipe(DEMO, demo_overrides + ["training.gpu_memory_limit_gb=1.5", "training.n_epochs=1"]))
    assert seen == [(1.5, "cpu"), (None, "cpu")]  # set on the trainer's device, lifted after the fit
    seen.clear()
    with pytest.raises(Interrupt):  # Lightning calls no teardown hook after an error: lifted all the same
        train(load_recipe(DEMO, demo_overrides + ["training.gpu_memory_limit_gb=1.5", "training.n_epochs=1"]),
              force=True, callbacks=[RaiseAtEpoch(Interrupt())])
    assert seen == [(1.5, "cpu"), (None, "cpu")]
    for bad in ("0", "-1", "true", "lots"):
        with pytest.raises(RecipeError, match="gpu_memory_limit_gb"):
            load_recipe(DEMO, [f"training.gpu_memory_limit_gb={bad}"])


def test_peak_gpu_memory_goes_into_metrics_json_after_a_fit_that_trained(demo_overrides, monkeypatch):
    assert gpu_memory.peak_gpu_mb("cpu") is None
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda index: 1536 * 2**20 if index == 0 else 0)
    assert gpu_memory.peak_gpu_mb("cuda:0") == 1536.0
    ov = demo_overrides + ["training.n_epochs=1"]
    cpu_run = json.loads((train(load_recipe(DEMO, ov)).exp_dir / "metrics.json").read_text())
    assert "peak_gpu_mb" not in cpu_run and cpu_run["epochs_trained"] == 1
    monkeypatch.setattr(gpu_memory, "peak_gpu_mb", lambda device: 1234.4)  # as a CUDA device would report it
    gpu_run = json.loads((train(load_recipe(DEMO, ov), force=True).exp_dir / "metrics.json").read_text())
    assert gpu_run["peak_gpu_mb"] == 1234
    # resumed after its last epoch (e.g. killed during the tests): no step trained here, so no peak
    again = json.loads((train(load_recipe(DEMO, ov), resume=True).exp_dir / "metrics.json").read_text())
    assert "peak_gpu_mb" not in again and again["epochs_trained"] == 1


class RaiseAtEpoch(pl.Callback):
    def __init__(self, exc):
        self.exc = exc

    def on_train_epoch_start(self, trainer, pl_module):
        raise self.exc


CUDA_OOM = torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 512.00 MiB")
CUDNN_NO_ENGINE = RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED. unable to find an engine to execute this")


@pytest.mark.parametrize("limit, exc, hint", [(None, CUDA_OOM, True), (1.5, CUDA_OOM, True),
                                              (1.5, CUDNN_NO_ENGINE, True), (None, CUDNN_NO_ENGINE, False),
                                              (None, RuntimeError("shape mismatch"), False),
                                              (1.5, RuntimeError("shape mismatch"), False)])
def test_out_of_memory_says_what_to_change(demo_overrides, monkeypatch, capsys, limit, exc, hint):
    monkeypatch.setattr(gpu_memory, "limit_gpu_memory", lambda gb, device: None)  # no CUDA here
    ov = demo_overrides + ["training.n_epochs=1"] + ([f"training.gpu_memory_limit_gb={limit}"] if limit else [])
    with pytest.raises(type(exc)):
        train(load_recipe(DEMO, ov), callbacks=[RaiseAtEpoch(exc)])
    err = capsys.readouterr().err
    if not hint:  # not a memory error (cuDNN's no-engine is one only under a cap): the error's own message only
        assert "out of GPU memory" not in err
        return
    assert "dcase-fpd: out of GPU memory" in err
    assert (f"under training.gpu_memory_limit_gb={limit}" in err) == (limit is not None)
    assert "training.precision=bf16-mixed" in err and "training.batch_size" in err  # the demo: a CNN, fp32
    assert "feature store holds" not in err  # the demo's store is on the CPU: not part of the GPU's memory


def test_memory_levers_name_only_what_the_recipe_does_not_use_yet():
    crnn = load_recipe(REPO / "recipes" / "dcase2023_baseline.yaml", [])
    levers = " | ".join(memory_levers(crnn, store_on_gpu=True))
    for change in ("training.precision=bf16-mixed", "net.crnn_checkpoint_blocks=2", "training.teacher_first=true",
                   "data.feature_store_dtype=float16", "data.feature_store=off", "training.batch_size"):
        assert change in levers
    lean = load_recipe(REPO / "recipes" / "dcase2023_baseline.yaml", [
        "training.precision=bf16-mixed", "net.crnn_checkpoint_blocks=2", "training.teacher_first=true",
        "data.feature_store_dtype=float16"])
    levers = " | ".join(memory_levers(lean, store_on_gpu=True))
    assert "data.feature_store=off" in levers and "training.batch_size" in levers
    for used in ("precision", "teacher_first", "feature_store_dtype", "checkpoint_blocks"):
        assert used not in levers
    one_block = load_recipe(REPO / "recipes" / "dcase2023_baseline.yaml", ["net.crnn_checkpoint_blocks=1"])
    assert "net.crnn_checkpoint_blocks=2" in " | ".join(memory_levers(one_block, store_on_gpu=False))
    cnn = load_recipe(DEMO, [])  # no mean teacher, no CRNN, store on the host: neither of those levers
    levers = " | ".join(memory_levers(cnn, store_on_gpu=False))
    assert "teacher_first" not in levers and "checkpoint_blocks" not in levers and "feature_store" not in levers


def test_a_failing_memory_hint_leaves_the_error_alone(capsys):
    """The hint is built inside Lightning's exception hook: if building it fails (a recipe dict without the
    keys it reads), nothing is printed and nothing is raised, so the out-of-memory error stays the one seen."""

    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), datamodule=None)
    GpuMemory({"training": {"gpu_memory_limit_gb": None}}).on_exception(trainer, None, CUDA_OOM)
    assert capsys.readouterr().err == ""
    GpuMemory(load_recipe(REPO / "recipes" / "dcase2023_baseline.yaml", [])).on_exception(trainer, None, CUDA_OOM)
    assert "net.crnn_checkpoint_blocks=2" in capsys.readouterr().err  # the same call with a whole recipe: a hint
