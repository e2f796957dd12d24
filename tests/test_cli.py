import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from helpers import run, train

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_ALBUMENTATIONS_UPDATE": "1"}
    return subprocess.run([sys.executable, "-m", "helpers.run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_smoke_run_writes_every_output(tmp_path):
    out = tmp_path / "out"
    result = _cli("s8", "--norm", "gn", "--smoke", "--epochs", "2", "--out", str(out), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("history.json", "checkpoint.pt", "curves.png", "lr.png", "misclassified.png", "confusion.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    history = json.loads((out / "history.json").read_text())
    assert [list(h) for h in history] == [["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr"]] * 2
    assert [h["epoch"] for h in history] == [1, 2] and all(0 <= h["test_acc"] <= 100 for h in history)
    best = train.best_epoch(history)
    assert result.stdout.strip().splitlines()[-1].startswith(
        f"best test accuracy {best['test_acc']:.2f}% at epoch {best['epoch']}")
    assert train.load_checkpoint(out / "checkpoint.pt")["history"] == history


@pytest.mark.parametrize("args, message", [
    (["s10"], "invalid choice: 's10'"),
    (["s8", "--norm", "xn"], "invalid choice: 'xn'"),
    (["s8", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["s8", "--epochs", "0"], "must be greater than 0"),
    (["s8", "--batch-size", "-4"], "must be greater than 0"),
    (["s8", "--lr", "-0.1"], "must be greater than 0"),
    (["s9", "--norm", "gn"], "--norm applies to s8 only"),
])
def test_bad_arguments_exit_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("python -m helpers.run: error:")


def test_missing_data_offline_exits_with_the_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert str(exit_.value.code).startswith("error: CIFAR-10 not found under")
    assert "cifar-10-python.tar.gz" in str(exit_.value.code)
    assert not (tmp_path / "o" / "history.json").exists()  # nothing was trained on fake data


def test_unavailable_device_is_a_usage_error(capsys, monkeypatch):
    monkeypatch.setattr(train.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--device", "cuda", "--smoke"])
    assert exit_.value.code == 2 and "no CUDA GPU is available" in capsys.readouterr().err


def test_resume_continues_a_run_and_device_loader_path(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["s8", "--smoke", "--out", str(out), "--no-progress", "--loader", "device", "--device", "cpu"]
    open_figures = plt.get_fignums()
    run.main(base + ["--epochs", "1"])
    first = json.loads((out / "history.json").read_text())
    run.main(base + ["--epochs", "2", "--resume"])
    second = json.loads((out / "history.json").read_text())
    assert "resumed from" in capsys.readouterr().out
    assert len(first) == 1 and len(second) == 2 and second[0] == first[0]
    assert plt.get_fignums() == open_figures  # saved and closed: many runs in one process (make_figures) stay light
    with pytest.raises(SystemExit, match=r"other settings \(recipe.lr: 0.1 -> 0.05\)"):
        run.main(base + ["--epochs", "3", "--resume", "--lr", "0.05"])  # not the run that is saved there
