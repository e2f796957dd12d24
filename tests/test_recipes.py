import math

import pytest
import torch

from benchmarks import select_recipes
from helpers import models, recipes


def _build(session, name, epochs=20, steps=391):
    recipe = recipes.get_recipe(session, name)
    opt = recipes.make_optimizer(models.S8() if session == "s8" else torch.nn.Linear(2, 2), recipe)
    return recipe, opt, recipes.make_scheduler(opt, recipe, epochs, steps)


def test_seed_recipes_follow_the_seed_documents():
    # the values of the documents' own code (jyanivaddi/ERA_V1 session_8/s8.ipynb, session_9/s9.ipynb),
    # where the text is vague (momentum, "reduce by 10%") or says otherwise (lr 0.1, S9 batch 128)
    recipe, opt, sched = _build("s8", "seed")
    assert (recipe.lr, recipe.momentum, recipe.batch_size, recipe.augment) == (0.01, 0.9, 128, "s8-seed-code")
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and (sched.step_size, sched.gamma) == (8, 0.1)
    recipe, opt, sched = _build("s9", "seed")
    assert (recipe.lr, recipe.momentum, recipe.batch_size, recipe.augment) == (0.01, 0.9, 64, "s9-seed-code")
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert (sched.factor, sched.patience, sched.threshold, sched.threshold_mode) == (0.1, 4, 0.1, "rel")
    assert opt.param_groups[0]["nesterov"] is False and opt.param_groups[0]["weight_decay"] == 0


def test_s9_seed_plateau_drops_where_the_published_log_jumps():
    """The S9 document's log shows its lr drop as a jump in train accuracy; fed the log's own test
    losses, the seed recipe's scheduler must drop the lr at that epoch (an absolute threshold would not)."""
    log = select_recipes.S9_PUBLISHED_TRAIN_ACC
    jump = max(range(5, len(log)), key=lambda i: log[i] - log[i - 1]) + 1  # epoch numbers start at 1
    seed = recipes.get_recipe("s9", "seed")
    assert select_recipes.plateau_drop_epochs(select_recipes.S9_PUBLISHED_TEST_LOSS, seed)[0] == jump
    absolute = recipes.get_recipe("s9", "seed", threshold_mode="abs")
    assert jump not in select_recipes.plateau_drop_epochs(select_recipes.S9_PUBLISHED_TEST_LOSS, absolute)


