"""The Conformer encoder (``net.name: conformer``): shapes and frame rate for 10 s, size and MACs, padding
masks, class masks, relative positions, gradients, pretrained-embedding fusion, recipe checks."""

import math

import pytest
import torch

from dcase_fpd_plugin.branch import ModelOutput
from dcase_fpd_plugin.models import ConformerSED, build_model
from dcase_fpd_plugin.models.conformer import RelPositionMultiHeadAttention, relative_position_encoding
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.recipe.schema import DEFAULTS, RecipeError
from dcase_fpd_plugin.report.complexity import count_parameters, measure_macs_for_clip

N_IN_10S = 1 + 160000 // 256  # 626 STFT frames
PARAMS_DEFAULT = 1_689_348  # 10 classes, the schema's defaults
MACS_10S = 565_789_568  # count_macs for 10 s (conv + linear + attention matmuls), torch 2.13


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(n_classes=3, **kw):
    """32 mels, d_model 16, 2 heads, 2 blocks: the same code paths as the default model, in milliseconds."""
    torch.manual_seed(0)
    args = dict(d_model=16, heads=2, blocks=2, ff_expansion=2, conv_kernel=5, dropout=0.1,
                frontend_filters=(4, 8), frontend_pooling=((2, 4), (2, 4)), frontend_dropout=0.1)
    return ConformerSED(32, n_classes, **{**args, **kw})


def test_shapes_and_frame_rate_for_10_s():
    model = ConformerSED(128, 10).eval()  # the defaults
    assert model.time_pooling == 4 and model.output_frames(N_IN_10S) == 156 and model.embed_dim == 144
    with torch.no_grad():
        out = model(torch.randn(2, 128, N_IN_10S) * 20 - 40)
    assert isinstance(out, ModelOutput)
    assert out.embeddings.shape == (2, 156, 144)
    assert out.frame_probs.shape == (2, 156, 10) and out.clip_probs.shape == (2, 10)
    assert float(out.frame_probs.min()) >= 0 and float(out.frame_probs.max()) <= 1
    # clip probabilities are attention-weighted means of the frame probabilities
    assert torch.all(out.clip_probs <= out.frame_probs.max(1).values + 1e-6)
    assert torch.all(out.clip_probs >= out.frame_probs.min(1).values - 1e-6)


@pytest.mark.parametrize("n_in", [251, 102, 17])
def test_any_clip_length(n_in):
    model = tiny().eval()
    out = model(torch.randn(1, 32, n_in))
    assert out.frame_probs.shape[1] == model.output_frames(n_in) == n_in // 4


def test_parameters_and_macs_for_10_s():
    model = build_model(dict(DEFAULTS["net"], name="conformer"), DEFAULTS["feats"], 10)
    assert isinstance(model, ConformerSED) and count_parameters(model) == PARAMS_DEFAULT
    macs = measure_macs_for_clip(model, DEFAULTS["feats"])
    assert abs(macs.total - MACS_10S) / MACS_10S < 0.01, macs.total
    assert macs.recurrent == 0 and macs.by_op.get("aten.bmm", 0) > 0  # the attention's matmuls are counted
    # analytic check of the blocks' dense layers alone (FF, attention projections, pointwise convs), 156 frames
    d, e, t = 144, 4, 156
    per_block = 2 * (2 * d * e * d) + 4 * d * d + (2 * d * d + d * d)  # 2 FF, q k v out, pointwise in, out
    assert macs.total > 3 * t * per_block


def _clip_pair(model, n_valid_in, n_pad_in, seed=0):
    g = torch.Generator().manual_seed(seed)
    clip = torch.randn(1, 32, n_valid_in, generator=g) * 10 - 30
    padded = torch.cat([clip, torch.randn(1, 32, n_pad_in - n_valid_in, generator=g) * 50], dim=2)
    valid = torch.zeros(1, model.output_frames(n_pad_in), dtype=torch.bool)
    valid[:, : model.output_frames(n_valid_in)] = True
    return clip, padded, valid


