"""Train a course network end to end: one function for the notebooks and benchmarks, one command line.

    python -m helpers.run s8 --smoke                 # tiny synthetic data, one epoch: seconds on a CPU
    python -m helpers.run s8 --norm gn --epochs 5    # real CIFAR-10 from ./data or $CIFAR10_ROOT
    python -m helpers.run s9 --recipe tuned --loader device    # on a GPU: data and augmentation there too
    python -m helpers.run figures runs/s9-tuned      # draw a finished run's figures again

``train_course_net`` wires recipe -> data -> loaders -> model -> optimiser -> ``helpers.train.fit``;
the command line, the notebooks and the benchmarks all call it. A run writes into its folder:
history.json, run.json (the history with the settings, data, hardware and torch version),
checkpoint.pt, curves.png, lr.png, misclassified.png and confusion.png. Real CIFAR-10 is the
default (download, $CIFAR10_ROOT or --data-root); it never falls back to synthetic data unless
--smoke is given.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Sequence

import matplotlib
import matplotlib.pyplot
import torch
from torch import nn

from helpers import data, device_data, models, plots, recipes, train

LOADERS = ("auto", "albumentations", "device")
# How to go on when --resume meets a checkpoint whose saved setting differs (train.CheckpointMismatchError's changes)
RESUME_HINTS = {
    "onecycle_epochs": "a one-cycle schedule is fitted to the run's length, so the run cannot change its number of "
                       "epochs: --overwrite trains it again with the new --epochs",
    "epochs": "--overwrite trains it again for the new --epochs",  # fewer --epochs than the saved run has trained
    "amp": "leave out --amp / --no-amp to go on with the saved run's autocast, or --overwrite to train it again "
           "with the other",
}
EVAL_BATCH = 1000


def hardware_name(device: torch.device) -> str:
    """"NVIDIA H200", "CPU (x86_64, 2 threads)", ...: the hardware a run used."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    threads = torch.get_num_threads()
    return f"CPU ({platform.machine()}, {threads} thread{'s' if threads > 1 else ''})"


def load_splits(data_root: str | os.PathLike | None,
                validation: bool = False) -> tuple[data.CifarSplit, data.CifarSplit]:
    """(train, test) splits; with ``validation`` the test split is the last 10 % of the training images."""
    train_split = data.load_cifar10(data_root, train=True)
    if validation:
        return data.split_validation(train_split)
    return train_split, data.load_cifar10(data_root, train=False)


def make_loaders(recipe: recipes.Recipe, train_split: data.CifarSplit, test_split: data.CifarSplit,
                 mean: Sequence[float], std: Sequence[float], loader: str = "albumentations",
                 device: torch.device | str = "cpu", seed: int = 1, workers: int | None = None) -> tuple[Iterable, Iterable]:
    """Train and test loaders for ``recipe``: albumentations DataLoaders (the taught path) or, with
    ``loader="device"``, helpers.device_data loaders that keep the data and augmentation on ``device``.
    Training batches all have the recipe's batch size (the last partial batch is dropped)."""
    device = torch.device(device)
    if loader == "device":
        fast = dict(device=device, seed=seed, mean=mean, std=std, channels_last=device.type == "cuda")
        return (device_data.DeviceLoader(train_split.images, train_split.labels, recipe.batch_size, train=True,
                                         **fast, **device_data.PRESETS[recipe.augment]),
                device_data.DeviceLoader(test_split.images, test_split.labels, EVAL_BATCH, train=False, **fast))
    train_ds = data.AugmentedCifar(train_split, data.train_transforms(recipe.augment, mean, std), seed=seed)
    test_ds = data.AugmentedCifar(test_split, data.eval_transforms(mean, std))
    drop_last = len(train_split) >= recipe.batch_size
    return (data.make_loader(train_ds, recipe.batch_size, train=True, seed=seed, num_workers=workers,
                             drop_last=drop_last),
            data.make_loader(test_ds, EVAL_BATCH, train=False, num_workers=workers))


