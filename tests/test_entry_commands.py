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
