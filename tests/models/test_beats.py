"""BEATs (models/beats.py): the Kaldi fbank against a numpy reference, the released checkpoint format
(a tiny BEATs saved as {"cfg", "model"} loads strictly and extracts), DESED_task's 496 frames per
10 s, and the refusals (missing / unexpected keys, pickled objects, other layouts)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dcase_fpd_plugin.models.beats import CheckpointError, KaldiFbank, load_beats

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, save_tiny_beats) -> Path:
    return save_tiny_beats(tmp_path_factory.mktemp("beats") / "tiny_beats.pt")


# --------------------------------------------------------------------------- fbank
def kaldi_fbank_reference(x: np.ndarray, sample_rate: int = 16000, n_mels: int = 128) -> np.ndarray:
    """Kaldi's fbank with BEATs' settings, written out in float64 numpy, one frame and one filter at a time."""
    win, hop, n_fft = 400, 160, 512
    n_frames = 1 + (len(x) - win) // hop
    window = np.array([(0.5 - 0.5 * math.cos(2 * math.pi * n / (win - 1))) ** 0.85 for n in range(win)])

    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)

    lo, hi = mel(20.0), mel(sample_rate / 2)
    step = (hi - lo) / (n_mels + 1)
    filters = np.zeros((n_mels, n_fft // 2 + 1))
    for m in range(n_mels):
        left, center, right = lo + m * step, lo + (m + 1) * step, lo + (m + 2) * step
        for k in range(n_fft // 2):  # Kaldi leaves the Nyquist bin out
            b = mel(k * sample_rate / n_fft)
            if left < b <= center:
                filters[m, k] = (b - left) / (center - left)
            elif center < b < right:
                filters[m, k] = (right - b) / (right - center)
    out = np.empty((n_frames, n_mels))
    for t in range(n_frames):
        frame = x[t * hop: t * hop + win].astype(np.float64)
        frame = frame - frame.mean()
        frame = frame - 0.97 * np.concatenate([frame[:1], frame[:-1]])
        spectrum = np.abs(np.fft.rfft(frame * window, n=n_fft)) ** 2
        out[t] = np.log(np.maximum(filters @ spectrum, np.finfo(np.float32).eps))
    return out


def test_fbank_matches_a_numpy_reference_of_the_kaldi_formula():
    rng = np.random.default_rng(0)
    n = 16000  # 1 s: 98 frames
    t = np.arange(n) / 16000
    noise = rng.standard_normal(n) * 0.1
    chirp = 0.3 * np.sin(2 * np.pi * (200 * t + 3000 * t**2)) + 0.01 * rng.standard_normal(n)
    waves = np.stack([noise, chirp]) * 2**15  # BEATs' int16 scale
    ours = KaldiFbank()(torch.from_numpy(waves).float()).numpy()
    assert ours.shape == (2, 98, 128)
    for i in range(2):
        ref = kaldi_fbank_reference(waves[i].astype(np.float32))
        diff = np.abs(ours[i] - ref)
        assert diff.max() < 2e-3, diff.max()  # float32 against float64, on log energies ~0..25
        assert np.median(diff) < 1e-4


def test_fbank_frame_count_is_kaldis_snip_edges():
    fb = KaldiFbank()
    assert fb.n_frames(160000) == 998 and fb.n_frames(400) == 1 and fb.n_frames(399) == 0
    assert fb(torch.zeros(1, 160000)).shape == (1, 998, 128)
    assert torch.isfinite(fb(torch.zeros(1, 400))).all()  # silence: the log floor, not -inf
    with pytest.raises(ValueError, match="at least 400 samples"):
        fb(torch.zeros(1, 399))


# --------------------------------------------------------------------------- the released format
def test_a_tiny_beats_in_the_released_format_loads_and_extracts(tiny_ckpt):
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    assert set(ckpt) == {"cfg", "model"} and ckpt["cfg"]["encoder_embed_dim"] == 32
    keys = set(ckpt["model"])
    # BEATs' own names: weight-normed positional conv, gated relative position, one bias table per layer
    assert {"patch_embedding.weight", "layer_norm.weight", "post_extract_proj.weight", "encoder.pos_conv.0.weight_g",
            "encoder.pos_conv.0.weight_v", "encoder.pos_conv.0.bias", "encoder.layer_norm.weight",
            "encoder.layers.0.self_attn.grep_linear.weight", "encoder.layers.1.self_attn.grep_a",
            "encoder.layers.0.self_attn.relative_attention_bias.weight",
            "encoder.layers.1.self_attn.relative_attention_bias.weight"} <= keys
    assert "patch_embedding.bias" not in keys and not any("fbank" in k for k in keys)
    model = load_beats(tiny_ckpt)
    assert not model.training
    wave = torch.randn(2, 160000) * 0.1  # 10 s at 16 kHz
    with torch.inference_mode():
        out = model(wave)
        again = model(wave)
    assert out["frame"].shape == (2, 32, 496) and out["global"].shape == (2, 32)
    assert out["frame"].dtype == torch.float32 and torch.isfinite(out["frame"]).all()
    torch.testing.assert_close(out["global"], out["frame"].mean(dim=2))
    torch.testing.assert_close(out["frame"], again["frame"], rtol=0, atol=0)
    # a clip's embeddings do not depend on the other clips of the batch
    with torch.inference_mode():
        alone = model(wave[1:])
    torch.testing.assert_close(alone["frame"][0], out["frame"][1], rtol=1e-4, atol=1e-5)


def test_496_frames_per_10_s_as_in_desed_task(tiny_ckpt):
    model = load_beats(tiny_ckpt)
    assert model.n_tokens(160000) == 496  # 998 fbank frames -> 62 time x 8 frequency patches
    assert model.n_tokens(64000) == (398 // 16) * 8  # 4 s
    with torch.inference_mode():
        assert model(torch.zeros(1, 64000))["frame"].shape == (1, 32, 192)
    with pytest.raises(ValueError, match="too short"):
        model(torch.zeros(1, 2000))


def test_the_tokens_are_patches_flattened_time_major(tiny_ckpt):
    """A change in the last second of the clip moves only the tokens of the last time patches."""
    model = load_beats(tiny_ckpt)
    model.encoder.forward = lambda x: x  # the patch embedding's tokens, before the transformer mixes them
    wave = torch.randn(1, 160000) * 0.1
    late = wave.clone()
    late[0, 150000:] = 0
    with torch.inference_mode():
        a, b = model(wave)["frame"][0], model(late)["frame"][0]  # (D, 496)
    changed = (a - b).abs().amax(dim=0).reshape(62, 8).amax(dim=1) > 0  # per time patch
    assert not changed[:55].any() and changed[-3:].all()


def test_other_architectures_of_the_cfg_load(tmp_path, save_tiny_beats):
    """Pre-norm layers, a GLU feed-forward, no projection, no relative bias, a fine-tuned model's predictor."""
    path = save_tiny_beats(tmp_path / "b.pt", embed_dim=32, deep_norm=False, layer_norm_first=True,
                           activation_fn="glu", relative_position_embedding=False, gru_rel_pos=False,
                           finetuned_model=True, predictor_class=5, conv_pos=15, encoder_layers=1)
    ckpt = torch.load(path, weights_only=True)
    assert "post_extract_proj.weight" not in ckpt["model"] and "predictor.weight" in ckpt["model"]
    assert "encoder.layers.0.fc1.linear.weight" in ckpt["model"]
    with torch.inference_mode():
        assert load_beats(path)(torch.zeros(1, 32000))["frame"].shape == (1, 32, (198 // 16) * 8)


# --------------------------------------------------------------------------- refusals
def test_renamed_and_missing_keys_are_refused_by_name(tmp_path, tiny_ckpt):
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    state = ckpt["model"]
    state["encoder.pos_conv.0.weight"] = state.pop("encoder.pos_conv.0.weight_v")  # renamed
    del state["encoder.layers.1.fc2.bias"]  # missing
    bad = tmp_path / "renamed.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError) as err:
        load_beats(bad)
    msg = str(err.value)
    assert str(bad) in msg
    assert "missing keys: encoder.layers.1.fc2.bias, encoder.pos_conv.0.weight_v" in msg
    assert "unexpected keys: encoder.pos_conv.0.weight" in msg


def test_weights_of_another_size_are_refused(tmp_path, tiny_ckpt):
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    ckpt["cfg"]["encoder_ffn_embed_dim"] = 48  # the cfg no longer describes the weights
    bad = tmp_path / "size.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=r"size\.pt: its weights do not fit .*fc1\.weight"):
        load_beats(bad)


class _RunsCode:
    """Unpickling this object would touch a file (what a malicious checkpoint could do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_with_a_pickled_object_is_refused_unrun(tmp_path, tiny_ckpt):
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    marker = tmp_path / "ran"
    ckpt["cfg"]["hook"] = _RunsCode(marker)
    bad = tmp_path / "pickled.pt"
    torch.save(ckpt, bad)
    with pytest.raises(CheckpointError, match=r"pickled\.pt: refused: it holds objects other than tensors"):
        load_beats(bad)
    assert not marker.exists()


@pytest.mark.parametrize("content, expected", [
    ("state_dict", "not a BEATs checkpoint in the released format"),
    ("bad_cfg", "cfg\\['encoder_layers'\\] must be int"),
    ("text", "not a torch checkpoint"),
])
def test_other_files_are_refused_naming_the_file(tmp_path, tiny_ckpt, content, expected):
    ckpt = torch.load(tiny_ckpt, weights_only=True)
    bad = tmp_path / f"{content}.pt"
    if content == "state_dict":
        torch.save(ckpt["model"], bad)
    elif content == "bad_cfg":
        torch.save({**ckpt, "cfg": {**ckpt["cfg"], "encoder_layers": "two"}}, bad)
    else:
        bad.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match=expected) as err:
        load_beats(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(FileNotFoundError, match="BEATs checkpoint not found"):
        load_beats(tmp_path / "absent.pt")
