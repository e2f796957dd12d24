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


def _row_name(name: str, transform) -> str:
    """A preview row's name; a pipeline whose steps fire at random also says how often, read off
    the pipeline itself (albumentations' ``Compose.transforms`` and each step's ``p``)."""
    ps = [t.p for t in getattr(transform, "transforms", []) if 0 < t.p < 1]
    if not ps:
        return name
    return f"{name}\n(p = {ps[0]:g} each)" if len(set(ps)) == 1 else f"{name}\n(p = {', '.join(f'{p:g}' for p in ps)})"


def _preview_rows(image, transforms: dict, mean, std) -> dict:
    """The image, then 8 draws of each named pipeline (same seeds in every row)."""
    rows = {"original": [image]}
    rows.update({_row_name(name, tf): data.augment_examples(image, tf, 8, 0, mean, std)
                 for name, tf in transforms.items()})
    return rows


def dataset_figures(root: str | None) -> None:
    split = data.load_cifar10(root, train=True, download=False)
    plots.show_images(split.images[:32], cols=8, save=str(DOC / "dataset_images_no_labels.png"))
    plots.show_images(split.images[32:56], split.labels[32:56], split.classes, cols=8,
                      save=str(DOC / "dataset_images.png"))
    mean, std = data.mean_std(split.images)
    image = split.images[7]
    # S9 in the shift-scale-rotate ranges of the seed document's code, which its seed recipe trains with
    s9_transforms = data.s9_preview_transforms(mean, std, **dict(data.S9_SEED_CODE_RANGES))
    for session, transforms, pipeline in (("S8", data.s8_preview_transforms(mean, std), "the seed document describes"),
                                          ("S9", s9_transforms, "the seed recipe trains with")):
        plots.show_image_rows(_preview_rows(image, transforms, mean, std),
                              title=f"{session} augmentations: each one applied for certain, then the pipeline "
                                    f"{pipeline} (8 random draws per row)",
                              save=str(DOC / f"{session.lower()}_augmentations.png"))
    plt.close("all")
    print(f"dataset figures from {len(split)} training images; mean {tuple(round(m, 4) for m in mean)}, "
          f"std {tuple(round(s, 4) for s in std)}")


def _save_table_cropped(fig, path: Path) -> None:
    """Save a figure whose axes hold a matplotlib table without the empty space around the table:
    the axes shrink to the table (cell heights are fractions of the axes, so they are scaled back
    up) and the title sits right above it."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        if ax.tables:
            table = ax.tables[0]
            table_box, axes_box = table.get_window_extent(renderer), ax.get_window_extent(renderer)
            if table_box.height < axes_box.height:
                table.scale(1, axes_box.height / table_box.height)
                ax.set_position(table_box.transformed(fig.transFigure.inverted()))
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.1)


def rf_figures() -> None:
    for name, model in (("S8", models.S8()), ("S9", models.S9())):
        _save_table_cropped(rf.plot_rf_table(rf.rf_table(model), name), DOC / f"rf_{name.lower()}.png")
    plt.close("all")


def training_figures(root: str | None, s8_epochs: int, s9_epochs: int, device: str) -> None:
    common = ["--device", device, "--resume", "--no-progress"] + (["--data-root", root] if root else [])
    histories = {}
    for norm in models.NORMS:
        out = ROOT / "runs" / "course" / f"s8-{norm}-seed-e{s8_epochs}"  # shared with benchmarks/recipes.py
        run.main(["s8", "--norm", norm, "--epochs", str(s8_epochs), "--out", str(out), *common])
        histories[norm.upper()] = train.load_checkpoint(out / "checkpoint.pt")["history"]
        shutil.copy(out / "misclassified.png", DOC / f"s8_misclassified_{norm}.png")
    title = f"S8: BatchNorm vs LayerNorm vs GroupNorm, seed recipe, {s8_epochs} epochs"
    plt.close(plots.plot_history(histories, title=title, save=str(DOC / "s8_curves.png")))

    out = ROOT / "runs" / "course" / f"s9-seed-e{s9_epochs}"
    run.main(["s9", "--epochs", str(s9_epochs), "--out", str(out), *common])
    history = train.load_checkpoint(out / "checkpoint.pt")["history"]
    name = f"S9, seed recipe, {s9_epochs} epochs"
    plt.close(plots.plot_history(history, title=name, save=str(DOC / "s9_curves.png")))
    plt.close(plots.plot_lr(history, run=name, save=str(DOC / "s9_lr.png")))
    for figure in ("misclassified", "confusion"):  # these need the trained model: drawn by the runner
        shutil.copy(out / f"{figure}.png", DOC / f"s9_{figure}.png")


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
