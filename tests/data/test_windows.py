"""Recordings of any length for inference: streamed reading, the window plan, the windows' samples."""

import numpy as np
import pytest
import soundfile as sf

from dcase_fpd_plugin.data.audio import stream_mono
from dcase_fpd_plugin.data.tsv import DataError
from dcase_fpd_plugin.data.datasets import ClipRecord
from dcase_fpd_plugin.data.windows import plan_file, plan_folder, split_key, window_key, window_starts, window_waves
from dcase_fpd_plugin.recipe.schema import DEFAULTS

FEATS = dict(DEFAULTS["feats"], clip_s=2.0)  # 16 kHz, hop 256: frames of 1024 samples with time pooling 4
FRAME_S = 0.064
T = 31  # output frames of a 2 s clip: (1 + 32000 // 256) // 4


def noise(sr, seconds, channels=1, seed=0):
    x = np.random.default_rng(seed).standard_normal((int(round(sr * seconds)), channels)).astype(np.float32) * 0.1
    return x if channels > 1 else x[:, 0]


@pytest.mark.parametrize("sr, channels", [(16000, 1), (8000, 1), (44100, 2), (22050, 1)])
def test_stream_equals_whole_file_decode(tmp_path, sr, channels):
    """The blocks join to what load_clip decodes and resamples from the whole file."""
    import librosa

    p = tmp_path / "a.wav"
    sf.write(p, noise(sr, 3.3, channels), sr, subtype="FLOAT")
    x, _ = sf.read(p, dtype="float32", always_2d=True)
    whole = x.mean(axis=1)
    if sr != 16000:
        whole = librosa.resample(whole, orig_sr=sr, target_sr=16000, res_type="soxr_hq")
    blocks = list(stream_mono(p, 16000, block_frames=5000))
    assert len(blocks) > 5
    got = np.concatenate(blocks)
    assert len(whole) - 1 <= len(got) <= len(whole)  # librosa may pad one zero at the end
    np.testing.assert_array_equal(got, whole[:len(got)])


def test_stream_names_a_corrupt_file(tmp_path):
    p = tmp_path / "nan.wav"
    x = noise(16000, 2.0)
    x[30000] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"nan\.wav: non-finite .*the first at 1\.875 s"):
        list(stream_mono(p, 16000, block_frames=1000))
    with pytest.raises(DataError, match="not found"):
        list(stream_mono(tmp_path / "none.wav", 16000))


def test_window_starts_cover_every_frame_and_end_at_the_last():
    assert window_starts(20, 31, 16) == [0]
    assert window_starts(31, 31, 16) == [0]
    assert window_starts(32, 31, 16) == [0, 1]
    starts = window_starts(547, 156, 78)
    assert starts[:3] == [0, 78, 156] and starts[-1] == 547 - 156
    covered = np.zeros(547, int)
    for s in starts:
        covered[s:s + 156] += 1
    assert covered.min() >= 1 and covered.max() <= 3
    assert split_key(window_key("a#b.wav", 12)) == ("a#b.wav", 12)


def test_plan_short_file_is_one_clip_long_file_windows(tmp_path):
    short, edge, long = tmp_path / "short.wav", tmp_path / "edge.wav", tmp_path / "long.wav"
    sf.write(short, noise(16000, 1.2), 16000)
    sf.write(edge, noise(16000, 2.09), 16000)  # within load_clip's 0.1 s: one (cropped) clip, as before
    sf.write(long, noise(16000, 7.0), 16000)
    for p in (short, edge):
        plan = plan_file(p, FEATS, T, FRAME_S)
        assert not plan.windowed and plan.starts == (0,) and plan.n_frames == T
    plan = plan_file(long, FEATS, T, FRAME_S, overlap=0.5)
    assert plan.windowed and plan.n_frames == int(np.ceil(7.0 * 16000 / 1024)) == 110
    assert plan.starts == (0, 15, 30, 45, 60, 75, 79)  # stride 31 - 16 = 15; the last ends at frame 110
    assert plan.duration_s == pytest.approx(7.0)
    with pytest.raises(ValueError, match="overlap"):
        plan_file(long, FEATS, T, FRAME_S, overlap=1.0)


