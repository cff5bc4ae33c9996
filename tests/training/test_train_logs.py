"""Training scalars summed on the device between log writes."""

import pytest
import torch

from dcase_fpd_plugin.training.logs import TrainScalars, suffixed


def test_weighted_epoch_means_and_last_step():
    s = TrainScalars()
    assert s.last() == {} and s.epoch_means() == {}
    s.add({"loss": torch.tensor(1.0), "w": 0.5}, weight=2)
    s.add({"loss": torch.tensor(4.0), "w": 1.0}, weight=1)
    assert s.last() == {"loss": 4.0, "w": 1.0}
    means = s.epoch_means()
    assert means["loss"] == pytest.approx((2 * 1.0 + 4.0) / 3) and means["w"] == pytest.approx(2.0 / 3)
    s.add({"other": torch.tensor(3.0)}, weight=1)  # other keys: the sums start over
    assert s.epoch_means() == {"other": 3.0}
    s.reset()
    assert s.epoch_means() == {}


def test_suffixed_keeps_named_keys():
    assert suffixed({"a": 1.0, "epoch": 2.0}, "_step", keep=["epoch"]) == {"a_step": 1.0, "epoch": 2.0}
