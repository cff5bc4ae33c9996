import numpy as np
import pytest
import soundfile as sf

from dcase_fpd_plugin.data.audio import load_clip
from dcase_fpd_plugin.data.features import FeatureExtractor, n_stft_frames
from dcase_fpd_plugin.data.tsv import DataError
from dcase_fpd_plugin.recipe.schema import DEFAULTS

FEATS = dict(DEFAULTS["feats"], clip_s=2.0)


def tone(sr, seconds, f=1000.0, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    x = 0.5 * np.sin(2 * np.pi * f * t).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def test_resample_downmix_and_pad(tmp_path):
    p = tmp_path / "a.flac"
    sf.write(p, tone(44100, 1.5, channels=2), 44100)
    x, n_valid = load_clip(p, 16000, 2.0)
    assert x.shape == (32000,) and x.dtype == np.float32
    assert n_valid == 24000
    assert np.all(x[24000:] == 0) and np.abs(x[:24000]).max() > 0.4
    # dominant frequency preserved by resampling
    spec = np.abs(np.fft.rfft(x[:16000]))
    assert abs(np.argmax(spec) * 16000 / 16000 - 1000) < 5


def test_long_clip_is_refused_not_cropped(tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, tone(16000, 3.0), 16000)
    with pytest.raises(DataError, match="more than feats.clip_s"):
        load_clip(p, 16000, 2.0)


def test_unreadable_audio_named(tmp_path):
    p = tmp_path / "bad.wav"
    p.write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="bad.wav: unreadable audio"):
        load_clip(p, 16000, 1.0)


def test_logmel_shape_and_hop_255():
    fe = FeatureExtractor(dict(FEATS, hop_length=255))
    assert fe.n_frames == n_stft_frames(32000, 255) == 126
    fe256 = FeatureExtractor(FEATS)
    assert fe256.n_frames == 1 + 32000 // 256


def test_tone_lands_in_the_right_mel_band(tmp_path):
    import librosa

    p = tmp_path / "t.wav"
    sf.write(p, tone(16000, 2.0, f=2000.0), 16000)
    mel, _ = FeatureExtractor(FEATS)(p)
    assert mel.shape == (128, 126)
    centers = librosa.mel_frequencies(n_mels=130, fmin=0, fmax=8000, htk=True)[1:-1]
    band = int(np.argmax(mel[:, 60]))
    assert abs(centers[band] - 2000) < 150


def test_cache_is_content_keyed_and_hit(tmp_path):
    a = tmp_path / "a.wav"
    sf.write(a, tone(16000, 1.0), 16000)
    fe = FeatureExtractor(FEATS, tmp_path / "cache")
    m1, _ = fe(a)
    m2, _ = fe(a)
    assert (fe.misses, fe.hits) == (1, 1) and np.array_equal(m1, m2)
    b = tmp_path / "copy.wav"
    b.write_bytes(a.read_bytes())
    fe(b)
    assert fe.hits == 2  # same content, other name: cache hit
    sf.write(a, tone(16000, 1.0, f=300.0), 16000)  # edited file: recomputed
    m3, _ = fe(a)
    assert fe.misses == 2 and not np.array_equal(m1, m3)
    # other settings use another cache folder
    fe2 = FeatureExtractor(dict(FEATS, n_mels=64), tmp_path / "cache")
    assert fe2(b)[0].shape[0] == 64 and fe2.misses == 1


def test_corrupt_cache_entry_recomputed(tmp_path):
    a = tmp_path / "a.wav"
    sf.write(a, tone(16000, 1.0), 16000)
    fe = FeatureExtractor(FEATS, tmp_path / "cache")
    m1, _ = fe(a)
    entry = next((tmp_path / "cache").rglob("*.npz"))
    entry.write_bytes(b"garbage")
    fe2 = FeatureExtractor(FEATS, tmp_path / "cache")
    m2, _ = fe2(a)
    assert fe2.misses == 1 and np.array_equal(m1, m2)


def test_non_finite_samples_are_an_input_error_naming_the_file(tmp_path):
    """#15 rows 5-6: NaN samples used to give a 'weights diverged' error (training) or empty
    scores (validation, infer), never naming the clip."""
    import numpy as np
    import pytest
    import soundfile as sf

    from dcase_fpd_plugin.data.audio import load_clip
    from dcase_fpd_plugin.data.tsv import DataError

    x = np.zeros(16000, np.float32)
    x[100:103] = np.nan
    path = tmp_path / "bad.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"bad\.wav: 3 non-finite"):
        load_clip(path, 16000, 1.0)


def test_a_clip_longer_than_the_recipe_is_refused_by_name(tmp_path):
    """#15 row 7: a 30 s clip in a 10 s recipe was cropped without a word."""
    import numpy as np
    import pytest
    import soundfile as sf

    from dcase_fpd_plugin.data.audio import load_clip
    from dcase_fpd_plugin.data.tsv import DataError

    sf.write(tmp_path / "long.wav", np.zeros(3 * 16000, np.float32), 16000)
    with pytest.raises(DataError, match=r"long\.wav: 3\.00 s long, more than feats.clip_s = 1.0 s"):
        load_clip(tmp_path / "long.wav", 16000, 1.0)
    sf.write(tmp_path / "ok.wav", np.zeros(16000 + 50, np.float32), 16000)  # a few samples over: cut
    assert load_clip(tmp_path / "ok.wav", 16000, 1.0)[1] == 16000
