"""Median filter and threshold: events survive, spikes do not, nothing shifts."""

import numpy as np
import pytest

from dcase_fpd_plugin.data.labels import LabelEncoder, active_runs
from dcase_fpd_plugin.evaluation.postprocessing import decide, median_filter


def _track(n_frames, runs, n_classes=1):
    x = np.zeros((n_frames, n_classes), dtype=np.float32)
    for a, b in runs:
        x[a:b, 0] = 1.0
    return x


def test_one_frame_spike_is_removed():
    x = _track(50, [(20, 21)])
    assert not median_filter(x, 3).any()
    assert not median_filter(x, 7).any()


def test_long_event_is_kept_exactly_in_place():
    x = _track(100, [(30, 60)])
    y = median_filter(x, 7)
    assert active_runs(y[:, 0] > 0.5) == [(30, 60)]


def test_events_touching_the_clip_edges_are_not_shortened():
    x = _track(40, [(0, 10), (30, 40)])
    assert active_runs(median_filter(x, 7)[:, 0] > 0.5) == [(0, 10), (30, 40)]
    # edges are padded by reflection, not zeros: a 3-frame event at the start survives a
    # 7-frame window (zero padding would give 3 of 7 active frames and drop it)
    assert active_runs(median_filter(_track(20, [(0, 3)]), 7)[:, 0] > 0.5) == [(0, 3)]


def test_short_gap_inside_an_event_is_filled():
    x = _track(60, [(10, 30), (32, 50)])
    assert active_runs(median_filter(x, 7)[:, 0] > 0.5) == [(10, 50)]


def test_window_one_is_identity_and_input_untouched():
    rng = np.random.default_rng(0)
    x = rng.random((20, 4)).astype(np.float32)
    before = x.copy()
    y = median_filter(x, 1)
    np.testing.assert_array_equal(y, x)
    assert y is not x
    median_filter(x, 5)
    np.testing.assert_array_equal(x, before)


def test_filter_runs_per_class_along_time_only():
    x = np.zeros((30, 3), dtype=np.float32)
    x[10:20, 1] = 1.0
    y = median_filter(x, 5)
    np.testing.assert_array_equal(y[:, 1], x[:, 1])
    assert not y[:, [0, 2]].any()


def test_per_class_windows():
    x = np.zeros((30, 2), dtype=np.float32)
    x[10:12, :] = 1.0  # a 2-frame blip in both classes
    y = median_filter(x, [1, 5])
    np.testing.assert_array_equal(y[:, 0], x[:, 0])
    assert not y[:, 1].any()


@pytest.mark.parametrize("window", [0, 2, 4, -1, 2.5])
def test_even_or_invalid_window_is_refused(window):
    with pytest.raises(ValueError, match="odd"):
        median_filter(np.zeros((10, 2)), window)


def test_decide_is_strictly_above_threshold():
    x = np.array([[0.4, 0.5], [0.5, 0.6]])
    np.testing.assert_array_equal(decide(x, 0.5), [[False, False], [False, True]])
    np.testing.assert_array_equal(decide(x, [0.3, 0.55]), [[True, False], [True, True]])
    with pytest.raises(ValueError):
        decide(x, [0.1, 0.2, 0.3])


def test_encode_filter_threshold_decode_round_trip():
    classes = ["A", "B", "C"]
    enc = LabelEncoder(classes, frame_hop_s=0.064, n_frames=156)
    events = [(0.0, 1.28, "A"), (2.56, 5.12, "B"), (6.4, 9.984, "A"), (3.2, 4.48, "C")]
    y = enc.encode_strong(events)
    decoded = enc.decode_strong(decide(median_filter(y, 7), 0.5), "clip.wav", duration_s=10.0)
    assert sorted((e.onset, e.offset, e.event_label) for e in decoded) == sorted(events)


def test_stitched_probs_join_a_long_files_windows_and_keep_clips_as_they_come():
    """Windows: frames averaged where they overlap, clip probabilities their maximum; others unchanged."""
    from dcase_fpd_plugin.evaluation.postprocessing import StitchedProbs

    store = StitchedProbs({"long.wav#0": ("long.wav", 0, 6), "long.wav#1": ("long.wav", 2, 6)})
    clip_fp = np.full((4, 2), 0.3, np.float32)
    store.add("short.wav", clip_fp, np.array([0.1, 0.2], np.float32))
    store.add("long.wav#1", np.ones((4, 2), np.float32), np.array([0.9, 0.1], np.float32))
    store.add("long.wav#0", np.zeros((4, 2), np.float32), np.array([0.2, 0.4], np.float32))
    assert len(store) == 3
    files = store.files()
    assert set(files) == {"short.wav", "long.wav"} and files["short.wav"]["frame"] is clip_fp
    np.testing.assert_array_equal(files["long.wav"]["frame"][:, 0], [0, 0, 0.5, 0.5, 1, 1])
    np.testing.assert_array_equal(files["long.wav"]["clip"], np.array([0.9, 0.4], np.float32))
    assert files["long.wav"]["frame"].dtype == np.float32
