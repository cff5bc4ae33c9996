"""The FPD branch (paper, section 2): distances, pair sampler, WPS labeller, loss, branch.

Public API:
    pair_masks(frame_labels, valid=None, background_pairs="ignore") -> (positive, negative)
    fpd_loss(embeddings, positive, negative, distance="ip", alpha=0.1,
             formulation="consistent", reduction="mean") -> scalar loss

Plugins (entry points): branch ``fpd`` (:class:`~dcase_fpd_plugin.fpd.branch.FPDBranch`),
pair sampler ``same_time`` (:class:`~dcase_fpd_plugin.fpd.sampler.SameTimePairSampler`),
labeller ``wps`` (:class:`~dcase_fpd_plugin.fpd.labeller.WPSLabeller`). The branch module is
not imported here, so that ``import dcase_fpd_plugin.fpd`` stays light.

Owns the FPD method. May import the branch contract (``branch``) and the registry; never ``training``, ``recipe``, Lightning or anything above: a plugin sees tensors, not the host.
"""

from dcase_fpd_plugin.fpd.loss import fpd_loss
from dcase_fpd_plugin.fpd.sampler import pair_masks

__all__ = ["fpd_loss", "pair_masks"]