def test_one_cycle_keeps_the_recipes_momentum():
    recipe, opt, sched = _build("s9", "tuned", epochs=2, steps=10)
    for _ in range(15):
        opt.step()
        sched.step()
        assert opt.param_groups[0]["momentum"] == recipe.momentum == 0.9


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_anneals_along_the_recipes_shape(anneal):
    recipe = recipes.get_recipe("s8", "tuned", anneal=anneal, pct_start=0.25)
    opt = recipes.make_optimizer(torch.nn.Linear(2, 2), recipe)
    sched = recipes.make_scheduler(opt, recipe, epochs=1, steps_per_epoch=100)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    fall = lrs[lrs.index(max(lrs)):]  # from the peak to the end
    assert fall[0] == pytest.approx(recipe.lr) and len(fall) > 70
    steps = [b - a for a, b in zip(fall, fall[1:])]
    if anneal == "linear":  # every step down the same size
        assert max(steps) == pytest.approx(min(steps), rel=1e-6)
    else:  # a cosine falls slowly at both ends and fastest in the middle
        assert abs(steps[len(steps) // 2]) > 3 * abs(steps[0]) and abs(steps[len(steps) // 2]) > 3 * abs(steps[-1])


def test_unknown_fields_and_none_overrides():
    with pytest.raises(ValueError, match="unknown recipe field"):
        recipes.get_recipe("s9", "tuned", colour="red")
    assert recipes.get_recipe("s9", "tuned", set_none=("dropout",)).dropout is None
    assert recipes.get_recipe("s9", "tuned", dropout=None).dropout == recipes.get_recipe("s9", "tuned").dropout


@pytest.mark.parametrize("field, value, message", [
    ("augment", "crop_flip", "unknown augment 'crop_flip'"),  # a typo would fail only after the data had loaded
    ("anneal", "cosine", "unknown anneal 'cosine'; choose cos or linear"),
    ("ema_decay", 1.0, r"ema_decay must be in \(0, 1\)"),
    ("ema_decay", 0, r"ema_decay must be in \(0, 1\)"),  # 0 used to switch the average off silently
    ("label_smoothing", -0.5, r"label_smoothing must be in \[0, 1\)"),
    ("pct_start", 1.0, r"pct_start must be in \(0, 1\)"),
    ("weight_decay", -1e-4, r"weight_decay must be in \[0, inf\)"),
    ("dropout", 1.0, r"dropout must be in \[0, 1\)"),
    ("step_size", 0, "step_size must be a whole number of epochs, at least 1"),
    # the plateau schedule's threshold failed only after the first epoch (a string), or never cut the lr (< 0)
    ("threshold", "abc", r"threshold must be in \[0, inf\), got 'abc'"),
    ("threshold", -0.1, r"threshold must be in \[0, inf\)"),
    ("tta_shift", 16, "tta_shift must be a whole number of pixels from 0 to 4"),
    ("tta_shift", 1.5, "tta_shift must be a whole number of pixels from 0 to 4"),
    # the tuned recipes use Nesterov, which torch.optim.SGD refuses without momentum, after the data has loaded
    ("momentum", 0, "Nesterov momentum needs a momentum above 0; set nesterov=false as well"),
    # --set tta=no arrives as the string "no", which Python counts as true: it switched TTA on
    ("tta", "no", "tta must be true or false, got 'no'"),
    ("nesterov", "maybe", "nesterov must be true or false, got 'maybe'"),
    ("lr", "abc", "the learning rate must be a positive number, got 'abc'"),
    ("lr", True, "the learning rate must be a positive number, got True"),
])
def test_out_of_range_fields_are_refused_when_the_recipe_is_made(field, value, message):
    with pytest.raises(ValueError, match=message):
        recipes.get_recipe("s8", "tuned", **{field: value})


def test_momentum_0_is_fine_without_nesterov():
    recipe = recipes.get_recipe("s8", "tuned", momentum=0, nesterov=False)
    opt = recipes.make_optimizer(torch.nn.Linear(2, 2), recipe)
    assert opt.param_groups[0]["momentum"] == 0 and not opt.param_groups[0]["nesterov"]


def test_the_augmentation_names_are_the_same_in_all_three_modules():
    from helpers import data, device_data
    assert recipes.AUGMENTATIONS == data.AUGMENTATIONS == tuple(device_data.PRESETS)


@pytest.mark.parametrize("session", ["s8", "s9"])
def test_tuned_recipes_fit_the_schedule_to_the_budget(session):
    recipe, opt, sched = _build(session, "tuned", epochs=20, steps=32)
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR) and sched.total_steps == 640
    assert opt.param_groups[0]["nesterov"]  # (label smoothing is the selection rule's to choose: S8-BN has none)


def test_tuned_recipe_has_a_learning_rate_per_norm_and_overrides_win():
    bn, ln, gn = (recipes.get_recipe("s8", "tuned", norm) for norm in ("bn", "ln", "gn"))
    assert {r.name for r in (bn, ln, gn)} == {"tuned"} and all(r.schedule == "onecycle" for r in (bn, ln, gn))
    assert recipes.get_recipe("s8", "seed", "ln") == recipes.get_recipe("s8", "seed", "bn")  # the seed has one lr
    assert recipes.get_recipe("s8", "tuned", "ln", lr=0.3).lr == 0.3                    # explicit overrides win
    with pytest.raises(ValueError, match="bn, ln or gn"):
        recipes.get_recipe("s8", "tuned", "xn")


def test_every_recipe_names_a_known_augmentation():
    from helpers import data, device_data
    for session in ("s8", "s9"):
        for name in recipes.RECIPES:
            augment = recipes.get_recipe(session, name).augment
            assert augment in data.AUGMENTATIONS and augment in device_data.PRESETS


def test_overrides_and_tiny_budgets():
    assert recipes.get_recipe("s9", "tuned", lr=0.05, batch_size=None).lr == 0.05
    for steps in range(2, 9):  # OneCycle needs >= 1 warm-up step: a quarter of 4 steps would be none
        recipe, opt, sched = _build("s8", "tuned", epochs=1, steps=steps)
        lrs = [opt.param_groups[0]["lr"]]
        for _ in range(steps - 1):
            opt.step()
            sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        assert all(math.isfinite(lr) for lr in lrs) and max(lrs) <= recipe.lr * (1 + 1e-9), (steps, lrs)
        assert lrs[0] == pytest.approx(recipe.lr / 10) and lrs[-1] == pytest.approx(recipe.lr / 1000), (steps, lrs)
        if steps >= 3:  # up, then down (two steps are a start and an end only)
            assert max(lrs) > lrs[0] and 0 < lrs.index(max(lrs)) < steps - 1, (steps, lrs)


def test_bias_decay_false_decays_only_the_weights():
    """With bias_decay=False a step with zero gradients shrinks conv weights (weight decay) but leaves
    biases and the norm layers' scales and shifts where they were; by default it shrinks both."""
    for bias_decay in (True, False):
        torch.manual_seed(0)
        model = models.build_model("s8", "bn")
        recipe = recipes.get_recipe("s8", "tuned", weight_decay=0.1, momentum=0.0, nesterov=False,
                                    bias_decay=bias_decay)
        opt = recipes.make_optimizer(model, recipe, fused=False)
        assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()
        for name, p in model.named_parameters():
            moved = not torch.equal(p, before[name])
            assert moved == (bias_decay or p.ndim > 1) or not before[name].any(), name


def test_bias_decay_must_be_a_bool():
    with pytest.raises(ValueError, match="bias_decay must be true or false"):
        recipes.get_recipe("s8", "tuned", bias_decay="no")
