"""`dcase-fpd infer` on recordings of any length and sample rate (#27 item 6).

A tiny demo model (4 s clips) is trained once for the module; recordings are made by concatenating
demo test clips, so their reference events are known.
"""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.data.features import FeatureExtractor
from dcase_fpd_plugin.data.labels import LabelEncoder
from dcase_fpd_plugin.evaluation.postprocessing import decide, median_filter
from dcase_fpd_plugin.evaluation.scores import read_scores
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train
from dcase_fpd_plugin.training.task import load_task

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
CLIP_S = 4.0  # the fixture data's clip length, the model's feats.clip_s
N_CLIPS = 9  # 36 s of recording


@pytest.fixture(scope="module")
def model(demo_data, tmp_path_factory):
    """(checkpoint, the recipe it was trained with) of a 3-epoch demo run (~12 s on 2 cores)."""
    root = tmp_path_factory.mktemp("infer_long")
    overrides = [f"data.{k}={v}" for k, v in demo_data.items()] + [
        f"feats.clip_s={CLIP_S}", f"data.cache_dir={root / 'cache'}", f"training.exp_dir={root / 'exp'}",
        "training.n_epochs=3", "training.batch_size=[6, 6, 0]", "training.progress_bar=false",
        "training.num_threads=1", "eval.psds=false"]
    res = train(load_recipe(DEMO, overrides))
    return res.best_ckpt or res.last_ckpt


@pytest.fixture(scope="module")
def clips(demo_data) -> list[Path]:
    return sorted(Path(demo_data["test_folder"]).glob("*.wav"))[:N_CLIPS]


def concatenate(paths, out: Path, sample_rate: int = 16000) -> Path:
    """The clips end to end (16-bit samples copied exactly)."""
    sf.write(out, np.concatenate([sf.read(p, dtype="int16")[0] for p in paths]), sample_rate, subtype="PCM_16")
    return out


def reference_events(demo_data, clips) -> pd.DataFrame:
    """The clips' labelled events on the concatenated recording's time line."""
    ref = pd.read_csv(demo_data["test_tsv"], sep="\t").dropna()
    shift = {p.name: i * CLIP_S for i, p in enumerate(clips)}
    ref = ref[ref.filename.isin(shift)].copy()
    ref["onset"] += ref.filename.map(shift)
    ref["offset"] += ref.filename.map(shift)
    return ref


