"""BEATs (Chen et al. 2022, "BEATs: Audio Pre-Training with Acoustic Tokenizers") as a frozen
frame-embedding extractor, written on torch alone, loading the **released** checkpoints
(e.g. ``BEATs_iter3_plus_AS2M.pt``, the one DESED_task's DCASE 2024 baseline uses) from a local
file: nothing downloads.

The released format is a dict ``{"cfg": {...}, "model": state_dict}``; the modules here carry the
released key names (``patch_embedding.weight``, ``encoder.pos_conv.0.weight_g`` / ``weight_v``,
``encoder.layers.N.self_attn.grep_linear.weight``, ...) so that a real checkpoint loads with
``strict=True`` (:func:`load_beats`). The pipeline, for a waveform (B, N) at 16 kHz in [-1, 1]:

1. Kaldi log-mel filterbank (:class:`KaldiFbank`), as ``torchaudio.compliance.kaldi.fbank``
   computes it with BEATs' arguments: the waveform x 2**15; 25 ms frames every 10 ms
   (400 / 160 samples), only whole frames (``snip_edges``); per frame DC removal, pre-emphasis
   0.97 and a povey window (a symmetric Hann to the power 0.85); power spectrum of a 512-point
   FFT; 128 triangular mel filters from 20 Hz to 8 kHz (mel = 1127 ln(1 + f/700)); natural log
   floored at float32's eps. Then ``(fbank - 15.41663) / (2 x 6.55582)``.
   10 s (160,000 samples) -> 998 frames x 128 bins.
2. 16x16 patches (a strided conv, ``patch_embedding``): 998 x 128 -> 62 time x 8 frequency
   patches (the last 6 frames dropped), flattened **time-major** (token = t x 8 + f) to 496
   tokens; layer norm; ``post_extract_proj`` to the encoder width when ``embed_dim`` differs.
3. Transformer encoder: a convolutional positional embedding (weight-normed grouped conv over
   tokens, ``conv_pos`` taps), then ``encoder_layers`` layers of self-attention with a T5-style
   bucketed relative-position bias (computed by the first layer, shared by all) gated per query
   (``gru_rel_pos``: ``grep_linear``, ``grep_a``), post-norm with DeepNorm residual scaling
   (``deep_norm``) or pre-norm (``layer_norm_first``) as the cfg says.

Output: ``{"frame": (B, D, T_tok), "global": (B, D)}``, D = ``encoder_embed_dim`` (768), T_tok =
496 for 10 s; ``global`` is the mean over the tokens. Note that the 496 "frames" of DESED_task's
embedding files are these patch tokens (62 time steps x 8 frequency bands), not 496 time steps.

Dropouts and layer drop are training-time settings and are not applied (this is an extractor);
padding masks are not supported (DESED_task pads every clip to 10 s and passes none).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SAMPLE_RATE = 16000  # Hz, what BEATs was trained on
FBANK_MEAN = 15.41663  # BEATs' normalisation of its log-mel energies
FBANK_STD = 6.55582
WAVE_SCALE = 2**15  # BEATs feeds Kaldi int16-scaled samples
ACTIVATIONS = ("relu", "gelu", "gelu_accurate", "gelu_fast", "tanh", "linear", "glu")


class CheckpointError(ValueError):
    """A BEATs checkpoint that cannot be used: not a torch file, refused objects, a wrong layout
    or weights that do not match its cfg. The message names the file."""


# --------------------------------------------------------------------------- config
@dataclass(frozen=True)
class BEATsConfig:
    """The architecture keys of a released checkpoint's ``cfg`` (BEATs' own names and defaults,
    except ``input_patch_size``: 16, the value of every released model). Training-only keys
    (dropouts, layer drop, gradient decay) are accepted and ignored."""

    input_patch_size: int = 16
    embed_dim: int = 512  # patch embedding width
    conv_bias: bool = False  # a bias in the patch embedding
    encoder_layers: int = 12
    encoder_embed_dim: int = 768  # D, the output width
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    activation_fn: str = "gelu"
    layer_norm_first: bool = False  # pre-norm layers (else post-norm)
    deep_norm: bool = False  # DeepNorm residual scaling (2 L)^(1/4) in post-norm layers
    conv_pos: int = 128  # taps of the convolutional positional embedding
    conv_pos_groups: int = 16
    relative_position_embedding: bool = False
    num_buckets: int = 320
    max_distance: int = 1280  # tokens
    gru_rel_pos: bool = False  # gated relative position bias
    finetuned_model: bool = False  # holds a classifier (``predictor``): loaded, unused here
    predictor_class: int = 527

    @classmethod
    def from_dict(cls, cfg: Any, origin: str = "cfg") -> "BEATsConfig":
        """The config of a checkpoint's ``cfg`` dict; CheckpointError naming ``origin`` and the key
        for a wrong type or an impossible combination."""
        if not isinstance(cfg, Mapping):
            raise CheckpointError(f"{origin}: 'cfg' must be a dict of BEATs settings, got {type(cfg).__name__}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in cfg:
                continue
            v = cfg[f.name]
            kind = type(f.default)
            ok = (isinstance(v, bool) or v in (0, 1)) if kind is bool else (
                isinstance(v, int) and not isinstance(v, bool)) if kind is int else isinstance(v, str)
            if not ok:
                raise CheckpointError(f"{origin}: cfg[{f.name!r}] must be {kind.__name__}, got {v!r}")
            values[f.name] = kind(v)
        c = cls(**values)
        problems = []
        if c.activation_fn not in ACTIVATIONS:
            problems.append(f"activation_fn {c.activation_fn!r} (known: {', '.join(ACTIVATIONS)})")
        if c.encoder_embed_dim % c.encoder_attention_heads:
            problems.append(f"encoder_embed_dim {c.encoder_embed_dim} not divisible by "
                            f"encoder_attention_heads {c.encoder_attention_heads}")
        if c.deep_norm and c.layer_norm_first:
            problems.append("deep_norm and layer_norm_first both set")
        if min(c.input_patch_size, c.embed_dim, c.encoder_layers, c.encoder_embed_dim, c.conv_pos,
               c.conv_pos_groups, c.num_buckets, c.max_distance) < 1:
            problems.append("a size below 1")
        if c.encoder_embed_dim % c.conv_pos_groups:
            problems.append(f"encoder_embed_dim {c.encoder_embed_dim} not divisible by conv_pos_groups {c.conv_pos_groups}")
        if problems:
            raise CheckpointError(f"{origin}: unusable BEATs cfg: {'; '.join(problems)}")
        return c

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- features
def _mel(f: Tensor) -> Tensor:
    return 1127.0 * torch.log1p(f / 700.0)


def _inverse_mel(m: Tensor) -> Tensor:
    return 700.0 * (torch.exp(m / 1127.0) - 1.0)


def kaldi_mel_matrix(n_mels: int = 128, n_fft: int = 512, sample_rate: int = SAMPLE_RATE,
                     low_hz: float = 20.0, high_hz: float = 0.0) -> Tensor:
    """Kaldi's triangular mel filters (``n_mels``, ``n_fft // 2 + 1``) float32, triangles in the mel
    domain between ``low_hz`` and ``high_hz`` (<= 0: that much below Nyquist); the Nyquist bin gets
    weight 0, as in Kaldi."""
    nyquist = sample_rate / 2
    high_hz = high_hz + nyquist if high_hz <= 0 else high_hz
    lo, hi = _mel(torch.tensor(low_hz, dtype=torch.float64)), _mel(torch.tensor(high_hz, dtype=torch.float64))
    step = (hi - lo) / (n_mels + 1)
    k = torch.arange(n_mels, dtype=torch.float64)[:, None]
    left, center, right = lo + k * step, lo + (k + 1) * step, lo + (k + 2) * step  # (n_mels, 1) mel
    bin_mel = _mel(torch.arange(n_fft // 2, dtype=torch.float64) * (sample_rate / n_fft))[None, :]
    up = (bin_mel - left) / (center - left)
    down = (right - bin_mel) / (right - center)
    weights = torch.clamp(torch.minimum(up, down), min=0.0)  # (n_mels, n_fft // 2)
    return F.pad(weights, (0, 1)).float()  # (n_mels, n_fft // 2 + 1)


class KaldiFbank(nn.Module):
    """Kaldi-compatible log-mel filterbank, ``torchaudio.compliance.kaldi.fbank`` with BEATs'
    arguments (module docstring, step 1) in torch alone; no dither.

    (B, N) waveform, in whatever scale the caller wants analysed (BEATs: [-1, 1] x 2**15) ->
    (B, T, n_mels) natural-log mel energies, T = 1 + (N - 400) // 160 at 16 kHz (N >= 400).
    Its window and filters are non-persistent buffers: no state-dict keys.
    """

    def __init__(self, n_mels: int = 128, sample_rate: int = SAMPLE_RATE, frame_ms: float = 25.0,
                 shift_ms: float = 10.0, preemphasis: float = 0.97, low_hz: float = 20.0, high_hz: float = 0.0):
        super().__init__()
        self.win = int(sample_rate * frame_ms / 1000)  # samples, 400
        self.hop = int(sample_rate * shift_ms / 1000)  # samples, 160
        self.n_fft = 1 << (self.win - 1).bit_length()  # the next power of two, 512
        self.preemphasis = preemphasis
        n = torch.arange(self.win, dtype=torch.float64)
        povey = (0.5 - 0.5 * torch.cos(2 * math.pi * n / (self.win - 1))) ** 0.85
        self.register_buffer("window", povey.float(), persistent=False)  # (win,)
        self.register_buffer("mel", kaldi_mel_matrix(n_mels, self.n_fft, sample_rate, low_hz, high_hz),
                             persistent=False)  # (n_mels, n_fft // 2 + 1)

    def n_frames(self, n_samples: int) -> int:
        """Frames of a waveform of ``n_samples`` (0 when shorter than one frame)."""
        return 0 if n_samples < self.win else 1 + (n_samples - self.win) // self.hop

    def forward(self, wave: Tensor) -> Tensor:
        if wave.dim() != 2 or wave.shape[1] < self.win:
            raise ValueError(f"KaldiFbank: expected a (batch, samples) waveform of at least {self.win} samples, "
                             f"got shape {tuple(wave.shape)}")
        with torch.autocast(device_type=wave.device.type, enabled=False):
            frames = wave.float().unfold(1, self.win, self.hop)  # (B, T, win), a view
            frames = frames - frames.mean(dim=-1, keepdim=True)  # DC removal
            emph = torch.empty_like(frames)  # pre-emphasis x[i] - 0.97 x[i-1], with x[-1] := x[0]
            torch.sub(frames[..., 1:], frames[..., :-1], alpha=self.preemphasis, out=emph[..., 1:])
            emph[..., 0] = frames[..., 0] * (1.0 - self.preemphasis)
            emph.mul_(self.window)
            power = torch.fft.rfft(emph, n=self.n_fft).abs().pow_(2)  # (B, T, n_fft // 2 + 1)
            energies = power @ self.mel.T  # (B, T, n_mels)
            return energies.clamp_min(torch.finfo(torch.float32).eps).log()


# --------------------------------------------------------------------------- encoder parts
def _activation(name: str):
    if name == "relu":
        return F.relu
    if name == "gelu":
        return lambda x: F.gelu(x.float()).type_as(x)
    if name in ("gelu_accurate", "gelu_fast"):
        return lambda x: F.gelu(x.float(), approximate="tanh").type_as(x)
    if name == "tanh":
        return torch.tanh
    return lambda x: x  # linear; glu gates inside fc1


class _GLULinear(nn.Module):
    """fc1 of ``activation_fn: glu``: one Linear to 2 x out, the first half gated by swish of the second."""

    def __init__(self, d_in: int, d_out: int):
        super().__init__()
        self.d_out = d_out
        self.linear = nn.Linear(d_in, 2 * d_out)

    def forward(self, x: Tensor) -> Tensor:  # (..., d_in) -> (..., d_out)
        x = self.linear(x)
        return x[..., : self.d_out] * F.silu(x[..., self.d_out:])


class _WeightNormConv1d(nn.Module):
    """A grouped Conv1d under weight normalisation along its taps (``weight_norm(dim=2)``), stored as
    the released keys ``weight_g`` (1, 1, K), ``weight_v`` (C, C / groups, K) and ``bias`` (C,):
    weight = weight_v x weight_g / ||weight_v||, the norm over the first two dims per tap."""

    def __init__(self, channels: int, kernel: int, groups: int):
        super().__init__()
        self.groups, self.padding = groups, kernel // 2
        v = torch.randn(channels, channels // groups, kernel) * math.sqrt(4.0 / (kernel * channels))
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(v.norm(dim=(0, 1), keepdim=True))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T) -> (B, C, T + 1 - K % 2)
        weight = self.weight_v * (self.weight_g / self.weight_v.norm(dim=(0, 1), keepdim=True))
        return F.conv1d(x, weight, self.bias, padding=self.padding, groups=self.groups)


class _TrimTo(nn.Module):
    """Drops the extra last step an even-sized kernel's symmetric padding adds."""

    def __init__(self, kernel: int):
        super().__init__()
        self.extra = 1 if kernel % 2 == 0 else 0

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T') -> (B, C, T' - extra)
        return x[..., : x.shape[-1] - self.extra]


