"""Every set a run uses is read and checked before anything is written: a bad test TSV stops `train`
and `compare` before the first checkpoint (it used to surface only after training)."""

from __future__ import annotations

from pathlib import Path

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
