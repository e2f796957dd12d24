import warnings

import matplotlib
import numpy as np
import pytest

from helpers import plots

matplotlib.use("Agg")

# test accuracy above train accuracy and test loss below train loss: every curve differs
HISTORY = [{"epoch": e, "train_loss": 2 / e, "train_acc": 30 + e, "test_loss": 1.8 / e, "test_acc": 35 + e,
            "lr": 0.1 * 0.1 ** (e // 3)} for e in range(1, 6)]


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)


def test_image_grids(tmp_path, images):
    fig = plots.show_images(images, cols=6, save=str(tmp_path / "a.png"))
    assert len(fig.axes) == 12 and all(ax.get_title() == "" for ax in fig.axes)
    fig = plots.show_images(images, labels=[3] * 12, classes=[str(i) for i in range(9)] + ["truck"], cols=6)
    assert fig.axes[0].get_title() == "3"
    assert (tmp_path / "a.png").stat().st_size > 1000
    fig = plots.show_image_rows({"orig": [images[0]], "aug": list(images[:4])})
    assert len(fig.axes) == 8 and fig.axes[4].get_ylabel() == "aug"
    assert fig.get_suptitle() == ""
    fig = plots.show_image_rows({"orig": [images[0]]}, title="S8 augmentations")
    assert fig.get_suptitle() == "S8 augmentations"


@pytest.mark.parametrize("titles", [["deer -> horse", "ship -> automobile"] * 5, ["cat", "dog"] * 5])
def test_image_titles_do_not_overlap_the_row_above(images, titles):
    """Each image's title sits between its own image and the image above it, for short and long titles."""
    fig = plots.show_images(images[:10], cols=5, titles=titles, title="misclassified (true -> predicted)")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for upper, lower in zip(fig.axes[:5], fig.axes[5:10]):
        upper_image = upper.get_window_extent(renderer)
        lower_title = lower.title.get_window_extent(renderer)
        assert lower_title.y1 <= upper_image.y0, "a second-row title is drawn over the first row's image"


def _lines(ax):
    return {line.get_label(): line for line in ax.lines}


def test_history_puts_train_and_test_of_a_metric_in_one_panel(tmp_path):
    fig = plots.plot_history(HISTORY, save=str(tmp_path / "h.png"))
    assert (tmp_path / "h.png").stat().st_size > 1000
    loss, acc = fig.axes
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy (%)"]
    for ax, key in ((loss, "loss"), (acc, "acc")):
        lines = _lines(ax)
        assert sorted(lines) == ["test", "train"]
        assert list(lines["train"].get_ydata()) == [e[f"train_{key}"] for e in HISTORY]
        assert list(lines["test"].get_ydata()) == [e[f"test_{key}"] for e in HISTORY]
        assert lines["train"].get_linestyle() == "--" and lines["test"].get_linestyle() == "-"
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["test", "train"]
    assert fig.get_suptitle() == ""
    fig = plots.plot_history(HISTORY, title="S9 (seed recipe)")
    assert fig.get_suptitle() == "S9 (seed recipe)"
    assert plots.plot_history(HISTORY, run="S9 (tuned recipe)").get_suptitle() == "S9 (tuned recipe)"


def test_history_comparison_colour_per_run_style_per_split():
    fig = plots.plot_history({"BN": HISTORY, "LN": HISTORY[:4], "GN": HISTORY[:3]})
    assert len(fig.axes) == 2
    for ax in fig.axes:
        lines = _lines(ax)
        assert sorted(lines) == sorted(f"{n} {s}" for n in ("BN", "LN", "GN") for s in ("train", "test"))
        for name in ("BN", "LN", "GN"):  # one colour per run, shared by its train and test curves
            assert lines[f"{name} train"].get_color() == lines[f"{name} test"].get_color()
            assert lines[f"{name} train"].get_linestyle() == "--" and lines[f"{name} test"].get_linestyle() == "-"
        assert len({lines[f"{n} test"].get_color() for n in ("BN", "LN", "GN")}) == 3
        assert len(lines["GN test"].get_xdata()) == 3
        key = [t.get_text() for t in ax.get_legend().get_texts()]
        assert key == ["BN", "LN", "GN", "train", "test"]  # colours name runs, line styles name splits


def test_epoch_ticks_are_whole_numbers():
    long_run = [{**HISTORY[0], "epoch": e} for e in range(1, 21)]  # 20 epochs: default ticks would be 2.5, 7.5, ...
    for fig in (plots.plot_history(long_run), plots.plot_lr(long_run)):
        fig.canvas.draw()
        for ax in fig.axes:
            assert all(float(t).is_integer() for t in ax.get_xticks()), "epochs are whole numbers"


def test_lr_plot_is_titled_with_the_run(tmp_path):
    fig = plots.plot_lr(HISTORY, save=str(tmp_path / "lr.png"))
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and (tmp_path / "lr.png").exists()
    assert ax.get_title() == "learning rate per epoch"
    assert list(ax.lines[0].get_ydata()) == [e["lr"] for e in HISTORY]
    assert plots.plot_lr(HISTORY, run="S9 (seed recipe)").axes[0].get_title() == \
        "S9 (seed recipe): learning rate per epoch"
    assert plots.plot_lr(HISTORY, title="my lr").axes[0].get_title() == "my lr"


def test_lr_plot_of_one_constant_lr_warns_nothing():
    """A one-epoch run (the notebooks' smoke mode) has one lr: the log axis needs a range of its own."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib: "Attempting to set identical low and high ylims"
        ax = plots.plot_lr([{**HISTORY[0], "lr": 0.009999999999999995}]).axes[0]
    low, high = ax.get_ylim()
    assert ax.get_yscale() == "log" and low < 0.009999999999999995 < high


def test_misclassified_titles(images):
    classes = [f"c{i}" for i in range(10)]
    fig = plots.show_misclassified(images[:3], [0, 1, 2], [5, 6, 7], classes)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["c0 -> c5", "c1 -> c6", "c2 -> c7"]
    assert fig.get_suptitle() == "misclassified test images (labels: true -> predicted)"
    fig = plots.show_misclassified(images[:3], [0, 1, 2], [5, 6, 7], classes, run="S8-BN (seed recipe)")
    assert fig.get_suptitle() == "S8-BN (seed recipe): misclassified test images (labels: true -> predicted)"
    fig = plots.show_misclassified(images[:3], [0, 1, 2], [5, 6, 7], classes, title="BN: first 3")
    assert fig.get_suptitle() == "BN: first 3 (labels: true -> predicted)"
    fig = plots.show_misclassified(images[:3], [0, 1, 2], [5, 6, 7], classes, title="first 3 (true -> predicted)")
    assert fig.get_suptitle() == "first 3 (true -> predicted)", "said once, not twice"


def test_confusion_matrix_counts_and_per_class_accuracy(tmp_path):
    true, pred = [0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2]
    cm = plots.confusion_matrix(true, pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    fig = plots.plot_confusion(true, pred, ["a", "b", "c"], save=str(tmp_path / "cm.png"))
    assert (tmp_path / "cm.png").stat().st_size > 1000
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["a (50%)", "b (67%)", "c (100%)"]
    assert fig.axes[0].get_title() == "confusion matrix, accuracy 66.67%"
    fig = plots.plot_confusion(true, pred, ["a", "b", "c"], run="S9 (seed recipe)")
    assert fig.axes[0].get_title() == "S9 (seed recipe): confusion matrix, accuracy 66.67%"
    fig = plots.plot_confusion(true, pred, ["a", "b", "c"], title="S9 on the sample")
    assert fig.axes[0].get_title() == "S9 on the sample, accuracy 66.67%"
