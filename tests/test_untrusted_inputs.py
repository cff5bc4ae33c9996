"""Files from elsewhere run no code: a checkpoint whose unpickling would run a command, and a recipe
with a ``!!python`` tag, go through every command that reads them; each exits 2 with one line naming
the file, and the command never runs (its marker file stays absent)."""

from __future__ import annotations

import os

import pytest
import torch

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.recipe import dump_recipe, load_recipe


class _RunsCode:
    """Unpickling this calls os.system (what a shared checkpoint could hide)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(path, marker):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": {"x": _RunsCode(marker)}}, path)
    return path


def _one_error_line(err: str, name: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert name in lines[0] and "error:" in lines[0], lines[0]


@pytest.mark.parametrize("command", ["infer", "test", "report", "train --resume", "compare"])
def test_a_code_running_checkpoint_runs_nothing_through_any_command(command, demo_data, demo_overrides, tmp_path,
                                                                    capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    exp = next(o.split("=", 1)[1] for o in demo_overrides if o.startswith("training.exp_dir="))
    if command == "infer":
        ckpt = _evil_checkpoint(tmp_path / "shared.ckpt", marker)
        argv = ["infer", "--ckpt", str(ckpt), "--audio", demo_data["test_folder"], "--out", str(tmp_path / "p.tsv")]
    elif command == "test":
        ckpt = _evil_checkpoint(tmp_path / "shared.ckpt", marker)
        argv = ["test", "demo", *demo_overrides, "--ckpt", str(ckpt), "--out", str(tmp_path / "t")]
    elif command == "report":
        ckpt = _evil_checkpoint(tmp_path / "run" / "checkpoints" / "best.ckpt", marker)
        (tmp_path / "run" / "recipe.yaml").write_text(dump_recipe(load_recipe("demo", demo_overrides)))
        argv = ["report", str(tmp_path / "run")]
    elif command == "train --resume":
        ckpt = _evil_checkpoint(tmp_path / "exp" / "checkpoints" / "last.ckpt", marker)
        assert str(tmp_path / "exp") == exp
        argv = ["train", "demo", *demo_overrides, "--resume"]
    else:  # compare resumes a run folder that holds only a checkpoint
        out = tmp_path / "cmp"
        run = out / "demo" / "seed_0"
        ckpt = _evil_checkpoint(run / "checkpoints" / "last.ckpt", marker)
        overrides = [o for o in demo_overrides if not o.startswith("training.exp_dir=")]
        recipe = load_recipe("demo", [*overrides, f"training.exp_dir={run}", "training.seed=0"])
        (run / "recipe.yaml").write_text(dump_recipe(recipe))
        argv = ["compare", "demo", "--seeds", "1", "--out", str(out), *overrides]
    assert main(argv) == 2
    assert not marker.exists(), f"{command} ran the checkpoint's command"
    _one_error_line(capsys.readouterr().err, ckpt.name)


@pytest.mark.parametrize("command", ["train", "test", "recipes show", "compare"])
def test_a_recipe_with_a_python_tag_runs_nothing(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"base: demo\ntraining:\n  seed: !!python/object/apply:os.system [\"touch {marker}\"]\n")
    argv = {"train": ["train", str(recipe)], "test": ["test", str(recipe), "--ckpt", "x.ckpt"],
            "recipes show": ["recipes", "show", str(recipe)],
            "compare": ["compare", str(recipe), "--seeds", "1", "--out", str(tmp_path / "cmp")]}[command]
    assert main(argv) == 2
    assert not marker.exists()
    err = capsys.readouterr().err
    _one_error_line(err, "evil.yaml:3:")
    assert "python/object" in err


def test_a_checkpoint_that_would_run_code_is_refused_not_run(tmp_path):
    """Checkpoints load with weights_only=True: an object whose unpickling runs a command, alone or
    tucked inside a real checkpoint, is refused with the file named, and the command never runs."""
    from dcase_fpd_plugin.data.tsv import DataError
    from dcase_fpd_plugin.training.task import SEDTask, load_task

    marker = tmp_path / "ran"
    recipe = load_recipe(None, ["feats.n_mels=32", "net.channels=[8, 8, 8]", "net.freq_pool=[2, 2, 8]"])
    real = {"state_dict": SEDTask(recipe).state_dict(), "hyper_parameters": {"recipe": recipe}}
    for name, content in (("bare.ckpt", _RunsCode(marker)), ("tucked.ckpt", {**real, "extra": _RunsCode(marker)})):
        torch.save(content, tmp_path / name)
        with pytest.raises(DataError, match=f"{name}: refused: it holds objects other than tensors"):
            load_task(tmp_path / name)
        assert not marker.exists()
    torch.save(real, tmp_path / "real.ckpt")
    assert load_task(tmp_path / "real.ckpt").recipe["net"]["channels"] == [8, 8, 8]
