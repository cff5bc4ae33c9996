"""Bundled recipes (package data), `base:` composition, and `dcase-fpd recipes`."""

import copy
import zipfile
from pathlib import Path

import pytest
import yaml

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.recipe.schema import BUNDLED_RECIPES_DIR, RecipeError
from dcase_fpd_plugin.recipe.loading import bundled_recipes, load_recipe, recipe_summary

REPO = Path(__file__).resolve().parents[2]
FPD_TWINS = [("dcase2023_baseline", "dcase2023_baseline_fpd"), ("weak", "weak_fpd_ip"), ("weak", "weak_fpd_euc")]


def test_bundled_recipes_live_in_the_package_and_the_checkout_path_shows_them():
    names = set(bundled_recipes())
    assert {"demo", "weak", "weak_fpd_ip", "weak_fpd_euc", "dcase2023_baseline", "dcase2023_baseline_fpd"} <= names
    assert BUNDLED_RECIPES_DIR.parent.name == "recipe" and BUNDLED_RECIPES_DIR.parent.parent.name == "dcase_fpd_plugin"
    # in a checkout, recipes/ is a link to the package's folder, so recipes/x.yaml paths keep working
    assert (REPO / "recipes").resolve() == (REPO / "dcase_fpd_plugin" / "recipe" / "bundled").resolve()
    for name, path in bundled_recipes().items():  # (the installed package's, in CI's wheel environment)
        assert (REPO / "recipes" / f"{name}.yaml").read_bytes() == path.read_bytes()
        assert recipe_summary(path), f"{path} has no first comment line"
        assert load_recipe(name) == load_recipe(REPO / "recipes" / f"{name}.yaml")


@pytest.mark.parametrize("base, fpd", FPD_TWINS)
def test_fpd_recipe_is_its_baseline_plus_branches_fpd(base, fpd):
    text = yaml.safe_load((BUNDLED_RECIPES_DIR / f"{fpd}.yaml").read_text())
    assert text.keys() == {"base", "branches"} and text["base"] == base and text["branches"].keys() == {"fpd"}
    resolved, baseline = load_recipe(fpd), load_recipe(base)
    assert "base" not in resolved
    # each recipe runs in its own folder, named after it (neither file sets training.exp_dir)
    assert resolved["training"]["exp_dir"] == f"exp/{fpd}" and baseline["training"]["exp_dir"] == f"exp/{base}"
    expected = copy.deepcopy(baseline)
    expected["training"]["exp_dir"] = f"exp/{fpd}"
    expected["branches"]["fpd"] = resolved["branches"]["fpd"]
    assert resolved == expected
    assert resolved["branches"]["fpd"]["enabled"] and "fpd" not in baseline["branches"]
    # the one flag: switched off, the FPD recipe is its baseline (but for the branch's inert settings)
    off = load_recipe(fpd, ["branches.fpd.enabled=false", f"training.exp_dir=exp/{base}"])
    off["branches"].pop("fpd")
    assert off == baseline


