import json
import re
import os
import subprocess
import sys
import tempfile
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import pytest
import torch

from helpers import data, recipes, run, train
from helpers import plots as plots_module

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "NO_ALBUMENTATIONS_UPDATE": "1"}  # the repo first, then what the machine adds (the GPU packages)
    return subprocess.run([sys.executable, "-m", "helpers.run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_smoke_run_writes_every_output(tmp_path):
    out = tmp_path / "out"
    result = _cli("s8", "--norm", "gn", "--smoke", "--epochs", "2", "--out", str(out), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("history.json", "checkpoint.pt", "curves.png", "lr.png", "misclassified.png", "confusion.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    history = json.loads((out / "history.json").read_text())
    assert [list(h) for h in history] == [["epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr",
                                           "seconds"]] * 2
    record = json.loads((out / "run.json").read_text())
    assert record["history"] == history and record["config"]["session"] == "s8" and record["torch"]
    assert [h["epoch"] for h in history] == [1, 2] and all(0 <= h["test_acc"] <= 100 for h in history)
    best = train.best_epoch(history)
    assert result.stdout.strip().splitlines()[-1].startswith(
        f"final test accuracy {history[-1]['test_acc']:.2f}% (best {best['test_acc']:.2f}% at epoch {best['epoch']}, "
        f"selected on the test set)")
    assert train.load_checkpoint(out / "checkpoint.pt")["history"] == history


def test_run_json_appears_whole(tmp_path, monkeypatch):
    """The GPU plan reads every *.json under runs/gpu while other runs still train, so run.json is written
    under a name that is not *.json and then renamed: a reader never meets half a file."""
    renames, real_replace = [], os.replace

    def replace(src, dst):
        renames.append((Path(src), Path(dst), json.loads(Path(src).read_text())))
        assert not Path(dst).exists()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    result = SimpleNamespace(config={"session": "s8"}, history=[{"test_acc": 50.0}], device=torch.device("cpu"),
                             amp=False, cuda_graph=False, seconds=1.0, resumed_after_epoch=0)
    run.save_run(result, tmp_path / "run.json")
    [(src, dst, record)] = renames
    assert dst == tmp_path / "run.json" and src.suffix != ".json" and record["final_test_acc"] == 50.0
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_validation_runs_score_the_last_tenth_of_the_training_images_and_say_so(tmp_path):
    out = tmp_path / "out"
    result = _cli("s8", "--smoke", "--epochs", "1", "--validation", "--out", str(out), "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    record = json.loads((out / "run.json").read_text())
    # the smoke data's 512 training images: 461 to train on, the last 51 scored; the test images play no part
    assert "461 train / 51 validation (last 10 % of train)" in record["config"]["data"]
    assert result.stdout.strip().splitlines()[-1].startswith(
        f"final validation accuracy {record['history'][-1]['test_acc']:.2f}% (best ")
    assert "selected on the validation set" in result.stdout
    epoch_line = next(line for line in result.stdout.splitlines() if line.startswith("epoch  1"))
    assert "validation loss" in epoch_line and "test" not in epoch_line  # every line names the split it scores


@pytest.mark.parametrize("args, message", [
    (["s10"], "invalid choice: 's10'"),
    (["s8", "--norm", "xn"], "invalid choice: 'xn'"),
    (["s8", "--device", "tpu"], "invalid choice: 'tpu'"),
    (["s8", "--epochs", "0"], "must be greater than 0"),
    (["s8", "--batch-size", "-4"], "must be greater than 0"),
    (["s8", "--lr", "-0.1"], "must be greater than 0"),
    (["s9", "--norm", "gn"], "--norm applies to s8 only"),
    (["s8", "--workers", "-1"], "must be 0 (load in the main process) or more"),
    (["s8", "--seed", "-1"], "must be from 0 to 2**32 - 1, got -1"),
    (["s8", "--seed", str(2**32)], "must be from 0 to 2**32 - 1"),
    (["s8", "--seed", "one"], "'one' is not a whole number"),
    (["s8", "--set", "lr"], "--set takes field=value"),
    (["s8", "--set", "colour=red"], "unknown recipe field(s) colour"),
    (["s8", "--set", "augment=crop_flip"], "unknown augment 'crop_flip'"),
    (["s8", "--set", "tta=off"], "tta must be true or false, got 'off'"),
    (["s8", "--set", "lr=abc"], "the learning rate must be a positive number, got 'abc'"),
    (["s8", "--cuda-graph", "--device", "cpu"], "CUDA graphs (--cuda-graph) need a CUDA device; this run trains on cpu"),
])
def test_bad_arguments_exit_with_one_line(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run.main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert re.match(r"python -m helpers\.run( s[89])?: error:", err.strip().splitlines()[-1])


def test_missing_data_offline_exits_with_the_data_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(url, download_root, *args, **kwargs):
        Path(download_root).mkdir(parents=True, exist_ok=True)  # as torchvision does before it downloads
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert str(exit_.value.code).startswith("error: CIFAR-10 not found under")
    assert not (tmp_path / "empty").exists()  # a mistyped --data-root leaves no empty folder behind
    assert "cifar-10-python.tar.gz" in str(exit_.value.code)
    assert not (tmp_path / "o" / "history.json").exists()  # nothing was trained on fake data


def test_a_failed_download_leaves_an_existing_data_folder_as_it_was(tmp_path, monkeypatch):
    """Only a folder made for the download is removed when it fails: one that held the student's files stays."""
    import torchvision.datasets.utils as tv_utils

    def offline(url, download_root, *args, **kwargs):
        # a partial file, as a cut download may leave one
        (Path(download_root) / "cifar-10-python.tar.gz.part").write_bytes(b"half")
        raise urllib.error.URLError("no network")

    root = tmp_path / "my data"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "mine.txt").write_text("keep me")
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(data.CifarDataError, match="CIFAR-10 not found under"):
        data.ensure_cifar10(root)
    assert (root / "notes" / "mine.txt").read_text() == "keep me"


def test_a_resumed_runs_time_counts_the_epochs_it_took_from_the_checkpoint(tmp_path):
    """run.json's seconds_to_train is the whole run's: a run stopped after epoch 1 and resumed must not report
    the resumed process's time alone. Epoch 1's recorded time is made huge so only that can explain the total."""
    out = tmp_path / "r"
    base = ["s8", "--smoke", "--out", str(out), "--no-progress", "--loader", "device", "--device", "cpu"]
    run.main(base + ["--epochs", "1"])
    assert json.loads((out / "run.json").read_text())["resumed_after_epoch"] == 0
    state = train.load_checkpoint(out / "checkpoint.pt")
    state["history"][0]["seconds"] = 1000.0
    torch.save(state, out / "checkpoint.pt")
    run.main(base + ["--epochs", "2", "--resume"])
    record = json.loads((out / "run.json").read_text())
    assert record["resumed_after_epoch"] == 1 and record["history"][0]["seconds"] == 1000.0
    assert 1000.0 + record["history"][1]["seconds"] <= record["seconds_to_train"] < 1000.0 + 600


def test_unavailable_device_is_a_usage_error(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # if the check ever broke, the run would train into ./runs here, not in the repo
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
    assert [p.name for p in run.redraw_figures(out, None, "cpu")] == ["curves.png", "lr.png", "misclassified.png",
                                                                       "confusion.png"]
    assert plt.get_fignums() == open_figures  # saved and closed: many runs in one process (make_figures) stay light
    lr = recipes.get_recipe("s8", "seed").lr
    with pytest.raises(SystemExit, match=rf"other settings \(recipe.lr: {lr} -> {lr * 5}\)"):
        run.main(base + ["--epochs", "3", "--resume", "--lr", str(lr * 5)])  # not the run that is saved there


def test_resume_with_overwrite_or_with_fewer_epochs_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "r"
    base = ["s8", "--smoke", "--out", str(out), "--no-progress", "--device", "cpu"]
    run.main(base + ["--epochs", "2"])
    saved = (out / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:  # one says go on, the other says start again: neither is guessed
        run.main(base + ["--epochs", "3", "--resume", "--overwrite"])
    assert exit_.value.code == 2 and "give one of them" in capsys.readouterr().err.splitlines()[-1]
    with pytest.raises(SystemExit, match=r"trained for 2 epochs, more than the 1 asked for.*--overwrite trains it "
                                         r"again for the new --epochs$"):
        run.main(base + ["--epochs", "1", "--resume"])
    assert (out / "checkpoint.pt").read_bytes() == saved  # neither touched the saved run
    assert len(json.loads((out / "history.json").read_text())) == 2


def test_a_checkpoint_saved_before_a_recipe_field_existed_resumes_while_the_field_is_at_its_default(tmp_path):
    out = tmp_path / "r"
    base = ["s8", "--smoke", "--out", str(out), "--no-progress", "--device", "cpu"]
    run.main(base + ["--epochs", "1"])
    state = train.load_checkpoint(out / "checkpoint.pt")
    del state["config"]["recipe"]["tta_shift"]  # as the code saved it before shift TTA existed
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(SystemExit, match=r"recipe.tta_shift: 0 -> 1"):
        run.main(base + ["--epochs", "2", "--resume", "--set", "tta_shift=1"])
    run.main(base + ["--epochs", "2", "--resume"])
    assert len(json.loads((out / "history.json").read_text())) == 2


def test_a_resumed_run_keeps_its_autocast_unless_told_otherwise(tmp_path, capsys, watch_autocast):
    """A run started with bf16 autocast and resumed on a machine whose default differs (Colab hands out a T4 one
    day, an A100 the next) goes on with the autocast it was trained with, and says so; asking for the other one
    is refused in one line that says how to go on; a checkpoint from before the config recorded autocast
    resumes, and its figures are redrawn with the autocast run.json recorded."""
    out = tmp_path / "r"
    base = ["s8", "--smoke", "--out", str(out), "--no-progress", "--device", "cpu"]
    run.main(base + ["--epochs", "1", "--amp"])  # the CPU's default is off
    assert train.load_checkpoint(out / "checkpoint.pt")["config"]["amp"] is True
    with pytest.raises(SystemExit) as exit_:
        run.main(base + ["--epochs", "2", "--resume", "--no-amp"])
    message = str(exit_.value.code)
    assert "amp: True -> False" in message and "leave out --amp / --no-amp" in message and "\n" not in message
    capsys.readouterr()
    run.main(base + ["--epochs", "2", "--resume"])
    assert "trained with bf16 autocast and goes on so" in capsys.readouterr().out
    record = json.loads((out / "run.json").read_text())
    assert record["amp"] is True and record["config"]["amp"] is True and len(record["history"]) == 2
    state = train.load_checkpoint(out / "checkpoint.pt")
    del state["config"]["amp"]  # as the code saved it before the config held autocast
    torch.save(state, out / "checkpoint.pt")
    entered = watch_autocast()
    run.redraw_figures(out, None, "cpu")
    assert entered and all(enabled for _, enabled in entered)  # run.json's amp, not the CPU's default
    run.main(base + ["--epochs", "3", "--resume", "--no-amp"])
    assert json.loads((out / "run.json").read_text())["config"]["amp"] is False


def test_resuming_a_one_cycle_run_with_other_epochs_is_refused_in_one_line(tmp_path):
    base = ["s8", "--smoke", "--recipe", "tuned", "--out", str(tmp_path / "r"), "--no-progress", "--device", "cpu"]
    run.main(base + ["--epochs", "1"])
    with pytest.raises(SystemExit) as exit_:
        run.main(base + ["--epochs", "2", "--resume"])
    message = str(exit_.value.code)
    assert "onecycle_epochs: 1 -> 2" in message and "\n" not in message
    assert "cannot change its number of epochs: --overwrite trains it again" in message
    run.main(base + ["--epochs", "2", "--overwrite"])  # what the message offers works
    assert len(json.loads((tmp_path / "r" / "history.json").read_text())) == 2
    with pytest.raises(SystemExit, match=r"onecycle_epochs: 2 -> 1.*cannot change its number of epochs"):
        run.main(base + ["--epochs", "1", "--resume"])  # shorter: refused the same way


def test_session_help_differs_shows_defaults_and_examples(capsys):
    texts = {}
    for args in (["--help"], ["s8", "--help"], ["s9", "--help"]):
        with pytest.raises(SystemExit):
            run.main(args)
        texts[args[0]] = capsys.readouterr().out
    assert len(set(texts.values())) == 3
    assert "--norm {bn,ln,gn}" in texts["s8"] and "--norm {bn,ln,gn}" not in texts["s9"]
    assert "(default: 1)" in texts["s8"] and "(default: seed)" in texts["s8"] and "(default: auto)" in texts["s8"]
    assert "examples:" in texts["--help"] and "figures" in texts["--help"]


def test_figures_command_redraws_a_finished_run(tmp_path):
    out = tmp_path / "r"
    run.main(["s8", "--smoke", "--out", str(out), "--no-progress", "--device", "cpu"])
    for name in ("curves.png", "confusion.png"):
        (out / name).unlink()
    result = _cli("figures", str(out), "--device", "cpu", "--data-root", str(tmp_path / "cifar"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (out / "curves.png").is_file() and (out / "confusion.png").is_file()
    assert "is a --smoke run: its synthetic images are made again, --data-root is not used" in result.stderr
    missing = _cli("figures", str(tmp_path / "nothing"), cwd=tmp_path)
    assert missing.returncode == 1 and missing.stderr.strip().startswith("error:") and "Traceback" not in missing.stderr
    assert "no run to draw in" in missing.stderr and "holds no checkpoint.pt" in missing.stderr
    # a run trained on other images than those found now: refused, not drawn from the wrong images
    state = train.load_checkpoint(out / "checkpoint.pt")
    state["config"]["data"] = "synthetic: 999 train / 99 test images"
    torch.save(state, out / "checkpoint.pt")
    other = _cli("figures", str(out), "--device", "cpu", cwd=tmp_path)
    assert other.returncode == 1 and "Traceback" not in other.stderr
    assert other.stderr.strip().startswith("error:") and "was trained on synthetic: 999 train" in other.stderr


def test_a_new_run_never_silently_replaces_a_saved_one(tmp_path, monkeypatch):
    """`s8` after an hour-long `s8 --seed 2` (same default folder) used to wipe that run out."""
    started = []

    def train_then_stop(*args, **kwargs):  # stands in for the training: notes it began, then Ctrl-C
        started.append(kwargs["seed"])
        raise KeyboardInterrupt
    monkeypatch.setattr(run, "train_course_net", train_then_stop)
    out = tmp_path / "r"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"an hour of training")
    (out / "run.json").write_text("{}")
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--seed", "2", "--out", str(out), "--no-progress"])
    message = str(exit_.value.code)
    assert message.startswith(f"error: {out} holds a run already") and "--overwrite" in message
    assert started == [] and (out / "checkpoint.pt").read_bytes() == b"an hour of training"
    assert (out / "run.json").is_file()
    with pytest.raises(SystemExit) as exit_:  # asked for: it trains (the old run goes once the data is in)
        run.main(["s8", "--seed", "2", "--out", str(out), "--no-progress", "--overwrite"])
    assert exit_.value.code == 130 and started == [2]


def test_a_smoke_run_never_replaces_a_real_one(tmp_path):
    """`--smoke --out runs/s8-bn` (a real run's folder) used to delete that run's record and overwrite its
    checkpoint: smoke runs may replace smoke runs, nothing else, unless --overwrite says so."""
    out = tmp_path / "r"
    _checkpoint(out / "checkpoint.pt", "CIFAR-10: 50000 train / 10000 test images")
    (out / "run.json").write_text("{}")
    before = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--smoke", "--out", str(out), "--no-progress", "--device", "cpu"])
    assert str(exit_.value.code).startswith(f"error: {out} holds a run already")
    assert (out / "checkpoint.pt").read_bytes() == before and (out / "run.json").is_file()


def test_a_replaced_run_is_gone_once_the_new_one_has_its_data(tmp_path, monkeypatch, capsys):
    """--overwrite removed only run.json: stopped in its first epoch, the new run left the old checkpoint,
    history and figures behind, and `--resume`, as the Ctrl-C message advises, went on with the old run."""
    out = tmp_path / "r"
    _checkpoint(out / "checkpoint.pt", "synthetic: 512 train / 256 test images")
    for name in ("history.json", "run.json"):
        (out / name).write_text("the old run")

    def stopped_in_epoch_1(*args, **kwargs):
        assert not any((out / name).exists() for name in run.RUN_FILES)  # gone before the first epoch
        raise KeyboardInterrupt
    monkeypatch.setattr(train, "fit", stopped_in_epoch_1)
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--smoke", "--out", str(out), "--no-progress", "--device", "cpu", "--overwrite"])
    assert exit_.value.code == 130 and "nothing was saved" in capsys.readouterr().err
    assert not any((out / name).exists() for name in run.RUN_FILES)


def test_a_run_to_replace_stays_whole_when_the_new_runs_data_does_not_load(tmp_path, monkeypatch):
    """--overwrite used to delete the old run's record before the data was there: a mistyped --data-root
    then left a run without its run.json, and nothing trained in its place."""
    import torchvision.datasets.utils as tv_utils

    def offline(url, download_root, *args, **kwargs):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    out = tmp_path / "r"
    _checkpoint(out / "checkpoint.pt", "CIFAR-10: 50000 train / 10000 test images")
    (out / "run.json").write_text("the old run")
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--data-root", str(tmp_path / "nowhere"), "--out", str(out), "--overwrite", "--no-progress"])
    assert str(exit_.value.code).startswith("error: CIFAR-10 not found under")
    assert (out / "checkpoint.pt").is_file() and (out / "run.json").read_text() == "the old run"


def test_a_file_that_is_not_a_runs_checkpoint_is_one_line_on_resume(tmp_path):
    """torch.save(model.state_dict(), ...) loads safely but is no run: --resume used to end in a KeyError."""
    out = tmp_path / "r"
    out.mkdir()
    torch.save(run.models.S8("bn").state_dict(), out / "checkpoint.pt")
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--smoke", "--resume", "--out", str(out), "--no-progress", "--device", "cpu"])
    message = str(exit_.value.code)
    assert message.startswith("error: ") and "is not a checkpoint written by helpers.train.fit" in message
    assert "no history, model, optimizer, rng_cpu" in message and "\n" not in message
    torch.save(torch.zeros(3), out / "checkpoint.pt")
    with pytest.raises(train.CheckpointError, match="it holds a Tensor"):
        train.load_checkpoint(out / "checkpoint.pt")


def test_a_damaged_checkpoint_on_resume_is_one_line(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes(b"PK\x03\x04 cut off by a full disk")
    with pytest.raises(SystemExit) as exit_:
        run.main(["s8", "--smoke", "--resume", "--out", str(out), "--no-progress", "--device", "cpu"])
    message = str(exit_.value.code)
    assert message.startswith("error: ") and "is not a safe or valid checkpoint" in message
    assert str(out / "checkpoint.pt") in message and "\n" not in message


def _checkpoint(path: Path, data_described: str) -> None:
    """A checkpoint as helpers.train.fit writes one, of a run on ``data_described`` (its config's "data")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": {}, "optimizer": {}, "history": [], "rng_cpu": torch.get_rng_state(),
                "config": {"data": data_described}}, path)


def test_ctrl_c_says_whether_an_epoch_was_saved(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    def interrupted_after_an_epoch(*args, **kwargs):
        _checkpoint(out / "checkpoint.pt", "synthetic: 512 train / 256 test images")  # epoch 1 saved
        raise KeyboardInterrupt

    out = tmp_path / "out"
    for stand_in, message in ((interrupted, "nothing was saved"),
                              (interrupted_after_an_epoch, "to continue, rerun the same command with --resume"),
                              # the earlier run's checkpoint is not this run's: --resume would go on with that one
                              (interrupted, f"nothing was saved ({out} still holds the run it was to replace)")):
        monkeypatch.setattr(run, "train_course_net", stand_in)
        with pytest.raises(SystemExit) as exit_:
            run.main(["s8", "--smoke", "--out", str(out), "--no-progress", "--overwrite"])
        assert exit_.value.code == 130 and message in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # resuming, the checkpoint there is the run's own
        run.main(["s8", "--smoke", "--out", str(out), "--no-progress", "--resume"])
    assert exit_.value.code == 130 and "to continue" in capsys.readouterr().err


def test_a_smoke_run_without_a_folder_leaves_no_files_behind(tmp_path, monkeypatch):
    """The notebooks and tests call train_course_net(smoke=True) with no out: its synthetic images go to a
    temporary folder that is gone once they are loaded, not one more folder in /tmp per call."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    prepared = run.prepare_run("s8", "bn", "seed", epochs=1, smoke=True, device="cpu", verbose=False)
    assert len(prepared.train_split) == 512 and len(prepared.test_split) == 256
    assert not list(tmp_path.rglob("data_batch_1"))  # (torch may keep a cache folder there: not ours)


def test_figures_are_scored_with_the_runs_autocast(tmp_path, watch_autocast):
    """Issue 14: bf16 autocast serves training, evaluation and the figures alike. Forced on here (the CPU
    has bf16 autocast too); the figures' predictions must enter it, as the history's evaluation did."""
    result = run.train_course_net("s8", "bn", "seed", epochs=1, smoke=True, device="cpu", amp=True,
                                  progress=False, verbose=False)
    assert result.amp
    entered = watch_autocast()
    paths = run.write_figures(result, tmp_path, "s8")
    assert entered and all(enabled for _, enabled in entered) and all(p.stat().st_size > 0 for p in paths)


def test_a_validation_runs_figures_name_the_validation_split(monkeypatch, tmp_path):
    """write_figures titled a --validation run's figures "misclassified test images": they score the
    validation split (the last tenth of the training images), and must say so."""
    titles = []
    for name in ("plot_history", "show_misclassified", "plot_confusion"):
        draw = getattr(plots_module, name)
        monkeypatch.setattr(plots_module, name, lambda *a, _draw=draw, **k: (titles.append(k.get("title")),
                                                                               _draw(*a, **k))[1])
    for validation in (True, False):
        result = run.train_course_net("s8", "bn", "seed", epochs=1, smoke=True, device="cpu", validation=validation,
                                      progress=False, verbose=False)
        titles.clear()
        run.write_figures(result, tmp_path, "s8-bn")
        if validation:
            assert len(titles) == 3 and all("validation" in t for t in titles), titles
        else:  # a test-set run keeps the plots' own titles ("misclassified test images", ...)
            assert titles == ["s8-bn", None, None]
