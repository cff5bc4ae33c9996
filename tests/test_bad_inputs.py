"""Bad inputs not covered elsewhere: each gets a clear message naming what is wrong."""

import numpy as np
import pytest
import soundfile as sf
import torch

from dcase_fpd_plugin.data.audio import check_readable
from dcase_fpd_plugin.data.tsv import DataError
from dcase_fpd_plugin.models import build_model
from dcase_fpd_plugin.recipe.schema import DEFAULTS, RecipeError
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.task import load_task
from dcase_fpd_plugin.training.runs import infer


@pytest.mark.parametrize("override,pattern", [
    ("data.classes=[a, a]", "data.classes"),
    ("net.time_pool=[2, 2]", "one entry per 'net.channels' block"),
    ("training.n_epochs=0", "'training.n_epochs' must be >= 1"),
    ("data.max_missing_fraction=1.5", "'data.max_missing_fraction' must lie in"),
    ("training=3", "'training' must be a mapping"),
])
def test_recipe_value_errors(override, pattern):
    with pytest.raises(RecipeError, match=pattern):
        load_recipe(None, [override])


def test_recipe_file_errors(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("training: [unclosed\n")
    with pytest.raises(RecipeError, match=r"r.yaml: not valid YAML"):
        load_recipe(f)
    f.write_text("- a list\n")
    with pytest.raises(RecipeError, match=r"r.yaml: a recipe must be a mapping"):
        load_recipe(f)
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_empty_audio_named(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match="empty.wav: audio file holds no samples"):
        check_readable(p)


def test_unknown_net_name():
    with pytest.raises(ValueError, match="unknown net.name 'rnn'; available: cnn3"):
        build_model(dict(DEFAULTS["net"], name="rnn"), DEFAULTS["feats"], 10)


def test_foreign_checkpoint_and_missing_checkpoint(tmp_path):
    ck = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, ck)
    with pytest.raises(ValueError, match="other.ckpt: not a dcase-fpd checkpoint"):
        load_task(ck)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_task(tmp_path / "none.ckpt")


def test_infer_on_folder_without_audio(tmp_path):
    from dcase_fpd_plugin.training.task import SEDTask

    recipe = load_recipe(None, ["feats.n_mels=32", "net.channels=[8, 8, 8]", "net.freq_pool=[2, 2, 8]"])
    ck = tmp_path / "m.ckpt"
    task = SEDTask(recipe)
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": {"recipe": recipe}}, ck)
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "notes.txt").write_text("no audio here")
    with pytest.raises(FileNotFoundError, match="no audio files"):
        infer(ck, tmp_path / "audio", tmp_path / "preds.tsv")
    assert not (tmp_path / "preds.tsv").exists()


class _RunsCode:
    """Unpickling this calls os.system: what a shared checkpoint could hide."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_that_would_run_code_is_refused_not_run(tmp_path):
    """Checkpoints load with weights_only=True: an object whose unpickling runs a command, alone or
    tucked inside a real checkpoint, is refused with the file named, and the command never runs."""
    from dcase_fpd_plugin.training.task import SEDTask

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


def test_bad_psds_clips_value_names_the_key():
    from dcase_fpd_plugin.recipe.schema import RecipeError

    with pytest.raises(RecipeError, match="eval.psds_clips"):
        load_recipe(None, ["eval.psds_clips=some"])
