"""The FPD branch: config, wiring of labeller -> sampler -> loss, plugins by name, logs."""

from __future__ import annotations

import pytest
import torch

from dcase_fpd_plugin import registry
from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, SOURCE_UL, Batch, Branch, BranchOutput, ModelOutput
from dcase_fpd_plugin.fpd import fpd_loss
from dcase_fpd_plugin.fpd.branch import FPDBranch, scale_gradient
from dcase_fpd_plugin.fpd.labeller import WPSLabeller
from dcase_fpd_plugin.fpd.sampler import SameTimePairSampler

CLASSES = ["a", "b", "c"]
B, T, C, D = 6, 8, 3, 10


def make_inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    source = torch.tensor([SOURCE_SS, SOURCE_SS, SOURCE_SS, SOURCE_RW, SOURCE_RW, SOURCE_UL])
    strong = (torch.rand(B, T, C, generator=gen) < 0.4).float()
    strong[3:] = 0.0
    weak = strong.amax(1)
    weak[3:5] = (torch.rand(2, C, generator=gen) < 0.6).float()
    batch = Batch(
        feats=torch.zeros(B, 4, 4 * T),
        strong=strong,
        has_strong=source == SOURCE_SS,
        weak=weak,
        has_weak=source != SOURCE_UL,
        source=source,
        frame_valid=torch.ones(B, T, dtype=torch.bool),
    )
    probs = torch.rand(B, T, C, generator=gen)
    output = ModelOutput(
        embeddings=torch.randn(B, T, D, generator=gen).requires_grad_(True),
        frame_probs=probs.requires_grad_(True),
        clip_probs=probs.detach().amax(1),
    )
    return output, batch


def test_default_config_lists_every_key():
    cfg = FPDBranch.default_config()
    assert cfg == {
        "enabled": False,
        "distance": "ip",
        "alpha": 0.1,
        "weight": 1.0,
        "formulation": "consistent",
        "reduction": "mean",
        "ip_norm": True,
        "sampler": "same_time",
        "labeller": "wps",
        "background_pairs": "ignore",
        "source_pairs": ["SS-SS", "RW-RW", "SS-RW"],
        "projection_dim": 128,
        "wps_high": 0.7,
        "wps_low": 0.3,
        "wps_start_epoch": 5,
        "gather_distributed": False,
    }
    assert issubclass(FPDBranch, Branch)


def test_registry_finds_the_shipped_plugins():
    assert registry.get("branches", "fpd") is FPDBranch
    assert registry.get("pair_samplers", "same_time") is SameTimePairSampler
    assert registry.get("labellers", "wps") is WPSLabeller


@pytest.mark.parametrize("distance", ["ip", "euc"])
@pytest.mark.parametrize("epoch", [0, 5])
def test_forward_equals_composed_parts(distance, epoch):
    torch.manual_seed(0)
    branch = FPDBranch({"distance": distance, "weight": 0.5, "projection_dim": 7}, D, CLASSES)
    output, batch = make_inputs()
    result = branch(output, batch, epoch=epoch)
    assert isinstance(result, BranchOutput)

    labels, valid = WPSLabeller(0.7, 0.3, 5)(output, batch, epoch)
    pos, neg = SameTimePairSampler()(labels, valid, batch.source)
    want = fpd_loss(branch.projection(output.embeddings), pos, neg, distance=distance)
    assert result.loss.item() == pytest.approx(0.5 * want.item(), rel=1e-6)
    assert result.logs["fpd/loss"].item() == pytest.approx(want.item(), rel=1e-6)
    assert result.logs["fpd/n_positive_pairs"].item() == pos.sum().item()
    assert result.logs["fpd/n_negative_pairs"].item() == neg.sum().item()
    assert neg.sum() > 0
    # RW clips (3, 4) pair only once WPS has started; UL (5) never
    rw_used = (pos | neg)[:, :, 3:5].any() or (pos | neg)[:, 3:5, :].any()
    assert bool(rw_used) == (epoch >= 5)
    assert not (pos | neg)[:, :, 5].any()


@pytest.mark.parametrize("distance", ["ip", "euc"])
def test_projection_dim_zero_puts_the_loss_on_the_encoder_embeddings(distance):
    branch = FPDBranch({"distance": distance, "projection_dim": 0, "wps_start_epoch": 0}, D, CLASSES)
    assert not list(branch.parameters())  # no projection weights
    output, batch = make_inputs()
    result = branch(output, batch, epoch=0)
    labels, valid = WPSLabeller(0.7, 0.3, 0)(output, batch, 0)
    pos, neg = SameTimePairSampler()(labels, valid, batch.source)
    want = fpd_loss(output.embeddings, pos, neg, distance=distance)
    assert result.loss.item() == pytest.approx(want.item(), rel=1e-6)
    result.loss.backward()
    assert output.embeddings.grad.abs().sum() > 0


def test_gradients_reach_embeddings_and_projection_not_probabilities():
    branch = FPDBranch({"wps_start_epoch": 0}, D, CLASSES)
    output, batch = make_inputs()
    branch(output, batch, epoch=0).loss.backward()
    assert output.embeddings.grad is not None and output.embeddings.grad.abs().sum() > 0
    assert branch.projection.weight.grad.abs().sum() > 0
    assert output.frame_probs.grad is None