def run_config(session: str, norm: str, recipe: recipes.Recipe, seed: int, loader: str, epochs: int,
               train_split: data.CifarSplit, test_split: data.CifarSplit, smoke: bool, validation: bool, *,
               amp: bool) -> dict:
    """What makes two runs the same run: ``--resume`` refuses a checkpoint saved with other settings.

    OneCycle fits its schedule to the total epochs, so for it the epochs belong to the run;
    a step or plateau schedule can be continued for more epochs. bf16 autocast (``amp``) changes
    every step's arithmetic, so a run goes on with the autocast it started with.
    """
    kind = "synthetic" if smoke else "CIFAR-10"
    test_name = "validation (last 10 % of train)" if validation else "test"
    return {"session": session, "norm": norm if session == "s8" else None, "recipe": recipe.as_dict(),
            "seed": seed, "loader": loader, "amp": amp,
            "onecycle_epochs": epochs if recipe.schedule == "onecycle" else None,
            # the data by its size, not its folder: a run may move between machines
            "data": f"{kind}: {len(train_split)} train / {len(test_split)} {test_name} images"}


@dataclasses.dataclass
class Prepared:
    """Everything a run needs before its first epoch (``prepare_run``)."""

    session: str
    recipe: recipes.Recipe
    config: dict
    device: torch.device
    amp: bool
    cuda_graph: bool
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    train_loader: object
    test_loader: object
    train_split: data.CifarSplit
    test_split: data.CifarSplit
    mean: tuple
    std: tuple


@dataclasses.dataclass
class RunResult(Prepared):
    """What ``train_course_net`` hands back: the prepared run, trained, with its history."""

    history: list[dict]
    out: Path | None
    seconds: float  # the whole run's wall time: this process, plus the epochs a resumed run took from its checkpoint
    resumed_after_epoch: int = 0  # the epochs that came from the checkpoint (0: trained from the start)


def check_settings(device: torch.device, loader: str = "auto", compile: bool = False, cuda_graph: bool = False,
                   workers: int | None = None) -> str:
    """Refuse, in one sentence each, settings of a run that cannot work together; return the loader
    (``"auto"`` resolved: the device loader on CUDA, else albumentations). ``prepare_run`` checks with it,
    and the command line before anything loads."""
    if loader not in LOADERS:
        raise ValueError(f"unknown loader {loader!r}; choose one of {', '.join(LOADERS)}")
    if workers is not None and workers < 0:
        raise ValueError(f"workers must be 0 or more, got {workers}")
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"CUDA graphs (--cuda-graph) need a CUDA device; this run trains on {device.type}")
    if cuda_graph and compile:
        raise ValueError("choose CUDA graphs (--cuda-graph) or torch.compile (--compile), not both")
    if loader == "auto":
        loader = "device" if device.type == "cuda" else "albumentations"
    if cuda_graph and loader != "device":
        raise ValueError("CUDA graphs (--cuda-graph) need the device loader (--loader device): a DataLoader's "
                         "pin-memory thread breaks the capture")
    return loader


