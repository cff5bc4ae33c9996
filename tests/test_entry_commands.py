"""The README's commands stay true: what the Makefile runs is accepted by the CLI."""

import re
import shlex
from pathlib import Path

from dcase_fpd_plugin.cli import build_parser
from dcase_fpd_plugin.recipe.loading import resolve_recipe

REPO = Path(__file__).resolve().parents[1]


def test_makefile_demo_command_parses():
    make = (REPO / "Makefile").read_text()
    (line,) = re.findall(r"dcase-fpd (demo[^\n]*)", make)
    args = build_parser().parse_args(shlex.split(line))
    assert args.command == "demo" and resolve_recipe(args.recipe).is_file()


def test_readme_first_screen_has_make_demo_and_make_test():
    head = (REPO / "README.md").read_text().split("---")[0]
    commands = re.findall(r"^make \w+", head, flags=re.M)
    assert commands == ["make demo", "make test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_overrides_may_follow_the_options():
    """#15 row 11: `test R --ckpt C eval.threshold=0.9` (cli.py's docstring) was 'unrecognized arguments'."""
    args = build_parser().parse_args(["test", "r.yaml", "--ckpt", "c.ckpt", "eval.threshold=0.9", "training.seed=2"])
    assert args.overrides == ["eval.threshold=0.9", "training.seed=2"] and args.ckpt == "c.ckpt"
    args = build_parser().parse_args(["train", "r.yaml", "--force", "training.seed=3"])
    assert args.overrides == ["training.seed=3"] and args.force


def test_infer_refuses_bad_flags_before_anything(tmp_path, capsys):
    """#15 rows 10, 17: `infer --threshold 2` was accepted and `--median-window 0` crashed late."""
    from dcase_fpd_plugin.cli import main

    base = ["infer", "--ckpt", str(tmp_path / "none.ckpt"), "--audio", str(tmp_path), "--out", str(tmp_path / "p.tsv")]
    assert main(base + ["--threshold", "2"]) == 2
    assert "--threshold" in capsys.readouterr().err
    assert main(base + ["--median-window", "0"]) == 2
    assert "--median-window" in capsys.readouterr().err
    assert not (tmp_path / "p.tsv").exists()


def test_did_you_mean_quotes_the_whole_key():
    import pytest

    from dcase_fpd_plugin.recipe.schema import RecipeError
    from dcase_fpd_plugin.recipe.loading import load_recipe

    with pytest.raises(RecipeError, match=r"did you mean 'training.n_epochs'\?"):
        load_recipe(None, ["training.n_epoch=3"])


def test_bad_values_are_refused_when_the_recipe_loads(tmp_path, capsys):
    """#15 row 10: these gave tracebacks (rc 1), often after the run folder was written."""
    from dcase_fpd_plugin.cli import main

    weak, crnn = str(REPO / "recipes" / "weak.yaml"), str(REPO / "recipes" / "dcase2023_baseline.yaml")
    cases = [(weak, "branches.fpd.enabled=true", "branches.fpd.distance=cosine", "branches.fpd.distance"),
             (weak, "branches.fpd.enabled=true", "branches.fpd.projection_dim=-5", "projection_dim"),
             (weak, "branches.fpd.enabled=true", "branches.fpd.wps_low=0.9", "WPS thresholds"),
             (weak, "training.batch_size_val=-4", "training.seed=1", "batch_size_val"),
             (crnn, "feats.n_mels=64", "training.seed=1", "crnn_pooling")]
    for recipe, a, b, expected in cases:
        exp = tmp_path / "exp"
        assert main(["train", recipe, a, b, f"training.exp_dir={exp}"]) == 2, (a, b)
        assert expected in capsys.readouterr().err and not exp.exists()
    bogus = tmp_path / "not.ckpt"
    bogus.write_text("hello")
    assert main(["infer", "--ckpt", str(bogus), "--audio", str(tmp_path), "--out", str(tmp_path / "p.tsv")]) == 2
    assert "not a checkpoint" in capsys.readouterr().err
    assert main(["infer", "--ckpt", str(bogus), "--audio", str(tmp_path), "--out", str(tmp_path), "--force"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_synth_help_gives_each_default_once(capsys):
    """#15 row 17: `synth --help` printed '(default: ...) (default: None)'."""
    import pytest

    with pytest.raises(SystemExit):
        build_parser().parse_args(["synth", "--help"])
    out = capsys.readouterr().out
    assert "(default: None)" not in out and "(default: 1) (default" not in out and "--soundbank" in out
