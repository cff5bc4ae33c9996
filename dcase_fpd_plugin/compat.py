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