def prepare_run(session: str, norm: str = "bn", recipe: str | recipes.Recipe = "seed", *, epochs: int = 20,
                data_root: str | os.PathLike | None = None, out: str | os.PathLike | None = None, seed: int = 1,
                device: str = "auto", loader: str = "auto", amp: bool | None = None, compile: bool = False,
                cuda_graph: bool = False, workers: int | None = None, smoke: bool = False,
                validation: bool = False, verbose: bool = True, **overrides) -> Prepared:
    """Recipe -> data -> loaders -> model -> optimiser and schedule, ready for ``helpers.train.fit``
    (the arguments are those of ``train_course_net``)."""
    device = train.get_device(device)
    loader = check_settings(device, loader, compile, cuda_graph, workers)
    amp = train.bf16_is_native(device) if amp is None else amp
    if isinstance(recipe, str):
        recipe = recipes.get_recipe(session, recipe, norm, **overrides)
    elif overrides:
        recipe = dataclasses.replace(recipe, **overrides)
    if workers is None and (smoke or device.type == "cpu"):
        workers = 0  # on a CPU the model needs every core; albumentations at 32x32 is cheap beside it

    train.set_seed(seed)
    # smoke: tiny synthetic data in the run's folder, or without one in a temporary folder gone once it is loaded
    with tempfile.TemporaryDirectory() if smoke and not out else contextlib.nullcontext() as folder:
        if smoke:
            data_root = data.write_synthetic_cifar(folder or Path(out) / "smoke-data", 512, 256, seed=seed).parent
        train_split, test_split = load_splits(data_root, validation)
    mean, std = data.mean_std(train_split.images)
    config = run_config(session, norm, recipe, seed, loader, epochs, train_split, test_split, smoke, validation,
                        amp=amp)
    if verbose:
        tag = f"{session}-{norm}" if session == "s8" else session
        print(f"{tag}, recipe {recipe.name}: {config['data'].split(': ', 1)[1]}, "
              f"{epochs} epoch{'s' if epochs != 1 else ''} on {hardware_name(device)}, {loader} loader"
              f"{', bf16 autocast' if amp else ''}")
    train_loader, test_loader = make_loaders(recipe, train_split, test_split, mean, std, loader, device,
                                             seed, workers)
    model = models.build_model(session, norm, recipe.dropout).to(device)
    if compile:
        model.compile()  # compiles the forward in place; state_dict keys stay the same
    optimizer = recipes.make_optimizer(model, recipe)
    scheduler = recipes.make_scheduler(optimizer, recipe, epochs, len(train_loader))
    return Prepared(session, recipe, config, device, amp, cuda_graph, model, optimizer, scheduler, train_loader,
                    test_loader, train_split, test_split, mean, std)


def train_course_net(session: str, norm: str = "bn", recipe: str | recipes.Recipe = "seed", *, epochs: int = 20,
                     data_root: str | os.PathLike | None = None, out: str | os.PathLike | None = None,
                     seed: int = 1, device: str = "auto", loader: str = "auto", amp: bool | None = None,
                     compile: bool = False, cuda_graph: bool = False, workers: int | None = None,
                     smoke: bool = False, validation: bool = False, resume: bool = False, progress: bool = True,
                     verbose: bool = True, **overrides) -> RunResult:
    """Train one course network and return it with its history (see ``RunResult``).

    ``recipe`` is a name ("seed", "tuned") or a Recipe; ``overrides`` change its fields (lr=0.05).
    ``loader="auto"`` keeps data and augmentation on the GPU (helpers.device_data) when training on
    CUDA and uses the taught albumentations DataLoader elsewhere. ``amp`` (bf16 autocast; default
    on CUDA GPUs with bf16 in hardware: ``train.bf16_is_native``, and for ``resume`` the saved run's
    setting) is used for training, evaluation and the figures alike. ``cuda_graph`` (CUDA only)
    replays each training step's forward and backward as CUDA graphs. ``smoke`` trains on tiny
    synthetic data; ``validation`` scores on the last 10 % of the training images instead of the
    test batch (for tuning). ``out`` writes the checkpoint, history.json and run.json there.
    """
    start = time.perf_counter()
    checkpoint = None if out is None else Path(out) / "checkpoint.pt"
    # the epochs a resumed run takes over: their wall times count towards the run's (their processes' set-up,
    # which the checkpoint does not record, does not)
    state = train.load_checkpoint(checkpoint) if resume and checkpoint is not None and checkpoint.is_file() else {}
    earlier = state.get("history", [])  # (load_checkpoint refuses a file that is not fit's checkpoint)
    saved_amp = (state.get("config") or {}).get("amp")
    adopted = amp is None and saved_amp is not None  # not chosen: go on as the run was trained (Colab's GPU may differ)
    p = prepare_run(session, norm, recipe, epochs=epochs, data_root=data_root, out=out, seed=seed, device=device,
                    loader=loader, amp=saved_amp if adopted else amp, compile=compile, cuda_graph=cuda_graph,
                    workers=workers, smoke=smoke, validation=validation, verbose=verbose, **overrides)
    if verbose and adopted and p.amp != train.bf16_is_native(p.device):
        print(f"the saved run trained {'with' if p.amp else 'without'} bf16 autocast and goes on so"
              + (" (this device has no bf16 in hardware: slower)" if p.amp else ""))
    if out is not None and not resume:  # the data is there: the run this one replaces goes, all of it
        clear_run(Path(out))
    history = train.fit(p.model, p.train_loader, p.test_loader, p.optimizer, p.scheduler, epochs, p.device,
                        label_smoothing=p.recipe.label_smoothing, ema_decay=p.recipe.ema_decay, tta=p.recipe.tta,
                        amp=p.amp, out_dir=None if out is None else str(out), resume=resume, progress=progress,
                        verbose=verbose, config=p.config, cuda_graph=p.cuda_graph, tta_shift=p.recipe.tta_shift,
                        # a checkpoint saved before the config held amp resumes under either setting
                        config_defaults={"recipe": recipes.field_defaults(), "amp": p.amp},
                        scored_on="validation" if validation else "test")
    result = RunResult(**vars(p), history=history, out=None if out is None else Path(out),
                       seconds=time.perf_counter() - start + sum(h["seconds"] for h in earlier),
                       resumed_after_epoch=len(earlier))  # fit went on from exactly these epochs
    if out is not None:
        save_run(result, Path(out) / "run.json")
    return result