def test_plugins_are_looked_up_by_name():
    calls = []

    class NoPairs:
        def __init__(self, config):
            calls.append(config["alpha"])

        def __call__(self, frame_labels, valid, source):
            z = torch.zeros(frame_labels.shape[1], frame_labels.shape[0], frame_labels.shape[0], dtype=torch.bool)
            return z, z

    registry.register("pair_samplers", "no_pairs_test", NoPairs)
    try:
        branch = FPDBranch({"sampler": "no_pairs_test", "alpha": 0.2}, D, CLASSES)
        output, batch = make_inputs()
        result = branch(output, batch, epoch=10)
        assert calls == [0.2]
        assert result.loss.item() == 0.0 and result.logs["fpd/n_positive_pairs"].item() == 0
        result.loss.backward()
        assert torch.isfinite(output.embeddings.grad).all()
    finally:
        registry.unregister("pair_samplers", "no_pairs_test")


def test_unknown_plugin_names_list_the_available_ones():
    with pytest.raises(registry.UnknownPluginError, match="same_time"):
        FPDBranch({"sampler": "nope"}, D, CLASSES)
    with pytest.raises(registry.UnknownPluginError, match="wps"):
        FPDBranch({"labeller": "nope"}, D, CLASSES)


@pytest.mark.parametrize(
    "key, value",
    [
        ("distance", "cos"),
        ("formulation", "paper"),
        ("reduction", "max"),
        ("background_pairs", "negative"),
        ("alpha", 2.0),
        ("projection_dim", -1),
        ("source_pairs", ["SS-UL"]),
        ("source_pairs", "SS-SS"),
        ("ip_norm", "no"),
    ],
)
def test_bad_config_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=f"branches.fpd.{key}"):
        FPDBranch({key: value}, D, CLASSES)


def test_source_pairs_config_reaches_the_sampler():
    branch = FPDBranch({"source_pairs": ["SS-SS"], "wps_start_epoch": 0, "wps_low": 0.5, "wps_high": 0.5}, D, CLASSES)
    output, batch = make_inputs()
    all_rw = FPDBranch({"wps_start_epoch": 0, "wps_low": 0.5, "wps_high": 0.5}, D, CLASSES)
    n_ss = branch(output, batch, epoch=0).logs["fpd/n_negative_pairs"].item()
    n_all = all_rw(output, batch, epoch=0).logs["fpd/n_negative_pairs"].item()
    assert 0 < n_ss < n_all


def test_scale_gradient_keeps_value_scales_gradient():
    x = torch.tensor(3.0, requires_grad=True)
    y = scale_gradient(x * x, 4)
    y.backward()
    assert y.item() == 9.0 and x.grad.item() == pytest.approx(4 * 6.0)


def test_clips_pair_only_with_clips_whose_sources_annotate_the_same_classes():
    """With class masks (data.sources ``classes``) a clip's 0 for an unannotated class says nothing: clips
    of sources annotating other classes never pair; with equal masks the pairs are those without masks."""
    from dcase_fpd_plugin.branch import SOURCE_SF
    from dcase_fpd_plugin.fpd.branch import same_annotation_pairs

    branch = FPDBranch({"wps_start_epoch": 0, "wps_low": 0.5, "wps_high": 0.5, "projection_dim": 0}, D, CLASSES)
    output, batch = make_inputs()
    plain = branch(output, batch, epoch=0).logs
    full = Batch(**{**batch.__dict__, "class_mask": torch.ones(B, C, dtype=torch.bool)})
    same = branch(output, full, epoch=0).logs
    assert same["fpd/n_negative_pairs"] == plain["fpd/n_negative_pairs"] > 0
    # clips 0 and 1 come from a source annotating class a only: their pairs with clips 2-4 go
    mask = torch.ones(B, C, dtype=torch.bool)
    mask[:2, 1:] = False
    masked_batch = Batch(**{**batch.__dict__, "class_mask": mask})
    masked = branch(output, masked_batch, epoch=0).logs
    same = same_annotation_pairs(mask)[0]
    assert same[0, 1] and not same[0, 2] and same[2, 5]
    n_pairs = lambda logs: logs["fpd/n_positive_pairs"] + logs["fpd/n_negative_pairs"]  # noqa: E731
    assert n_pairs(masked) < n_pairs(plain)
    # ... and a soft-labelled clip (SF) pairs only when source_pairs names SF
    soft = Batch(**{**batch.__dict__, "source": torch.tensor([SOURCE_SF, SOURCE_SF, SOURCE_SS, SOURCE_RW, SOURCE_RW, 2]),
                    "has_strong": torch.tensor([True, True, True, False, False, False])})
    default = branch(output, soft, epoch=0).logs
    with_sf = FPDBranch({"wps_start_epoch": 0, "wps_low": 0.5, "wps_high": 0.5, "projection_dim": 0,
                         "source_pairs": ["SS-SS", "RW-RW", "SS-RW", "SF-SF"]}, D, CLASSES)(output, soft, epoch=0).logs
    assert n_pairs(with_sf) > n_pairs(default)
