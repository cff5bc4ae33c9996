"""Shared fixtures: the real-recording soundbank, a tiny demo dataset, recipe builders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dcase_fpd_plugin.compat import quiet_dependencies

quiet_dependencies()

REPO = Path(__file__).resolve().parents[1]


def pytest_report_header(config) -> str:
    """Which dcase_fpd_plugin the tests import: the checkout's, or an installed wheel's (CI's 2nd env)."""
    import dcase_fpd_plugin

    return f"dcase_fpd_plugin: {Path(dcase_fpd_plugin.__file__).parent}"


def pytest_configure(config) -> None:
    """With DCASE_FPD_TEST_INSTALLED=1 (scripts/ci_wheel_env.sh) the tests must exercise the installed
    package, not the checkout's copy beside them."""
    import dcase_fpd_plugin

    where = Path(dcase_fpd_plugin.__file__).resolve()
    if os.environ.get("DCASE_FPD_TEST_INSTALLED") == "1" and where.is_relative_to(REPO.resolve()):
        raise pytest.UsageError(f"DCASE_FPD_TEST_INSTALLED=1 but dcase_fpd_plugin comes from the checkout: {where}")


def soundbank_path() -> Path | None:
    """``$DCASE_FPD_SOUNDBANK`` or ``../shared/soundbank`` beside the checkout, if present."""
    env = os.environ.get("DCASE_FPD_SOUNDBANK")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "soundbank")
    for c in candidates:
        if (c / "foreground").is_dir() and (c / "background").is_dir():
            return c
    return None


@pytest.fixture(scope="session")
def soundbank() -> Path:
    path = soundbank_path()
    if path is None:
        pytest.skip("soundbank not found: set DCASE_FPD_SOUNDBANK or place it at ../shared/soundbank")
    return path


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> dict[str, str]:
    """A small toy DESED-format dataset (5 classes), built once per test session."""
    from dcase_fpd_plugin.data.demo import build_demo_dataset

    root = tmp_path_factory.mktemp("demo_data")
    return build_demo_dataset(root, n_synth=24, n_weak=24, n_val=12, n_test=12, clip_s=4.0)


@pytest.fixture
def demo_overrides(demo_data, tmp_path) -> list[str]:
    """Overrides turning recipes/demo.yaml into a seconds-long run on the fixture dataset."""
    ov = [f"data.{k}={v}" for k, v in demo_data.items()]
    return ov + [
        "feats.clip_s=4.0",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"training.exp_dir={tmp_path / 'exp'}",
        "training.n_epochs=1",
        "training.batch_size=[6, 6, 0]",
        "training.progress_bar=false",
        "training.num_threads=1",
        "eval.psds=false",
    ]


@pytest.fixture
def one_thread():
    """One torch thread for a test: on a shared 2-core machine two threads wait on each other (several
    times slower). Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: a BEATs of a tiny size with the real front end (16x16 patches, 128 mel bins) and every part of the
#: released model: post-extract projection, DeepNorm, shared relative-position bias, gated bias
TINY_BEATS = dict(embed_dim=24, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
                  encoder_layers=2, conv_pos=16, conv_pos_groups=4, relative_position_embedding=True, num_buckets=32,
                  max_distance=64, gru_rel_pos=True, deep_norm=True)


@pytest.fixture(scope="session")
def save_tiny_beats():
    """``save(path, seed=0, **cfg) -> path``: a tiny BEATs (:data:`TINY_BEATS`, updated by ``cfg``) of random
    weights (``seed``) saved in the released checkpoint format."""
    import torch

    from dcase_fpd_plugin.models.beats import BEATs, BEATsConfig

    def save(path: Path, seed: int = 0, **cfg) -> Path:
        torch.manual_seed(seed)
        torch.save(BEATs(BEATsConfig(**{**TINY_BEATS, **cfg})).checkpoint(), path)
        return path

    return save
