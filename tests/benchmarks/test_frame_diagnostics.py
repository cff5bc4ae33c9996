"""benchmarks/frame_diagnostics.py: the measures behave as documented on hand-made inputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "frame_diagnostics.py"
_spec = importlib.util.spec_from_file_location("frame_diagnostics", _PATH)
fd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fd)


def _labels(n=12, t=20, c=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros((n, t, c), dtype=np.int8)
    for i in range(n):
        k = i % c  # one class per clip, active on a random run of frames
        a = rng.integers(0, t - 5)
        y[i, a:a + 5, k] = 1
    return y


def test_frame_aucs_perfect_inverted_and_tagging_only():
    y = _labels()
    clip_has = y.max(1) > 0
    assert fd.frame_aucs(y.astype(float), y, clip_has) == (1.0, 1.0)
    assert fd.frame_aucs(1.0 - y, y, clip_has) == (0.0, 0.0)
    # a "tagger": every frame of a clip gets the clip's label -> perfect clip-level ranking helps the
    # all-frames AUC but gives no localisation inside the clips (AUC 0.5)
    tagger = np.broadcast_to(clip_has[:, None, :], y.shape).astype(float)
    overall, local = fd.frame_aucs(tagger, y, clip_has)
    assert overall > 0.8 and local == pytest.approx(0.5)


def test_embedding_gap_large_for_class_clusters_and_small_for_noise():
    y = torch.as_tensor(_labels(n=16)).float()
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 32, generator=gen)  # one direction per class + background
    frame_class = torch.where(y.amax(-1) > 0, y.argmax(-1), torch.full(y.shape[:2], 3))  # (N, T)
    clustered = centres[frame_class] + 0.05 * torch.randn(16, y.shape[1], 32, generator=gen)
    noise = torch.randn(16, y.shape[1], 32, generator=gen)
    assert fd.embedding_gap(clustered, y) > 0.5
    assert abs(fd.embedding_gap(noise, y)) < 0.1
