"""Bad inputs not covered elsewhere: each gets a clear message naming what is wrong."""

from pathlib import Path

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


def test_bad_psds_clips_value_names_the_key():
    from dcase_fpd_plugin.recipe.schema import RecipeError

    with pytest.raises(RecipeError, match="eval.psds_clips"):
        load_recipe(None, ["eval.psds_clips=some"])


# --- #27 item 5 (part) and item 7: through the CLI, one line on stderr and exit 2, not a traceback ---

_DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"


def _cli_error(capsys, argv, one_line: bool = True) -> str:
    from dcase_fpd_plugin.cli import main

    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dcase-fpd {argv[0]}: error: ")
    if one_line:
        assert err.count("\n") == 1, err
    return err


def _without_exp_dir(overrides):
    return [o for o in overrides if not o.startswith("training.exp_dir=")]


@pytest.fixture(scope="module")
def trained_run(demo_data, tmp_path_factory):
    """(overrides without training.exp_dir, the folder of a finished 1-epoch demo training)."""
    from dcase_fpd_plugin.cli import main

    tmp = tmp_path_factory.mktemp("trained_run")
    overrides = [f"data.{k}={v}" for k, v in demo_data.items()] + [
        "feats.clip_s=4.0", f"data.cache_dir={tmp / 'cache'}", "training.n_epochs=1", "training.batch_size=[6, 6, 0]",
        "training.progress_bar=false", "training.num_threads=1", "eval.psds=false"]
    exp = tmp / "exp"
    assert main(["train", str(_DEMO), *overrides, f"training.exp_dir={exp}"]) == 0
    return overrides, exp


@pytest.mark.parametrize("batch_size,what,key", [("[6, 200, 0]", "weak", "data.weak_tsv"),
                                                 ("[200, 6, 0]", "synthetic", "data.synth_tsv")])
def test_a_batch_slice_larger_than_its_set(demo_overrides, capsys, batch_size, what, key):
    """#27 5a: `ValueError: a source has 22 clips, fewer than its batch slice of 200` (a traceback)."""
    err = _cli_error(capsys, ["train", str(_DEMO), *demo_overrides, f"training.batch_size={batch_size}"])
    assert f"training.batch_size {batch_size}: 200 {what} clips per batch, but the {what} set ({key} " in err
    assert "lower training.batch_size[" in err
    exp = Path(next(o for o in demo_overrides if o.startswith("training.exp_dir=")).split("=", 1)[1])
    assert not exp.exists()  # refused before anything was written


def test_an_exp_dir_that_cannot_be_created(demo_overrides, tmp_path, capsys, monkeypatch):
    """#27 5b: NotADirectoryError / PermissionError tracebacks for training.exp_dir."""
    import errno
    import os

    overrides = _without_exp_dir(demo_overrides)
    (tmp_path / "afile").write_text("x")
    err = _cli_error(capsys, ["train", str(_DEMO), *overrides, f"training.exp_dir={tmp_path / 'afile' / 'exp'}"])
    assert "training.exp_dir" in err and "afile is a file, not a folder" in err
    assert (tmp_path / "afile").read_text() == "x"

    read_only = tmp_path / "read_only"
    read_only.mkdir()
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):  # a folder this user may not write in (chmod is moot for root)
        if os.path.dirname(os.fspath(path)) == str(read_only):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    err = _cli_error(capsys, ["train", str(_DEMO), *overrides, f"training.exp_dir={read_only / 'exp'}"])
    assert f"training.exp_dir {read_only / 'exp'} cannot be created (permission denied" in err
    assert list(read_only.iterdir()) == []


