"""Our ``dcase2023_baseline`` CRNN against DESED_task's, end to end from the same audio files.

DESED_task's side is its own code, imported from a checkout: the 2023 recipe's ``SEDTask4``
(``recipes/dcase2023_task4_baseline/local/sed_trainer.py``: its ``mel_spec``, ``take_log``, scaler and
``detect``), its ``desed_task.nnet.CRNN`` built from its ``confs/default.yaml``. Our side is the
package: :class:`FeatureExtractor` on the same files and the CRNN of the bundled recipe, given
DESED_task's weights and BatchNorm statistics mapped tensor by tensor in ``state_dict`` order.
The BatchNorm running statistics are first moved off their initial 0 / 1 by a few forward passes
of DESED_task's model in training mode over the clips, so that the comparison is not of a fresh
network.

The clips: ``--clips`` real recordings of ``--soundbank`` (one background, cut or padded to 10 s,
plus one foreground event at a random onset), written as 16-bit WAV files, which both sides
read. Printed: the largest absolute difference of the log-mel features (dB), of the scaled
input, and of the frame (strong) and clip (weak) outputs; also the outputs with the scaling
this package used before 0.2 ([-1, 1], ``net.crnn_input_norm: minmax_signed``). Exit code 1 when
an output differs by more than ``--tolerance``.

Setting up DESED_task beside this checkout (torch 2.13 has no matching torchaudio build: its
pure-Python transforms are enough, so the compiled parts are removed)::

    git clone https://github.com/DCASE-REPO/DESED_task /tmp/desed_task && git -C /tmp/desed_task checkout f7dc296
    pip install --no-deps --target /tmp/ta torchaudio==2.11.0 psds_eval thop && rm /tmp/ta/torchaudio/lib/*.so
    PYTHONPATH=/tmp/ta python benchmarks/desed_task_parity.py --desed-task /tmp/desed_task

No DESED_task code is copied here: the script imports it from ``--desed-task``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SR, CLIP_S = 16000, 10.0


def make_clips(soundbank: Path, out: Path, n: int, seed: int) -> list[Path]:
    """``n`` 10-s WAV clips from real recordings: a background cut or padded to 10 s plus one
    foreground event at a random onset (peak-normalised to 0.9)."""
    rng = np.random.default_rng(seed)
    backgrounds = sorted((soundbank / "background").glob("*.flac"))
    foregrounds = sorted((soundbank / "foreground").glob("*/*.flac"))
    if not backgrounds or not foregrounds:
        raise SystemExit(f"{soundbank}: no background/*.flac or foreground/*/*.flac (the shared soundbank)")
    n_samples = int(SR * CLIP_S)
    paths = []
    for k in range(n):
        bg, _ = sf.read(str(backgrounds[rng.integers(len(backgrounds))]), dtype="float32")
        fg, _ = sf.read(str(foregrounds[rng.integers(len(foregrounds))]), dtype="float32")
        clip = np.zeros(n_samples, np.float32)
        clip[: min(len(bg), n_samples)] = 0.3 * bg[:n_samples]
        onset = int(rng.integers(0, n_samples - min(len(fg), n_samples) + 1))
        fg = fg[: n_samples - onset]
        clip[onset:onset + len(fg)] += fg
        clip *= 0.9 / max(float(np.abs(clip).max()), 1e-6)
        path = out / f"clip_{k:02d}.wav"
        sf.write(str(path), clip, SR, subtype="PCM_16")
        paths.append(path)
    return paths


def _alias_old_sed_scores_eval() -> None:
    """DESED_task f7dc296 imports ``sed_scores_eval.utils.scores`` (an older sed_scores_eval's
    module, used there only to write score files); the installed one has it as
    ``sed_scores_eval.base_modules.scores``. Alias it, so that the trainer module imports."""
    import importlib

    try:
        importlib.import_module("sed_scores_eval.utils.scores")
    except ImportError:
        sys.modules["sed_scores_eval.utils.scores"] = importlib.import_module("sed_scores_eval.base_modules.scores")


@contextlib.contextmanager
def _torchmetrics_without_compute_on_step():
    """DESED_task f7dc296 builds its validation F1 metrics with ``compute_on_step=False``, a
    keyword later torchmetrics refuse; drop it while its trainer is built (those metrics are not
    used here)."""
    import torchmetrics.classification.f_beta as f_beta

    original = f_beta.MultilabelF1Score

    def tolerant(*args, compute_on_step=None, **kwargs):
        return original(*args, **kwargs)

    f_beta.MultilabelF1Score = tolerant
    try:
        yield
    finally:
        f_beta.MultilabelF1Score = original


def desed_task_side(checkout: Path, waves: torch.Tensor, seed: int):
    """DESED_task's features, scaled input and outputs, and its CRNN's ``state_dict``."""
    recipe_dir = checkout / "recipes" / "dcase2023_task4_baseline"
    sys.path[:0] = [str(checkout), str(recipe_dir)]
    _alias_old_sed_scores_eval()
    from desed_task.nnet.CRNN import CRNN as DesedCRNN
    from desed_task.utils.encoder import ManyHotEncoder
    from local.classes_dict import classes_labels
    from local.sed_trainer import SEDTask4

    conf = yaml.safe_load((recipe_dir / "confs" / "default.yaml").read_text())
    torch.manual_seed(seed)
    student = DesedCRNN(**conf["net"])
    encoder = ManyHotEncoder(list(classes_labels), audio_len=conf["data"]["audio_max_len"],
                             frame_len=conf["feats"]["n_filters"], frame_hop=conf["feats"]["hop_length"],
                             net_pooling=conf["data"]["net_subsample"], fs=conf["data"]["fs"])  # as its train_sed.py
    with _torchmetrics_without_compute_on_step():
        task = SEDTask4(conf, encoder=encoder, sed_student=student)
    with torch.no_grad():
        mels = task.mel_spec(waves)  # (B, F, T_in) magnitudes
        student.train()  # move the BatchNorm running statistics off 0 / 1
        for _ in range(3):
            task.detect(mels, student)
        student.eval()
        log_mels = task.take_log(mels)
        scaled = task.scaler(log_mels)
        strong, weak = task.detect(mels, student)  # (B, C, T), (B, C)
    return log_mels, scaled, strong.transpose(1, 2), weak, student.state_dict()


def our_model(state: dict[str, torch.Tensor], input_norm: str):
    """The bundled recipe's CRNN with ``state``'s tensors, mapped in order (names differ)."""
    from dcase_fpd_plugin.models import build_model
    from dcase_fpd_plugin.recipe.loading import load_recipe

    recipe = load_recipe("dcase2023_baseline")
    model = build_model({**recipe["net"], "crnn_input_norm": input_norm}, recipe["feats"],
                        len(recipe["data"]["classes"]))
    ours = model.state_dict()
    if len(ours) != len(state):
        raise SystemExit(f"{len(ours)} tensors in our CRNN's state_dict, {len(state)} in DESED_task's")
    mapped = {}
    for (name, mine), (their_name, theirs) in zip(ours.items(), state.items()):
        if mine.shape != theirs.shape:
            raise SystemExit(f"shape mismatch: our {name} {tuple(mine.shape)} vs DESED_task's {their_name} "
                             f"{tuple(theirs.shape)}")
        mapped[name] = theirs.clone()
    model.load_state_dict(mapped)
    return model.eval(), recipe


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--desed-task", type=Path, required=True, help="a DESED_task checkout (commit f7dc296)")
    ap.add_argument("--soundbank", type=Path, default=ROOT.parent / "shared" / "soundbank")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tolerance", type=float, default=1e-5, help="largest output difference accepted")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)

    from dcase_fpd_plugin.data.features import FeatureExtractor

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_clips(args.soundbank, Path(tmp), args.clips, args.seed)
        waves = torch.from_numpy(np.stack([sf.read(str(p), dtype="float32")[0] for p in paths]))  # (B, N)
        log_mels, scaled, strong, weak, state = desed_task_side(args.desed_task, waves, args.seed)
        model, recipe = our_model(state, "minmax")
        extractor = FeatureExtractor(recipe["feats"])
        feats = torch.from_numpy(np.stack([extractor(p)[0] for p in paths]))  # (B, F, T_in) dB
    n_params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        out = model(feats)
        old = our_model(state, "minmax_signed")[0](feats)

    def diff(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a - b).abs().max())

    rows = [
        ("log-mel features (dB)", diff(feats, log_mels)),
        ("scaled input, [0, 1]", diff(model.normalize(feats), scaled)),
        ("frame probabilities (strong)", diff(out.frame_probs, strong)),
        ("clip probabilities (weak)", diff(out.clip_probs, weak)),
        ("strong, with the pre-0.2 [-1, 1] scaling", diff(old.frame_probs, strong)),
        ("weak, with the pre-0.2 [-1, 1] scaling", diff(old.clip_probs, weak)),
    ]
    print(f"DESED_task {args.desed_task} vs dcase_fpd_plugin, {len(paths)} clips of 10 s from {args.soundbank}, "
          f"CRNN of {n_params:,} parameters, {len(state)} state tensors mapped in order, eval mode")
    for name, value in rows:
        print(f"  max |difference| {name:42s} {value:.3g}")
    worst = max(rows[2][1], rows[3][1])
    ok = worst <= args.tolerance
    print(f"outputs {'within' if ok else 'NOT within'} {args.tolerance:g} of DESED_task's (largest {worst:.3g})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
