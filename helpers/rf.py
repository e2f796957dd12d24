"""Receptive-field table of any CNN, computed from the layers it actually runs.

For each Conv2d / MaxPool2d / AvgPool2d, in forward order:

    k_eff = d * (k - 1) + 1                  effective kernel of a dilated layer
    rf_out = rf_in + (k_eff - 1) * jump_in   receptive field
    jump_out = jump_in * stride              distance between neighbouring outputs, in input pixels

The forward order and output sizes come from forward hooks on one dummy batch, so
the table follows the real ``forward`` (not the order of ``__init__``). Global/adaptive
pooling is not a sliding window and is left out. Needs only torch (matplotlib for the figure).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

_LAYERS = (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)


@dataclass
class RFRow:
    """One line of the receptive-field table."""

    layer: str
    kind: str
    kernel: int
    stride: int
    padding: int
    dilation: int
    out_size: int
    jump: int
    rf: int


def _first(v) -> int:
    return int(v[0] if isinstance(v, (tuple, list)) else v)


def rf_table(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> list[RFRow]:
    """Run one zero batch of ``input_size`` (C, H, W) through ``model`` and return its RF table."""
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (channels, height, width), got {input_size}")
    events: list[tuple[str, nn.Module, torch.Size]] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: events.append((name, mod, out.shape)))
             for name, m in model.named_modules() if isinstance(m, _LAYERS)]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters(), torch.empty(0)).device
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    except RuntimeError as e:
        raise ValueError(f"the model cannot run on an input of size {tuple(input_size)}: "
                         f"{str(e).splitlines()[0]}") from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    rows, rf, jump = [], 1, 1
    for name, m, shape in events:
        k, s, p = _first(m.kernel_size), _first(m.stride), _first(m.padding)
        d = _first(getattr(m, "dilation", 1))
        rf += (d * (k - 1) + 1 - 1) * jump
        jump *= s
        kind = type(m).__name__
        if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels:
            kind = "Conv2d (depthwise)"
        elif isinstance(m, nn.Conv2d) and d > 1:
            kind = f"Conv2d (dilation {d})"
        rows.append(RFRow(name, kind, k, s, p, d, int(shape[-1]), jump, rf))
    return rows


def receptive_field(model: nn.Module, input_size: tuple[int, int, int] = (3, 32, 32)) -> int:
    """The receptive field of the model's last sliding-window layer."""
    rows = rf_table(model, input_size)
    return rows[-1].rf if rows else 1


def format_rf_table(rows: list[RFRow]) -> str:
    """The table as markdown (readable as plain text too)."""
    cols = list(asdict(rows[0]).keys()) if rows else list(RFRow.__dataclass_fields__)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(v) for v in asdict(r).values()) + " |" for r in rows]
    return "\n".join(lines)


def plot_rf_table(rows: list[RFRow], title: str = "Receptive field", save: str | None = None):
    """The table drawn as a matplotlib figure; returns the figure, saved to ``save`` if given."""
    import matplotlib.pyplot as plt

    cols = list(RFRow.__dataclass_fields__)
    fig, ax = plt.subplots(figsize=(11, 0.32 * len(rows) + 1.0))
    ax.axis("off")
    table = ax.table(cellText=[[str(v) for v in asdict(r).values()] for r in rows],
                     colLabels=cols, loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    table.scale(1, 1.2)
    for (r, c), cell in table.get_celld().items():
        if r == 0:
            cell.set_facecolor("#dbe5f1")
        elif c == len(cols) - 1:
            cell.set_facecolor("#fdf2d0")
    ax.set_title(f"{title}: final RF {rows[-1].rf if rows else 1}")
    fig.tight_layout()
    if save:
        fig.savefig(save, dpi=120, bbox_inches="tight")
    return fig
