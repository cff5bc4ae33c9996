"""sed_scores_eval score frames and their files."""

import numpy as np
import pandas as pd
import pytest

from dcase_fpd_plugin.evaluation import scores as scores_module
from dcase_fpd_plugin.evaluation.scores import audio_id, read_scores, scores_dataframe, write_scores

CLASSES = ["Dog", "Speech", "Cat"]


def _probs(n_frames=156, seed=0):
    return np.random.default_rng(seed).random((n_frames, len(CLASSES))).astype(np.float32)


def test_scores_dataframe_columns_and_frame_times():
    p = _probs()
    df = scores_dataframe(p, 0.064, CLASSES)
    assert list(df.columns) == ["onset", "offset", *CLASSES]
    assert df.shape == (156, 5)
    np.testing.assert_allclose(df["onset"], np.arange(156) * 0.064)
    np.testing.assert_allclose(df["offset"], (np.arange(156) + 1) * 0.064)
    assert df["onset"].iloc[10] == 0.64
    np.testing.assert_allclose(df[CLASSES].to_numpy(), p)


def test_scores_dataframe_clipped_to_duration():
    df = scores_dataframe(_probs(170), 0.064, CLASSES, duration_s=10.0)
    # frames 0..156 start before 10 s (156 * 0.064 = 9.984), the last one ends at 10 s
    assert len(df) == 157
    assert df["offset"].iloc[-1] == 10.0
    assert df["onset"].iloc[-1] == 9.984


def test_scores_dataframe_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(T, 3\)"):
        scores_dataframe(np.zeros((10, 2)), 0.064, CLASSES)


def test_audio_id_strips_only_an_audio_extension():
    assert audio_id("Y00aB_0.000_10.000.wav") == "Y00aB_0.000_10.000"
    assert audio_id("clip.flac") == "clip"
    assert audio_id("Y00aB_0.000_10.000") == "Y00aB_0.000_10.000"


def test_write_read_round_trip(tmp_path):
    scores = {
        "Y00aB_0.000_10.000": scores_dataframe(_probs(seed=1), 0.064, CLASSES),
        "Ybbb_30.000_40.000": scores_dataframe(_probs(seed=2), 0.064, CLASSES, duration_s=9.5),
    }
    write_scores(tmp_path / "scores", scores)
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [
        "Y00aB_0.000_10.000.tsv",
        "Ybbb_30.000_40.000.tsv",
    ]
    back = read_scores(tmp_path / "scores")
    assert back.keys() == scores.keys()
    for key in scores:
        pd.testing.assert_frame_equal(back[key], scores[key])


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    folder = tmp_path / "scores"
    good = scores_dataframe(_probs(seed=1), 0.064, CLASSES)
    write_scores(folder, {"clip": good})
    old_text = (folder / "clip.tsv").read_text()

    def half_write(frame, path):
        with open(path, "w") as f:
            f.write("onset\toffset\tDog\n0.0\t")  # a truncated file ...
        raise OSError("disk full")  # ... then the write dies

    monkeypatch.setattr(scores_module, "write_sed_scores", half_write)
    with pytest.raises(OSError, match="disk full"):
        write_scores(folder, {"clip": scores_dataframe(_probs(seed=9), 0.064, CLASSES), "new": good})
    assert [p.name for p in folder.iterdir()] == ["clip.tsv"]  # no temp file, no "new.tsv"
    assert (folder / "clip.tsv").read_text() == old_text


def test_read_scores_skips_hidden_leftovers_and_refuses_other_files(tmp_path):
    write_scores(tmp_path, {"clip": scores_dataframe(_probs(), 0.064, CLASSES)})
    (tmp_path / ".clip.tsv.abc.tmp").write_text("partial")
    assert list(read_scores(tmp_path)) == ["clip"]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="notes.txt"):
        read_scores(tmp_path)