RUN_FILES = ("checkpoint.pt", "history.json", "run.json")  # what train_course_net writes into its folder


def clear_run(out: Path) -> None:
    """Delete the files an earlier run wrote into ``out`` (``RUN_FILES``): a run that replaces it and is
    stopped in its first epoch must not leave the old checkpoint there for ``--resume`` to go on with.
    (The command line's figures are drawn again when the new run ends.)"""
    for name in RUN_FILES:
        (out / name).unlink(missing_ok=True)


def holds_smoke_run(checkpoint: Path) -> bool:
    """Was ``checkpoint`` saved by a ``--smoke`` run (synthetic data)? False for anything unreadable."""
    try:
        return (train.load_checkpoint(checkpoint).get("config") or {}).get("data", "").startswith("synthetic")
    except train.CheckpointError:
        return False


def save_run(result: RunResult, path: Path) -> None:
    """run.json: the history with everything a results table states about it."""
    record = {"config": result.config, "epochs": len(result.history),
              "final_test_acc": result.history[-1]["test_acc"], "hardware": hardware_name(result.device),
              "torch": torch.__version__, "amp": result.amp, "cuda_graph": result.cuda_graph,
              "date": datetime.date.today().isoformat(),
              "seconds_to_train": round(result.seconds, 1), "resumed_after_epoch": result.resumed_after_epoch,
              "history": result.history}
    train.atomic_write(path, lambda name: Path(name).write_text(json.dumps(record, indent=1)))


def predict_test(result: RunResult) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and labels of a trained run's test images, scored as its history scored them
    (the recipe's test-time augmentation, the run's autocast)."""
    return train.predict(result.model, result.test_loader, result.device, tta=result.recipe.tta, amp=result.amp,
                         tta_shift=result.recipe.tta_shift)


def write_figures(result: RunResult, out: Path, title: str) -> list[Path]:
    """curves.png, lr.png, misclassified.png and confusion.png of a trained run, from its final weights.
    A ``--validation`` run's figures say that they score the validation split, not the test set."""
    log_probs, labels = predict_test(result)
    wrong = train.misclassified(log_probs, labels, 20)
    classes = result.test_split.classes
    paths = [out / name for name in ("curves.png", "lr.png", "misclassified.png", "confusion.png")]
    validation = "validation" in result.config["data"]  # the history's test_* columns score that split then
    titles = (dict(curves=f"{title}, scored on the validation split (its curves are labelled test)",
                   wrong=f"{title}: misclassified validation images", confusion=f"{title}: validation split")
              if validation else dict(curves=title, wrong=None, confusion=None))
    figures = [
        plots.plot_history(result.history, title=titles["curves"], save=str(paths[0])),
        plots.plot_lr(result.history, run=title, save=str(paths[1])),
        plots.show_misclassified(result.test_split.images[[i for i, _, _ in wrong]], [t for _, t, _ in wrong],
                                 [p for _, _, p in wrong], classes, run=title, title=titles["wrong"],
                                 save=str(paths[2])),
        plots.plot_confusion(labels.numpy(), log_probs.argmax(1).numpy(), classes, run=title,
                             title=titles["confusion"], save=str(paths[3])),
    ]
    for fig in figures:  # saved; close them so repeated runs in one process do not pile figures up
        matplotlib.pyplot.close(fig)
    return paths


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


