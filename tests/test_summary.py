import pytest
import torch

from helpers import models
from helpers.summary import model_summary


def test_summary_counts_parameters_without_touching_batchnorm():
    net = models.S9()
    net.train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    stats = model_summary(net)
    assert stats.total_params == 171_840
    assert "171,840" in str(stats) and "[1, 32, 24, 24]" in str(stats)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"
    assert net.training  # mode restored


@pytest.mark.parametrize("norm", ["bn", "ln", "gn"])
def test_s8_summary(norm):
    assert model_summary(models.S8(norm)).total_params == 46_064


def test_wrong_input_is_explained():
    with pytest.raises(ValueError, match="expects images shaped"):
        model_summary(models.S8(), (1, 32, 32))
    with pytest.raises(ValueError, match="channels, height, width"):
        model_summary(models.S8(), (32, 32))
