"""Mixup within source slices (DESED_task's scheme): convex combinations, slices kept apart, p=0 identity."""

import pytest
import torch

from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, SOURCE_UL, Batch
from dcase_fpd_plugin.data.mixup import amplitude_to_db, beta_sample, db_to_amplitude, mixup_batch

N_SS, N_RW, N_UL, T, T_IN = 4, 4, 2, 5, 20


def make_batch(db_values: bool = False) -> Batch:
    """Clip i has constant features (i, or -40 + 3 i dB) and the one-hot label of class i."""
    b = N_SS + N_RW + N_UL
    source = torch.tensor([SOURCE_SS] * N_SS + [SOURCE_RW] * N_RW + [SOURCE_UL] * N_UL)
    values = (-40.0 + 3.0 * torch.arange(b)) if db_values else torch.arange(b, dtype=torch.float32)
    feats = values[:, None, None].expand(b, 3, T_IN).clone()  # (B, F, T_in)
    eye = torch.eye(b)
    has_strong = source == SOURCE_SS
    has_weak = source != SOURCE_UL
    strong = eye[:, None, :].expand(b, T, b).clone() * has_strong[:, None, None]  # (B, T, C)
    weak = eye * has_weak[:, None]  # (B, C)
    valid = torch.ones(b, T, dtype=torch.bool)
    valid[N_SS - 1, 3:] = False  # the last SS clip is padded after frame 3
    return Batch(feats=feats, strong=strong, has_strong=has_strong, weak=weak, has_weak=has_weak,
                 source=source, frame_valid=valid, filenames=[f"c{i}.wav" for i in range(b)])


def slice_rows(batch: Batch, src: int) -> torch.Tensor:
    return torch.nonzero(batch.source == src).flatten()


@pytest.mark.parametrize("seed", range(5))
def test_convex_combination_within_slices(seed):
    batch = make_batch()
    g = torch.Generator().manual_seed(seed)
    out = mixup_batch(batch, prob=1.0, alpha=0.2, label_type="soft", domain="feature", generator=g)
    assert out is not batch
    values = batch.feats[:, 0, 0]
    for src in (SOURCE_SS, SOURCE_RW):
        rows = slice_rows(batch, src)
        w = out.weak[rows]  # (n, C): the mixing weights of each mixed clip over the original clips
        outside = torch.ones(w.shape[1], dtype=torch.bool)
        outside[rows] = False
        assert torch.all(w[:, outside] == 0), "a clip was mixed with a clip of another source"
        assert torch.allclose(w.sum(1), torch.ones(len(rows)))  # convex
        # features are mixed with the same weights as the labels
        assert torch.allclose(out.feats[rows], (w @ values)[:, None, None].expand(-1, 3, T_IN), atol=1e-5)
        # one lambda per slice: the weight a clip keeps of itself is lam (or 1 where perm(i) = i)
        own = w[torch.arange(len(rows)), rows]
        mixed_own = own[own < 1 - 1e-6]
        if len(mixed_own):
            assert torch.allclose(mixed_own, mixed_own[:1].expand_as(mixed_own), atol=1e-6)
        if src == SOURCE_SS:  # strong labels mixed like the weak ones, frame by frame
            assert torch.allclose(out.strong[rows], w[:, None, :].expand(-1, T, -1), atol=1e-6)
    ul = slice_rows(batch, SOURCE_UL)
    assert torch.equal(out.feats[ul], batch.feats[ul]) and torch.equal(out.weak[ul], batch.weak[ul])
    assert torch.equal(out.source, batch.source) and out.filenames == batch.filenames


def test_mixing_actually_happens_and_input_untouched():
    batch = make_batch()
    before = batch.feats.clone()
    g = torch.Generator().manual_seed(0)
    changed = 0
    for _ in range(10):
        out = mixup_batch(batch, prob=1.0, domain="feature", generator=g)
        changed += int(not torch.equal(out.feats, batch.feats))
    assert changed >= 8
    assert torch.equal(batch.feats, before)


def test_amplitude_domain_mixes_amplitudes():
    batch = make_batch(db_values=True)
    out = mixup_batch(batch, prob=1.0, domain="amplitude", generator=torch.Generator().manual_seed(3))
    amp = db_to_amplitude(batch.feats[:, 0, 0])
    expected = amplitude_to_db(out.weak[:N_SS + N_RW] @ amp)
    assert torch.allclose(out.feats[:N_SS + N_RW, 0, 0], expected, atol=1e-4)
    assert torch.allclose(amplitude_to_db(db_to_amplitude(batch.feats)), batch.feats, atol=1e-4)


def test_hard_labels_are_the_union_and_valid_frames_too():
    batch = make_batch()
    out = mixup_batch(batch, prob=1.0, label_type="hard", domain="feature", generator=torch.Generator().manual_seed(1))
    rows = slice_rows(batch, SOURCE_SS)
    w = out.weak[rows]
    assert set(w.unique().tolist()) <= {0.0, 1.0}
    assert torch.all((w.sum(1) >= 1) & (w.sum(1) <= 2))
    for r in rows.tolist():  # valid where either source clip is valid
        partners = torch.nonzero(out.weak[r]).flatten()
        assert torch.equal(out.frame_valid[r], batch.frame_valid[partners].any(0))


def test_probability_zero_is_identity_and_half_mixes_about_half():
    batch = make_batch()
    g = torch.Generator().manual_seed(0)
    assert all(mixup_batch(batch, prob=0.0, generator=g) is batch for _ in range(20))
    mixed = sum(mixup_batch(batch, prob=0.5, generator=g) is not batch for _ in range(400))
    assert 150 < mixed < 250


def test_lambda_is_beta_02_02():
    g = torch.Generator().manual_seed(0)
    lams = torch.tensor([beta_sample(0.2, g) for _ in range(3000)])
    assert lams.min() >= 0 and lams.max() <= 1
    assert abs(float(lams.mean()) - 0.5) < 0.03
    assert abs(float(lams.var()) - 0.04 / (0.16 * 1.4)) < 0.02  # Beta(a, a): var = 1 / (4 (2a + 1))
    assert float(((lams < 0.1) | (lams > 0.9)).float().mean()) > 0.5  # U-shaped


def test_bad_options_name_the_key():
    with pytest.raises(ValueError, match="training.mixup_domain"):
        mixup_batch(make_batch(), prob=1.0, domain="log")
    with pytest.raises(ValueError, match="training.mixup_label_type"):
        mixup_batch(make_batch(), prob=1.0, label_type="medium")
