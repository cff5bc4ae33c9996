"""The README's commands stay true: what the Makefile runs is accepted by the CLI."""

import re
import shlex
from pathlib import Path

from dcase_fpd_plugin.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def test_makefile_demo_command_parses():
    make = (REPO / "Makefile").read_text()
    (line,) = re.findall(r"dcase-fpd (demo[^\n]*)", make)
    args = build_parser().parse_args(shlex.split(line))
    assert args.command == "demo" and Path(args.recipe).is_file()


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

    from dcase_fpd_plugin.recipe import RecipeError, load_recipe

    with pytest.raises(RecipeError, match=r"did you mean 'training.n_epochs'\?"):
        load_recipe(None, ["training.n_epoch=3"])