def test_valid_frames_ignore_the_padded_frames():
    """In eval mode the valid frames of a padded clip give what the clip gives alone, whatever the padded
    features hold; without frame_valid the padding leaks in."""
    model = tiny().eval()
    clip, padded, valid = _clip_pair(model, 40, 72)
    t = model.output_frames(40)
    alone = model(clip)
    with_pad = model(padded, valid)
    other = padded.clone()
    other[:, :, 40:] = torch.randn(1, 32, 32) * 100 + 20
    with_other_pad = model(other, valid)
    for out in (with_pad, with_other_pad):
        assert torch.allclose(out.embeddings[:, :t], alone.embeddings, atol=1e-5)
        assert torch.allclose(out.frame_probs[:, :t], alone.frame_probs, atol=1e-6)
        assert torch.allclose(out.clip_probs, alone.clip_probs, atol=1e-6)
    assert not torch.allclose(model(padded).embeddings[:, :t], alone.embeddings, atol=1e-3)
    # all frames valid is the same as no mask
    x = torch.randn(2, 32, 48)
    full = torch.ones(2, model.output_frames(48), dtype=torch.bool)
    assert torch.allclose(model(x, full).frame_probs, model(x).frame_probs, atol=1e-6)


def test_padded_features_do_not_reach_the_valid_frames_in_training_mode():
    model = tiny().train()
    _, padded, valid = _clip_pair(model, 40, 72)
    other = padded.clone()
    other[:, :, 40:] = -padded[:, :, 40:] * 3
    torch.manual_seed(1)
    a = model(torch.cat([padded, padded]), valid.repeat(2, 1))
    torch.manual_seed(1)
    b = model(torch.cat([padded, other]), valid.repeat(2, 1))
    assert torch.allclose(a.embeddings[:, :10], b.embeddings[:, :10], atol=1e-5)
    assert torch.allclose(a.clip_probs, b.clip_probs, atol=1e-6)


def test_padded_keys_get_no_attention_weight():
    torch.manual_seed(0)
    attn = RelPositionMultiHeadAttention(16, 2, 0.0)
    x = torch.randn(2, 9, 16)
    valid = torch.ones(2, 9, dtype=torch.bool)
    valid[0, 6:] = False
    w, _ = attn.attention_weights(x, relative_position_encoding(9, 16), valid)
    assert torch.all(w[0, :, :, 6:] == 0) and torch.all(w[1] > 0)
    assert torch.allclose(w.sum(-1), torch.ones(2, 2, 9), atol=1e-6)


def test_class_mask_gives_masked_classes_no_weight_and_zero_output():
    model = tiny(n_classes=4).eval()
    x = torch.randn(2, 32, 64)
    mask = torch.tensor([[True, True, False, False], [True, True, True, True]])
    out = model(x, class_mask=mask)
    assert torch.all(out.frame_probs[0, :, 2:] == 0) and torch.all(out.clip_probs[0, 2:] <= 1e-7)
    # the attention softmax runs over the annotated classes only (the CRNN's "classes" mode)
    h = out.embeddings
    logits = model.dense_softmax(h)[0, :, :2]
    w = torch.softmax(logits, -1).clamp(1e-7, 1)
    probs = torch.sigmoid(model.dense(h))[0, :, :2]
    assert torch.allclose(out.clip_probs[0, :2], ((probs * w).sum(0) / w.sum(0)).clamp(1e-7, 1 - 1e-7), atol=1e-6)
    unmasked = model(x)
    assert torch.allclose(out.clip_probs[1], unmasked.clip_probs[1], atol=1e-6)
    assert not torch.allclose(out.clip_probs[0, :2], unmasked.clip_probs[0, :2], atol=1e-4)
    # the masked classes' attention logits change nothing
    with torch.no_grad():
        model.dense_softmax.weight[2:] += 5.0
    assert torch.allclose(model(x, class_mask=mask).clip_probs[0], out.clip_probs[0], atol=1e-6)


def _sinusoid(distance: float, d: int) -> torch.Tensor:
    """Transformer-XL's encoding of one signed distance, written out."""
    pe = torch.zeros(d)
    for i in range(0, d, 2):
        w = 10000.0 ** (-i / d)
        pe[i] = math.sin(distance * w)
        if i + 1 < d:
            pe[i + 1] = math.cos(distance * w)
    return pe


