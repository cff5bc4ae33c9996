import pytest

from dcase_fpd_plugin import DESED_CLASSES
from dcase_fpd_plugin.recipe.schema import RecipeError
from dcase_fpd_plugin.recipe.checks import check_data_paths
from dcase_fpd_plugin.recipe.loading import load_recipe, parse_override
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_defaults_have_desed_classes_and_dcase_features():
    r = load_recipe()
    assert r["data"]["classes"] == list(DESED_CLASSES)
    assert (r["feats"]["sample_rate"], r["feats"]["n_fft"], r["feats"]["hop_length"], r["feats"]["n_mels"]) == (
        16000, 2048, 256, 128)


def test_shipped_recipes_load():
    for name in ("weak.yaml", "demo.yaml"):
        load_recipe(REPO / "recipes" / name)


def test_unknown_key_names_file_line_and_suggestion(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("training:\n  seed: 1\n  n_epoch: 3\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(f)
    msg = str(e.value)
    assert f"{f}:3" in msg and "training.n_epoch" in msg and "n_epochs" in msg


def test_wrong_type_names_key(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("opt:\n  lr: fast\n")
    with pytest.raises(RecipeError, match=r"r.yaml:2: 'opt.lr' must be float"):
        load_recipe(f)


def test_overrides_are_typed_and_checked():
    r = load_recipe(None, ["training.seed=3", "opt.lr=1e-4", "training.batch_size=[4, 4, 0]"])
    assert r["training"]["seed"] == 3 and r["opt"]["lr"] == pytest.approx(1e-4)
    assert r["training"]["batch_size"] == [4, 4, 0]
    with pytest.raises(RecipeError, match="training.sed"):
        load_recipe(None, ["training.sed=3"])
    with pytest.raises(RecipeError, match="key.path=value"):
        parse_override("training.seed")
    with pytest.raises(RecipeError, match="'training.seed' must be int"):
        load_recipe(None, ["training.seed=true"])


def test_int_accepted_for_float():
    r = load_recipe(None, ["opt.lr=1"])
    assert isinstance(r["opt"]["lr"], float)


def test_unknown_branch_lists_available():
    with pytest.raises(RecipeError, match=r"branches.nope.*available: .*fpd"):
        load_recipe(None, ["branches.nope.enabled=true"])


def test_bad_batch_size_refused():
    with pytest.raises(RecipeError, match="batch_size"):
        load_recipe(None, ["training.batch_size=[0, 0, 4]"])


@pytest.mark.parametrize("override, message", [
    ("eval.median_window=28", r"'eval.median_window': median window must be an odd number of frames >= 1, got 28"),
    ("eval.median_window=0", r"'eval.median_window'.*got 0"),
    ("eval.threshold=1.5", r"'eval.threshold'.*\[0, 1\], got 1.5"),
    ("eval.tagging_threshold=-0.1", r"'eval.tagging_threshold'.*got -0.1"),
])
def test_bad_post_processing_refused_at_load(override, message):
    # caught when the recipe loads, not at the first validation after an epoch of training
    with pytest.raises(RecipeError, match=message):
        load_recipe(None, [override])
    assert load_recipe(None, ["eval.median_window=29"])["eval"]["median_window"] == 29


def test_missing_data_paths_named(tmp_path):
    r = load_recipe(None, [f"data.synth_folder={tmp_path}", f"data.synth_tsv={tmp_path / 'nope.tsv'}"])
    with pytest.raises(RecipeError, match=r"'data.synth_tsv': file not found: .*nope.tsv"):
        check_data_paths(r, ["synth"])
    (tmp_path / "synth.tsv").write_text("filename\tonset\toffset\tevent_label\n")
    r_weak = load_recipe(None, [f"data.synth_folder={tmp_path}", f"data.synth_tsv={tmp_path / 'synth.tsv'}"])
    with pytest.warns(UserWarning, match=r"training source 'weak' left out: data.weak_folder is null"):
        check_data_paths(r_weak, ["weak"])  # a source without a folder is left out (as DESED_task 2024 allows)
    r_tsv = load_recipe(None, [f"data.weak_folder={tmp_path}", "training.batch_size=[0, 4, 0]"])
    with pytest.raises(RecipeError, match=r"'data.weak_tsv' is required"):
        check_data_paths(r_tsv, ["weak"])
    with pytest.raises(RecipeError, match=r"'data.val_folder' is required"):
        check_data_paths(r, ["val"])
    r0 = load_recipe(None, ["training.batch_size=[4, 0, 0]"])
    check_data_paths(r0, ["weak", "unlabeled"])  # unused sources are not required
