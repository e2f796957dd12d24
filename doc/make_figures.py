"""Regenerate every image the README shows, from real CIFAR-10 images.

    python doc/make_figures.py --data-root /path/to/folder/with/cifar-10-batches-py
    # the committed images: the course's real-image sample, 20 epochs for both sessions
    python doc/make_figures.py --data-root ../shared/cifar10-sample --s8-epochs 20 --s9-epochs 20

Training runs (seed recipe) go through the command-line runner into runs/course/ and are resumed, not
repeated, when the script is run again. Writes PNGs into doc/ and prints what it used.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from helpers import data, models, plots, rf, run, train  # noqa: E402

DOC = ROOT / "doc"


def dataset_figures(root: str | None) -> None:
    split = data.load_cifar10(root, train=True, download=False)
    plots.show_images(split.images[:32], cols=8, save=str(DOC / "dataset_images_no_labels.png"))
    plots.show_images(split.images[32:56], split.labels[32:56], split.classes, cols=8,
                      save=str(DOC / "dataset_images.png"))
    mean, std = data.mean_std(split.images)
    image = split.images[7]
    plots.show_image_rows({"original": [image],
                           "S8 train": data.augment_examples(image, data.s8_train_transforms(mean, std), 8, 0, mean, std)},
                          save=str(DOC / "s8_augmentations.png"))
    rows = {"original": [image]}
    rows.update({name: data.augment_examples(image, tf, 8, 0, mean, std)
                 for name, tf in data.s9_preview_transforms(mean, std).items()})
    plots.show_image_rows(rows, save=str(DOC / "s9_augmentations.png"))
    plt.close("all")
    print(f"dataset figures from {len(split)} training images; mean {tuple(round(m, 4) for m in mean)}, "
          f"std {tuple(round(s, 4) for s in std)}")


def rf_figures() -> None:
    rf.plot_rf_table(rf.rf_table(models.S8()), "S8", save=str(DOC / "rf_s8.png"))
    rf.plot_rf_table(rf.rf_table(models.S9()), "S9", save=str(DOC / "rf_s9.png"))
    plt.close("all")


def training_figures(root: str | None, s8_epochs: int, s9_epochs: int, device: str) -> None:
    common = ["--device", device, "--resume", "--no-progress"] + (["--data-root", root] if root else [])
    histories = {}
    for norm in models.NORMS:
        out = ROOT / "runs" / "course" / f"s8-{norm}-seed-e{s8_epochs}"  # shared with benchmarks/recipes.py
        run.main(["s8", "--norm", norm, "--epochs", str(s8_epochs), "--out", str(out), *common])
        histories[norm.upper()] = train.load_checkpoint(out / "checkpoint.pt")["history"]
        shutil.copy(out / "misclassified.png", DOC / f"s8_misclassified_{norm}.png")
    plt.close(plots.plot_history(histories, title=f"S8 on the sample, {s8_epochs} epochs",
                                 save=str(DOC / "s8_curves.png")))

    out = ROOT / "runs" / "course" / f"s9-seed-e{s9_epochs}"
    run.main(["s9", "--epochs", str(s9_epochs), "--out", str(out), *common])
    for name in ("curves", "misclassified", "confusion", "lr"):
        shutil.copy(out / f"{name}.png", DOC / f"s9_{name}.png")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=None, help="folder holding cifar-10-batches-py/ (default $CIFAR10_ROOT or ./data)")
    p.add_argument("--s8-epochs", type=int, default=20)
    p.add_argument("--s9-epochs", type=int, default=20)
    p.add_argument("--device", default="auto")
    p.add_argument("--no-training", action="store_true", help="only the figures that need no trained model")
    args = p.parse_args(argv)
    try:
        dataset_figures(args.data_root)
    except data.CifarDataError as e:
        sys.exit(f"error: {e}")
    rf_figures()
    if not args.no_training:
        training_figures(args.data_root, args.s8_epochs, args.s9_epochs, args.device)
    print(f"figures written to {DOC}")


if __name__ == "__main__":
    main()
