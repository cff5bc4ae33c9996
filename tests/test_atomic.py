"""Atomic writes give the permissions of a plain write (#15 row 16: they were 0600 / 0700)."""

import os
import stat

import numpy as np
import pandas as pd
import pytest

from dcase_fpd_plugin.atomic import atomic_write_text
from dcase_fpd_plugin.evaluation.metrics import EvaluationResult
from dcase_fpd_plugin.evaluation.outputs import write_outputs
from dcase_fpd_plugin.evaluation.scores import scores_dataframe


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_outputs_follow_the_umask(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    assert _mode(tmp_path / "a.txt") == 0o644
    scores = {"clip": scores_dataframe(np.zeros((4, 2), np.float32), 0.064, ["a", "b"])}
    preds = pd.DataFrame(columns=["filename", "onset", "offset", "event_label"])
    write_outputs(EvaluationResult({"event_f1": 0.5}, preds, scores), tmp_path / "run")
    assert _mode(tmp_path / "run" / "metrics.json") == 0o644
    assert _mode(tmp_path / "run" / "predictions.tsv") == 0o644
    assert _mode(tmp_path / "run" / "scores") == 0o755
    assert _mode(tmp_path / "run" / "scores" / "clip.tsv") == 0o644
