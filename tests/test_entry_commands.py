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
