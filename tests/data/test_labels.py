import numpy as np

from dcase_fpd_plugin.data.labels import LabelEncoder, active_runs, weak_from_strong


def test_encode_decode_round_trip_on_frame_grid():
    enc = LabelEncoder(["a", "b"], 0.064, 156)
    events = [(0.064, 1.28, "a"), (5.12, 9.984, "b"), (2.56, 3.2, "a")]
    y = enc.encode_strong(events)
    assert y.shape == (156, 2)
    dec = enc.decode_strong(y > 0, "x.wav")
    assert [(e.onset, e.offset, e.event_label) for e in dec] == sorted(
        [(round(a, 6), round(b, 6), c) for a, b, c in events])


def test_partial_frames_are_active_and_offset_clipped():
    enc = LabelEncoder(["a"], 0.1, 100)
    y = enc.encode_strong([(0.05, 0.21, "a")])
    assert np.flatnonzero(y[:, 0]).tolist() == [0, 1, 2]
    y2 = np.zeros((100, 1), bool)
    y2[95:] = True
    (e,) = enc.decode_strong(y2, "x.wav", duration_s=9.7)
    assert (e.onset, e.offset) == (9.5, 9.7)


def test_weak_from_strong_and_runs():
    y = np.zeros((10, 3), np.float32)
    y[2:4, 1] = 1
    assert weak_from_strong(y).tolist() == [0, 1, 0]
    assert active_runs(np.array([1, 1, 0, 1, 0, 0, 1], bool)) == [(0, 2), (3, 4), (6, 7)]
