"""The dependency shims of compat.py: sed_scores_eval under pandas 3, scaper under numpy 2, torch's
CUDA allocator options (no CUDA here: torch's calls replaced by recorders)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from dcase_fpd_plugin.compat import expand_cuda_segments, import_scaper, import_sed_libraries


def _read_only(a):
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def test_sed_scores_eval_gets_writable_arrays():
    """pandas 3 hands out read-only arrays (copy-on-write); sed_scores_eval's Cython code refused them
    with 'buffer source array is read-only'. Simulated here on any pandas with read-only arrays."""
    import_sed_libraries()
    from sed_scores_eval.base_modules import cy_detection, statistics

    scores, timestamps = _read_only([0.1, 0.9, 0.8, 0.2]), _read_only([0.0, 1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="read-only"):
        cy_detection.onset_offset_curves(scores, timestamps)  # the trap itself
    unique_scores, onsets, offsets = statistics.onset_offset_curves(scores, timestamps)
    assert list(unique_scores)[-2:] == [0.8, 0.9] and onsets.shape == offsets.shape
    import_sed_libraries()  # idempotent: wraps once
    assert statistics.onset_offset_curves.__wrapped__ is cy_detection.onset_offset_curves


def test_intersection_f1_on_read_only_score_frames(monkeypatch):
    """End to end through sed_scores_eval with score frames whose arrays come out read-only, as under
    pandas 3 (forced here with a to_numpy that returns read-only views)."""
    import_sed_libraries()
    import sed_scores_eval

    from dcase_fpd_plugin.evaluation.scores import scores_dataframe

    original = pd.DataFrame.to_numpy

    def read_only_to_numpy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        out = out.view()
        out.flags.writeable = False
        return out

    monkeypatch.setattr(pd.DataFrame, "to_numpy", read_only_to_numpy)
    probs = np.zeros((10, 2))
    probs[2:6, 0] = 0.9
    scores = {"clip": scores_dataframe(probs, 1.0, ["a", "b"])}
    gt = {"clip": [(2.0, 6.0, "a"), (7.0, 8.0, "b")]}
    f, *_ = sed_scores_eval.intersection_based.fscore(scores, gt, 0.5, dtc_threshold=0.5, gtc_threshold=0.5)
    assert f["a"] == pytest.approx(1.0) and f["b"] == pytest.approx(0.0)
    # PSDS goes through statistics.onset_offset_curves, the wrapped trap (fscore at one threshold does not)
    psds, *_ = sed_scores_eval.intersection_based.psds(scores, gt, {"clip": 10.0}, dtc_threshold=0.5,
                                                        gtc_threshold=0.5, cttc_threshold=None, alpha_ct=0.0,
                                                        alpha_st=0.0, max_efpr=100.0)
    assert 0.0 <= psds <= 1.0


def test_import_scaper_restores_np_inf(monkeypatch):
    """scaper 1.6.5 draws event times from -np.Inf, which numpy 2 removed."""
    if "Inf" in np.__dict__:
        monkeypatch.delitem(np.__dict__, "Inf")  # numpy 1: make it look like numpy 2
    else:
        monkeypatch.setattr(np, "Inf", np.inf, raising=False)  # undone after the test
        monkeypatch.delattr(np, "Inf")
    with pytest.raises(AttributeError):
        np.Inf  # noqa: B018
    scaper = import_scaper()
    assert np.Inf == np.inf and hasattr(scaper, "Scaper")


def test_expand_cuda_segments_sets_the_option_unless_the_user_configured_the_allocator(monkeypatch):
    set_calls, old_calls = [], []

    def deprecated_setter(settings):  # as torch's: warns on each call
        warnings.warn("torch.cuda._set_allocator_settings is deprecated", FutureWarning, stacklevel=2)
        old_calls.append(settings)

    monkeypatch.setattr(torch.cuda, "get_allocator_backend", lambda: "native")
    monkeypatch.setattr(torch._C, "_accelerator_setAllocatorSettings", set_calls.append, raising=False)
    monkeypatch.setattr(torch.cuda.memory, "_set_allocator_settings", deprecated_setter, raising=False)
    for name in ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"):
        monkeypatch.delenv(name, raising=False)
    assert expand_cuda_segments() is True
    assert set_calls == ["expandable_segments:True"] and old_calls == []
    for name in ("PYTORCH_ALLOC_CONF", "PYTORCH_CUDA_ALLOC_CONF"):  # torch's setter would reset the user's options
        monkeypatch.setenv(name, "max_split_size_mb:128")
        assert expand_cuda_segments() is False and len(set_calls) == 1
        monkeypatch.delenv(name)
    monkeypatch.setattr(torch.cuda, "get_allocator_backend", lambda: "cudaMallocAsync")
    assert expand_cuda_segments() is False and len(set_calls) == 1
    monkeypatch.setattr(torch.cuda, "get_allocator_backend", lambda: "native")
    monkeypatch.delattr(torch._C, "_accelerator_setAllocatorSettings")  # an older torch: the deprecated setter
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert expand_cuda_segments() is True
    assert old_calls == ["expandable_segments:True"] and caught == []  # its deprecation warning kept quiet
    monkeypatch.delattr(torch.cuda.memory, "_set_allocator_settings")  # no setter at all: nothing to do
    assert expand_cuda_segments() is False and len(set_calls) == 1 and len(old_calls) == 1
