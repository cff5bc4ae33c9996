"""Dependency traps, wrapped in one place.

* sed_eval / dcase_util import ``pkg_resources`` (setuptools < 81 pinned) and warn about it.
* pytorch-lightning prints advertising tips and deprecation noise from its own internals
  that users of this package cannot act on.
* sed_scores_eval 0.0.x writes into arrays that pandas 3 returns read-only (pandas < 3 pinned).
* scaper 1.6.5 uses ``np.Inf``, removed in numpy 2 (numpy < 2 pinned).
"""

from __future__ import annotations

import logging
import warnings


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
    warning and turn a missing ``pkg_resources`` into an error that says the fix. The other trap,
    sed_scores_eval writing into pandas-3 read-only arrays, cannot be shimmed from outside
    (``pandas<3`` is pinned); our own code never writes into arrays it gets from pandas.
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
