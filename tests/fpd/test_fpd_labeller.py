"""WPS labeller: strong labels for SS, thresholded pseudo-labels for RW, nothing for UL."""

from __future__ import annotations

import pytest
import torch

from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, SOURCE_UL, Batch, ModelOutput
from dcase_fpd_plugin.fpd.labeller import WPSLabeller, wps_labels

B, T, C = 4, 5, 3


def make_batch(frame_valid=None):
    source = torch.tensor([SOURCE_SS, SOURCE_RW, SOURCE_RW, SOURCE_UL])
    strong = torch.zeros(B, T, C)
    strong[0, 1:3, 0] = 1.0
    strong[0, 2:5, 2] = 1.0
    weak = torch.zeros(B, C)
    weak[0] = torch.tensor([1.0, 0.0, 1.0])
    weak[1] = torch.tensor([1.0, 1.0, 0.0])  # RW clip 1 tagged with classes 0 and 1
    weak[2] = torch.tensor([0.0, 0.0, 1.0])  # RW clip 2 tagged with class 2
    return Batch(
        feats=torch.zeros(B, 8, 20),
        strong=strong,
        has_strong=torch.tensor([True, False, False, False]),
        weak=weak,
        has_weak=torch.tensor([True, True, True, False]),
        source=source,
        frame_valid=torch.ones(B, T, dtype=torch.bool) if frame_valid is None else frame_valid,
    )


def make_output(probs):
    return ModelOutput(embeddings=torch.zeros(B, T, 6), frame_probs=probs, clip_probs=probs.amax(1))


def rw_probs():
    probs = torch.full((B, T, C), 0.1)
    # clip 1: class 0 confident at t=0,1; unsure at t=2; class 1 confident at t=1;
    # class 2 (not tagged) high everywhere -> never active
    probs[1, 0:2, 0] = 0.9
    probs[1, 2, 0] = 0.5
    probs[1, 1, 1] = 0.8
    probs[1, :, 2] = 0.95
    # clip 2: class 2 confident at t=3, exactly at the thresholds at t=0 (low) and t=4 (high)
    probs[2, 3, 2] = 0.99
    probs[2, 0, 2] = 0.3
    probs[2, 4, 2] = 0.7
    # UL clip: high everywhere, must still be unused
    probs[3] = 0.9
    return probs


def test_labels_and_validity_after_warm_up():
    batch = make_batch()
    labels, valid = WPSLabeller(high=0.7, low=0.3, start_epoch=2)(make_output(rw_probs()), batch, epoch=2)
    assert labels.shape == (B, T, C) and valid.shape == (B, T) and valid.dtype == torch.bool
    # SS: strong labels, all valid
    assert torch.equal(labels[0], batch.strong[0]) and valid[0].all()
    # RW clip 1
    want1 = torch.zeros(T, C)
    want1[0:2, 0] = 1.0
    want1[1, 1] = 1.0
    assert torch.equal(labels[1], want1)
    assert valid[1].tolist() == [True, True, False, True, True]
    # RW clip 2: p = low -> unsure (invalid); p = high -> active
    want2 = torch.zeros(T, C)
    want2[3, 2] = 1.0
    want2[4, 2] = 1.0
    assert torch.equal(labels[2], want2)
    assert valid[2].tolist() == [False, True, True, True, True]
    # UL: nothing
    assert not valid[3].any() and not labels[3].any()


def test_before_start_epoch_rw_frames_take_no_pair():
    labels, valid = WPSLabeller(start_epoch=3)(make_output(rw_probs()), make_batch(), epoch=2)
    assert valid[0].all()
    assert not valid[1:].any()


def test_padding_is_invalid():
    frame_valid = torch.ones(B, T, dtype=torch.bool)
    frame_valid[:, -2:] = False
    _, valid = WPSLabeller(start_epoch=0)(make_output(rw_probs()), make_batch(frame_valid), epoch=0)
    assert not valid[:, -2:].any() and valid[0, :-2].all()


def test_no_gradient_through_labels():
    probs = rw_probs().requires_grad_(True)
    labels, _ = WPSLabeller(start_epoch=0)(make_output(probs), make_batch(), epoch=0)
    assert not labels.requires_grad


