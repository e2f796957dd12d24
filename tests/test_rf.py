import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import models, rf


def test_course_networks():
    assert rf.receptive_field(models.S8()) == 44
    assert rf.receptive_field(models.S9()) == 77
    rows = rf.rf_table(models.S8())
    assert [r.out_size for r in rows if r.kind == "MaxPool2d"] == [16, 8]
    assert rows[-2].jump == 4 and rows[-2].rf == 44


def test_hand_computed_stride_dilation_pool_depthwise():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),                   # rf 3, jump 1
        nn.Conv2d(8, 8, 3, stride=2, padding=1),         # rf 5, jump 2, size 16
        nn.Conv2d(8, 8, 3, padding=2, dilation=2),       # k_eff 5: rf 5 + 4*2 = 13
        nn.MaxPool2d(2),                                 # rf 13 + 1*2 = 15, jump 4, size 8
        nn.Conv2d(8, 8, 3, padding=1, groups=8),         # depthwise: rf 15 + 2*4 = 23
        nn.Conv2d(8, 8, 1),                              # pointwise: unchanged
    )
    rows = rf.rf_table(net)
    assert [r.rf for r in rows] == [3, 5, 13, 15, 23, 23]
    assert [r.jump for r in rows] == [1, 2, 2, 4, 4, 4]
    assert [r.out_size for r in rows] == [32, 16, 16, 8, 8, 8]
    assert rows[2].kind == "Conv2d (dilation 2)" and rows[4].kind == "Conv2d (depthwise)"
    assert (rows[2].kernel, rows[2].padding, rows[2].dilation) == (3, 2, 2)


def test_table_follows_forward_order_not_definition_order():
    class Reordered(nn.Module):
        def __init__(self):
            super().__init__()
            self.late = nn.Conv2d(3, 3, 5, padding=2)
            self.early = nn.Conv2d(3, 3, 3, stride=2, padding=1)

        def forward(self, x):
            return self.late(self.early(x))

    rows = rf.rf_table(Reordered())
    assert [r.layer for r in rows] == ["early", "late"] and rows[-1].rf == 3 + 4 * 2


def test_renders_as_markdown_and_figure(tmp_path):
    rows = rf.rf_table(models.S9())
    text = rf.format_rf_table(rows)
    lines = text.splitlines()
    assert lines[0].startswith("| layer | kind | kernel") and len(lines) == len(rows) + 2
    assert lines[-2].endswith("| 77 |")
    fig = rf.plot_rf_table(rows, "S9", save=str(tmp_path / "rf.png"))
    assert (tmp_path / "rf.png").stat().st_size > 1000 and "77" in fig.axes[0].get_title()


def test_wrong_input_size_is_explained():
    with pytest.raises(ValueError, match="cannot run on an input of size"):
        rf.rf_table(nn.Sequential(nn.Conv2d(1, 4, 3)), (3, 32, 32))
    with pytest.raises(ValueError, match="at least"):
        rf.rf_table(models.S9(), (3, 6, 6))
    with pytest.raises(ValueError, match="channels, height, width"):
        rf.rf_table(models.S9(), (32, 32))


# --- branching networks: these fail with a single-chain computation --------------------------

class DownBlock(nn.Module):
    """ResNet-style downsampling block: main conv3x3 s2 -> conv3x3, shortcut conv1x1 s2, added."""

    def __init__(self, after: bool):
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.short = nn.Conv2d(3, 8, 1, stride=2)
        self.after = nn.Conv2d(8, 8, 3, padding=1) if after else nn.Identity()

    def forward(self, x):
        return self.after(torch.relu(self.b(torch.relu(self.a(x))) + self.short(x)))


