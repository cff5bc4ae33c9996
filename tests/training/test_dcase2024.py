"""The DCASE 2024 baseline recipes on DESED-format data with pretrained embeddings in DESED_task's HDF5
layout: extracted by `dcase-fpd embeddings extract` (a tiny BEATs), then trained, validated and tested."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch

from dcase_fpd_plugin.data.demo import DEMO_CLASSES
from dcase_fpd_plugin.data.tsv import DataError
from dcase_fpd_plugin.embeddings.extract import extract_embeddings
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train

#: the demo's toy classes under five of DESED's names (the 2024 recipe's sources name DESED's classes)
AS_DESED = dict(zip(DEMO_CLASSES, ["Alarm_bell_ringing", "Dog", "Speech", "Blender", "Frying"]))
TINY_BEATS = dict(embed_dim=16, encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_layers=1, conv_pos=8)  # smaller still


@pytest.fixture(scope="module")
def desed_named(demo_data, tmp_path_factory) -> dict[str, str]:
    """The demo data with its TSVs' labels renamed to DESED classes (same audio)."""
    root = tmp_path_factory.mktemp("desed_named")
    out = dict(demo_data)
    for key in ("synth_tsv", "weak_tsv", "val_tsv", "test_tsv"):
        df = pd.read_csv(demo_data[key], sep="\t", keep_default_na=False)
        col = "event_label" if "event_label" in df else "event_labels"
        df[col] = [",".join(AS_DESED[x] for x in v.split(",") if x) for v in df[col]]
        out[key] = str(root / Path(demo_data[key]).name)
        df.to_csv(out[key], sep="\t", index=False)
    return out


@pytest.fixture(scope="module")
def embeddings(desed_named, tmp_path_factory, save_tiny_beats) -> Path:
    """DESED_task's files (synth_train, weak_train, weak_val, synth_val, devtest) from a tiny BEATs."""
    root = tmp_path_factory.mktemp("emb")
    ckpt = save_tiny_beats(root / "tiny_beats.pt", **TINY_BEATS)
    recipe = load_recipe("dcase2024_baseline", _data(desed_named) + ["energy.enabled=false"])
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        extract_embeddings(recipe, ckpt, root / "beats", batch_size=12, progress=False)
    finally:
        torch.set_num_threads(n)
    return root / "beats"


def _data(paths: dict[str, str]) -> list[str]:
    """Only the synthetic and weak sources (the other sources' folders null), DESED's validation and test."""
    keys = ("synth_folder", "synth_tsv", "weak_folder", "weak_tsv", "val_folder", "val_tsv", "val_dur",
            "test_folder", "test_tsv", "test_dur")
    return [f"data.{k}={paths[k]}" for k in keys] + [
        "data.strong_folder=null", "data.unlabeled_folder=null", "data.real_maestro_train_folder=null"]


def _overrides(paths, emb_dir, tmp_path) -> list[str]:
    return _data(paths) + [
        f"data.embeddings_dir={emb_dir}", f"net.embedding_dim={TINY_BEATS['encoder_embed_dim']}",
        "feats.clip_s=4.0", f"data.cache_dir={tmp_path / 'cache'}", f"training.exp_dir={tmp_path / 'exp'}",
        "training.n_epochs=1", "training.val_every_n_epochs=1", "training.progress_bar=false",
        "training.num_threads=1", "eval.psds=false", "energy.enabled=false"]


@pytest.mark.parametrize("name", ["dcase2024_baseline", "dcase2024_baseline_fpd"])
def test_the_2024_recipes_train_validate_and_test_on_extracted_embeddings(desed_named, embeddings, tmp_path, name):
    with h5py.File(embeddings / "synth_train.hdf5", "r") as f:  # DESED_task's layout: (N, D, 496) per 10 s
        assert f["frame_embeddings"].shape[1:] == (TINY_BEATS["encoder_embed_dim"], 496)
    with pytest.warns(UserWarning, match="training source 'unlabeled' left out"):
        res = train(load_recipe(name, _overrides(desed_named, embeddings, tmp_path)))
    m = json.loads((res.exp_dir / "metrics.json").read_text())
    assert m["scored_classes"] == load_recipe(name)["data"]["eval_classes"]  # DESED's 10 of the 27
    assert m["event_f1"] is not None
    ckpt = torch.load(res.exp_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert "model.cat_tf.weight" in ckpt["state_dict"]  # the embeddings are fused before the GRU


def test_a_clip_missing_from_an_embeddings_file_is_reported_like_missing_audio(desed_named, embeddings, tmp_path):
    partial = tmp_path / "beats"
    partial.mkdir()
    for f in embeddings.glob("*.hdf5"):
        (partial / f.name).symlink_to(f)
    (partial / "synth_train.hdf5").unlink()
    with h5py.File(embeddings / "synth_train.hdf5", "r") as src, h5py.File(partial / "synth_train.hdf5", "w") as dst:
        for key in ("frame_embeddings", "global_embeddings", "filenames"):
            dst[key] = src[key][1:]  # the first clip left out
        dropped = src["filenames"][0].decode()
    with pytest.raises(DataError, match=rf"1 of 24 listed clips have no embeddings in .*synth_train.hdf5:\n  .*{dropped}"):
        train(load_recipe("dcase2024_baseline", _overrides(desed_named, partial, tmp_path)
                          + ["data.max_missing_fraction=0"]))
    assert not (tmp_path / "exp" / "checkpoints").exists()  # refused before the first step


def test_a_missing_embeddings_file_or_folder_is_named(desed_named, embeddings, tmp_path):
    from dcase_fpd_plugin.recipe.checks import check_data_paths
    from dcase_fpd_plugin.recipe.schema import RecipeError

    partial = tmp_path / "beats"
    partial.mkdir()
    for f in embeddings.glob("*.hdf5"):
        if f.name != "synth_train.hdf5":
            (partial / f.name).symlink_to(f)
    with pytest.raises(DataError, match=r"its embeddings file .*synth_train.hdf5 is not there"):
        train(load_recipe("dcase2024_baseline", _overrides(desed_named, partial, tmp_path)))
    recipe = load_recipe("dcase2024_baseline", _overrides(desed_named, tmp_path / "nowhere", tmp_path))
    with pytest.raises(RecipeError, match=r"'data.embeddings_dir': folder not found: .*nowhere"):
        check_data_paths(recipe, ["val"])