def test_a_change_to_the_base_reaches_the_variant(tmp_path):
    (tmp_path / "base.yaml").write_text("training:\n  n_epochs: 3\n  batch_size: [4, 4, 0]\nopt:\n  lr: 0.01\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "v.yaml").write_text("base: ../base.yaml\ntraining:\n  batch_size: [2, 2, 0]\n")
    r = load_recipe(tmp_path / "sub" / "v.yaml")
    # keys of the variant override the base's; mappings merge key by key, lists replace
    assert r["training"]["n_epochs"] == 3 and r["training"]["batch_size"] == [2, 2, 0] and r["opt"]["lr"] == 0.01
    assert r["training"]["exp_dir"] == "exp/v" and "base" not in r
    (tmp_path / "base.yaml").write_text("training:\n  n_epochs: 5\n  exp_dir: runs/b\n")
    r = load_recipe(tmp_path / "sub" / "v.yaml", ["opt.lr=0.5"])
    assert r["training"]["n_epochs"] == 5 and r["training"]["exp_dir"] == "runs/b" and r["opt"]["lr"] == 0.5


def test_bundled_base_and_chains(tmp_path):
    (tmp_path / "mine.yaml").write_text("base: weak_fpd_euc\nbranches:\n  fpd:\n    alpha: 0.3\n")
    r = load_recipe(tmp_path / "mine.yaml")
    assert r["branches"]["fpd"]["distance"] == "euc" and r["branches"]["fpd"]["alpha"] == 0.3
    assert r["net"]["name"] == "cnn3" and r["training"]["n_epochs"] == 40  # from weak, two bases down


def test_errors_in_a_base_name_the_file_and_line(tmp_path):
    (tmp_path / "b.yaml").write_text("training:\n  n_epoch: 3\n")
    (tmp_path / "v.yaml").write_text("base: b.yaml\n")
    with pytest.raises(RecipeError, match=rf"{tmp_path / 'b.yaml'}:2: unknown key 'training.n_epoch'"):
        load_recipe(tmp_path / "v.yaml")


def test_missing_base_names_both_files(tmp_path):
    (tmp_path / "v.yaml").write_text("# v\nbase: nothere.yaml\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(tmp_path / "v.yaml")
    assert f"{tmp_path / 'v.yaml'}:2" in str(e.value) and str(tmp_path / "nothere.yaml") in str(e.value)
    (tmp_path / "w.yaml").write_text("base: wek\n")
    with pytest.raises(RecipeError, match=r"w.yaml:1: base 'wek' is not a bundled recipe \(bundled: .*weak"):
        load_recipe(tmp_path / "w.yaml")
    (tmp_path / "x.yaml").write_text("base: [weak]\n")
    with pytest.raises(RecipeError, match=r"x.yaml:1: 'base' must be a bundled recipe name or a path"):
        load_recipe(tmp_path / "x.yaml")


def test_cycle_names_every_file(tmp_path, capsys):
    for name, base in (("a", "b"), ("b", "c"), ("c", "a")):
        (tmp_path / f"{name}.yaml").write_text(f"base: ./{base}.yaml\n")
    with pytest.raises(RecipeError, match="cycle") as e:
        load_recipe(tmp_path / "a.yaml")
    assert all(str(tmp_path / f"{n}.yaml") in str(e.value) for n in "abc")
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "self.yaml")
    assert main(["recipes", "show", str(tmp_path / "a.yaml")]) == 2
    assert "cycle" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "a.yaml")]) == 2
    assert "cycle" in capsys.readouterr().err


def test_unknown_recipe_lists_the_bundled_ones(capsys):
    with pytest.raises(RecipeError, match=r"recipe file not found: recipes/nope.yaml \(bundled recipes.*: .*weak"):
        load_recipe("recipes/nope.yaml")
    assert main(["train", "nope"]) == 2
    assert "dcase2023_baseline_fpd" in capsys.readouterr().err


def test_recipes_command_lists_and_shows(capsys, tmp_path):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name, path in bundled_recipes().items():
        assert f"{name}  " in out and recipe_summary(path) in out
    assert main(["recipes", "show", "dcase2023_baseline_fpd", "training.seed=7"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown == load_recipe("dcase2023_baseline_fpd", ["training.seed=7"]) and "base" not in shown
    # what `show` prints is a complete recipe on its own
    (tmp_path / "copy.yaml").write_text(yaml.safe_dump(shown))
    assert load_recipe(tmp_path / "copy.yaml") == shown


def test_saved_run_recipe_is_complete(tmp_path):
    from dcase_fpd_plugin.recipe.loading import dump_recipe

    saved = tmp_path / "recipe.yaml"
    saved.write_text(dump_recipe(load_recipe("weak_fpd_ip")))
    assert "base" not in yaml.safe_load(saved.read_text())
    assert load_recipe(saved) == load_recipe("weak_fpd_ip")


def test_synth_spec_is_bundled_too():
    from dcase_fpd_plugin.synth.bench import SPEC_2046
    from dcase_fpd_plugin.synth.spec import load_spec

    assert SPEC_2046.is_file() and SPEC_2046.parent.parent.name == "synth" and "dcase_fpd_plugin" in SPEC_2046.parts
    assert load_spec("dcase2023_2046") == load_spec(REPO / "synth" / "dcase2023_2046.yaml") == load_spec(SPEC_2046)
    assert load_spec("dcase2023_2046").n_clips == 2046


def test_wheel_ships_recipes_and_spec(tmp_path):
    """The built wheel holds every bundled recipe and the synth spec (built offline, no isolation, from a
    copy of what the build reads, so that the checkout gets no build/ folder)."""
    import shutil
    import subprocess
    import sys

    src = tmp_path / "src"
    shutil.copytree(REPO / "dcase_fpd_plugin", src / "dcase_fpd_plugin",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                    "-w", str(tmp_path / "dist"), str(src)], check=True, timeout=300, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("dcase_fpd_plugin-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in bundled_recipes():
        assert f"dcase_fpd_plugin/recipe/bundled/{name}.yaml" in names
    assert "dcase_fpd_plugin/synth/specs/dcase2023_2046.yaml" in names
    assert "dcase_fpd_plugin/synth/targets/desed_validation.json" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    requires = [line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
                if line.startswith(("Requires-Dist: torch", "Requires-Python"))]
    assert "Requires-Dist: torch>=2.2" in requires and any("<3.14" in r for r in requires), requires
