"""Plugin registry: unknown names, register(), and a third-party package adding a branch."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import uuid

import pytest
import torch

from dcase_fpd_plugin import registry
from dcase_fpd_plugin.branch import Batch, Branch, BranchOutput, ModelOutput
from dcase_fpd_plugin.fpd.branch import FPDBranch

THIRD_PARTY_MODULE = '''
"""A branch from outside dcase_fpd_plugin: penalises the mean squared embedding."""
import torch
from dcase_fpd_plugin.branch import Branch, BranchOutput


class EnergyBranch(Branch):
    @classmethod
    def default_config(cls):
        return {"enabled": False, "weight": 1.0}

    def forward(self, output, batch, epoch):
        loss = output.embeddings.pow(2).mean()
        return BranchOutput(loss=self.config["weight"] * loss, logs={"energy": loss.detach()})
'''


def tiny_batch(B=2, T=3, C=2, D=4):
    output = ModelOutput(
        embeddings=torch.ones(B, T, D, requires_grad=True),
        frame_probs=torch.zeros(B, T, C),
        clip_probs=torch.zeros(B, C),
    )
    batch = Batch(
        feats=torch.zeros(B, 4, T),
        strong=torch.zeros(B, T, C),
        has_strong=torch.zeros(B, dtype=torch.bool),
        weak=torch.zeros(B, C),
        has_weak=torch.zeros(B, dtype=torch.bool),
        source=torch.full((B,), 2),
        frame_valid=torch.ones(B, T, dtype=torch.bool),
    )
    return output, batch


def use_branch_like_a_recipe(name: str, section: dict) -> BranchOutput:
    """What the recipe host does with ``branches: {name: section}``."""
    cls = registry.get("branches", name)
    assert issubclass(cls, Branch)
    config = {**cls.default_config(), **section}
    branch = cls(config, embed_dim=4, classes=["x", "y"])
    output, batch = tiny_batch()
    return branch(output, batch, epoch=0)


def test_unknown_name_lists_available_names():
    with pytest.raises(registry.UnknownPluginError) as err:
        registry.get("branches", "no_such_branch")
    assert "no_such_branch" in str(err.value) and "fpd" in str(err.value)
    with pytest.raises(registry.UnknownPluginError, match="same_time"):
        registry.get("pair_samplers", "nope")
    with pytest.raises(registry.UnknownPluginError, match="wps"):
        registry.get("labellers", "nope")
    with pytest.raises(ValueError, match="group"):
        registry.get("lossess", "fpd")


def test_shipped_names_are_available():
    assert "fpd" in registry.available("branches")
    assert "same_time" in registry.available("pair_samplers")
    assert "wps" in registry.available("labellers")
    assert registry.get("branches", "fpd") is FPDBranch


def test_register_and_unregister():
    class MyBranch(Branch):
        def forward(self, output, batch, epoch):
            return BranchOutput(loss=output.embeddings.sum() * 0)

    registry.register("branches", "my_test_branch", MyBranch)
    try:
        assert registry.get("branches", "my_test_branch") is MyBranch
        assert "my_test_branch" in registry.available("branches")
        assert use_branch_like_a_recipe("my_test_branch", {"enabled": True}).loss.item() == 0.0
        # an in-process registration takes precedence over a shipped name
        registry.register("branches", "fpd", MyBranch)
        assert registry.get("branches", "fpd") is MyBranch
    finally:
        registry.unregister("branches", "my_test_branch")
        registry.unregister("branches", "fpd")
    assert registry.get("branches", "fpd") is FPDBranch
    with pytest.raises(registry.UnknownPluginError):
        registry.get("branches", "my_test_branch")


def write_package(root, dist_name: str, module: str, ep_name: str) -> None:
    (root / module).mkdir(parents=True)
    (root / module / "__init__.py").write_text(THIRD_PARTY_MODULE)
    (root / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist_name}"
            version = "0.0.1"

            [project.entry-points."dcase_fpd_plugin.branches"]
            {ep_name} = "{module}:EnergyBranch"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )


def check_third_party_branch(ep_name: str, module: str) -> None:
    assert ep_name in registry.available("branches")
    cls = registry.get("branches", ep_name)
    assert cls.__module__ == module and cls.__name__ == "EnergyBranch"
    result = use_branch_like_a_recipe(ep_name, {"enabled": True, "weight": 2.0})
    assert result.loss.item() == pytest.approx(2.0)
    assert result.logs["energy"].item() == pytest.approx(1.0)
    # a recipe names it, the host builds it (its keys validated against its default_config)
    from dcase_fpd_plugin.recipe.loading import load_recipe
    from dcase_fpd_plugin.training.task import SEDTask

    recipe = load_recipe(None, [f"branches.{ep_name}.enabled=true", f"branches.{ep_name}.weight=2.0",
                                "feats.n_mels=32", "feats.clip_s=2.0", "net.channels=[8, 8, 8]",
                                "net.freq_pool=[2, 2, 8]"])
    task = SEDTask(recipe)
    assert type(task.branches[ep_name]).__name__ == "EnergyBranch"
    assert task.branches[ep_name].config["weight"] == 2.0


def test_third_party_package_installed_with_pip_adds_a_branch(tmp_path):
    """A real package, built and pip-installed into this interpreter, then uninstalled."""
    tag = uuid.uuid4().hex[:8]
    dist_name, module, ep_name = f"fpd-test-energy-{tag}", f"fpd_test_energy_{tag}", f"energy_{tag}"
    write_package(tmp_path / "pkg", dist_name, module, ep_name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    assert ep_name not in registry.available("branches")
    subprocess.run(
        [*pip, "install", "--no-deps", "--no-build-isolation", "--no-index", str(tmp_path / "pkg")],
        check=True,
        timeout=120,
    )
    try:
        importlib.invalidate_caches()
        check_third_party_branch(ep_name, module)
    finally:
        subprocess.run([*pip, "uninstall", "-y", dist_name], check=True, timeout=120)
        sys.modules.pop(module, None)
        importlib.invalidate_caches()
    assert ep_name not in registry.available("branches")


def test_third_party_dist_info_on_sys_path_adds_a_branch(tmp_path, monkeypatch):
    """The same without pip: an installed distribution is a *.dist-info folder on sys.path."""
    tag = uuid.uuid4().hex[:8]
    module, ep_name = f"fpd_test_energy_{tag}", f"energy_{tag}"
    site = tmp_path / "site"
    site.mkdir()
    (site / module).mkdir()
    (site / module / "__init__.py").write_text(THIRD_PARTY_MODULE)
    dist_info = site / f"fpd_test_energy_{tag}-0.0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fpd-test-energy-{tag}\nVersion: 0.0.1\n")
    (dist_info / "entry_points.txt").write_text(
        f"[dcase_fpd_plugin.branches]\n{ep_name} = {module}:EnergyBranch\n"
    )
    assert ep_name not in registry.available("branches")
    monkeypatch.syspath_prepend(str(site))
    try:
        check_third_party_branch(ep_name, module)
    finally:
        sys.modules.pop(module, None)


def test_unknown_names_say_branch_not_branche():
    """#15 row 17."""
    import pytest

    from dcase_fpd_plugin import registry

    with pytest.raises(registry.UnknownPluginError, match=r"unknown branch 'nope'; available"):
        registry.get("branches", "nope")
    with pytest.raises(registry.UnknownPluginError, match=r"unknown pair sampler 'nope'"):
        registry.get("pair_samplers", "nope")