def test_stride_2_shortcut_branch():
    # Per tensor (rf, jump), image (1, 1):
    #   a     conv3 s2 on the image:  rf 1 + 2*1 = 3,  jump 1*2 = 2
    #   b     conv3 s1 on a:          rf 3 + 2*2 = 7,  jump 2
    #   short conv1 s2 on the IMAGE:  rf 1 + 0*1 = 1,  jump 1*2 = 2
    #   add   max of (7, 2), (1, 2):  rf 7, jump 2
    #   after conv3 s1 on the add:    rf 7 + 2*2 = 11, jump 2
    # A chain a -> b -> short -> after gives short rf 7 + 0*2 = 7 with jump 4, then after
    # 7 + 2*4 = 15 with jump 4: the 15 / 4 instead of 11 / 2.
    rows = rf.rf_table(DownBlock(after=True))
    assert [r.layer for r in rows] == ["a", "b", "short", "after"]
    assert [r.rf for r in rows] == [3, 7, 1, 11]
    assert [r.jump for r in rows] == [2, 2, 2, 2]
    assert [r.out_size for r in rows] == [16, 16, 16, 16]
    assert rf.receptive_field(DownBlock(after=True)) == 11
    # without the conv after the add: rf 7, and the output's jump is 2, not the chain's 4
    assert rf.receptive_field(DownBlock(after=False)) == 7


def test_stride_2_shortcut_on_two_conv_main_path():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = nn.Conv2d(3, 8, 3, padding=1)             # rf 1 + 2*1 = 3, jump 1
            self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=1)   # rf 3 + 2*1 = 5, jump 2
            self.short = nn.Conv2d(3, 8, 1, stride=2)           # on the image: rf 1, jump 2
            self.head = nn.Conv2d(8, 8, 3, padding=1)           # on max(5, 1) = 5, jump 2: 5 + 2*2 = 9

        def forward(self, x):
            return self.head(self.c2(self.c1(x)) + self.short(x))

    # a chain gives short rf 5 with jump 4, then head 5 + 2*4 = 13 with jump 4
    rows = rf.rf_table(Net())
    assert [(r.rf, r.jump) for r in rows] == [(3, 1), (5, 2), (1, 2), (9, 2)]
    assert rf.receptive_field(Net()) == 9


class Residual(nn.Module):
    """x + conv3(conv3(x)), with an identity shortcut or a 3x3 projection."""

    def __init__(self, projection: bool = False):
        super().__init__()
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.proj = nn.Conv2d(4, 4, 3, padding=1) if projection else nn.Identity()

    def forward(self, x):
        return self.proj(x) + self.c2(torch.relu(self.c1(x)))


def test_residual_block():
    # identity shortcut: c1 rf 3, c2 rf 5; the add takes max(1, 5) = 5, jump 1
    rows = rf.rf_table(Residual(), (4, 32, 32))
    assert [(r.layer, r.rf, r.jump) for r in rows] == [("c1", 3, 1), ("c2", 5, 1)]
    assert rf.receptive_field(Residual(), (4, 32, 32)) == 5
    # 3x3 projection on the shortcut (run first): proj rf 3, c1 rf 3, c2 rf 5; the add max(3, 5) = 5.
    # A chain gives proj 3, c1 5, c2 7.
    rows = rf.rf_table(Residual(projection=True), (4, 32, 32))
    assert [(r.layer, r.rf) for r in rows] == [("proj", 3), ("c1", 3), ("c2", 5)]
    assert rf.receptive_field(Residual(projection=True), (4, 32, 32)) == 5
    # two residual blocks after a stride-2 stem: stem rf 3 jump 2; block 1: 3 + 4 + 4 = 11;
    # block 2: 11 + 4 + 4 = 19, jump 2 throughout
    net = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1), Residual(), Residual())
    rows = rf.rf_table(net, (4, 32, 32))
    assert [r.rf for r in rows] == [3, 7, 11, 15, 19] and {r.jump for r in rows} == {2}
    assert rf.receptive_field(net, (4, 32, 32)) == 19


def test_concat_of_branches_with_different_kernels():
    class Inception(nn.Module):
        def __init__(self):
            super().__init__()
            self.b3 = nn.Conv2d(3, 4, 3, padding=1)    # rf 3, jump 1
            self.b5 = nn.Conv2d(3, 4, 5, padding=2)    # on the image: rf 5, jump 1
            self.mix = nn.Conv2d(8, 8, 3, padding=1)   # on cat: max(3, 5) = 5, then 5 + 2*1 = 7

        def forward(self, x):
            return self.mix(torch.cat([self.b3(x), self.b5(x)], dim=1))

    # a chain gives b3 3, b5 3 + 4 = 7, mix 9
    rows = rf.rf_table(Inception())
    assert [(r.layer, r.rf, r.jump) for r in rows] == [("b3", 3, 1), ("b5", 5, 1), ("mix", 7, 1)]
    assert rf.receptive_field(Inception()) == 7


