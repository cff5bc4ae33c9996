"""The package's shape: folders by concern, small modules, import rules that ``lint-imports`` checks.

The import rules are the ``import-linter`` contracts in ``pyproject.toml``; CI also runs
``lint-imports`` itself (.ci/run). Here they are also run on copies of the package into which one
of the imports the restructuring removed is put back, to show that the contracts catch it.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dcase_fpd_plugin

PACKAGE = Path(dcase_fpd_plugin.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[1]
MAX_ROOT_MODULES = 8
MAX_MODULE_LINES = 600


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_package_root_holds_at_most_eight_modules():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root
    assert "cli.py" in root and "registry.py" in root and "branch.py" in root


def test_no_module_is_over_600_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in _modules(PACKAGE)
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_every_folder_says_what_it_owns_and_may_import():
    folders = [p for p in PACKAGE.iterdir() if p.is_dir() and any(p.glob("*.py"))]
    assert {"recipe", "training", "energy", "report", "experiments", "fpd", "models", "data", "evaluation",
            "synth", "embeddings"} <= {p.name for p in folders}
    for folder in folders:
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc, f"{folder.name}/__init__.py has no docstring"
        assert "may import" in doc.lower(), f"{folder.name}/__init__.py does not say what it may import"


def test_the_tests_mirror_the_package_folders():
    package_folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    test_folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    assert package_folders <= test_folders, package_folders - test_folders
    assert test_folders - package_folders <= {"benchmarks"}, test_folders - package_folders


# --- import rules ------------------------------------------------------------------------------------


def _lint_imports(package_parent: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with the repository's contracts on the package found under ``package_parent``."""
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install import-linter)")
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([exe, "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=package_parent,
                          env=env, capture_output=True, text=True, timeout=300)


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / "dcase_fpd_plugin"
    shutil.copytree(PACKAGE, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n" + text + "\n")


def test_the_import_contracts_hold():
    result = _lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "7 kept, 0 broken" in result.stdout


@pytest.mark.parametrize("where, line, contract", [
    # the circle the restructuring removed: GPU memory asked the runs module for the precision
    ("training/gpu_memory.py", "def _precision():\n    from .runs import resolve_precision\n", "No import circles"),
    # experiments imported the CLI for its argument parser
    ("experiments/command.py", "def _parser():\n    from ..cli import IntermixedArgumentParser\n", "Layers"),
    # a report module below training would put energy both under and over training
    ("energy/record.py", "def _macs():\n    from ..report.complexity import count_macs\n", "Layers"),
    ("fpd/loss.py", "def _host():\n    from ..training import task\n", "FPD branch never imports"),
    ("models/crnn.py", "def _read():\n    from ..data import audio\n", "Models never import data"),
    ("data/mixup.py", "def _model():\n    from ..models import crnn\n", "Data never imports models"),
    ("evaluation/scores.py", "def _model():\n    from ..models import crnn\n", "Evaluation never imports models"),
    ("synth/plan.py", "def _train():\n    from ..training import runs\n", "Synth never imports training"),
])
def test_each_removed_import_breaks_a_contract(tmp_path, where, line, contract):
    copy = _copy(tmp_path)
    _append(copy / where, line)
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout[-3000:]
    broken = [ln for ln in result.stdout.splitlines() if ln.endswith("BROKEN")]
    assert any(contract in ln for ln in broken), (contract, broken)
