"""The SED losses' binary cross-entropy: F.binary_cross_entropy's values, finite gradients at
saturated probabilities (bf16 sigmoids reach exactly 1.0), a clear error on NaN."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dcase_fpd_plugin.training.bce import binary_cross_entropy
from dcase_fpd_plugin.training.mean_teacher import consistency_loss


def test_values_match_torch_including_the_clamped_log():
    p = torch.tensor([[0.0, 0.2, 0.5], [0.9, 1.0, 1e-30]])
    y = torch.tensor([[1.0, 0.0, 0.3], [1.0, 0.0, 1.0]])
    assert torch.allclose(binary_cross_entropy(p, y), F.binary_cross_entropy(p, y, reduction="none"))
    assert binary_cross_entropy(p, y)[0, 0].item() == pytest.approx(100.0)  # log clamped at -100


def test_gradient_is_finite_where_a_bf16_sigmoid_saturates():
    logits = torch.tensor([7.0, -7.0, 30.0, 0.3], requires_grad=True)
    probs = torch.sigmoid(logits.to(torch.bfloat16))  # 1.0, ~0, 1.0, 0.57 in bf16
    assert probs[0].item() == 1.0 and probs[2].item() == 1.0
    target = torch.tensor([1.0, 0.0, 0.0, 1.0])
    binary_cross_entropy(probs, target).sum().backward()
    assert torch.isfinite(logits.grad).all(), logits.grad
    # the non-saturated entry gets the usual gradient p - y
    assert logits.grad[3].item() == pytest.approx(torch.sigmoid(torch.tensor(0.3)).item() - 1.0, abs=1e-2)


def test_works_under_autocast_and_returns_fp32():
    p = torch.rand(4, 5, dtype=torch.bfloat16)
    y = (torch.rand(4, 5) > 0.5).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = binary_cross_entropy(p, y)
    assert out.dtype == torch.float32 and out.shape == (4, 5)


def test_nan_probabilities_get_an_error_that_says_the_weights_diverged():
    with pytest.raises(FloatingPointError, match="diverged"):
        binary_cross_entropy(torch.tensor([0.5, float("nan")]), torch.tensor([1.0, 0.0]))


def test_bce_consistency_has_finite_gradient_at_saturated_teacher_and_student():
    from dcase_fpd_plugin.branch import ModelOutput

    fs = torch.tensor([[[1.0, 0.0]]], requires_grad=True)  # (B, T, C) saturated student
    cs = torch.tensor([[1.0, 0.5]], requires_grad=True)
    student = ModelOutput(embeddings=torch.zeros(1, 1, 2), frame_probs=fs, clip_probs=cs)
    teacher = ModelOutput(embeddings=torch.zeros(1, 1, 2), frame_probs=torch.tensor([[[0.0, 1.0]]]),
                          clip_probs=torch.tensor([[0.2, 0.5]]))
    consistency_loss(student, teacher, kind="bce").backward()
    assert torch.isfinite(fs.grad).all() and torch.isfinite(cs.grad).all()
