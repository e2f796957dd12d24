import matplotlib
import numpy as np
import pytest

from helpers import plots

matplotlib.use("Agg")

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


def test_history_curves_single_and_overlaid(tmp_path):
    fig = plots.plot_history(HISTORY, save=str(tmp_path / "h.png"))
    assert [ax.get_title() for ax in fig.axes] == ["train loss", "test loss", "train accuracy (%)", "test accuracy (%)"]
    assert list(fig.axes[3].lines[0].get_ydata()) == [36, 37, 38, 39, 40]
    fig = plots.plot_history({"BN": HISTORY, "GN": HISTORY[:3]})
    assert len(fig.axes[0].lines) == 2 and fig.axes[0].get_legend() is not None
    fig = plots.plot_lr(HISTORY, save=str(tmp_path / "lr.png"))
    assert fig.axes[0].get_yscale() == "log" and (tmp_path / "lr.png").exists()
    long_run = [{**HISTORY[0], "epoch": e} for e in range(1, 21)]  # 20 epochs: default ticks would be 2.5, 7.5, ...
    for fig in (plots.plot_history(long_run), plots.plot_lr(long_run)):
        fig.canvas.draw()
        assert all(float(t).is_integer() for t in fig.axes[0].get_xticks()), "epochs are whole numbers"


def test_misclassified_titles(images):
    classes = [f"c{i}" for i in range(10)]
    fig = plots.show_misclassified(images[:3], [0, 1, 2], [5, 6, 7], classes)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["c0 -> c5", "c1 -> c6", "c2 -> c7"]


def test_confusion_matrix_counts_and_per_class_accuracy(tmp_path):
    true, pred = [0, 0, 1, 1, 1, 2], [0, 1, 1, 1, 0, 2]
    cm = plots.confusion_matrix(true, pred, 3)
    np.testing.assert_array_equal(cm, [[1, 1, 0], [1, 2, 0], [0, 0, 1]])
    fig = plots.plot_confusion(true, pred, ["a", "b", "c"], save=str(tmp_path / "cm.png"))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["a (50%)", "b (67%)", "c (100%)"]
    assert fig.axes[0].get_title() == "accuracy 66.67%"
