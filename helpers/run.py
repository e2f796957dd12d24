"""Train a course network end to end, without Jupyter.

    python -m helpers.run s8 --norm gn --epochs 20
    python -m helpers.run s9 --recipe tuned --data-root /path/to/data
    python -m helpers.run s9 --smoke            # tiny synthetic CIFAR-format data, one epoch

Writes into --out: history.json, checkpoint.pt, curves.png, lr.png, misclassified.png,
confusion.png. Real CIFAR-10 is the default (download, $CIFAR10_ROOT or --data-root); it never
falls back to synthetic data unless --smoke is given.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import matplotlib
import matplotlib.pyplot
import torch

from helpers import data, device_data, models, plots, recipes, train  # noqa: E402


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers.run", description=__doc__.split("\n\n")[0])
    p.add_argument("session", choices=("s8", "s9"), help="s8: normalization, s9: advanced convolutions")
    p.add_argument("--norm", choices=models.NORMS, default="bn", help="s8 only: bn, ln or gn (default bn)")
    p.add_argument("--recipe", choices=recipes.RECIPES, default="seed",
                   help="seed: the seed document's optimiser and schedule; tuned: the improved one")
    p.add_argument("--epochs", type=_positive(int), default=None, help="default 20 (1 with --smoke)")
    p.add_argument("--batch-size", type=_positive(int), default=None, help="default 128")
    p.add_argument("--lr", type=_positive(float), default=None, help="default: the recipe's")
    p.add_argument("--data-root", default=None, help="folder holding cifar-10-batches-py/ (default $CIFAR10_ROOT or ./data)")
    p.add_argument("--out", default=None, help="output folder (default runs/s8-<norm>-<recipe> or runs/s9-<recipe>)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", choices=train.DEVICES, default="auto")
    p.add_argument("--loader", choices=("albumentations", "device"), default="albumentations",
                   help="albumentations: the taught DataLoader path; device: data and augmentation on the device")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (worth it on a GPU)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 0 on a CPU, else one per core, at most 4)")
    p.add_argument("--smoke", action="store_true", help="tiny synthetic CIFAR-format data, for a quick look and tests")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def make_loaders(recipe: recipes.Recipe, train_split: data.CifarSplit, test_split: data.CifarSplit,
                 mean, std, loader: str = "albumentations", device: torch.device | str = "cpu", seed: int = 1,
                 workers: int | None = None):
    """Train and test loaders for ``recipe``: albumentations DataLoaders (the taught path) or, with
    ``loader="device"``, helpers.device_data loaders that keep the data and augmentation on ``device``."""
    device = torch.device(device)
    if loader == "device":
        fast = dict(device=device, seed=seed, mean=mean, std=std, channels_last=device.type == "cuda")
        return (device_data.DeviceLoader(train_split.images, train_split.labels, recipe.batch_size, train=True,
                                         **fast, **device_data.PRESETS[recipe.augment]),
                device_data.DeviceLoader(test_split.images, test_split.labels, 1000, train=False, **fast))
    train_ds = data.AugmentedCifar(train_split, data.train_transforms(recipe.augment, mean, std), seed=seed)
    test_ds = data.AugmentedCifar(test_split, data.eval_transforms(mean, std))
    return (data.make_loader(train_ds, recipe.batch_size, train=True, seed=seed, num_workers=workers),
            data.make_loader(test_ds, 1000, train=False, num_workers=workers))


def main(argv: list[str] | None = None) -> float:
    """Run one training job; returns the best test accuracy (%)."""
    matplotlib.use("Agg")  # figures go to files
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.session == "s9" and "--norm" in (argv if argv is not None else sys.argv):
        parser.error("--norm applies to s8 only (s9 always uses BatchNorm)")
    try:
        device = train.get_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    tag = f"{args.session}-{args.norm}" if args.session == "s8" else args.session
    out = Path(args.out or f"runs/{tag}-{args.recipe}{'-smoke' if args.smoke else ''}")
    epochs = args.epochs or (1 if args.smoke else 20)
    recipe = recipes.get_recipe(args.session, args.recipe, args.norm, lr=args.lr, batch_size=args.batch_size)

    train.set_seed(args.seed)
    root = data.write_synthetic_cifar(out / "smoke-data", 512, 256, seed=args.seed).parent if args.smoke \
        else args.data_root
    if args.workers is None and (args.smoke or device.type == "cpu"):
        args.workers = 0  # on a CPU the model needs every core; albumentations at 32x32 is cheap beside it
    try:
        train_split = data.load_cifar10(root, train=True)
        test_split = data.load_cifar10(root, train=False)
    except data.CifarDataError as e:
        sys.exit(f"error: {e}")
    mean, std = data.mean_std(train_split.images)
    print(f"{tag}, recipe {recipe.name}: {len(train_split)} train / {len(test_split)} test images "
          f"from {'synthetic smoke data' if args.smoke else data.ensure_cifar10(root)}, {epochs} epochs on {device}")

    train_loader, test_loader = make_loaders(recipe, train_split, test_split, mean, std, args.loader, device,
                                             args.seed, args.workers)
    # What makes two runs the same run: --resume refuses a checkpoint saved with other settings.
    config = {"session": args.session, "norm": args.norm if args.session == "s8" else None,
              "recipe": recipe.as_dict(), "seed": args.seed, "loader": args.loader,
              "data": f"{'synthetic' if args.smoke else 'CIFAR-10'}: {len(train_split)} train / "
                      f"{len(test_split)} test images"}  # not the folder: a run may move between machines
    model = models.build_model(args.session, args.norm, recipe.dropout)
    if args.compile:
        model.compile()  # compiles the forward in place; state_dict keys stay the same
    optimizer = recipes.make_optimizer(model, recipe)
    scheduler = recipes.make_scheduler(optimizer, recipe, epochs, len(train_loader))
    try:
        history = train.fit(model, train_loader, test_loader, optimizer, scheduler, epochs, device,
                            label_smoothing=recipe.label_smoothing, ema_decay=recipe.ema_decay, tta=recipe.tta,
                            amp=args.loader == "device" and device.type == "cuda", out_dir=str(out),
                            resume=args.resume, progress=not args.no_progress, config=config)
    except (train.NonFiniteLossError, train.CheckpointMismatchError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        print(f"interrupted: the last completed epoch is saved in {out}; rerun with --resume to continue",
              file=sys.stderr)
        sys.exit(130)

    # Figures from the final weights (fit leaves the EMA in the model when the recipe keeps one).
    log_probs, labels = train.predict(model, test_loader, device, tta=recipe.tta)
    wrong = train.misclassified(log_probs, labels, 20)
    classes = test_split.classes
    figures = [
        plots.plot_history(history, title=f"{tag} ({recipe.name} recipe)", save=str(out / "curves.png")),
        plots.plot_lr(history, save=str(out / "lr.png")),
        plots.show_misclassified(test_split.images[[i for i, _, _ in wrong]], [t for _, t, _ in wrong],
                                 [p for _, _, p in wrong], classes, save=str(out / "misclassified.png")),
        plots.plot_confusion(labels.numpy(), log_probs.argmax(1).numpy(), classes, save=str(out / "confusion.png")),
    ]
    for fig in figures:  # saved; close them so repeated runs in one process do not pile figures up
        matplotlib.pyplot.close(fig)
    best = train.best_epoch(history)
    print(f"best test accuracy {best['test_acc']:.2f}% at epoch {best['epoch']} "
          f"(final {history[-1]['test_acc']:.2f}%); outputs in {out}")
    return best["test_acc"]


if __name__ == "__main__":
    main()
