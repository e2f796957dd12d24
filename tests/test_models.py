import pytest
import torch
from torch import nn

from helpers import models


@pytest.mark.parametrize("norm", models.NORMS)
def test_s8_has_46064_parameters_and_the_right_norm(norm):
    net = models.S8(norm)
    assert models.count_parameters(net) == 46_064
    norms = [m for m in net.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert len(norms) == 10  # every conv but the 1x1 head
    if norm == "bn":
        assert all(isinstance(m, nn.BatchNorm2d) for m in norms)
    else:
        assert {m.num_groups for m in norms} == ({1} if norm == "ln" else {2})
    assert sum(isinstance(m, nn.MaxPool2d) for m in net.modules()) == 2
    assert {m.p for m in net.modules() if isinstance(m, nn.Dropout)} == {0.02}


def test_s8_layer_sequence_matches_the_seed_summary():
    convs = [m for m in models.S8().modules() if isinstance(m, nn.Conv2d)]
    assert [c.weight.numel() for c in convs] == [432, 4608, 512, 4608, 9216, 9216, 512, 2304, 4608, 9216, 320]


def test_s9_has_171840_parameters_no_maxpool_no_stride():
    net = models.S9()
    assert models.count_parameters(net) == 171_840
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in net.modules())
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.stride == (1, 1) for c in convs)
    assert [c.dilation[0] for c in convs if c.dilation[0] > 1] == [2, 4, 8, 16]
    assert sum(c.groups == c.in_channels > 1 for c in convs) == 4  # one depthwise conv per block
    assert [c.weight.numel() for c in convs] == [1728, 576, 4096, 36864, 36864, 576, 4096, 36864, 18432, 288,
                                                 1024, 9216, 9216, 288, 1024, 9216, 320]
    assert {m.p for m in net.modules() if isinstance(m, nn.Dropout)} == {0.05}
    assert net.blocks(torch.zeros(1, 3, 32, 32)).shape == (1, 32, 24, 24)  # the map before the pool


@pytest.mark.parametrize("net", [models.S8("bn"), models.S8("gn"), models.S9()], ids=["s8bn", "s8gn", "s9"])
def test_outputs_are_log_probabilities(net):
    out = net.eval()(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(4))


def test_depthwise_separable_block_parameter_count():
    block = models.DepthwiseSeparable(64, 128)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert [c.weight.numel() for c in convs] == [64 * 9, 64 * 128]
    assert block(torch.zeros(2, 64, 8, 8)).shape == (2, 128, 8, 8)


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="bn, ln, gn"):
        models.S8("instance")
    with pytest.raises(ValueError, match="bn, ln, gn"):
        models.norm_layer("batch", 8)
    with pytest.raises(ValueError, match="s8 or s9"):
        models.build_model("s10")
    assert isinstance(models.build_model("s8", "ln"), models.S8) and isinstance(models.build_model("s9"), models.S9)


def test_build_model_sets_the_dropout_rate_only():
    def rates(net):
        return {m.p for m in net.modules() if isinstance(m, nn.Dropout)}

    for session, default in (("s8", 0.02), ("s9", 0.05)):
        assert rates(models.build_model(session)) == {default}
        tuned = models.build_model(session, dropout=0.0)
        assert rates(tuned) == {0.0} and models.count_parameters(tuned) == models.count_parameters(models.build_model(session))


@pytest.mark.parametrize("shape, message", [((3, 32, 32), "shaped"), ((2, 1, 32, 32), "shaped"),
                                            ((2, 3, 8, 8), "at least")])
def test_wrong_inputs_are_explained(shape, message):
    for net in (models.S8(), models.S9()):
        with pytest.raises(ValueError, match=message):
            net(torch.zeros(shape))
