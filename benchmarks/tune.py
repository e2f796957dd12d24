"""One tuning run on a validation split: a recipe with some fields changed, scored on images it never trains on.

    python benchmarks/tune.py s8 --norm ln --set lr=0.02 --data-root ../shared/cifar10-sample
    python benchmarks/tune.py s9 --epochs 10 --set dropout=0 augment=s9-light --data-root ...
    python benchmarks/tune.py s8 --set augment=pad-crop --seed 2 --log tuning.jsonl

The training batch files are split: the last one present (data_batch_4 of the course sample,
data_batch_5 of full CIFAR-10) is held out for validation and the others are trained on, so the
test batch stays untouched for benchmarks/recipes.py. Prints one JSON line (and appends it to
--log): the settings, final and best validation accuracy, final training accuracy.
doc/tuning.md lists the runs behind the tuned recipes. Not a test: minutes (S8) to an hour (S9)
on a CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers import data, models, recipes, train  # noqa: E402

EXTRA_AUGMENTATIONS = ("pad-crop", "pad-crop-cutout8")  # tried while tuning; not part of any recipe


def last_batch_size(root: str | None) -> tuple[int, int]:
    """(number of training batch files, images in the last of them) of the CIFAR-10 folder."""
    folder = data.ensure_cifar10(root, download=False)
    files = [folder / f for f in data.TRAIN_FILES if (folder / f).is_file()]
    return len(files), len(data.safe_unpickle(files[-1])["labels"]) if files else 0


def split_train_val(split: data.CifarSplit, n_files: int, n_val: int) -> tuple[data.CifarSplit, data.CifarSplit]:
    """Hold out the last ``n_val`` images (the last of ``n_files`` training batch files) for validation."""
    if n_files < 2:
        raise ValueError("a validation split needs at least two training batch files")
    if not 0 < n_val < len(split):
        raise ValueError(f"cannot hold out {n_val} of {len(split)} images")
    cut = len(split) - n_val
    return (data.CifarSplit(split.images[:cut], split.labels[:cut], split.classes),
            data.CifarSplit(split.images[cut:], split.labels[cut:], split.classes))


def extra_transforms(name: str, mean: Sequence[float], std: Sequence[float]):
    """Pad-and-crop pipelines (flip p=0.5, 4-pixel reflected padding, random 32x32 crop)."""
    import albumentations as A
    from albumentations.pytorch import ToTensorV2
    steps = [A.HorizontalFlip(p=0.5), A.PadIfNeeded(40, 40, border_mode=4), A.RandomCrop(32, 32)]
    if name == "pad-crop-cutout8":
        steps.append(A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(8, 8), hole_width_range=(8, 8),
                                     fill=tuple(255.0 * m for m in mean), p=0.5))
    return A.Compose(steps + [A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()], strict=True)


def parse_settings(pairs: list[str]) -> dict:
    """["lr=0.02", "tta=false", "ema_decay=none"] -> {"lr": 0.02, "tta": False, "ema_decay": None}."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set takes key=value, got {pair!r}")
        try:
            settings[key] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            settings[key] = None if value.lower() == "none" else value
    return settings


def tuned_recipe(session: str, name: str, norm: str, settings: dict) -> tuple[recipes.Recipe, str]:
    """The recipe with ``settings`` applied, and the name of its training augmentation.

    An augmentation from EXTRA_AUGMENTATIONS stays out of the recipe (which knows only the
    helpers' pipelines). A setting of None sets the field to None ("dropout=none": the network's
    default dropout), which get_recipe alone would read as "keep the recipe's value".
    """
    settings = dict(settings)
    augment = settings.pop("augment") if settings.get("augment") in EXTRA_AUGMENTATIONS else None
    recipe = recipes.get_recipe(session, name, norm, **settings)
    recipe = dataclasses.replace(recipe, **{k: v for k, v in settings.items() if v is None})
    return recipe, augment or recipe.augment


def main(argv: list[str] | None = None) -> dict:
    """Train once on the training files but the last, score on the last; return (and print) the result."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("session", choices=("s8", "s9"))
    p.add_argument("--norm", choices=models.NORMS, default=None, help="s8 only (default bn)")
    p.add_argument("--recipe", choices=recipes.RECIPES, default="tuned")
    p.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                   help="recipe fields to change, e.g. lr=0.05 dropout=0 augment=flip tta=false")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data-root", default=None)
    p.add_argument("--device", choices=train.DEVICES, default="auto")
    p.add_argument("--log", default=None, help="append the JSON line to this file")
    args = p.parse_args(argv)
    if args.session == "s9" and args.norm is not None:
        p.error("--norm is for s8 only: the S9 network uses BatchNorm")
    args.norm = args.norm or "bn"

    try:
        recipe, augment = tuned_recipe(args.session, args.recipe, args.norm, parse_settings(args.set))
    except (ValueError, TypeError) as e:
        p.error(str(e))
    device = train.get_device(args.device)
    full = data.load_cifar10(args.data_root, train=True)
    train_split, val_split = split_train_val(full, *last_batch_size(args.data_root))
    mean, std = data.mean_std(train_split.images)

    train.set_seed(args.seed)
    transform = (extra_transforms(augment, mean, std) if augment in EXTRA_AUGMENTATIONS
                 else data.train_transforms(augment, mean, std))
    train_loader = data.make_loader(data.AugmentedCifar(train_split, transform, seed=args.seed), recipe.batch_size,
                                    train=True, seed=args.seed, num_workers=0)
    val_loader = data.make_loader(data.AugmentedCifar(val_split, data.eval_transforms(mean, std)), 1000,
                                  train=False, num_workers=0)
    model = models.build_model(args.session, args.norm, recipe.dropout)
    optimizer = recipes.make_optimizer(model, recipe) if args.optimizer == "sgd" else \
        torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    scheduler = recipes.make_scheduler(optimizer, recipe, args.epochs, len(train_loader))
    start = time.time()
    history = train.fit(model, train_loader, val_loader, optimizer, scheduler, args.epochs, device,
                        recipe.label_smoothing, recipe.ema_decay, recipe.tta, progress=False, verbose=False)
    best = train.best_epoch(history)
    result = {"session": args.session, "norm": args.norm if args.session == "s8" else None,
              "recipe": args.recipe, "set": args.set,
              "augment": augment, "optimizer": args.optimizer, "epochs": args.epochs, "seed": args.seed,
              "train_images": len(train_split), "val_images": len(val_split),
              "val_acc": round(history[-1]["test_acc"], 2), "best_val_acc": round(best["test_acc"], 2),
              "best_epoch": best["epoch"], "train_acc": round(history[-1]["train_acc"], 2),
              "seconds": round(time.time() - start)}
    line = json.dumps(result)
    print(line)
    if args.log:
        with open(args.log, "a") as f:
            f.write(line + "\n")
    return result


if __name__ == "__main__":
    main()