def relative_position_buckets(length: int, num_buckets: int, max_distance: int, device=None) -> Tensor:
    """(L, L) bucket of key j seen from query i (T5's bidirectional scheme): half the buckets per
    direction, exact below a quarter of them, log-spaced up to ``max_distance`` tokens, beyond it
    the last bucket."""
    rel = torch.arange(length, device=device)[None, :] - torch.arange(length, device=device)[:, None]  # j - i
    half = num_buckets // 2
    bucket = (rel > 0).long() * half
    dist = rel.abs()
    exact = half // 2
    far = exact + (torch.log(dist.clamp_min(1).float() / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    far = far.clamp_max(half - 1)
    return bucket + torch.where(dist < exact, dist, far)


class _SelfAttention(nn.Module):
    """Multi-head self-attention with BEATs' gated relative-position bias.

    (B, L, D), bias (H, L, L) or None -> (B, L, D), and the bias (computed here when None and this
    layer owns ``relative_attention_bias``) for the next layer.
    """

    def __init__(self, cfg: BEATsConfig, has_bias: bool):
        super().__init__()
        d, self.heads = cfg.encoder_embed_dim, cfg.encoder_attention_heads
        self.head_dim = d // self.heads
        self.num_buckets, self.max_distance = cfg.num_buckets, cfg.max_distance
        self.k_proj, self.v_proj, self.q_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        if has_bias:
            self.relative_attention_bias = nn.Embedding(cfg.num_buckets, self.heads)
        self.gru_rel_pos = cfg.gru_rel_pos
        if self.gru_rel_pos:
            self.grep_linear = nn.Linear(self.head_dim, 8)
            self.grep_a = nn.Parameter(torch.ones(1, self.heads, 1, 1))

    def position_bias(self, length: int) -> Tensor:
        """(H, L, L) bias from the relative-position buckets."""
        buckets = relative_position_buckets(length, self.num_buckets, self.max_distance,
                                            self.relative_attention_bias.weight.device)
        return self.relative_attention_bias(buckets).permute(2, 0, 1)

    def forward(self, x: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        B, L, D = x.shape
        q = self.q_proj(x).view(B, L, self.heads, self.head_dim).transpose(1, 2)  # (B, H, L, d)
        k = self.k_proj(x).view(B, L, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, L, self.heads, self.head_dim).transpose(1, 2)
        if bias is None and hasattr(self, "relative_attention_bias"):
            bias = self.position_bias(L)  # (H, L, L)
        mask = None
        if bias is not None:
            mask = bias[None].to(q.dtype)  # (1, H, L, L)
            if self.gru_rel_pos:  # a gate per (clip, head, query) from the unscaled query
                a, b = torch.sigmoid(self.grep_linear(q).view(B, self.heads, L, 2, 4).sum(-1)).chunk(2, dim=-1)
                gate = a * (b * self.grep_a - 1.0) + 2.0  # (B, H, L, 1)
                mask = gate * mask  # (B, H, L, L)
        # softmax(q k^T / sqrt(d) + bias) v; BEATs' max-subtraction trick is the same softmax
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, L, d)
        return self.out_proj(out.transpose(1, 2).reshape(B, L, D)), bias


class _EncoderLayer(nn.Module):
    """One transformer layer, post-norm (with DeepNorm's residual scale) or pre-norm. (B, L, D) -> (B, L, D)."""

    def __init__(self, cfg: BEATsConfig, has_bias: bool):
        super().__init__()
        d, ffn = cfg.encoder_embed_dim, cfg.encoder_ffn_embed_dim
        self.self_attn = _SelfAttention(cfg, has_bias)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = _GLULinear(d, ffn) if cfg.activation_fn == "glu" else nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.act = _activation(cfg.activation_fn)
        self.pre_norm = cfg.layer_norm_first
        self.alpha = math.pow(2 * cfg.encoder_layers, 0.25) if cfg.deep_norm else 1.0

    def forward(self, x: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if self.pre_norm:
            h, bias = self.self_attn(self.self_attn_layer_norm(x), bias)
            x = x + h
            return x + self.fc2(self.act(self.fc1(self.final_layer_norm(x)))), bias
        h, bias = self.self_attn(x, bias)
        x = self.self_attn_layer_norm(x * self.alpha + h)
        return self.final_layer_norm(x * self.alpha + self.fc2(self.act(self.fc1(x)))), bias


class _Encoder(nn.Module):
    """Positional convolution, the layers, the final norm. (B, L, D) -> (B, L, D)."""

    def __init__(self, cfg: BEATsConfig):
        super().__init__()
        d = cfg.encoder_embed_dim
        # a Sequential for the released key names: encoder.pos_conv.0.weight_g / weight_v / bias
        self.pos_conv = nn.Sequential(_WeightNormConv1d(d, cfg.conv_pos, cfg.conv_pos_groups),
                                      _TrimTo(cfg.conv_pos), nn.GELU())
        self.layers = nn.ModuleList(_EncoderLayer(cfg, cfg.relative_position_embedding)
                                    for _ in range(cfg.encoder_layers))
        if cfg.relative_position_embedding:  # one bias table, under every layer's name (as released)
            for layer in self.layers[1:]:
                layer.self_attn.relative_attention_bias = self.layers[0].self_attn.relative_attention_bias
        self.layer_norm = nn.LayerNorm(d)
        self.pre_norm = cfg.layer_norm_first

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        if not self.pre_norm:
            x = self.layer_norm(x)
        bias = None  # (H, L, L), computed by the first layer
        for layer in self.layers:
            x, bias = layer(x, bias)
        return self.layer_norm(x) if self.pre_norm else x


# --------------------------------------------------------------------------- the model
class BEATs(nn.Module):
    """BEATs as a frame-embedding extractor (module docstring). Build it from a config for random
    weights (``torch.manual_seed`` first for reproducible ones), or load a released checkpoint with
    :func:`load_beats`.

    ``forward``: waveform (B, N) at 16 kHz, float in [-1, 1] -> ``{"frame": (B, D, T_tok),
    "global": (B, D)}`` float32, D = ``cfg.encoder_embed_dim``, T_tok = :meth:`n_tokens` (N)
    (496 for 10 s).
    """

    def __init__(self, cfg: BEATsConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or BEATsConfig()
        self.fbank = KaldiFbank(n_mels=128)
        p = cfg.input_patch_size
        self.patch_embedding = nn.Conv2d(1, cfg.embed_dim, kernel_size=p, stride=p, bias=cfg.conv_bias)
        self.layer_norm = nn.LayerNorm(cfg.embed_dim)
        self.post_extract_proj = (nn.Linear(cfg.embed_dim, cfg.encoder_embed_dim)
                                  if cfg.embed_dim != cfg.encoder_embed_dim else None)
        self.encoder = _Encoder(cfg)
        if cfg.finetuned_model:  # the AudioSet classifier of fine-tuned checkpoints: loaded, not used
            self.predictor = nn.Linear(cfg.encoder_embed_dim, cfg.predictor_class)
        self._init_weights()

    def _init_weights(self) -> None:
        """BERT-style random weights (normal, std 0.02; zero biases) for the linear layers and the bias table."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def dim(self) -> int:
        """D, the width of the embeddings."""
        return self.cfg.encoder_embed_dim

    def n_tokens(self, n_samples: int) -> int:
        """T_tok for a waveform of ``n_samples`` at 16 kHz: (fbank frames // p) x (128 // p), p the patch size."""
        p = self.cfg.input_patch_size
        return (self.fbank.n_frames(n_samples) // p) * (128 // p)

    def normalised_fbank(self, wave: Tensor) -> Tensor:
        """(B, N) in [-1, 1] -> (B, T, 128) log-mel, normalised as BEATs was trained."""
        return (self.fbank(wave * WAVE_SCALE) - FBANK_MEAN) / (2 * FBANK_STD)

    def tokens(self, wave: Tensor) -> Tensor:
        """(B, N) waveform -> (B, T_tok, D) encoder outputs."""
        if wave.dim() != 2:
            raise ValueError(f"BEATs: expected a (batch, samples) waveform, got shape {tuple(wave.shape)}")
        if self.n_tokens(wave.shape[1]) < 1:
            raise ValueError(f"BEATs: {wave.shape[1]} samples are too short for one "
                             f"{self.cfg.input_patch_size}-frame patch")
        fbank = self.normalised_fbank(wave)  # (B, T, 128)
        x = self.patch_embedding(fbank.unsqueeze(1).to(self.patch_embedding.weight.dtype))  # (B, E, T/p, 128/p)
        x = x.flatten(2).transpose(1, 2)  # (B, T_tok, E), time-major
        x = self.layer_norm(x)
        if self.post_extract_proj is not None:
            x = self.post_extract_proj(x)  # (B, T_tok, D)
        return self.encoder(x)

    def forward(self, wave: Tensor) -> dict[str, Tensor]:
        x = self.tokens(wave)  # (B, T_tok, D)
        return {"frame": x.transpose(1, 2).float(), "global": x.mean(dim=1).float()}

    def checkpoint(self) -> dict[str, Any]:
        """This model in the released format ``{"cfg": {...}, "model": state_dict}`` (``torch.save`` it
        to get a file :func:`load_beats` reads)."""
        return {"cfg": self.cfg.to_dict(), "model": self.state_dict()}


def _listed(keys: list[str], limit: int = 12) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_beats(path: str | Path) -> BEATs:
    """A BEATs (on the CPU, eval mode) from a released checkpoint file ``{"cfg": ..., "model": ...}``,
    read with ``torch.load(..., weights_only=True)``: a file holding anything but tensors and plain
    data (which could run code when unpickled) is refused, not run. The weights must match the
    model its cfg describes key for key (``strict=True``).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: naming the file: not a torch file, refused objects, not the released layout,
            a bad cfg, missing or unexpected keys (named), tensors of the wrong shape.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BEATs checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text:  # torch's weights-only unpickler met an object
            first = next(ln.strip() for ln in text.splitlines() if "global" in ln.lower())[:200]
            raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain data, which "
                                  f"could run code when loaded ({first})") from None
        cause = exc.__cause__ or exc.__context__
        reason = str(cause) if cause is not None and str(cause) else (text.strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: not a torch checkpoint, or a corrupt one (UnpicklingError: "
                              f"{reason[:200]})") from None
    except Exception as exc:
        first = (str(exc).strip().splitlines() or ["(no message)"])[0][:200]
        raise CheckpointError(f"{path}: not a torch checkpoint, or a corrupt one ({type(exc).__name__}: {first})") from None
    if not isinstance(ckpt, Mapping) or "cfg" not in ckpt or "model" not in ckpt:
        held = sorted(map(str, ckpt)) if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a BEATs checkpoint in the released format (a dict with 'cfg' and "
                              f"'model', as BEATs_iter3_plus_AS2M.pt); it holds {held}")
    cfg = BEATsConfig.from_dict(ckpt["cfg"], origin=str(path))
    state = ckpt["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: 'model' must be a state dict (key -> tensor)")
    model = BEATs(cfg)
    expected, got = set(model.state_dict()), set(map(str, state))
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        parts = ([f"missing keys: {_listed(missing)}"] if missing else []) + (
            [f"unexpected keys: {_listed(unexpected)}"] if unexpected else [])
        raise CheckpointError(f"{path}: its weights do not match the BEATs its cfg describes "
                              f"({cfg.encoder_layers} layers, width {cfg.encoder_embed_dim}): {'; '.join(parts)}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes
        detail = " ".join(str(exc).split())[:400]
        raise CheckpointError(f"{path}: its weights do not fit the BEATs its cfg describes ({detail})") from None
    return model.eval()