def test_long_recording_in_overlapping_windows(model, clips, demo_data, tmp_path):
    """A 36 s file (9 clips of the 4 s model) is scored over its whole length: events after the clip
    length, at their time in the file; the first window's scores are the first clip's alone."""
    folder = tmp_path / "audio"
    folder.mkdir()
    concatenate(clips, folder / "long.wav")
    sf.write(folder / "first.wav", sf.read(clips[0], dtype="int16")[0], 16000, subtype="PCM_16")
    out, scores_dir = tmp_path / "events.tsv", tmp_path / "scores"
    assert main(["infer", "--ckpt", str(model), "--audio", str(folder), "--out", str(out),
                 "--scores", str(scores_dir)]) == 0
    events = pd.read_csv(out, sep="\t")
    long = events[events.filename == "long.wav"]
    assert (long.offset > long.onset).all() and long.offset.max() <= N_CLIPS * CLIP_S
    late = long[long.onset >= 10.0]
    assert len(late) > 0, "no event past 10 s"
    # the late events are where the clips' own events are (same class, overlapping in time)
    ref = reference_events(demo_data, clips)
    hits = [any((r.event_label == e.event_label) and r.onset < e.offset and e.onset < r.offset
                for r in ref.itertuples()) for e in late.itertuples()]
    assert sum(hits) >= 1, (late, ref)

    scores = read_scores(scores_dir)
    whole, first = scores["long"], scores["first"]
    n_frames = math.ceil(N_CLIPS * CLIP_S * 16000 / 1024)  # 0.064 s frames over the whole file
    assert len(whole) == n_frames and whole.offset.iloc[-1] == pytest.approx(N_CLIPS * CLIP_S)
    assert whole.onset.iloc[200] == pytest.approx(200 * 0.064)
    # frames before the second window (stride 31 of 62 frames), less the median filter's half window
    classes = list(first.columns[2:])
    alone = whole[classes].to_numpy()[:31 - 7 // 2]
    np.testing.assert_allclose(alone, first[classes].to_numpy()[:len(alone)], atol=1e-5)
    assert np.abs(whole[classes].to_numpy()[31:60] - first[classes].to_numpy()[31:60]).max() > 1e-4


def test_short_file_as_before_next_to_a_long_one(model, clips, tmp_path):
    """A clip no longer than feats.clip_s (one of exactly the clip length, one shorter) gives the events
    and scores of the clip path (load_clip, zero padding, scores over the padded clip, events clipped
    to clip_s), beside a long file."""
    folder = tmp_path / "audio"
    folder.mkdir()
    concatenate(clips[:3], folder / "long.wav")
    sf.write(folder / "exact.wav", sf.read(clips[1], dtype="int16")[0], 16000, subtype="PCM_16")
    sf.write(folder / "short.wav", sf.read(clips[2], dtype="int16")[0][:int(3.1 * 16000)], 16000, subtype="PCM_16")
    out, scores_dir = tmp_path / "events.tsv", tmp_path / "scores"
    assert main(["infer", "--ckpt", str(model), "--audio", str(folder), "--out", str(out),
                 "--scores", str(scores_dir), "--threshold", "0.3"]) == 0
    task = load_task(model)
    task.eval()
    events, tables = pd.read_csv(out, sep="\t"), read_scores(scores_dir)
    for name in ("exact.wav", "short.wav"):
        mel, n_valid = FeatureExtractor(task.recipe["feats"]).compute(folder / name)
        valid = torch.arange(task.n_frames)[None] < math.ceil(n_valid / 16000 / task.frame_hop_s)
        with torch.no_grad():
            probs = task.eval_model()(torch.from_numpy(mel)[None], valid).frame_probs[0].numpy()
        filtered = median_filter(probs, task.recipe["eval"]["median_window"])
        expected = LabelEncoder(task.classes, task.frame_hop_s, task.n_frames).decode_strong(
            decide(filtered, 0.3), name, CLIP_S)
        got = events[events.filename == name]
        assert expected and [(e.onset, e.offset, e.event_label) for e in expected] == list(
            zip(got.onset.round(3), got.offset.round(3), got.event_label))
        table = tables[name[:-4]]
        assert len(table) == task.n_frames and table.offset.iloc[-1] == pytest.approx(task.n_frames * 0.064)
        np.testing.assert_allclose(table[task.classes].to_numpy(), filtered, atol=1e-6)
    assert len(tables["long"]) == math.ceil(3 * CLIP_S / 0.064)


def test_low_sample_rate_warns_naming_file_and_rates(model, clips, tmp_path):
    """An 8 kHz copy used to be upsampled silently; a 44.1 kHz one is still resampled quietly."""
    import librosa

    folder = tmp_path / "audio"
    folder.mkdir()
    x, _ = sf.read(clips[0], dtype="float32")
    sf.write(folder / "low.wav", librosa.resample(x, orig_sr=16000, target_sr=8000), 8000)
    sf.write(folder / "high.wav", librosa.resample(x, orig_sr=16000, target_sr=44100), 44100)
    with pytest.warns(UserWarning, match=r"low\.wav: sample rate 8000 Hz, below the model's 16000 Hz") as record:
        assert main(["infer", "--ckpt", str(model), "--audio", str(folder), "--out", str(tmp_path / "e.tsv")]) == 0
    assert not [w for w in record if "high.wav" in str(w.message)]


def test_overlap_add_averages_overlapping_windows():
    from dcase_fpd_plugin.evaluation.postprocessing import OverlapAdd

    stitch = OverlapAdd()
    stitch.add("a", 0, np.full((4, 2), 1.0, np.float32), 6)
    stitch.add("a", 2, np.full((4, 2), 3.0, np.float32), 6)
    out = stitch.pop("a")
    assert out.dtype == np.float32 and "a" not in stitch
    np.testing.assert_array_equal(out[:, 0], [1, 1, 2, 2, 3, 3])
    one = np.random.default_rng(0).random((5, 3)).astype(np.float32)
    stitch.add("b", 0, one, 5)
    np.testing.assert_array_equal(stitch.pop("b"), one)  # one window: its values, bit for bit
    stitch.add("c", 0, one, 8)
    with pytest.raises(ValueError, match="3 frame.*no window"):
        stitch.pop("c")