def test_plan_warns_below_the_model_rate_only(tmp_path, recwarn):
    low, high = tmp_path / "low.wav", tmp_path / "high.wav"
    sf.write(low, noise(8000, 5.0), 8000)
    sf.write(high, noise(44100, 5.0), 44100)
    with pytest.warns(UserWarning, match=r"low\.wav: sample rate 8000 Hz, below the model's 16000 Hz"):
        assert plan_folder([ClipRecord(low)], FEATS, T, FRAME_S)[0].windowed
    recwarn.clear()
    assert plan_folder([ClipRecord(high)], FEATS, T, FRAME_S)[0].windowed
    assert plan_file(low, FEATS, T, FRAME_S).file_rate == 8000  # plan_file itself says nothing
    assert not [w for w in recwarn if "sample rate" in str(w.message)]


@pytest.mark.filterwarnings("ignore:.*below the model's")
@pytest.mark.parametrize("sr", [16000, 8000])
def test_window_waves_are_slices_of_the_whole_signal(tmp_path, sr):
    import librosa

    p = tmp_path / "long.wav"
    sf.write(p, noise(sr, 7.0), sr, subtype="FLOAT")
    whole = sf.read(p, dtype="float32")[0]
    if sr != 16000:
        whole = librosa.resample(whole, orig_sr=sr, target_sr=16000, res_type="soxr_hq")
    plan = plan_file(p, FEATS, T, FRAME_S)
    waves = list(window_waves(plan, 16000, 32000, 1024))
    assert len(waves) == len(plan.starts)
    for start, (wave, n_valid) in zip(plan.starts, waves):
        ref = whole[start * 1024:start * 1024 + 32000]
        assert wave.shape == (32000,) and n_valid == len(ref)
        np.testing.assert_array_equal(wave[:n_valid], ref)
        assert not wave[n_valid:].any()
    assert waves[-1][1] < 32000  # the last window reaches past the end, padded with zeros


def test_windowed_scoring_set_reads_long_clips_as_infer_with_shifted_labels(tmp_path):
    """A validation/test set's long clip comes in infer's windows (the same features), each labelled with
    the clip's events shifted to its start; a short clip is ClipDataset's item unchanged."""
    from dcase_fpd_plugin.data.datasets import ClipDataset, ClipRecord
    from dcase_fpd_plugin.data.features import FeatureExtractor
    from dcase_fpd_plugin.data.labels import Event, LabelEncoder
    from dcase_fpd_plugin.data.windows import WindowDataset, WindowedClips

    sf.write(tmp_path / "long.wav", noise(16000, 5.0), 16000)
    sf.write(tmp_path / "short.wav", noise(16000, 2.0, seed=1), 16000)
    features, encoder = FeatureExtractor(FEATS), LabelEncoder(["a", "b"], FRAME_S, T)
    long_plan = plan_file(tmp_path / "long.wav", FEATS, T, FRAME_S)
    events = [Event("long.wav", 3.5, 4.2, "b")]
    records = [ClipRecord(tmp_path / "short.wav", events=[]), ClipRecord(tmp_path / "long.wav", events=events)]
    ds = WindowedClips(records, 0, features, encoder, {1: long_plan}, "x.tsv")
    n = len(long_plan.starts)
    assert len(ds) == 1 + n and ds.records == records and ds.origin == "x.tsv"
    assert ds.windows == {window_key("long.wav", k): ("long.wav", s, long_plan.n_frames)
                          for k, s in enumerate(long_plan.starts)}
    plain = ClipDataset(records[:1], 0, features, encoder)[0]
    item = ds[0]
    assert item["filename"] == "short.wav" and torch_equal(item["feats"], plain["feats"])
    inferred = list(WindowDataset([long_plan], features, encoder))
    for k in range(n):
        item = ds[1 + k]
        assert item["filename"] == window_key("long.wav", k) and item["has_strong"]
        assert torch_equal(item["feats"], inferred[k]["feats"])
        assert item["n_valid_frames"] == inferred[k]["n_valid_frames"]
        t0 = long_plan.starts[k] * FRAME_S
        want = encoder.encode_strong([(3.5 - t0, 4.2 - t0, "b")])
        np.testing.assert_array_equal(item["strong"].numpy(), want)
    assert ds[n]["strong"][:, 1].sum() > 0  # the last window holds the event past the clip length


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())
