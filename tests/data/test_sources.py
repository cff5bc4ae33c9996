"""Training sources as a list (data.sources): resolution, soft labels, class masks, mixup within a source."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SF, SOURCE_SS, SOURCE_UL, Batch
from dcase_fpd_plugin.data.labels import LabelEncoder
from dcase_fpd_plugin.data.mixup import mixup_batch
from dcase_fpd_plugin.data.sources import SourceError, active_sources, resolve_sources
from dcase_fpd_plugin.data.tsv import DataError, read_soft_tsv
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.recipe.schema import RecipeError

CLASSES = ["a", "b", "c"]


def data_section(**kw):
    base = {"classes": CLASSES, "synth_folder": "S", "synth_tsv": "S.tsv", "weak_folder": "W", "weak_tsv": "W.tsv",
            "unlabeled_folder": None, "weak_val_fraction": 0.1}
    return {**base, **kw}


def test_default_list_is_desed_task_2023s_three_sources():
    srcs = resolve_sources(data_section(), [4, 4, 8])
    assert [(s.name, s.kind, s.folder, s.tsv, s.batch_size, s.source_id) for s in srcs] == [
        ("synth", "strong", "S", "S.tsv", 4, SOURCE_SS), ("weak", "weak", "W", "W.tsv", 4, SOURCE_RW),
        ("unlabeled", "unlabeled", None, None, 8, SOURCE_UL)]
    assert srcs[1].val_fraction == 0.1  # the weak source holds out data.weak_val_fraction
    # a source whose folder is null is left out, its slice with it
    assert [s.name for s in active_sources(data_section(), [4, 4, 8])] == ["synth", "weak"]
    assert [s.name for s in active_sources(data_section(), [0, 4, 8])] == ["weak"]


def test_a_list_of_sources_with_classes_aliases_and_keys_of_their_own():
    sources = [{"name": "real_maestro_train", "kind": "soft", "classes": ["b", "c"], "aliases": {"x": "b"},
                "val_fraction": 0.2},
               {"name": "synth", "kind": "strong"},
               {"name": "extra", "kind": "strong", "folder": "E", "tsv": "E.tsv", "embeddings": "extra_set"}]
    data = data_section(sources=sources, real_maestro_train_folder="M", real_maestro_train_tsv="M.tsv")
    soft, synth, extra = resolve_sources(data, [2, 3, 4])
    assert (soft.folder, soft.tsv, soft.source_id, soft.val_fraction) == ("M", "M.tsv", SOURCE_SF, 0.2)
    assert soft.class_mask(CLASSES) == [False, True, True] and synth.class_mask(CLASSES) is None
    assert soft.embeddings == "maestro_real_train" and synth.embeddings == "synth_train"
    assert (extra.folder, extra.tsv, extra.embeddings) == ("E", "E.tsv", "extra_set")


@pytest.mark.parametrize("sources, bs, message", [
    ([{"name": "synth", "kind": "strong"}], [4, 4], r"one slice per training source \(1"),
    ([{"name": "synth", "kind": "hard"}], [4], r"'kind' must be one of"),
    ([{"kind": "strong"}], [4], r"'name' is required"),
    ([{"name": "synth", "kind": "strong"}, {"name": "synth", "kind": "weak"}], [4, 4], "duplicate source name"),
    ([{"name": "synth", "kind": "strong", "classes": ["zzz"]}], [4], r"unknown: \['zzz'\]"),
    ([{"name": "synth", "kind": "strong", "folders": "x"}], [4], r"unknown key\(s\) \['folders'\]"),
    ([{"name": "synth", "kind": "strong", "val_fraction": 0.2}], [4], "holds out weak or soft clips only"),
    ([{"name": "unlabeled", "kind": "unlabeled"}], [4], "no labelled source has a slice"),
])
def test_bad_sources_are_refused_naming_the_entry(sources, bs, message):
    with pytest.raises(SourceError, match=message):
        resolve_sources(data_section(sources=sources), bs)


def test_recipe_checks_sources_at_load():
    with pytest.raises(RecipeError, match=r"one slice per training source"):
        load_recipe(None, ["data.sources=[{name: synth, kind: strong}]", "training.batch_size=[4, 4]"])
    with pytest.raises(RecipeError, match="net.embedding_dim"):
        load_recipe(None, ["data.embeddings_dir=/tmp"])
    with pytest.raises(RecipeError, match="'data.eval_classes'"):
        load_recipe(None, ["data.eval_classes=[nope]"])
    r = load_recipe(None, ["data.sources=[{name: synth, kind: strong}, {name: weak, kind: weak}]",
                           "training.batch_size=[4, 4]"])
    assert r["training"]["batch_size"] == [4, 4]


def test_soft_tsv_reads_maestro_and_desed_task_columns(tmp_path):
    p = tmp_path / "soft.tsv"
    p.write_text("filename\tonset\toffset\tevent_label\tscore\nm.wav\t0\t1\ta\t0.4\nm.wav\t1\t2\ta\t1\n")
    assert read_soft_tsv(p, CLASSES) == {"m.wav": [(0.0, 1.0, "a", 0.4), (1.0, 2.0, "a", 1.0)]}
    q = tmp_path / "conf.tsv"
    q.write_text("filename\tonset\toffset\tevent_label\tconfidence\nm.wav\t0\t1\tb\t0.5\n")
    assert read_soft_tsv(q, CLASSES)["m.wav"] == [(0.0, 1.0, "b", 0.5)]
    bad = tmp_path / "bad.tsv"
    bad.write_text("filename\tonset\toffset\tevent_label\tscore\nm.wav\t0\t1\ta\t1.5\n")
    with pytest.raises(DataError, match=r"bad.tsv:2: score 1.5 outside \[0, 1\]"):
        read_soft_tsv(bad, CLASSES)
    none = tmp_path / "none.tsv"
    none.write_text("filename\tonset\toffset\tevent_label\nm.wav\t0\t1\ta\n")
    with pytest.raises(DataError, match="needs one 'score'"):
        read_soft_tsv(none, CLASSES)


def test_soft_segments_become_frame_scores():
    enc = LabelEncoder(CLASSES, 0.5, 8)  # 4 s
    y = enc.encode_soft([(0.0, 1.0, "a", 0.4), (1.0, 2.0, "a", 1.0), (0.25, 1.0, "c", 0.2)])
    np.testing.assert_allclose(y[:, 0], [0.4, 0.4, 1, 1, 0, 0, 0, 0])
    np.testing.assert_allclose(y[:, 2], [0.2, 0.2, 0, 0, 0, 0, 0, 0])  # frame 0 overlaps the segment in part
    assert not y[:, 1].any()


def _batch(groups, source):
    B = len(groups)
    g = torch.Generator().manual_seed(0)
    return Batch(feats=torch.rand(B, 4, 16, generator=g) * 40, strong=(torch.rand(B, 8, 3, generator=g) > 0.5).float(),
                 has_strong=torch.ones(B, dtype=torch.bool), weak=torch.ones(B, 3), has_weak=torch.ones(B, dtype=torch.bool),
                 source=torch.tensor(source), frame_valid=torch.ones(B, 8, dtype=torch.bool),
                 source_host=torch.tensor(source), group_host=torch.tensor(groups),
                 embeddings=torch.arange(B, dtype=torch.float32)[:, None, None].expand(B, 2, 5).clone())


def test_mixup_mixes_within_each_source_and_mixes_embeddings_alike():
    # two strong sources (groups 0 and 1) of the same kind: never mixed with each other
    batch = _batch([0, 0, 0, 1, 1, 1], [SOURCE_SS] * 6)
    torch.manual_seed(1)
    out = mixup_batch(batch, prob=1.0, domain="feature")
    emb = out.embeddings[:, 0, 0]  # clip i's embeddings were the constant i: a mix of its partners' indices
    assert torch.all(emb[:3] <= 2.0) and torch.all(emb[3:] >= 3.0)
    assert not torch.equal(out.feats, batch.feats)
    # the features are mixed with the same lam and partner as the embeddings
    for i in range(6):
        lam_partner = emb[i]
        candidates = range(3) if i < 3 else range(3, 6)
        assert any(torch.allclose(out.feats[i], batch.feats[i] if j == i else
                                  (lam := _lam(batch, out, i, j)) * batch.feats[i] + (1 - lam) * batch.feats[j],
                                  atol=1e-4) for j in candidates), (i, lam_partner)


def _lam(batch, out, i, j):
    """The lam that makes clip i's embeddings (value i) the mix with clip j's (value j)."""
    if i == j:
        return 1.0
    return float((out.embeddings[i, 0, 0] - j) / (i - j))


def test_collate_carries_class_masks_and_groups():
    from dcase_fpd_plugin.data.datasets import collate

    def item(mask, group):
        return {"feats": torch.zeros(4, 16), "strong": torch.zeros(8, 3), "has_strong": True, "weak": torch.zeros(3),
                "has_weak": True, "source": SOURCE_SS, "n_valid_frames": 8, "filename": "x.wav", "group": group,
                "class_mask": mask}

    b = collate([item(None, 0), item(torch.tensor([True, False, True]), 3)])
    assert b.class_mask.tolist() == [[True, True, True], [True, False, True]]
    assert b.group_host.tolist() == [0, 3] and b.embeddings is None
    assert collate([item(None, 0), item(None, 1)]).class_mask is None  # no mask: the batch as before
