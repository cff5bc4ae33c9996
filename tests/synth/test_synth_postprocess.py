"""DESED-like label post-processing: same result as desed's own helper."""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
import pytest

from dcase_fpd_plugin.synth.postprocess import postprocess_labels


def test_merges_overlaps_and_close_events_extends_short_ones():
    labels = [
        (1.0, 2.0, "Dog"),
        (1.5, 1.8, "Dog"),  # inside the first: dropped
        (2.1, 3.0, "Dog_nOff"),  # 0.1 s after: merged, suffix stripped
        (5.0, 5.1, "Dog"),  # too short: extended to 0.25 s
        (9.9, 9.95, "Cat"),  # too short at the clip end: dropped
        (-0.5, 0.7, "Cat_nOn"),  # clipped at 0
    ]
    assert postprocess_labels(labels, length=10.0) == [
        (0.0, 0.7, "Cat"),
        (1.0, 3.0, "Dog"),
        (5.0, 5.25, "Dog"),
    ]


def _desed(labels, length):
    from desed.post_process import _post_process_labels_file

    df = pd.DataFrame(labels, columns=["onset", "offset", "event_label"])
    logging.getLogger("desed").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, _ = _post_process_labels_file(df, length)
    return sorted((round(float(a), 6), round(float(b), 6), c) for a, b, c in out[["onset", "offset", "event_label"]].itertuples(index=False))


@pytest.mark.parametrize("seed", range(40))
def test_agrees_with_desed(seed):
    pytest.importorskip("desed")
    rng = np.random.default_rng(seed)
    labels = []
    for _ in range(rng.integers(1, 9)):
        on = float(rng.uniform(0, 9.9))
        labels.append((on, float(min(10.0, on + rng.choice([0.05, 0.2, 0.6, 2.0]) * rng.uniform(0.5, 1.5))),
                       str(rng.choice(["Dog", "Cat", "Dog_nOn", "Cat_nOff"]))))
    # distinct onsets per class: desed's unstable sort makes ties order-dependent
    ours = sorted((round(a, 6), round(b, 6), c) for a, b, c in postprocess_labels(labels, 10.0))
    assert ours == _desed(labels, 10.0)
