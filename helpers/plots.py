"""Figures of the course. Every function returns the matplotlib figure and saves it to
``save`` (a path) when given. Images are HWC uint8 arrays, as CIFAR-10 stores them.
Needs numpy and matplotlib only.

Training curves follow one rule everywhere: one colour per run, train dashed, test solid,
train and test of a metric in the same panel. Test accuracy far below train accuracy (test
loss above train loss) means overfitting; both accuracies low and close together, underfitting. Pass ``run`` (a run's name, e.g.
"S9 (seed recipe)") to put it in a figure's title.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

_PANELS = (("loss", "loss"), ("acc", "accuracy (%)"))
_SPLITS = (("train", "--"), ("test", "-"))  # (split, linestyle): train dashed, test solid
_TRUE_PRED = "true -> predicted"


def _finish(fig: Figure, save: str | None) -> Figure:
    fig.tight_layout()
    if save:
        fig.savefig(save, dpi=120, bbox_inches="tight")
    return fig


def _with_run(text: str, run: str | None) -> str:
    return f"{run}: {text}" if run else text


def show_images(images: np.ndarray, labels: Sequence[int] | None = None,
                classes: Sequence[str] | None = None, cols: int = 8, title: str | None = None,
                titles: Sequence[str] | None = None, save: str | None = None) -> Figure:
    """A grid of images, titled with their class names when ``labels`` are given (or with ``titles``)."""
    if titles is None and labels is not None:
        titles = [classes[i] if classes else str(i) for i in labels]
    n = len(images)
    rows = max(1, -(-n // cols))
    size = 2.0 if titles and max(map(len, titles)) > 12 else 1.4
    row_height = size + (0.3 if titles is not None else 0.1)  # room for each image's title above it
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, row_height * rows + (0.3 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i], interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, save)


def show_image_rows(rows: Mapping[str, Sequence[np.ndarray]], title: str | None = None,
                    save: str | None = None) -> Figure:
    """One row of images per entry, named on the left: e.g. an image and its augmented copies."""
    cols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.4 * cols + 1.2, 1.45 * len(rows) + (0.3 if title else 0)),
                             squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(images[c], interpolation="nearest")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    return _finish(fig, save)


def _as_runs(history) -> dict[str, list[dict]]:
    return dict(history) if isinstance(history, Mapping) else {"": history}


def plot_history(history: list[dict] | Mapping[str, list[dict]], title: str | None = None,
                 save: str | None = None, run: str | None = None) -> Figure:
    """Loss and accuracy per epoch: one panel each, train (dashed) and test (solid) curves in the
    same panel, so the gap between them shows over- or underfitting.

    Pass {name: history} to compare several runs: one colour per run, the same line styles.
    ``title`` is the figure's title (``run`` is used when no title is given).
    """
    runs = _as_runs(history)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, (metric, label) in zip(axes, _PANELS):
        for i, (name, h) in enumerate(runs.items()):
            epochs = [e["epoch"] for e in h]
            for split, style in _SPLITS:
                ax.plot(epochs, [e[f"{split}_{metric}"] for e in h], linestyle=style, color=f"C{i % 10}",
                        marker="." if split == "test" else None, label=f"{name} {split}" if name else split)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        if len(runs) > 1:  # a compact key: the colour names the run, the line style the split
            handles = [Line2D([], [], color=f"C{i % 10}", label=name) for i, name in enumerate(runs)]
            handles += [Line2D([], [], color="0.3", linestyle=style, label=split) for split, style in _SPLITS]
            ax.legend(handles=handles, fontsize=8, ncol=2)
        else:
            ax.legend()
    if title or run:
        fig.suptitle(title or run)
    return _finish(fig, save)


def plot_lr(history: list[dict] | Mapping[str, list[dict]], save: str | None = None,
            run: str | None = None, title: str | None = None) -> Figure:
    """Learning rate each epoch started with (log scale); titled "learning rate per epoch" and
    ``run`` when given (``title`` replaces the whole title)."""
    runs = _as_runs(history)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, (name, h) in enumerate(runs.items()):
        ax.step([e["epoch"] for e in h], [e["lr"] for e in h], where="post", marker=".",
                color=f"C{i % 10}", label=name or None)
    lrs = [e["lr"] for h in runs.values() for e in h]
    if lrs and 0 < min(lrs) and max(lrs) <= min(lrs) * 1.001:  # one constant lr (a one-epoch run): give the
        ax.set_ylim(min(lrs) / 2, max(lrs) * 2)                  # axis a range before it turns logarithmic
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title or _with_run("learning rate per epoch", run))
    if len(runs) > 1:
        ax.legend()
    return _finish(fig, save)


def show_misclassified(images: np.ndarray, true: Sequence[int], pred: Sequence[int],
                       classes: Sequence[str], cols: int = 5, title: str | None = None,
                       save: str | None = None, run: str | None = None) -> Figure:
    """Images labelled "true -> predicted"; the figure's title says so and names ``run`` when
    given (a ``title`` without "->" gets the explanation appended)."""
    labels = [f"{classes[t]} -> {classes[p]}" for t, p in zip(true, pred)]
    if title is None:
        title = _with_run("misclassified test images", run)
    if "->" not in title:
        title = f"{title} (labels: {_TRUE_PRED})"
    return show_images(images, cols=cols, title=title, titles=labels, save=save)


def confusion_matrix(true: Sequence[int], pred: Sequence[int], n_classes: int = 10) -> np.ndarray:
    """Counts[i, j] of images of class i predicted as j."""
    true, pred = np.asarray(true), np.asarray(pred)
    return np.bincount(true * n_classes + pred, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def plot_confusion(true: Sequence[int], pred: Sequence[int], classes: Sequence[str],
                   save: str | None = None, run: str | None = None, title: str | None = None) -> Figure:
    """Confusion matrix; each row label carries that class's accuracy. The title names ``run``
    (or starts with ``title``) and gives the overall accuracy."""
    cm = confusion_matrix(true, pred, len(classes))
    per_class = 100.0 * np.diag(cm) / np.maximum(cm.sum(1), 1)
    fig, ax = plt.subplots(figsize=(8, 7))
    ax.imshow(cm, cmap="Blues")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if cm[i, j] > cm.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), [f"{c} ({a:.0f}%)" for c, a in zip(classes, per_class)])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (per-class accuracy)")
    accuracy = f"accuracy {100.0 * np.trace(cm) / max(cm.sum(), 1):.2f}%"
    ax.set_title(f"{title}, {accuracy}" if title else _with_run(f"confusion matrix, {accuracy}", run))
    return _finish(fig, save)
