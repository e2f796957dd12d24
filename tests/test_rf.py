import pytest
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
