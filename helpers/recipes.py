"""Training recipes: every hyperparameter of a run in one place.

``seed`` reproduces the seed documents, with the values their own code used where the text is
vague or wrong (the documents are the READMEs of github.com/jyanivaddi/ERA_V1, session_8 and
session_9; doc/tuning.md quotes the code):
  * S8: SGD lr 0.01, momentum 0.9, StepLR x0.1 every 8 epochs ("reduce by 10%"), batch 128,
    flip p=0.1 and a rotation of up to 10 degrees on every image (the text: p=0.1).
  * S9: SGD lr 0.01 (the text also names 0.1), momentum 0.9, ReduceLROnPlateau on the test loss
    (x0.1 once it has gone more than 4 epochs without falling below 0.9 x its best: a threshold
    of 0.1 in PyTorch's default relative mode), batch 64 (the text: 128), flip, shift 0.05 /
    scale 0.05 / rotation 10 degrees and one 16x16 cutout, p=0.5 each. The network stays the
    documented one: the code also adds each block's input to its dilated convolution's output (a
    residual the document does not show), which ours does not.

``tuned`` fits the schedule to the epoch budget instead of waiting for a plateau: OneCycle
(the lr rises from peak/10 to the peak, then falls to ~0, both along a cosine, or a straight
line with ``anneal="linear"``) at a constant momentum, Nesterov, weight decay (only on conv and
linear weights where ``bias_decay`` is False), label smoothing where it won (the ``_TUNED``
block says where) and flip test-time augmentation (with shifted views where ``tta_shift`` is
set: ``helpers.train.tta_log_probs``). Its values were chosen on a
validation split of the training images on full CIFAR-10 (doc/tuning.md), separately for
each normalization of S8, so each has values of its own (the ``_TUNED`` block;
``get_recipe(..., norm=...)``). Needs only torch.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields, replace

import torch
from torch import nn

RECIPES = ("seed", "tuned")
SCHEDULES = ("step", "plateau", "onecycle")
THRESHOLD_MODES = ("rel", "abs")
ANNEALS = ("cos", "linear")  # OneCycle's shape, as torch's anneal_strategy names it
# The training augmentations by name, as helpers.data.AUGMENTATIONS (and helpers.device_data.PRESETS) define
# them; written out here so this module needs only torch (a test keeps the three in step).
AUGMENTATIONS = ("s8", "s8-seed-code", "flip", "s9", "s9-seed-code", "s9-light", "crop-flip", "crop-flip-cutout")
# The fields that name one of a few choices (get_recipe refuses any other name in one line).
FIELD_CHOICES = {"schedule": SCHEDULES, "threshold_mode": THRESHOLD_MODES, "anneal": ANNEALS,
                 "augment": AUGMENTATIONS}
# What each numeric field may be (get_recipe refuses anything else in one line, before any data loads).
FIELD_RANGES = {
    "momentum": ("in [0, 1)", lambda v: v is not None and 0 <= v < 1),
    "weight_decay": ("in [0, inf)", lambda v: v is not None and v >= 0),
    "label_smoothing": ("in [0, 1)", lambda v: v is not None and 0 <= v < 1),
    "pct_start": ("in (0, 1)", lambda v: v is not None and 0 < v < 1),
    "gamma": ("in (0, inf)", lambda v: v is not None and v > 0),
    "threshold": ("in [0, inf)", lambda v: v is not None and v >= 0),
    "dropout": ("in [0, 1) or None", lambda v: v is None or 0 <= v < 1),
    "ema_decay": ("in (0, 1) or None", lambda v: v is None or 0 < v < 1),
    "step_size": ("a whole number of epochs, at least 1", lambda v: isinstance(v, int) and v >= 1),
    "patience": ("a whole number of epochs, at least 0", lambda v: isinstance(v, int) and v >= 0),
    "tta_shift": ("a whole number of pixels from 0 to 4", lambda v: isinstance(v, int) and 0 <= v <= 4),
}


@dataclass(frozen=True)
class Recipe:
    """Every hyperparameter of one training run: the optimizer, the lr schedule, the augmentation and what
    happens at test time. Frozen: ``get_recipe`` builds one, ``dataclasses.replace`` changes a field."""
    name: str
    lr: float = 0.1                  # initial lr (peak lr for OneCycle)
    momentum: float = 0.9            # constant, also under OneCycle (no momentum cycling)
    nesterov: bool = False
    weight_decay: float = 0.0
    bias_decay: bool = True          # weight decay on biases and norm scales/shifts too (False: weights only)
    batch_size: int = 128
    schedule: str = "step"           # "step" | "plateau" | "onecycle"
    step_size: int = 8               # StepLR: epochs between drops
    gamma: float = 0.1               # StepLR / plateau: lr factor at each drop
    patience: int = 4                # plateau: epochs without improvement before a drop
    threshold: float = 0.1           # plateau: how much the test loss must fall to count as better...
    threshold_mode: str = "abs"      # ... "rel": below (1 - threshold) x best; "abs": below best - threshold
    pct_start: float = 0.25          # OneCycle: share of the steps spent warming up
    anneal: str = "cos"              # OneCycle: the shape of the rise and the fall, "cos" | "linear"
    augment: str = "s8"              # training augmentation, by name: see helpers.data.train_transforms
    label_smoothing: float = 0.0
    dropout: float | None = None     # the network's dropout rate; None = its default (S8 0.02, S9 0.05)
    ema_decay: float | None = None   # exponential moving average of weights; None = off
    tta: bool = False                # average predictions of each test image and its flip (off: one view)
    tta_shift: int = 0               # ... and of the image moved this many pixels down-right and up-left

    def as_dict(self) -> dict:
        """The fields as a plain dict (what run.json and the checkpoints record)."""
        return asdict(self)


def field_defaults() -> dict:
    """Each ``Recipe`` field's default (``name`` has none): what the code did before a field was added,
    so a record or checkpoint that lacks a field reads as having it at its default."""
    return {f.name: f.default for f in fields(Recipe) if f.default is not MISSING}


# The seed documents, with their code's values (see the module docstring).
# BEGIN SEED
_SEED = {
    "s8": dict(lr=0.01, momentum=0.9, gamma=0.1, augment="s8-seed-code"),
    "s9": dict(lr=0.01, batch_size=64, augment="s9-seed-code"),
}
# END SEED
# The tuned values, chosen on a validation split (benchmarks/select_recipes.py rewrites this block).
# BEGIN TUNED
_TUNED = {
    "s8-bn": dict(lr=0.2, batch_size=256, weight_decay=0.001, dropout=0.0, augment="crop-flip", label_smoothing=0.0, tta_shift=1, pct_start=0.15, anneal="linear", momentum=0.85),
    "s8-ln": dict(lr=0.025, batch_size=64, weight_decay=0.001, dropout=0.0, augment="crop-flip", label_smoothing=0.0, tta_shift=1, bias_decay=False, pct_start=0.15, anneal="linear"),
    "s8-gn": dict(lr=0.1, batch_size=128, weight_decay=0.0005, dropout=0.0, augment="flip", label_smoothing=0.1, tta_shift=1),
    "s9": dict(lr=0.1, batch_size=128, weight_decay=0.0005, dropout=0.0, augment="crop-flip", label_smoothing=0.1),
}
# END TUNED

_BASE = {
    ("s8", "seed"): Recipe("seed", schedule="step"),
    ("s9", "seed"): Recipe("seed", schedule="plateau", threshold_mode="rel", augment="s9"),
    ("s8", "tuned"): Recipe("tuned", nesterov=True, schedule="onecycle", tta=True),
    ("s9", "tuned"): Recipe("tuned", nesterov=True, schedule="onecycle", tta=True),
}


def field_names() -> tuple[str, ...]:
    """The names of the recipe fields that can be overridden."""
    return tuple(f.name for f in fields(Recipe) if f.name != "name")


def get_recipe(session: str, name: str = "seed", norm: str = "bn", **overrides) -> Recipe:
    """The recipe ``name`` for session "s8" or "s9" and the network's ``norm`` ("bn", "ln", "gn"),
    with any field overridden (e.g. lr=0.05). An override of None keeps the recipe's value;
    ``set_none=("dropout",)`` sets the named fields to None instead."""
    if session not in ("s8", "s9"):
        raise ValueError(f"unknown session {session!r}; choose s8 or s9")
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    if norm not in ("bn", "ln", "gn"):
        raise ValueError(f"unknown norm {norm!r}; choose bn, ln or gn")
    set_none = tuple(overrides.pop("set_none", ()))
    unknown = (set(overrides) | set(set_none)) - set(field_names())
    if unknown:
        raise ValueError(f"unknown recipe field(s) {', '.join(sorted(unknown))}; "
                         f"choose from {', '.join(field_names())}")
    key = f"s8-{norm}" if session == "s8" else "s9"
    chosen = _SEED[session] if name == "seed" else _TUNED[key]
    fields_ = {**chosen, **{k: v for k, v in overrides.items() if v is not None}, **{k: None for k in set_none}}
    recipe = replace(_BASE[(session, name)], **fields_)
    if isinstance(recipe.lr, bool) or not isinstance(recipe.lr, (int, float)) or not recipe.lr > 0:
        raise ValueError(f"the learning rate must be a positive number, got {recipe.lr!r}")
    for field in (f.name for f in fields(Recipe) if f.type in ("bool", bool)):  # "no" would count as true
        if not isinstance(getattr(recipe, field), bool):
            raise ValueError(f"{field} must be true or false, got {getattr(recipe, field)!r}")
    if not isinstance(recipe.batch_size, int) or recipe.batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {recipe.batch_size!r}")
    for field, choices in FIELD_CHOICES.items():
        value = getattr(recipe, field)
        if value not in choices:
            named = " or ".join(choices) if len(choices) == 2 else "one of " + ", ".join(choices)
            raise ValueError(f"unknown {field} {value!r}; choose {named}")
    for field, (allowed, fine) in FIELD_RANGES.items():
        value = getattr(recipe, field)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ((number or value is None) and fine(value)):
            raise ValueError(f"{field} must be {allowed}, got {value!r}")
    if recipe.nesterov and recipe.momentum == 0:  # torch.optim.SGD would refuse it later, with a traceback
        raise ValueError("Nesterov momentum needs a momentum above 0; set nesterov=false as well")
    return recipe


def recipe_with_settings(session: str, name: str, norm: str, settings: dict) -> Recipe:
    """``get_recipe`` with ``settings`` applied as ``--set field=value`` means them: a value of None
    sets that field to None (``dropout=none``: the network's default), any other value replaces it."""
    return get_recipe(session, name, norm, set_none=[k for k, v in settings.items() if v is None],
                      **{k: v for k, v in settings.items() if v is not None})


def make_optimizer(model: nn.Module, recipe: Recipe, fused: bool | None = None) -> torch.optim.Optimizer:
    """SGD with the recipe's momentum, Nesterov flag and weight decay (with ``bias_decay=False``
    only on the conv and linear weights, not on biases or the norm layers' scales and shifts).

    ``fused`` (default: when every parameter is on a CUDA device) updates all parameters in one
    kernel instead of one small kernel per tensor.
    """
    params = list(model.parameters())
    if fused is None:
        fused = bool(params) and all(p.is_cuda for p in params)
    if recipe.bias_decay:
        groups = [{"params": params}]
    else:  # "no bias decay": biases and the norm layers' scales and shifts (1-d tensors) are not decayed
        groups = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov,
                           weight_decay=recipe.weight_decay, **({"fused": True} if fused else {}))


def make_scheduler(optimizer: torch.optim.Optimizer, recipe: Recipe, epochs: int,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The recipe's lr schedule; ``helpers.train.fit`` knows when to step each kind.

    OneCycle keeps the momentum at ``recipe.momentum`` (PyTorch's default would cycle it
    between 0.85 and 0.95), so the recipe's momentum means what it says.
    """
    if recipe.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=recipe.step_size, gamma=recipe.gamma)
    if recipe.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=recipe.gamma, patience=recipe.patience,
            threshold=recipe.threshold, threshold_mode=recipe.threshold_mode)
    if recipe.schedule == "onecycle":
        total = epochs * steps_per_epoch  # OneCycleLR needs at least one warm-up and one annealing step
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
            pct_start=min(max(recipe.pct_start, 1.5 / total), 0.9), div_factor=10.0, final_div_factor=100.0,
            anneal_strategy=recipe.anneal, cycle_momentum=False)
    raise ValueError(f"unknown schedule {recipe.schedule!r}; choose one of {', '.join(SCHEDULES)}")