def test_merge_of_different_jumps_takes_the_largest_rf_and_jump():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.strided = nn.Conv2d(3, 4, 3, stride=2, padding=1)  # 32 -> 16: rf 3, jump 2
            self.wide = nn.Conv2d(3, 4, 17)                         # 32 -> 16: rf 17, jump 1
            self.mix = nn.Conv2d(8, 8, 3, padding=1)

        def forward(self, x):
            return self.mix(torch.cat([self.strided(x), self.wide(x)], dim=1))

    # the cat gets rf max(3, 17) = 17 and jump max(2, 1) = 2, so mix: 17 + 2*2 = 21, an upper
    # bound (the exact value is max(3 + 2*2, 17 + 2*1) = 19)
    rows = rf.rf_table(Mixed())
    assert [(r.rf, r.jump, r.out_size) for r in rows] == [(3, 2, 16), (17, 1, 16), (21, 2, 16)]


def test_functional_layers_same_padding_and_shape_branches():
    class Tutorial(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 6, 5)
            self.conv2 = nn.Conv2d(6, 6, 3, padding="same")
            self.depthwise = nn.Parameter(torch.randn(6, 1, 3, 3))

        def forward(self, x, scale=None):
            if x.shape[-1] > 32:                                   # decided by input_size
                x = F.avg_pool2d(x, 2)
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)             # conv1 rf 5; pool 5 + 1 = 6, jump 2
            x = F.conv2d(x, self.depthwise, padding=1, groups=6)   # 6 + 2*2 = 10
            x = self.conv2(x)                                      # 10 + 2*2 = 14
            return x if scale is None else x * scale

    rows = rf.rf_table(Tutorial())
    assert [(r.layer, r.kind, r.rf, r.jump) for r in rows] == [
        ("conv1", "Conv2d", 5, 1), ("max_pool2d", "F.max_pool2d", 6, 2),
        ("conv2d", "F.conv2d (depthwise)", 10, 2), ("conv2", "Conv2d", 14, 2)]
    assert rows[-1].padding == 1 and rows[-1].out_size == 14
    # at 64x64 the branch adds a 2x2 average pool first: rf 2, jump 2; conv1 2 + 4*2 = 10;
    # pool 10 + 1*2 = 12, jump 4; depthwise 12 + 2*4 = 20; conv2 20 + 2*4 = 28
    rows = rf.rf_table(Tutorial(), (3, 64, 64))
    assert [r.kind for r in rows][0] == "F.avg_pool2d"
    assert [(r.rf, r.jump) for r in rows] == [(2, 2), (10, 2), (12, 4), (20, 4), (28, 4)]


def test_model_is_left_as_it_was():
    class Constant(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.c(x) + torch.tensor([1.0])  # fx stores the constant on the model

    net = Constant().train()
    before = set(vars(net))
    assert rf.receptive_field(net) == 3
    assert net.training and set(vars(net)) == before
    s8 = models.S8().eval()
    rf.rf_table(s8)
    assert not s8.training


def test_untraceable_model_gives_one_line_error():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            if x.mean() > 0:  # which layers run depends on the pixel values
                x = self.c(x)
            return x

    class PerImage(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return torch.cat([self.c(x[i:i + 1]) for i in range(x.size(0))])

    with pytest.raises(ValueError) as e:
        rf.rf_table(Gate())
    msg = str(e.value)
    assert "\n" not in msg and "Gate" in msg and "tensor values" in msg
    assert "test_rf.py" in msg and "if x.mean() > 0:" in msg and "rf_table(model.features)" in msg
    with pytest.raises(ValueError) as e:
        rf.receptive_field(PerImage())
    msg = str(e.value)
    assert "\n" not in msg and "cannot trace PerImage with torch.fx" in msg and "range()" in msg
