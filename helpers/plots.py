"""Figures of the course. Every function returns the matplotlib figure and saves it to
``save`` (a path) when given. Images are HWC uint8 arrays, as CIFAR-10 stores them.
Needs numpy and matplotlib only.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

_METRICS = (("train_loss", "train loss"), ("test_loss", "test loss"),
            ("train_acc", "train accuracy (%)"), ("test_acc", "test accuracy (%)"))


def _finish(fig, save: str | None):
    fig.tight_layout()
    if save:
        fig.savefig(save, dpi=120, bbox_inches="tight")
    return fig


def show_images(images: np.ndarray, labels: Sequence[int] | None = None,
                classes: Sequence[str] | None = None, cols: int = 8, title: str | None = None,
                titles: Sequence[str] | None = None, save: str | None = None):
    """A grid of images, titled with their class names when ``labels`` are given (or with ``titles``)."""
    if titles is None and labels is not None:
        titles = [classes[i] if classes else str(i) for i in labels]
    n = len(images)
    rows = max(1, -(-n // cols))
    size = 2.0 if titles and max(map(len, titles)) > 12 else 1.4
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, (size + 0.1) * rows + (0.3 if title else 0)),
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


def show_image_rows(rows: Mapping[str, Sequence[np.ndarray]], save: str | None = None):
    """One row of images per entry, named on the left: e.g. an image and its augmented copies."""
    cols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.4 * cols + 1.2, 1.45 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(images):
                ax.imshow(images[c], interpolation="nearest")
        axes[r, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    return _finish(fig, save)


def _as_runs(history) -> dict[str, list[dict]]:
    return dict(history) if isinstance(history, Mapping) else {"": history}


def plot_history(history: list[dict] | Mapping[str, list[dict]], title: str | None = None,
                 save: str | None = None):
    """Loss and accuracy per epoch, train and test; pass {name: history} to overlay several runs."""
    runs = _as_runs(history)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7))
    for ax, (key, label) in zip(axes.flat, _METRICS):
        for name, h in runs.items():
            ax.plot([e["epoch"] for e in h], [e[key] for e in h], marker=".", label=name or None)
        ax.set_title(label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend()
    if title:
        fig.suptitle(title)
    return _finish(fig, save)


def plot_lr(history: list[dict] | Mapping[str, list[dict]], save: str | None = None):
    """Learning rate each epoch started with (log scale)."""
    runs = _as_runs(history)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, h in runs.items():
        ax.step([e["epoch"] for e in h], [e["lr"] for e in h], where="post", marker=".", label=name or None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3, which="both")
    if len(runs) > 1:
        ax.legend()
    return _finish(fig, save)


def show_misclassified(images: np.ndarray, true: Sequence[int], pred: Sequence[int],
                       classes: Sequence[str], cols: int = 5, title: str | None = None,
                       save: str | None = None):
    """Images titled "true -> predicted"."""
    titles = [f"{classes[t]} -> {classes[p]}" for t, p in zip(true, pred)]
    return show_images(images, cols=cols, title=title, titles=titles, save=save)


def confusion_matrix(true: Sequence[int], pred: Sequence[int], n_classes: int = 10) -> np.ndarray:
    """Counts[i, j] of images of class i predicted as j."""
    true, pred = np.asarray(true), np.asarray(pred)
    return np.bincount(true * n_classes + pred, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def plot_confusion(true: Sequence[int], pred: Sequence[int], classes: Sequence[str],
                   save: str | None = None):
    """Confusion matrix; each row label carries that class's accuracy."""
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
    ax.set_title(f"accuracy {100.0 * np.trace(cm) / max(cm.sum(), 1):.2f}%")
    return _finish(fig, save)