def _whole_number(text: str, lowest: int, highest: float, allowed: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not lowest <= value <= highest:
        raise argparse.ArgumentTypeError(f"must be {allowed}, got {text}")
    return value


def _workers(text: str) -> int:
    return _whole_number(text, 0, float("inf"), "0 (load in the main process) or more")


def random_seed(text: str) -> int:
    """An argparse type: a random seed, a whole number from 0 to 2**32 - 1 (what numpy accepts)."""
    return _whole_number(text, 0, 2**32 - 1, "from 0 to 2**32 - 1")


def parse_settings(pairs: list[str]) -> dict:
    """["lr=0.02", "tta=false", "ema_decay=none"] -> {"lr": 0.02, "tta": False, "ema_decay": None}."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set takes field=value, got {pair!r}")
        try:
            settings[key] = json.loads(value.lower() if value.lower() in ("true", "false") else value)
        except json.JSONDecodeError:
            settings[key] = None if value.lower() == "none" else value
    return settings


DATA_ROOT_HELP = ("folder holding cifar-10-batches-py/ or cifar-10-python.tar.gz, or the batches folder itself "
                  "(default: $CIFAR10_ROOT, else ./data)")
EXAMPLES = """examples:
  python -m helpers.run s8 --smoke                       seconds: synthetic data, checks the set-up
  python -m helpers.run s8 --epochs 2                    S8 with BatchNorm, 2 epochs of real CIFAR-10
  python -m helpers.run s8 --norm gn --recipe tuned      the tuned recipe, GroupNorm
  python -m helpers.run s9 --recipe tuned --device cuda  S9 on a GPU (the loader is then 'device')
  python -m helpers.run figures runs/s9-tuned            the figures of a finished run, again
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``s8`` and ``s9`` train a session's network, ``figures`` redraws a run's figures."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(prog="python -m helpers.run", description=__doc__.split("\n\n")[0],
                                epilog=EXAMPLES, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", required=True, metavar="{s8,s9,figures}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--recipe", choices=recipes.RECIPES, default="seed",
                        help="seed: the seed document's optimiser and schedule; tuned: the improved one "
                             "(default: %(default)s)")
    common.add_argument("--epochs", type=_positive(int), default=None, help="default: 20 (1 with --smoke)")
    common.add_argument("--batch-size", type=_positive(int), default=None, help="default: the recipe's")
    common.add_argument("--lr", type=_positive(float), default=None, help="default: the recipe's")
    common.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE",
                        help="change recipe fields, e.g. --set weight_decay=1e-4 augment=flip dropout=none")
    common.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    common.add_argument("--out", default=None, help="output folder (default: runs/s8-<norm>-<recipe> or runs/s9-<recipe>)")
    common.add_argument("--seed", type=random_seed, default=1, help="random seed (default: %(default)s)")
    common.add_argument("--device", choices=train.DEVICES, default="auto",
                        help="auto picks cuda, then mps, then cpu (default: %(default)s)")
    common.add_argument("--loader", choices=LOADERS, default="auto",
                        help="albumentations: the taught DataLoader path; device: data and augmentation on the "
                             "device; auto (the default): device on CUDA, else albumentations")
    common.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast for training, evaluation and figures (default: on with a CUDA GPU that has "
                             "bf16 in hardware, compute capability 8.0+; off on a T4 or V100; with --resume: as "
                             "the saved run)")
    common.add_argument("--compile", action="store_true", help="torch.compile the model")
    common.add_argument("--cuda-graph", action="store_true",
                        help="replay each training step's forward and backward as CUDA graphs (CUDA only): "
                             "fewer kernel launches, which is what limits a small net")
    common.add_argument("--workers", type=_workers, default=None,
                        help="DataLoader workers (default: 0 when training on a CPU, else chosen for the machine)")
    common.add_argument("--validation", action="store_true",
                        help="score on the last 10%% of the training images instead of the test batch (tuning)")
    common.add_argument("--smoke", action="store_true", help="tiny synthetic CIFAR-format data, for a quick look")
    common.add_argument("--resume", action="store_true", help="continue the run saved in --out")
    common.add_argument("--overwrite", action="store_true",
                        help="replace the run saved in --out (without it, a folder that holds a run is refused, "
                             "so a second command cannot wipe out an hour of training)")
    common.add_argument("--no-progress", action="store_true", help="no progress bars")
    s8 = sub.add_parser("s8", parents=[common], formatter_class=fmt, epilog=EXAMPLES,
                        help="Session 8: normalization (BatchNorm, LayerNorm, GroupNorm)",
                        description="Train the Session 8 network (46,064 parameters) with one normalization.")
    s8.add_argument("--norm", choices=models.NORMS, default="bn", help="BatchNorm, LayerNorm or GroupNorm (default: %(default)s)")
    s9 = sub.add_parser("s9", parents=[common], formatter_class=fmt, epilog=EXAMPLES,
                        help="Session 9: advanced convolutions",
                        description="Train the Session 9 network (171,840 parameters, no pooling, RF 77).")
    s9.add_argument("--norm", help=argparse.SUPPRESS)  # accepted only to explain that it does not apply
    for session_parser in (s8, s9):
        session_parser.set_defaults(session_parser=session_parser)  # main reports errors in its name
    fig = sub.add_parser("figures", help="draw a finished run's figures again (no training)",
                         description="Draw curves, lr, misclassified and confusion figures of a finished run "
                                     "again from its folder, without training.")
    fig.add_argument("run_dir", help="a run folder holding checkpoint.pt (e.g. runs/s9-tuned)")
    fig.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    fig.add_argument("--device", choices=train.DEVICES, default="auto", help="where to evaluate")
    return p


