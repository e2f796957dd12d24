import pytest
import torch

from helpers import models, recipes


def _build(session, name, epochs=20, steps=391):
    recipe = recipes.get_recipe(session, name)
    opt = recipes.make_optimizer(models.S8() if session == "s8" else torch.nn.Linear(2, 2), recipe)
    return recipe, opt, recipes.make_scheduler(opt, recipe, epochs, steps)


def test_seed_recipes_reproduce_the_seed_documents():
    recipe, opt, sched = _build("s8", "seed")
    assert (recipe.lr, recipe.momentum, recipe.batch_size, recipe.augment) == (0.1, 0.9, 128, "s8")
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR) and (sched.step_size, sched.gamma) == (8, 0.1)
    recipe, opt, sched = _build("s9", "seed")
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau) and recipe.augment == "s9"
    assert (sched.factor, sched.patience, sched.threshold, sched.threshold_mode) == (0.1, 4, 0.1, "abs")
    assert opt.param_groups[0]["nesterov"] is False and opt.param_groups[0]["weight_decay"] == 0


@pytest.mark.parametrize("session", ["s8", "s9"])
def test_tuned_recipes_fit_the_schedule_to_the_budget(session):
    recipe, opt, sched = _build(session, "tuned", epochs=20, steps=32)
    assert isinstance(sched, torch.optim.lr_scheduler.OneCycleLR) and sched.total_steps == 640
    assert opt.param_groups[0]["nesterov"] and recipe.label_smoothing > 0


def test_tuned_recipe_lowers_the_learning_rate_for_per_image_norms():
    bn, ln, gn = (recipes.get_recipe("s8", "tuned", norm) for norm in ("bn", "ln", "gn"))
    assert ln.lr == gn.lr == bn.lr / 5
    assert {r.augment for r in (bn, ln, gn)} == {"flip"}
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
    _, _, sched = _build("s8", "tuned", epochs=1, steps=2)   # OneCycle needs >= 1 warm-up step
    for _ in range(2):
        sched.optimizer.step()
        sched.step()
