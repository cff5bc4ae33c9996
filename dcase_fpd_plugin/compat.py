"""Dependency traps, wrapped in one place.

* sed_eval / dcase_util import ``pkg_resources`` (setuptools < 81 pinned) and warn about it.
* pytorch-lightning prints advertising tips and deprecation noise from its own internals
  that users of this package cannot act on.
* sed_scores_eval 0.0.x hands the arrays it gets from its score DataFrames to a Cython function
  that needs writable buffers; pandas 3 (copy-on-write) returns them read-only:
  ``ValueError: buffer source array is read-only`` in ``cy_detection.onset_offset_curves``.
  :func:`import_sed_libraries` wraps that function to pass writable copies.
* scaper 1.6.5 uses ``np.Inf``, removed in numpy 2: :func:`import_scaper` (the synth code path
  only) restores the alias before importing scaper.
* torch sets its CUDA allocator's options at run time only through private calls, which moved
  between releases: :func:`expand_cuda_segments`.
"""

from __future__ import annotations

import functools
import logging
import os
import warnings

import numpy as np


def quiet_dependencies() -> None:
    """Silence warnings and log lines of dependencies that say nothing actionable."""
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*Trainer\(limit_train_batches=1.0\).*")
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning.pytorch.utilities.rank_zero",
                 "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)


def import_sed_libraries() -> None:
    """Import sed_scores_eval and sed_eval: the one shim for their dependency traps.

    ``import sed_scores_eval`` also imports sed_eval -> dcase_util -> ``pkg_resources``, which
    setuptools >= 81 no longer ships (we pin ``setuptools<81``). Here we silence its deprecation
    warning and turn a missing ``pkg_resources`` into an error that says the fix, and make
    sed_scores_eval work under pandas 3 (:func:`_writable_onset_offset_curves`).
    evaluation/scores.py calls this before importing them; metrics.py imports scores.py first.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        try:
            import sed_eval  # noqa: F401
            import sed_scores_eval  # noqa: F401
        except ModuleNotFoundError as e:
            if e.name == "pkg_resources":
                raise ImportError(
                    "sed_eval/dcase_util need pkg_resources, removed in setuptools 81: "
                    "pip install 'setuptools<81'"
                ) from e
            raise
    _writable_onset_offset_curves()


def _writable(a):
    """``a`` itself when it is a writable array (or not an array), else a writable copy."""
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        return np.array(a, copy=True)
    return a


def _writable_onset_offset_curves() -> None:
    """Have sed_scores_eval's statistics call ``cy_detection.onset_offset_curves`` with writable arrays.

    Its ``_worker`` takes ``df[classes].to_numpy()`` and ``df["onset"].to_numpy()``, which pandas 3
    returns read-only even for a fresh copy of the DataFrame, and the Cython function declares
    writable ``double[:]`` views (it reads them only). The wrapper copies read-only inputs: a
    few kB per clip and class. Applied once; a no-op where sed_scores_eval lacks the function
    (a later version that fixed it another way).
    """
    from sed_scores_eval.base_modules import statistics

    original = getattr(statistics, "onset_offset_curves", None)
    if original is None or getattr(original, "_dcase_fpd_writable", False):
        return

    @functools.wraps(original)
    def onset_offset_curves(scores, timestamps, change_point_candidates=None):
        return original(_writable(scores), _writable(timestamps), _writable(change_point_candidates))

    onset_offset_curves._dcase_fpd_writable = True  # type: ignore[attr-defined]
    statistics.onset_offset_curves = onset_offset_curves


def import_scaper():
    """``import scaper`` under numpy 2: restore ``np.Inf`` (an alias of ``np.inf`` that numpy 2
    removed and scaper 1.6.5 still uses when it draws event durations and times) first.

    Only the synth code path calls this, so training and evaluation never touch numpy's namespace.
    """
    if "Inf" not in np.__dict__:
        np.Inf = np.inf  # type: ignore[attr-defined]
    import scaper

    return scaper


def expand_cuda_segments() -> bool:
    """Let torch's CUDA caching allocator grow its segments in place (``expandable_segments:True``)
    for the rest of the process, so that memory freed in one block size can serve another: under a
    per-process cap, fixed-size segments left partly used can otherwise fail an allocation that the
    cap allows. Segments made before keep their fixed size.

    Left as it is where the user configured the allocator (``PYTORCH_ALLOC_CONF`` or its older name
    ``PYTORCH_CUDA_ALLOC_CONF`` set: torch's setter, ``AcceleratorAllocatorConfig::parseArgs``,
    resets ``max_split_size_mb``, ``roundup_power2_divisions`` and ``garbage_collection_threshold``
    to their defaults when the string it is given does not name them), where another
    allocator backend runs (``backend:cudaMallocAsync``), and where this torch offers no setter:
    ``torch._C._accelerator_setAllocatorSettings`` (recent torch) or the deprecated
    ``torch.cuda.memory._set_allocator_settings``. Returns True where it was set."""
    import torch

    if os.environ.get("PYTORCH_ALLOC_CONF") or os.environ.get("PYTORCH_CUDA_ALLOC_CONF"):
        return False
    if torch.cuda.get_allocator_backend() != "native":
        return False
    setter = getattr(torch._C, "_accelerator_setAllocatorSettings", None)
    if setter is None:
        setter = getattr(torch.cuda.memory, "_set_allocator_settings", None)
    if setter is None:
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the deprecated setter says so on each call
        setter("expandable_segments:True")
    return True
