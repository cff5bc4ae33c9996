"""Every set a run uses is read and checked before anything is written: a bad test TSV stops `train`
and `compare` before the first checkpoint (it used to surface only after training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcase_fpd_plugin.cli import main


def _bad_tsv(demo_data, tmp_path) -> Path:
    good = Path(demo_data["test_tsv"]).read_text().splitlines()
    bad = tmp_path / "bad_test.tsv"
    bad.write_text("\n".join([*good, "clip_x.wav\tnot-a-number\t2.0\tDog"]) + "\n")
    return bad


def test_train_refuses_a_bad_test_tsv_before_writing(demo_data, demo_overrides, tmp_path, capsys):
    bad = _bad_tsv(demo_data, tmp_path)
    assert main(["train", "demo", *demo_overrides, f"data.test_tsv={bad}"]) == 2
    err = capsys.readouterr().err
    assert "bad_test.tsv" in err and "Traceback" not in err
    exp = tmp_path / "exp"
    assert not (exp / "checkpoints").exists() and not (exp / "recipe.yaml").exists()


def test_compare_checks_every_recipe_before_its_first_run(demo_data, demo_overrides, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = _bad_tsv(demo_data, tmp_path)
    overrides = [o for o in demo_overrides if not o.startswith(("training.exp_dir=", "data.test_tsv="))]
    (tmp_path / "first.yaml").write_text(f"base: demo\ndata:\n  test_tsv: {demo_data['test_tsv']}\n")
    (tmp_path / "second.yaml").write_text(f"base: demo\ndata:\n  test_tsv: {bad}\n")
    out = tmp_path / "cmp"
    assert main(["compare", "first.yaml", "second.yaml", "--seeds", "2", "--out", str(out), *overrides]) == 2
    err = capsys.readouterr().err
    assert "bad_test.tsv" in err and "Traceback" not in err
    assert not list(out.rglob("*.ckpt")) and not list(out.rglob("metrics.json"))


def _one_clip_set(tmp_path, seconds: float, rate: int = 16000):
    import numpy as np
    import soundfile as sf

    folder = tmp_path / "odd_test"
    folder.mkdir()
    sf.write(folder / "odd.wav", (0.1 * np.random.default_rng(0).standard_normal(int(seconds * rate))).astype("float32"),
             rate)
    (tmp_path / "odd.tsv").write_text("filename\tonset\toffset\tevent_label\nodd.wav\t0.5\t1.5\ttone_beeps\n")
    (tmp_path / "odd_dur.tsv").write_text(f"filename\tduration\nodd.wav\t{seconds}\n")
    return [f"data.test_folder={folder}", f"data.test_tsv={tmp_path / 'odd.tsv'}",
            f"data.test_dur={tmp_path / 'odd_dur.tsv'}"]


def test_a_long_test_clip_passes_the_checks_a_long_training_clip_is_refused(demo_overrides, tmp_path, capsys):
    """Test (and validation) clips of any length are scored in windows; a training clip longer than
    feats.clip_s is refused before training (the demo's feats.clip_s is 4 s)."""
    from dcase_fpd_plugin.data.windows import WindowedClips
    from dcase_fpd_plugin.recipe import load_recipe
    from dcase_fpd_plugin.training.runs import checked_data

    odd = _one_clip_set(tmp_path, 10.0)
    dm = checked_data(load_recipe("demo", [*demo_overrides, *odd]))
    index = dm.window_index("test")  # 4 s windows about 2 s apart, the last one ending with the file
    assert isinstance(dm.test_set, WindowedClips) and len(index) >= 4
    assert max(start for _, start, _ in index.values()) + dm.encoder.n_frames == index["odd.wav#0"][2]
    weak = tmp_path / "weak.tsv"
    weak.write_text("filename\tevent_labels\nodd.wav\ttone_beeps\n")
    long_weak = [f"data.weak_folder={tmp_path / 'odd_test'}", f"data.weak_tsv={weak}", "training.batch_size=[6, 1, 0]"]
    assert main(["train", "demo", *demo_overrides, *long_weak]) == 2
    err = capsys.readouterr().err
    assert "weak.tsv: 1 training clip(s) longer than feats.clip_s = 4.0 s" in err and "10.00 s" in err
    assert not (tmp_path / "exp" / "checkpoints").exists()


def test_a_clip_below_the_sample_rate_is_named_before_training(demo_overrides, tmp_path):
    from dcase_fpd_plugin.recipe import load_recipe
    from dcase_fpd_plugin.training.runs import checked_data

    recipe = load_recipe("demo", [*demo_overrides, *_one_clip_set(tmp_path, 3.0, rate=8000)])
    with pytest.warns(UserWarning, match=r"odd.tsv: 1 clip\(s\) below feats.sample_rate = 16000 Hz.*8000 Hz"):
        checked_data(recipe)
