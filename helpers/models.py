"""The two course networks and their building blocks.

* ``S8``: a 46,064-parameter squeeze-and-expand CNN (C1 C2 c3 P1 C3 C4 C5 c6 P2 C7 C8 C9 GAP c10)
  whose normalisation layer is chosen with ``norm`` = "bn" | "ln" | "gn".
* ``S9``: a 171,840-parameter CNN without max-pooling or strides: four blocks of
  (3x3 conv, depthwise-separable conv, dilated conv) with dilations 2, 4, 8, 16.

Both return log-probabilities (log-softmax), to be used with ``nll_loss``.
Needs only torch: copy it into an assignment as it is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("bn", "ln", "gn")


def norm_layer(norm: str, channels: int, groups: int = 2) -> nn.Module:
    """BatchNorm ("bn"), LayerNorm over C,H,W as GroupNorm(1, C) ("ln"), or GroupNorm ("gn")."""
    if norm == "bn":
        return nn.BatchNorm2d(channels)
    if norm == "ln":
        return nn.GroupNorm(1, channels)
    if norm == "gn":
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")


def conv_block(c_in: int, c_out: int, norm: str = "bn", kernel: int = 3, padding: int = 1,
               dilation: int = 1, dropout: float = 0.0, groups: int = 2) -> nn.Sequential:
    """Conv (no bias) -> norm -> ReLU -> Dropout."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=padding, dilation=dilation, bias=False),
        norm_layer(norm, c_out, groups), nn.ReLU(), nn.Dropout(dropout))


class DepthwiseSeparable(nn.Sequential):
    """Depthwise 3x3 conv -> norm -> ReLU -> Dropout -> pointwise 1x1 conv.

    Costs C*9 + C*C_out weights instead of C*C_out*9 for a full 3x3 conv.
    """

    def __init__(self, c_in: int, c_out: int, padding: int = 1, dropout: float = 0.0,
                 norm: str = "bn", groups: int = 2):
        super().__init__(
            nn.Conv2d(c_in, c_in, 3, padding=padding, groups=c_in, bias=False),
            norm_layer(norm, c_in, groups), nn.ReLU(), nn.Dropout(dropout),
            nn.Conv2d(c_in, c_out, 1, bias=False))


def _check_input(x: torch.Tensor, name: str, min_size: int) -> None:
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} expects images shaped (N, 3, H, W); got {tuple(x.shape)}. "
                         f"Add a batch dimension with x.unsqueeze(0) or convert to RGB.")
    if x.shape[2] < min_size or x.shape[3] < min_size:
        raise ValueError(f"{name} needs images of at least {min_size}x{min_size} pixels "
                         f"(it is built for 32x32 CIFAR-10); got {x.shape[2]}x{x.shape[3]}.")


class S8(nn.Module):
    """Session 8 network; ``norm`` picks BatchNorm, LayerNorm (GroupNorm(1, C)) or GroupNorm."""

    def __init__(self, norm: str = "bn", dropout: float = 0.02, groups: int = 2):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
        self.norm = norm

        def block(c_in, c_out, kernel=3, padding=1):
            return conv_block(c_in, c_out, norm, kernel, padding, dropout=dropout, groups=groups)

        self.features = nn.Sequential(
            block(3, 16), block(16, 32), block(32, 16, 1, 0),                    # C1 C2 c3
            nn.MaxPool2d(2, 2),                                                  # P1  32 -> 16
            block(16, 32), block(32, 32), block(32, 32), block(32, 16, 1, 0),  # C3 C4 C5 c6
            nn.MaxPool2d(2, 2),                                                  # P2  16 -> 8
            block(16, 16), block(16, 32, padding=0), block(32, 32, padding=0),  # C7 C8 C9: 8, 6, 4
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(32, 10, 1, bias=False)                             # c10

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, "S8", 20)
        x = self.head(self.gap(self.features(x)))
        return F.log_softmax(x.flatten(1), dim=1)


class S9(nn.Module):
    """Session 9 network: no MaxPool, no stride > 1; dilations 2, 4, 8, 16 give RF 77."""

    def __init__(self, dropout: float = 0.05, channels: tuple[int, int, int, int] = (64, 64, 32, 32),
                 dilations: tuple[int, int, int, int] = (2, 4, 8, 16)):
        super().__init__()
        blocks, c_in = [], 3
        for i, (c, d) in enumerate(zip(channels, dilations)):
            pad = 1 if i < 2 else 0  # blocks 3 and 4 shrink the map: 32 -> 30 -> 28, 28 -> 26 -> 24
            blocks.append(nn.Sequential(
                conv_block(c_in, c, padding=pad, dropout=dropout),                   # 3x3 conv
                DepthwiseSeparable(c, c, padding=pad, dropout=dropout),              # depthwise + 1x1
                conv_block(c, c, padding=d, dilation=d, dropout=dropout),           # dilated, same size
            ))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Conv2d(c_in, 10, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, "S9", 9)
        x = self.head(self.gap(self.blocks(x)))
        return F.log_softmax(x.flatten(1), dim=1)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(session: str, norm: str = "bn", dropout: float | None = None) -> nn.Module:
    """``S8(norm)`` for session "s8", ``S9()`` for "s9"; ``dropout`` None keeps the network's default."""
    kwargs = {} if dropout is None else {"dropout": dropout}
    if session == "s8":
        return S8(norm, **kwargs)
    if session == "s9":
        return S9(**kwargs)
    raise ValueError(f"unknown session {session!r}; choose s8 or s9")
