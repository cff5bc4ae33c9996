"""The typed recipe schema: one place for every key's type, default, allowed values and doc."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.recipe import load_recipe
from dcase_fpd_plugin.recipe import schema
from dcase_fpd_plugin.recipe.schema import CHOICES, DEFAULTS, SECTIONS, RecipeError, section_keys, section_of

REPO = Path(__file__).resolve().parents[2]


def _doc_script():
    spec = importlib.util.spec_from_file_location("recipe_keys_doc", REPO / "scripts" / "recipe_keys_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_usage_md_key_tables_are_the_schemas():
    doc = _doc_script()
    assert doc.current_block(doc.USAGE.read_text()) == doc.generated_block(), \
        "docs/usage.md's recipe key tables differ from the schema: run python scripts/recipe_keys_doc.py"


def test_a_schema_change_makes_the_tables_drift(monkeypatch):
    doc = _doc_script()
    real = schema.section_keys

    def reseeded(section):  # the schema with training.seed's default changed
        for k in real(section):
            yield schema.dataclasses.replace(k, default=7) if k.path == "training.seed" else k

    monkeypatch.setattr(schema, "section_keys", reseeded)
    assert doc.current_block(doc.USAGE.read_text()) != doc.generated_block()
    assert doc.main(["--check"]) == 1


def test_every_key_usage_md_names_exists():
    text = (REPO / "docs" / "usage.md").read_text()
    known = {k.path for s in SECTIONS for k in section_keys(s)}
    named = set(re.findall(r"`((?:data|feats|net|training|opt|eval|energy)\.[a-z_0-9]+)(?![a-z_0-9.])", text))
    named -= {"energy.json", "energy.csv"}  # files, not keys
    assert named and named <= known, sorted(named - known)


def test_recipes_keys_training_lists_type_default_and_doc(capsys):
    assert main(["recipes", "keys", "training"]) == 0
    out = capsys.readouterr().out
    for k in section_keys("training"):
        line = next((ln for ln in out.splitlines() if ln.split()[:1] == [k.path]), None)
        assert line is not None, k.path
        assert k.type_name in line and k.doc[:30] in line
    assert re.search(r"^training\.seed\s+int\s+42\s+seed of", out, re.M)
    assert "data." not in out


def test_recipes_keys_all_sections_and_a_bad_one(capsys):
    assert main(["recipes", "keys"]) == 0
    out = capsys.readouterr().out
    assert all(f"\n{s}: " in "\n" + out for s in SECTIONS) and "branches.fpd.alpha" in out
    assert main(["recipes", "keys", "trainig"]) == 2
    assert "sections: data, feats" in capsys.readouterr().err


def test_defaults_types_and_choices_come_from_the_schema():
    resolved = load_recipe(None)
    for s in SECTIONS:
        assert resolved[s] == DEFAULTS[s] == {k.path.split(".", 1)[1]: k.default for k in section_keys(s)}
    assert CHOICES["net.name"] == ("cnn3", "crnn", "conformer")
    assert CHOICES["energy.tracking_mode"] == ("machine", "process")
    with pytest.raises(RecipeError, match="'energy.tracking_mode' must be one of machine, process"):
        load_recipe(None, ["energy.tracking_mode=galaxy"])
    with pytest.raises(RecipeError, match="'training.max_train_s' must be int or float or null"):
        load_recipe(None, ["training.max_train_s=soon"])
    with pytest.raises(RecipeError, match="'feats.n_mels' must be int"):
        load_recipe(None, ["feats.n_mels=1.5"])


def test_every_key_has_a_doc_and_mutable_defaults_are_not_shared():
    for s in SECTIONS:
        for k in section_keys(s):
            assert k.doc.strip(), k.path
    a, b = schema.Data(), schema.Data()
    a.classes.append("x")
    assert "x" not in b.classes and "x" not in DEFAULTS["data"]["classes"]


def test_a_room_gets_its_section_typed():
    recipe = load_recipe(None, ["net.name=crnn", "feats.n_mels=256"])
    net, feats = section_of(recipe, "net"), section_of(recipe, "feats")
    assert isinstance(net, schema.Net) and net.name == "crnn" and feats.n_mels == 256