def test_wps_labels_function_matches_loop():
    gen = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 7, 4, generator=gen)
    weak = (torch.rand(6, 4, generator=gen) < 0.5).float()
    labels, confident = wps_labels(probs, weak, high=0.6, low=0.4)
    for b in range(6):
        for t in range(7):
            unsure = False
            for c in range(4):
                tagged = weak[b, c] == 1
                assert labels[b, t, c] == float(tagged and probs[b, t, c] >= 0.6)
                unsure |= bool(tagged and 0.4 <= probs[b, t, c] < 0.6)
            assert confident[b, t] == (not unsure)


def test_from_config_and_bad_thresholds():
    lab = WPSLabeller.from_config({"wps_high": 0.8, "wps_low": 0.2, "wps_start_epoch": 1})
    assert (lab.high, lab.low, lab.start_epoch) == (0.8, 0.2, 1)
    with pytest.raises(ValueError, match="low"):
        WPSLabeller(high=0.3, low=0.7)
    with pytest.raises(ValueError, match="start_epoch"):
        WPSLabeller(start_epoch=-1)
    with pytest.raises(ValueError, match="frame_probs"):
        WPSLabeller()(make_output(torch.zeros(B, T + 1, C)), make_batch(), epoch=0)


def test_mixed_weak_labels_make_uncertain_frame_labels():
    """Under mixup a RW clip's weak label is soft: a class only its partner holds (share 0.3) is
    tagged, and where it is active its frame label is 0.3, so the sampler pairs that frame with
    nothing; a mixed SS clip's soft strong labels pass through and are left out the same way."""
    from dcase_fpd_plugin.fpd.sampler import certain_frames, pair_masks

    batch = make_batch()
    batch.weak[1] = torch.tensor([0.7, 0.3, 0.0])
    batch.strong[0, 0, 1] = 0.3  # SS clip mixed: class 1 at share 0.3 at t=0
    probs = rw_probs()
    probs[1, 3, 1] = 0.9  # the partner's class active at t=3
    labels, valid = WPSLabeller(start_epoch=0)(make_output(probs), batch, epoch=0)
    assert labels.dtype == torch.float32
    assert labels[1, 3, 1] == pytest.approx(0.3) and labels[1, 0, 0] == pytest.approx(0.7)
    certain = certain_frames(labels)
    assert not certain[1, 3] and not certain[0, 0] and not certain[1, 0]
    assert certain[1, 4]  # nothing tagged is active there: background, certain
    pos, neg = pair_masks(labels, valid)
    for t, clip in ((3, 1), (0, 0), (0, 1)):
        assert not pos[t, clip].any() and not neg[t, clip].any()
        assert not pos[t, :, clip].any() and not neg[t, :, clip].any()


def test_a_real_mixup_batch_pairs_only_its_certain_frames():
    """mixup_batch as training runs it (soft labels) -> WPS labeller -> pair sampler: no pair has a
    frame with a soft label, and the frames both partners hold alike still pair."""
    from dcase_fpd_plugin.data.mixup import mixup_batch
    from dcase_fpd_plugin.fpd.sampler import SameTimePairSampler

    n, t, c = 6, 20, 3
    strong = torch.zeros(n, t, c)
    strong[:, 0:4, 0] = 1.0  # every clip holds class 0 at the start: still 1 after mixing
    for i in range(n):
        strong[i, 6 + 2 * i:12 + 2 * i, i % c] = 1.0
    batch = Batch(feats=torch.randn(n, 8, 40), strong=strong, has_strong=torch.ones(n, dtype=torch.bool),
                  weak=strong.amax(1), has_weak=torch.ones(n, dtype=torch.bool),
                  source=torch.full((n,), SOURCE_SS), frame_valid=torch.ones(n, t, dtype=torch.bool))
    gen = torch.Generator().manual_seed(1)
    mixed = mixup_batch(batch, prob=1.0, alpha=1.0, label_type="soft", generator=gen)  # lam ~ U(0, 1)
    soft = ((mixed.strong > 1e-4) & (mixed.strong < 1 - 1e-4)).any(-1)  # (B, T)
    assert soft.any() and (~soft).any()
    out = ModelOutput(embeddings=torch.zeros(n, t, 4), frame_probs=torch.rand(n, t, c), clip_probs=torch.rand(n, c))
    labels, valid = WPSLabeller(start_epoch=0)(out, mixed, epoch=0)
    pos, neg = SameTimePairSampler()(labels, valid, mixed.source)
    used = (pos | neg)  # (T, B, B)
    in_pair = used.any(2) | used.any(1)  # (T, B)
    assert in_pair.any()
    assert not (in_pair & soft.T).any()