def redraw_figures(run_dir: Path, data_root: str | None, device: str) -> list[Path]:
    """The figures of the finished run in ``run_dir``, drawn again from its checkpoint."""
    if not (run_dir / "checkpoint.pt").is_file():
        raise ValueError(f"no run to draw in {run_dir}: it holds no checkpoint.pt (the folder a run was saved to)")
    state = train.load_checkpoint(run_dir / "checkpoint.pt")
    config = state.get("config") or {}
    if "session" not in config:
        raise ValueError(f"{run_dir / 'checkpoint.pt'} holds no run config; it was not written by helpers.run")
    smoke = config["data"].startswith("synthetic")
    if smoke and data_root is not None:
        print(f"{run_dir} is a --smoke run: its synthetic images are made again, --data-root is not used",
              file=sys.stderr)
    p = prepare_run(config["session"], config["norm"] or "bn", recipes.Recipe(**config["recipe"]),
                    epochs=config.get("onecycle_epochs") or 1, data_root=data_root, out=run_dir, seed=config["seed"],
                    device=device, loader=config["loader"],
                    amp=config["amp"] if "amp" in config else _recorded_amp(run_dir), workers=0, smoke=smoke,
                    validation="validation" in config["data"], verbose=False)
    if p.config["data"] != config["data"]:  # figures of other images would be silently wrong
        raise ValueError(f"{run_dir} was trained on {config['data']}, but the data found now is "
                         f"{p.config['data']}; point --data-root (or CIFAR10_ROOT) at the run's data")
    weights = state["model"]
    if state.get("ema"):  # the run was scored with its weight average: draw that one
        weights = {k.removeprefix("module."): v for k, v in state["ema"].items() if k.startswith("module.")}
    p.model.load_state_dict(weights)
    result = RunResult(**vars(p), history=state["history"], out=run_dir, seconds=0.0)
    return write_figures(result, run_dir, _title(config["session"], config["norm"], p.recipe.name))


