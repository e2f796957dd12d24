"""Model summary that works on a CPU-only machine and leaves BatchNorm statistics alone.

Uses torchinfo (maintained; torchsummary 1.5.1 assumes CUDA, runs in train mode, which
updates BatchNorm running statistics, and returns None). Needs torch and torchinfo.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:  # for the type hint only: torchinfo is imported when a summary is made
    from torchinfo import ModelStatistics


def model_summary(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32), depth: int = 4) -> ModelStatistics:
    """Layer table (output shapes, parameters) for one image of ``input_size`` (C, H, W).

    The model runs once in eval mode on its own device, so nothing it has learned changes.
    Returns torchinfo's ModelStatistics: ``print`` it, or read ``.total_params``.
    """
    import torchinfo

    if len(input_size) != 3:
        raise ValueError(f"input_size must be (channels, height, width), got {input_size}")
    device = next(model.parameters(), torch.empty(0)).device
    try:
        return torchinfo.summary(model, input_size=(1, *input_size), device=device, mode="eval",
                                 depth=depth, verbose=0, col_names=("output_size", "num_params"),
                                 row_settings=("var_names",))
    except Exception as e:
        cause = e
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise ValueError(f"cannot summarise the model on an input of size {tuple(input_size)}: "
                         f"{str(cause).splitlines()[0]}") from None
