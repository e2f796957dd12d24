"""Training recipes: every hyperparameter of a run in one place.

``seed`` reproduces the seed documents:
  * S8: SGD lr 0.1, momentum 0.9, StepLR (x0.1 every 8 epochs), batch 128.
  * S9: SGD lr 0.1, momentum 0.9, ReduceLROnPlateau on the test loss (x0.1 once it has gone
    more than 4 epochs without falling more than 0.1 below its best), batch 128.

``tuned`` fits the schedule to the epoch budget instead of waiting for a plateau: OneCycle
(warm-up then annealing to ~0), Nesterov momentum, weight decay, label smoothing and flip
test-time augmentation. S8 flips half of its training images, and LayerNorm and GroupNorm get
a 5x smaller peak learning rate than BatchNorm (``get_recipe(..., norm=...)``). The S9 net
underfits, so its tuned recipe regularises less: no dropout, and shift-scale-rotate and
cutout on a quarter of the images instead of half. The README's "Training recipes" section
has the measurements behind each choice.
Needs only torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

RECIPES = ("seed", "tuned")


@dataclass(frozen=True)
class Recipe:
    name: str
    lr: float = 0.1                  # initial lr (peak lr for OneCycle)
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    batch_size: int = 128
    schedule: str = "step"           # "step" | "plateau" | "onecycle"
    step_size: int = 8               # StepLR: epochs between drops
    gamma: float = 0.1               # StepLR / plateau: lr factor at each drop
    patience: int = 4                # plateau: epochs without improvement before a drop
    threshold: float = 0.1           # plateau: an improvement must exceed this (absolute) test loss
    pct_start: float = 0.25          # OneCycle: share of the steps spent warming up
    augment: str = "s8"              # training augmentation, by name: see helpers.data.train_transforms
    label_smoothing: float = 0.0
    dropout: float | None = None     # the network's dropout rate; None = its default (S8 0.02, S9 0.05)
    ema_decay: float | None = None   # exponential moving average of weights; None = off
    tta: bool = False                # average predictions of each test image and its flip

    def as_dict(self) -> dict:
        return asdict(self)


_RECIPES = {
    ("s8", "seed"): Recipe("seed", schedule="step"),
    ("s9", "seed"): Recipe("seed", schedule="plateau", augment="s9"),
    ("s8", "tuned"): Recipe("tuned", lr=0.1, nesterov=True, weight_decay=5e-4, schedule="onecycle",
                            augment="flip", label_smoothing=0.1, tta=True),
    ("s9", "tuned"): Recipe("tuned", lr=0.2, nesterov=True, weight_decay=5e-4, schedule="onecycle",
                            augment="s9-light", label_smoothing=0.1, dropout=0.0, tta=True),
}
# Per-image normalisation (LayerNorm, GroupNorm) trains best at a smaller peak learning rate.
_NORM_OVERRIDES = {("s8", "tuned", "ln"): {"lr": 0.02}, ("s8", "tuned", "gn"): {"lr": 0.02}}


def get_recipe(session: str, name: str = "seed", norm: str = "bn", **overrides) -> Recipe:
    """The recipe ``name`` for session "s8" or "s9" and the network's ``norm`` ("bn", "ln", "gn"),
    with any field overridden (e.g. lr=0.05; None keeps the recipe's value)."""
    if session not in ("s8", "s9"):
        raise ValueError(f"unknown session {session!r}; choose s8 or s9")
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    if norm not in ("bn", "ln", "gn"):
        raise ValueError(f"unknown norm {norm!r}; choose bn, ln or gn")
    fields = {**_NORM_OVERRIDES.get((session, name, norm), {}),
              **{k: v for k, v in overrides.items() if v is not None}}
    recipe = replace(_RECIPES[(session, name)], **fields)
    if not recipe.lr > 0:
        raise ValueError(f"the learning rate must be positive, got {recipe.lr}")
    if not isinstance(recipe.batch_size, int) or recipe.batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {recipe.batch_size!r}")
    return recipe


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    """SGD with the recipe's momentum, Nesterov flag and weight decay."""
    return torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                           nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, epochs: int, steps_per_epoch: int):
    """The recipe's lr schedule; ``helpers.train.fit`` knows when to step each kind."""
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.gamma)
    if recipe.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=recipe.gamma, patience=recipe.patience,
            threshold=recipe.threshold, threshold_mode="abs")
    if recipe.schedule == "onecycle":
        total = epochs * steps_per_epoch  # OneCycleLR needs at least one warm-up and one annealing step
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
            pct_start=min(max(recipe.pct_start, 1.5 / total), 0.9), div_factor=10.0, final_div_factor=100.0)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; choose step, plateau or onecycle")