def _recorded_amp(run_dir: Path) -> bool | None:
    """The autocast run.json records for a finished run (its checkpoint's config held none before it did)."""
    try:
        return json.loads((run_dir / "run.json").read_text()).get("amp")
    except (OSError, ValueError, AttributeError):
        return None


def _title(session: str, norm: str | None, recipe_name: str) -> str:
    return f"{session}-{norm} ({recipe_name} recipe)" if session == "s8" else f"{session} ({recipe_name} recipe)"


def main(argv: list[str] | None = None) -> float:
    """Run one training job (or redraw figures); returns the final test accuracy (%)."""
    start = time.perf_counter()
    matplotlib.use("Agg")  # figures go to files
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "figures":
        try:
            paths = redraw_figures(Path(args.run_dir), args.data_root, args.device)
        except (FileNotFoundError, ValueError, data.CifarDataError) as e:
            sys.exit(f"error: {e}")
        print("wrote " + ", ".join(str(p) for p in paths))
        return float("nan")
    session_parser = args.session_parser
    if args.command == "s9" and args.norm is not None:
        session_parser.error("--norm applies to s8 only (s9 always uses BatchNorm)")
    if args.resume and args.overwrite:
        session_parser.error("--resume goes on with the run in --out and --overwrite replaces it: give one of them")
    norm = args.norm if args.command == "s8" else "bn"
    try:
        check_settings(train.get_device(args.device), args.loader, args.compile, args.cuda_graph, args.workers)
        given = {k: v for k, v in (("lr", args.lr), ("batch_size", args.batch_size)) if v is not None}
        recipe = recipes.recipe_with_settings(args.command, args.recipe, norm,
                                              {**given, **parse_settings(args.set)})
    except (ValueError, TypeError) as e:
        session_parser.error(str(e))
    tag = f"{args.command}-{norm}" if args.command == "s8" else args.command
    out = Path(args.out or f"runs/{tag}-{args.recipe}{'-smoke' if args.smoke else ''}")
    epochs = args.epochs or (1 if args.smoke else 20)
    saved = out / "checkpoint.pt"
    # smoke runs replace each other without --overwrite, but never a real run trained into the same folder
    if saved.exists() and not (args.resume or args.overwrite or (args.smoke and holds_smoke_run(saved))):
        sys.exit(f"error: {out} holds a run already: --resume goes on with it, --overwrite replaces it, "
                 "--out DIR trains into another folder")
    started = time.time()  # a checkpoint older than this is the run that this one replaces
    try:
        result = train_course_net(args.command, norm, recipe, epochs=epochs, data_root=args.data_root, out=out,
                                  seed=args.seed, device=args.device, loader=args.loader, amp=args.amp,
                                  compile=args.compile, cuda_graph=args.cuda_graph, workers=args.workers,
                                  smoke=args.smoke,
                                  validation=args.validation, resume=args.resume, progress=not args.no_progress)
    except train.CheckpointMismatchError as e:
        hints = "".join(f"; {hint}" for setting, hint in RESUME_HINTS.items()
                        if any(c.startswith(f"{setting}:") for c in e.changes))
        sys.exit(f"error: {e}{hints}")
    except (data.CifarDataError, train.NonFiniteLossError, train.CheckpointError) as e:
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        if saved.exists() and (args.resume or saved.stat().st_mtime >= started):
            print("to continue, rerun the same command with --resume", file=sys.stderr)
        else:
            print("interrupted before the first epoch ended: nothing was saved"
                  + (f" ({out} still holds the run it was to replace)" if saved.exists() else ""), file=sys.stderr)
        sys.exit(130)
    write_figures(result, out, _title(args.command, norm, recipe.name))
    history = result.history
    best = train.best_epoch(history)
    scored_on = "validation" if args.validation else "test"  # the history's test_* columns score this split
    print(f"final {scored_on} accuracy {history[-1]['test_acc']:.2f}% (best {best['test_acc']:.2f}% at epoch "
          f"{best['epoch']}, selected on the {scored_on} set); "
          f"{time.perf_counter() - start:.0f} s with the figures; outputs in {out}")
    return history[-1]["test_acc"]


if __name__ == "__main__":
    main()