def test_relative_position_term_depends_only_on_the_signed_distance():
    torch.manual_seed(0)
    d, heads, t = 16, 2, 7
    attn = RelPositionMultiHeadAttention(d, heads, 0.0)
    pos = relative_position_encoding(t, d)
    assert torch.allclose(pos[0], _sinusoid(t - 1, d), atol=1e-6) and torch.allclose(pos[t - 1], _sinusoid(0, d))
    # the term, written out: (q_i + v) . W_r r_{i-j}
    q = torch.randn(2, heads, t, d // heads)
    scores = attn.position_scores(q, pos)
    for i in range(t):
        for j in range(t):
            r = attn.linear_pos(_sinusoid(i - j, d)).view(heads, d // heads)  # (H, d_k)
            assert torch.allclose(scores[:, :, i, j], (q[:, :, i] * r).sum(-1), atol=1e-5)
    # the same query at every frame: a Toeplitz matrix (constant along each diagonal), i.e. translation-aware
    same = attn.position_scores(q[:, :, :1].expand(2, heads, t, d // heads), pos)
    assert torch.allclose(same[:, :, 1:, 1:], same[:, :, :-1, :-1], atol=1e-6)
    # ... and one that tells distances and directions apart
    assert not torch.allclose(same[:, :, 3, 2], same[:, :, 3, 4], atol=1e-4)  # i - j = +1 vs -1
    assert not torch.allclose(same[:, :, 3, 2], same[:, :, 3, 1], atol=1e-4)  # +1 vs +2


def test_every_parameter_gets_a_gradient():
    model = tiny().train()
    x = torch.randn(3, 32, 64)
    valid = torch.ones(3, model.output_frames(64), dtype=torch.bool)
    valid[0, 10:] = False
    out = model(x, valid)
    loss = out.frame_probs.mean() + out.clip_probs.mean() + out.embeddings.pow(2).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_bf16_autocast_runs():
    model = tiny().train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, 32, 48), torch.ones(2, 12, dtype=torch.bool))
    assert torch.isfinite(out.clip_probs.float()).all() and torch.isfinite(out.embeddings.float()).all()


def test_pretrained_embeddings_are_fused_or_refused_clearly():
    plain = tiny().eval()
    with pytest.raises(ValueError, match="takes no pretrained embeddings"):
        plain(torch.randn(1, 32, 48), embeddings=torch.randn(1, 8, 30))
    fused = tiny(embedding_dim=8).train()
    out = fused(torch.randn(2, 32, 48), embeddings=torch.randn(2, 8, 30))
    assert out.embeddings.shape == (2, 12, 16)
    out.clip_probs.sum().backward()
    assert fused.cat_tf.weight.grad is not None and fused.cat_tf.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="the batch has none"):
        fused(torch.randn(1, 32, 48))
    with pytest.raises(ValueError, match=r"embeddings must be \(B, 8, T_e\)"):
        fused(torch.randn(1, 32, 48), embeddings=torch.randn(1, 7, 30))


def test_bad_shapes_and_values_are_refused():
    model = tiny().eval()
    with pytest.raises(ValueError, match="frame_valid has 3 frames"):
        model(torch.randn(1, 32, 48), torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="multiple of net.conformer_heads"):
        tiny(d_model=18, heads=4)
    with pytest.raises(ValueError, match="odd"):
        tiny(conv_kernel=4)
    with pytest.raises(ValueError, match="feats.n_mels=32"):
        tiny(frontend_pooling=((2, 8), (2, 8)))


@pytest.mark.parametrize("override, message", [
    ("net.conformer_heads=5", "net.conformer_d_model"),
    ("net.conformer_conv_kernel=6", "net.conformer_conv_kernel"),
    ("net.conformer_blocks=0", "net.conformer_blocks"),
    ("net.conformer_dropout=1.0", "net.conformer_dropout"),
    ("net.conformer_frontend_pooling=[[2, 2]]", "net.conformer_frontend_pooling"),
    ("feats.n_mels=4", "below one band"),
])
def test_recipe_checks(override, message):
    assert load_recipe(None, ["net.name=conformer"])["net"]["name"] == "conformer"
    with pytest.raises(RecipeError, match=message):
        load_recipe(None, ["net.name=conformer", override])
    if override.startswith("net."):  # the conformer_* keys are checked only when the Conformer is used
        load_recipe(None, ["net.name=crnn", override])