def _damage(path, how: str) -> None:
    data = bytearray(path.read_bytes())
    half = len(data) // 2
    if how == "bytes_zeroed_inside":  # torch would load it: weights silently damaged
        data[half:half + 1000] = bytes(1000)
    elif how == "start_zeroed":
        data[:100] = bytes(100)
    elif how == "truncated":
        data = data[:half]
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["bytes_zeroed_inside", "start_zeroed", "truncated", "empty"])
def test_resume_from_a_corrupt_last_checkpoint(trained_run, tmp_path, capsys, how):
    """#27 5c: a corrupt or truncated checkpoints/last.ckpt on --resume (raw errors, or a silent resume)."""
    import shutil

    overrides, run = trained_run
    exp = tmp_path / "exp"
    shutil.copytree(run, exp)
    last = exp / "checkpoints" / "last.ckpt"
    _damage(last, how)
    before = {p: p.read_bytes() for p in exp.rglob("*") if p.is_file()}
    err = _cli_error(capsys, ["train", str(_DEMO), *overrides, f"training.exp_dir={exp}", "training.n_epochs=2",
                              "--resume"])
    assert f"{last}: " in err and "--resume cannot continue from it" in err
    expected = {"bytes_zeroed_inside": "fails its checksum", "empty": "an empty file",  # each its own message
                "start_zeroed": "corrupt", "truncated": "corrupt"}[how]
    assert expected in err and "could run code" not in err
    assert {p: p.read_bytes() for p in exp.rglob("*") if p.is_file()} == before


def test_a_file_name_with_leading_spaces_shows_them(demo_overrides, demo_data, tmp_path, capsys):
    """#27 5d: a listed file named '  x.wav' on disk was reported as x.wav (the TSV's names are read
    without the spaces around them), so the message named a file that looked present."""
    import shutil

    weak = tmp_path / "weak"
    shutil.copytree(Path(demo_data["weak_folder"]), weak)
    (weak / "weak_0003.wav").rename(weak / "  weak_0003.wav")
    tsv = tmp_path / "weak.tsv"
    tsv.write_text(Path(demo_data["weak_tsv"]).read_text().replace("\nweak_0003.wav", "\n  weak_0003.wav"))
    err = _cli_error(capsys, ["train", str(_DEMO), *demo_overrides, f"data.weak_folder={weak}",
                              f"data.weak_tsv={tsv}"], one_line=False)
    assert "weak_0003.wav: audio file not found (its folder holds '  weak_0003.wav', not 'weak_0003.wav'" in err


def test_a_tsv_message_quotes_the_file_name(tmp_path):
    from dcase_fpd_plugin.data.tsv import read_weak_tsv

    tsv = tmp_path / "w.tsv"
    tsv.write_text("filename\tevent_labels\na b.wav\tDog\na b.wav\tCat\n")
    with pytest.raises(DataError, match=r"w.tsv:3: 'a b.wav' listed twice"):
        read_weak_tsv(tsv)


@pytest.mark.parametrize("kept", ["all", "metrics.json", "recipe.yaml"])
def test_test_out_refuses_a_training_runs_folder(trained_run, tmp_path, capsys, kept):
    """#27 item 7: `test --out RUN --force` replaced the training's metrics.json and dropped
    epochs_trained, fit_wall_s and stopped_by_time_limit."""
    import shutil

    overrides, run = trained_run
    out = tmp_path / "run"
    if kept == "all":
        shutil.copytree(run, out)
    else:
        out.mkdir()
        shutil.copy(run / kept, out / kept)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    err = _cli_error(capsys, ["test", str(_DEMO), *overrides, f"training.exp_dir={run}", "--ckpt",
                              str(run / "checkpoints" / "best.ckpt"), "--out", str(out), "--force"])
    assert f"--out {out} is a training run's folder" in err and "choose another --out" in err
    assert f"{run / 'tests' / 'best_<time>'}" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_a_checkpoint_saved_without_checksums_loads(tmp_path):
    """torch.serialization.set_crc32_options(False) writes no CRC-32s: nothing to check, not 'corrupt'."""
    from dcase_fpd_plugin.training.task import read_checkpoint

    set_crc = getattr(torch.serialization, "set_crc32_options", None)
    if set_crc is None:
        pytest.skip("this torch always writes checksums")
    set_crc(False)
    try:
        torch.save({"state_dict": {"w": torch.arange(1000.0)}, "hyper_parameters": {"recipe": load_recipe(None)}},
                   tmp_path / "nocrc.ckpt")
    finally:
        set_crc(True)
    state, _ = read_checkpoint(tmp_path / "nocrc.ckpt")
    assert torch.equal(state["state_dict"]["w"], torch.arange(1000.0))
