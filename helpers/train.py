"""Training and evaluation loops, with checkpoints that make a run resumable.

``fit`` runs N epochs and returns the history, one dict per epoch::

    {"epoch": 1, "train_loss": 1.52, "train_acc": 44.1, "test_loss": 1.21, "test_acc": 56.3, "lr": 0.1,
     "seconds": 4.2}

Losses are mean negative log-likelihoods per sample; accuracies are in percent; ``lr`` is the
learning rate the epoch started with; ``seconds`` is the epoch's wall time (training and
evaluation). Schedulers step where they belong: OneCycleLR and
CyclicLR after every batch, ReduceLROnPlateau after every epoch on the test loss, any other
scheduler after every epoch.

With ``out_dir`` the run writes ``checkpoint.pt`` (model, optimiser, scheduler, EMA, RNG
states, history) and ``history.json`` after every epoch, atomically: an interrupted run keeps
its last completed epoch, and ``resume=True`` continues it to the same result as an
uninterrupted run. A ``config`` (plain data describing the run: recipe, data, seed) is saved
with the checkpoint, and resuming refuses a checkpoint saved with a different one. The checkpoint
keeps torch's RNG states only: nothing here draws from python's or numpy's global generators
(the augmentations seed their own per epoch). Needs only torch, numpy and tqdm.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.lr_scheduler import LRScheduler  # ReduceLROnPlateau is one too
from tqdm.auto import tqdm

DEVICES = ("auto", "cpu", "cuda", "mps")
HISTORY_KEYS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "seconds")


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class CheckpointError(ValueError):
    """A file that is not a safe or valid checkpoint (damaged, foreign, or holding code)."""


class CheckpointMismatchError(CheckpointError):
    """``resume`` found a checkpoint saved by a run with other settings: ``changes`` names them, each
    "setting: saved -> now" (``config_changes``)."""

    def __init__(self, message: str, changes: list[str]):
        super().__init__(message)
        self.changes = changes


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_device(name: str = "auto") -> torch.device:
    """"auto" picks cuda, then mps, then cpu; an explicit name must be available."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose one of {', '.join(DEVICES)}")
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available; use --device cpu or auto")
    if name == "mps" and not mps:
        raise ValueError("device 'mps' was asked for but Apple's MPS is not available; use --device cpu or auto")
    return torch.device(name)


def steps_every_batch(scheduler: LRScheduler | None) -> bool:
    """True for schedulers that are stepped after every batch (OneCycleLR, CyclicLR)."""
    return isinstance(scheduler, (torch.optim.lr_scheduler.OneCycleLR, torch.optim.lr_scheduler.CyclicLR))


def _set_epoch(loader: Iterable, epoch: int) -> None:
    """Tell a loader's sampler / dataset which epoch starts (for reproducible shuffles and augmentations)."""
    for part in (loader, getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)


def _first_nonfinite(values: torch.Tensor) -> int | None:
    bad = (~torch.isfinite(values)).nonzero()
    return int(bad[0]) if len(bad) else None


def _wait(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bf16_autocast(device_type: str, enabled: bool, cache_enabled: bool = True) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on ``device_type`` when ``enabled``; otherwise a context that does nothing,
    so a device that torch's autocast does not support (e.g. Apple's "mps" before torch 2.5, which
    it refuses even with enabled=False) trains in float32 without a word from autocast."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=cache_enabled)


def bf16_is_native(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware, so that bf16 autocast pays: CUDA GPUs of compute
    capability 8.0 or later (A100, H100, RTX 30xx and newer). Older ones (Colab's T4, V100) only emulate it."""
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


class TrainingLoss(nn.Module):
    """(images, labels) -> (training loss, log-probabilities): the model's forward (under bf16
    autocast with ``amp``) and the label-smoothed loss as one module.

    With ``cuda_graph=True``, the first call of ``step`` on a CUDA batch captures this module's
    forward and backward as two CUDA graphs (``torch.cuda.make_graphed_callables``), replayed for
    every later batch of that shape. A small net's step is bound by Python launching some 150
    tiny kernels one by one; a graph launches them all at once. Batches of another shape (a last
    partial batch) run eagerly. The optimiser step stays outside the graphs, so the parameters
    and the lr it writes are what the next replay reads. Results match the eager step's up to
    float rounding, except that dropout draws other masks (capturing draws random numbers too).
    The batches must come from a loader without a pin-memory thread (``helpers.device_data``):
    that thread's CUDA calls would break the capture.
    """

    def __init__(self, model: nn.Module, label_smoothing: float = 0.0, amp: bool = False,
                 cuda_graph: bool = False):
        super().__init__()
        self.model, self.label_smoothing, self.amp, self.cuda_graph = model, label_smoothing, amp, cuda_graph
        self.graph_shape: tuple | None = None  # the (images, labels) shapes the graphs were captured for

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # autocast's weight cache must be off for graph capture; each weight is cast once per forward anyway
        with bf16_autocast(x.device.type, self.amp, cache_enabled=False):
            log_probs = self.model(x)
        log_probs = log_probs.float()
        # cross_entropy re-applies log_softmax, a no-op on log-probabilities: this is NLL with smoothing
        return F.cross_entropy(log_probs, y, label_smoothing=self.label_smoothing), log_probs.detach()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss and log-probabilities of a batch, through the CUDA graphs where they apply."""
        if not (self.cuda_graph and x.is_cuda):
            return self(x, y)
        if self.graph_shape is None:
            self._capture(x, y)
        if self.graph_shape == (x.shape, y.shape):
            return self(x, y)  # forward replaced by the graphed one
        return type(self).forward(self, x, y)  # another shape: the eager computation

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        # capturing runs three warm-up passes on this batch: keep BatchNorm's running statistics as they were
        buffers = [b.detach().clone() for b in self.model.buffers()]
        # the graphs own copies of the batch as their static inputs; each replay copies the next batch in
        torch.cuda.make_graphed_callables(self, (x.clone(), y.clone()))  # replaces self.forward in place
        with torch.no_grad():
            for b, saved in zip(self.model.buffers(), buffers):
                b.copy_(saved)
        self.graph_shape = (x.shape, y.shape)


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer,
                    device: torch.device | str, epoch: int = 1, scheduler: LRScheduler | None = None,
                    label_smoothing: float = 0.0,
                    ema: nn.Module | None = None, amp: bool = False, progress: bool = True,
                    sync_every: int | None = None, estimate_epochs: int = 0,
                    loss_fn: TrainingLoss | None = None) -> tuple[float, float]:
    """One pass over ``loader``; returns (mean NLL, accuracy %). Steps a per-batch ``scheduler``.

    Metrics stay on the device and are read every ``sync_every`` batches (default: every batch
    on a CPU; on a GPU only at the end of the epoch, so Python never waits for the device inside
    the loop), which is also when a non-finite loss is detected. With ``estimate_epochs`` > 0 it
    prints, after the first batches, about how long that many epochs will take. ``loss_fn``
    (default: ``TrainingLoss(model, label_smoothing, amp)``) computes each batch's loss; ``fit``
    passes one that keeps its CUDA graphs from epoch to epoch.
    """
    device = torch.device(device)  # "cpu" or "cuda" will do too
    loss_fn = loss_fn if loss_fn is not None else TrainingLoss(model, label_smoothing, amp)
    model.train()
    n_batches = len(loader)
    sync_every = sync_every or (1 if device.type == "cpu" else n_batches)
    losses = torch.zeros(n_batches, device=device)
    nll_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    clock = {}  # batch number -> time, for the estimate
    timed = (min(5, n_batches // 4), min(25, n_batches // 2)) if estimate_epochs and n_batches >= 8 else ()
    bar = tqdm(loader, desc=f"epoch {epoch} train", leave=False, disable=not progress)
    for b, (x, y) in enumerate(bar):
        if b in timed:
            _wait(device)
            clock[b] = time.perf_counter()
            if len(clock) == 2:
                per_batch = (clock[timed[1]] - clock[timed[0]]) / (timed[1] - timed[0])
                total = per_batch * n_batches * estimate_epochs
                about = f"{total / 60:.1f} min" if total >= 60 else f"{total:.0f} s"
                print(f"estimate from the first {timed[1]} batches: {per_batch * n_batches:.0f} s of training "
                      f"per epoch, about {about} for {estimate_epochs} epoch{'s' if estimate_epochs != 1 else ''} "
                      f"(evaluation not included)")
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss, log_probs = loss_fn.step(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        with torch.no_grad():
            losses[b] = loss
            nll_sum += F.nll_loss(log_probs, y, reduction="sum")
            correct += (log_probs.argmax(1) == y).sum()
        seen += len(y)
        if (b + 1) % sync_every == 0 or b + 1 == n_batches:
            bad = _first_nonfinite(losses[:b + 1])
            if bad is not None:
                raise NonFiniteLossError(
                    f"the training loss became {losses[bad].item()} at epoch {epoch}, batch {bad + 1}; "
                    f"lower the learning rate or check the inputs")
            if progress:
                bar.set_postfix(loss=f"{losses[b].item():.3f}", acc=f"{100.0 * correct.item() / seen:.1f}")
    if seen == 0:
        raise ValueError("the training loader is empty (is the batch size larger than the dataset?)")
    return nll_sum.item() / seen, 100.0 * correct.item() / seen


def tta_log_probs(model: nn.Module, x: torch.Tensor, flip: bool = True, shift: int = 0) -> torch.Tensor:
    """Log of the class probabilities of the batch ``x`` averaged over test-time views (float32).

    The views: each image, its mirror image (``flip``) and, with ``shift`` > 0, the image moved
    ``shift`` pixels down-right and up-left (reflect-padded, as the crop-flip training augmentation
    pads), with their mirror images. The unshifted views weigh half, the shifted ones the other half,
    as in KellerJordan/cifar10-airbench. ``model`` must return log-probabilities.
    """
    def with_mirror_image(images: torch.Tensor) -> torch.Tensor:
        log_probs = model(images).float()
        if flip:
            log_probs = torch.logaddexp(log_probs, model(torch.flip(images, dims=[3])).float()) - math.log(2.0)
        return log_probs

    log_probs = with_mirror_image(x)
    if shift:
        padded = F.pad(x, (shift,) * 4, mode="reflect")
        h, w = x.shape[-2:]
        moved_down_right, moved_up_left = padded[..., :h, :w], padded[..., 2 * shift:, 2 * shift:]
        log_probs = torch.logsumexp(torch.stack([log_probs + math.log(0.5),
                                                 with_mirror_image(moved_down_right) + math.log(0.25),
                                                 with_mirror_image(moved_up_left) + math.log(0.25)]), dim=0)
    return log_probs


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device | str, tta: bool = False,
            amp: bool = False, tta_shift: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities and labels of a whole loader (on the CPU). ``tta`` averages the
    probabilities of each image and its horizontal flip, ``tta_shift`` also those of the image
    shifted by that many pixels (``tta_log_probs``). ``tta`` switches all of it: without it each
    image is scored once, whatever ``tta_shift`` says."""
    device = torch.device(device)  # "cpu" or "cuda" will do too
    model.eval()
    outs, labels = [], []
    for x, y in loader:
        x = x.to(device, non_blocking=True)
        with bf16_autocast(device.type, amp):
            log_probs = tta_log_probs(model, x, tta, tta_shift if tta else 0)
        outs.append(log_probs)  # stays on the device: one copy at the end, not one wait per batch
        labels.append(y)
    if not outs:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(outs).cpu(), torch.cat(labels).cpu()  # a loader's labels all live on one device


def evaluate(model: nn.Module, loader: Iterable, device: torch.device | str, tta: bool = False,
             amp: bool = False, tta_shift: int = 0) -> tuple[float, float]:
    """Mean NLL per sample and accuracy (%) on ``loader`` (``tta``, ``tta_shift``: see ``predict``)."""
    log_probs, labels = predict(model, loader, device, tta, amp, tta_shift)
    if len(labels) == 0:
        raise ValueError("the evaluation loader is empty")
    loss = F.nll_loss(log_probs, labels, reduction="sum").item() / len(labels)
    return loss, 100.0 * (log_probs.argmax(1) == labels).float().mean().item()


class WeightAverage(nn.Module):
    """An exponential moving average (EMA) of a model's weights and buffers.

    ``update_parameters(model)`` after each training step: the first call copies the model, each
    later one moves every float tensor ``1 - d`` of the way to the model's (integer buffers, such
    as BatchNorm's batch counter, are copied). ``d`` warms up to ``decay``: after ``n`` updates it
    is ``min(decay, (1 + n) / (10 + n))`` (as TensorFlow's ``ExponentialMovingAverage`` with
    ``num_updates``), so the average never holds on to the first, untrained weights: it spans about
    the last ninth of the steps taken, or the last ``1 / (1 - decay)`` steps once those are fewer.
    Without the warm-up, decay 0.999 would still give the first weights 74 % of the say after 300 steps.
    The average is evaluated like a model (``ema(x)``); its own copy of the network is
    ``ema.module``. Its state dict has ``torch.optim.swa_utils.AveragedModel``'s layout
    (``module.*``, ``n_averaged``), but the step count is a Python number, so an update never
    makes Python wait for the GPU (AveragedModel copies its CPU counter to the GPU at every
    step, and each such copy waits).
    """

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the EMA decay must be between 0 and 1, got {decay!r}")
        self.module = copy.deepcopy(model).requires_grad_(False)
        self.decay = decay
        self.register_buffer("n_averaged", torch.zeros((), dtype=torch.long))  # saved with the state
        self.updates = 0
        # a loaded state goes on from its step count, also when the average is loaded as part of a larger module
        self.register_load_state_dict_post_hook(WeightAverage._count_from_state)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Average in the weights and buffers ``model`` has now."""
        mine = [*self.module.parameters(), *self.module.buffers()]
        theirs = [t.detach() for t in (*model.parameters(), *model.buffers())]
        if len(mine) != len(theirs):
            raise ValueError("update_parameters needs the network the average was made from")
        if self.updates == 0:
            torch._foreach_copy_(mine, theirs)
        else:
            floats = [(a, b) for a, b in zip(mine, theirs) if a.is_floating_point()]
            if floats:  # one call for all tensors: a GPU runs it as a few kernels, not one per tensor
                torch._foreach_lerp_([a for a, _ in floats], [b for _, b in floats], 1.0 - self.current_decay())
            for a, b in zip(mine, theirs):
                if not a.is_floating_point():
                    a.copy_(b)
        self.updates += 1
        self.n_averaged.fill_(self.updates)  # for the checkpoint: written here, read only when one is loaded

    def current_decay(self) -> float:
        """The decay the next update uses: ``decay``, or less while the average is young."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @staticmethod
    def _count_from_state(module: "WeightAverage", incompatible_keys) -> None:
        module.updates = int(module.n_averaged)


def prepare_model(model: nn.Module, device: torch.device | str, channels_last: bool = True) -> nn.Module:
    """Move ``model`` to ``device`` as ``fit`` trains it: weights stored N,H,W,C (``channels_last``,
    on a CPU or CUDA device) and, on CUDA, cuDNN left to time its kernels once per shape and keep
    the fastest (``cudnn.benchmark``). Returns the model."""
    device = torch.device(device)
    model.to(device)
    if channels_last and device.type in ("cpu", "cuda"):
        model.to(memory_format=torch.channels_last)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN time its kernels once and keep the fastest
    return model


def make_ema(model: nn.Module, decay: float) -> WeightAverage:
    """An exponential moving average of the weights (and BatchNorm buffers) of ``model``."""
    return WeightAverage(model, decay)


# --------------------------------------------------------------------------- checkpoints
def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """``write(name)`` writes the file under a temporary name, then it is renamed to ``path``: a reader
    (or a run stopped half-way) never meets half a file."""
    tmp = path.with_name(path.name + ".tmp")
    write(str(tmp))
    os.replace(tmp, path)  # never leaves a half-written file behind


def save_history(history: list[dict], path: str | os.PathLike) -> None:
    """Write the history as JSON, atomically."""
    def write(p: str) -> None:
        with open(p, "w") as f:
            json.dump(history, f, indent=1)
    atomic_write(Path(path), write)


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: LRScheduler | None, history: list[dict],
                    ema: nn.Module | None = None, config: dict | None = None) -> None:
    """Everything needed to continue training exactly where it stopped, written atomically."""
    state = {
        "config": config,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "ema": ema.state_dict() if ema is not None else None,
        "history": history,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "rng_mps": torch.mps.get_rng_state() if torch.backends.mps.is_available() else None,  # Apple GPUs
    }
    atomic_write(Path(path), lambda p: torch.save(state, p))


# What save_checkpoint writes and a resume needs (the other entries may be None).
CHECKPOINT_KEYS = frozenset({"model", "optimizer", "history", "rng_cpu"})


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely: ``weights_only=True`` refuses anything but tensors and plain data.

    Loaded onto the CPU by default, so a checkpoint saved on a GPU loads on any machine;
    ``load_state_dict`` then copies each tensor to where the model and optimiser live. Anything that
    does not load that way raises ``CheckpointError``.
    """
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        raise CheckpointError(f"{path} is not a safe or valid checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0]})") from None
    missing = CHECKPOINT_KEYS - set(state) if isinstance(state, dict) else CHECKPOINT_KEYS
    if missing:  # e.g. torch.save(model.state_dict(), ...): weights alone cannot continue a run
        held = f"a {type(state).__name__}" if not isinstance(state, dict) else f"no {', '.join(sorted(missing))}"
        raise CheckpointError(f"{path} is not a checkpoint written by helpers.train.fit (it holds {held})")
    return state


def config_changes(saved: dict | None, config: dict | None, defaults: dict | None = None) -> list[str]:
    """The settings that differ between a checkpoint's config and this run's, as "key: old -> new".

    Nested dicts (a recipe) are compared key by key; a side without a config matches anything.
    ``defaults`` (shaped like the config, e.g. ``{"recipe": {"tta_shift": 0}}``) gives the value of a
    setting the checkpoint lacks because it was added to the code since: what the code did before it.
    """
    if saved is None or config is None:
        return []
    defaults = defaults or {}
    changes = []
    for key in sorted(set(saved) | set(config)):
        old, new = saved.get(key, defaults.get(key)), config.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += [f"{key}.{change}" for change in config_changes(old, new, defaults.get(key))]
        elif old != new:
            changes.append(f"{key}: {old!r} -> {new!r}")
    return changes


# how the optimizer computes its step, not what it computes: they belong to this machine, not to the checkpoint
_OPTIMIZER_IMPLEMENTATION = ("fused", "foreach", "capturable", "differentiable")


def _restore(state: dict, model, optimizer, scheduler, ema) -> list[dict]:
    model.load_state_dict(state["model"])
    implementation = [{k: group[k] for k in _OPTIMIZER_IMPLEMENTATION if k in group} for group in optimizer.param_groups]
    optimizer.load_state_dict(state["optimizer"])  # a CPU run's checkpoint would switch off fused SGD on a GPU
    for group, kept in zip(optimizer.param_groups, implementation):
        group.update(kept)
        # each momentum buffer in its weight's memory layout (fused SGD on CUDA requires it), also when the
        # checkpoint comes from a run without channels-last
        for p in group["params"]:
            buffer = optimizer.state.get(p, {}).get("momentum_buffer")
            if buffer is not None and buffer.stride() != p.stride():
                optimizer.state[p]["momentum_buffer"] = torch.empty_like(p).copy_(buffer)
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if ema is not None and state["ema"] is not None:
        ema.load_state_dict(state["ema"])
    # RNG states are CPU ByteTensors whatever device the checkpoint was loaded onto
    torch.set_rng_state(state["rng_cpu"].cpu())
    if state["rng_cuda"] and torch.cuda.is_available():
        cuda_states = [t.cpu() for t in state["rng_cuda"]]
        torch.cuda.set_rng_state_all(cuda_states[:torch.cuda.device_count()])
    if state.get("rng_mps") is not None and torch.backends.mps.is_available():  # older checkpoints lack it
        torch.mps.set_rng_state(state["rng_mps"].cpu())
    return list(state["history"])


# --------------------------------------------------------------------------- fit
def fit(model: nn.Module, train_loader: Iterable, test_loader: Iterable, optimizer: torch.optim.Optimizer,
        scheduler: LRScheduler | None = None, epochs: int = 20, device: torch.device | str = "cpu",
        label_smoothing: float = 0.0,
        ema_decay: float | None = None, tta: bool = False, amp: bool = False, out_dir: str | None = None,
        resume: bool = False, progress: bool = True, verbose: bool = True,
        channels_last: bool = True, config: dict | None = None, cuda_graph: bool = False,
        tta_shift: int = 0, config_defaults: dict | None = None, scored_on: str = "test") -> list[dict]:
    """Train for ``epochs`` epochs and return the history (see the module docstring).

    ``ema_decay`` evaluates an exponential moving average of the weights, and the model ends
    holding those averaged weights, the ones the history scored. ``tta`` adds flip test-time
    augmentation and ``tta_shift`` shifted views (``tta_log_probs``); ``amp`` uses bfloat16
    autocast. With ``out_dir`` a checkpoint and ``history.json`` are written after each epoch;
    ``resume`` continues from them, and refuses (CheckpointMismatchError) a checkpoint whose saved
    ``config`` differs from this one (``config_defaults``: the settings it may lack, see
    ``config_changes``).
    ``channels_last`` stores the model's weights as N,H,W,C on a CPU or CUDA device, which
    makes its convolutions faster (for the S9 net on a CPU too); results are the same
    up to float rounding. ``cuda_graph`` (CUDA only) replays each training step's forward and
    backward as CUDA graphs (``TrainingLoss``); the model itself is left as it is. ``scored_on``
    names the split that ``test_loader`` holds in the epoch lines (e.g. "validation").
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    device = torch.device(device)
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph needs a CUDA device, not {device.type}")
    prepare_model(model, device, channels_last)
    ema = make_ema(model, ema_decay) if ema_decay else None
    ckpt = hist_path = None
    history: list[dict] = []
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        ckpt, hist_path = Path(out_dir) / "checkpoint.pt", Path(out_dir) / "history.json"
        if resume and not ckpt.is_file() and verbose:
            print(f"no checkpoint in {out_dir}: starting a new run")
        if resume and ckpt.is_file():
            state = load_checkpoint(ckpt)
            changes = config_changes(state.get("config"), config, config_defaults)
            if changes:
                raise CheckpointMismatchError(
                    f"{ckpt} was saved by a run with other settings ({'; '.join(changes)}): "
                    f"train into a new folder, or resume with the same settings", changes)
            trained = len(state.get("history") or [])
            if trained > epochs:  # the loop would train nothing and report the longer run as this one
                raise CheckpointMismatchError(
                    f"{ckpt} holds a run trained for {trained} epochs, more than the {epochs} asked for: "
                    f"resume with {trained} epochs or more, or train into a new folder",
                    [f"epochs: {trained} -> {epochs}"])
            history = _restore(state, model, optimizer, scheduler, ema)
            if verbose:
                print(f"resumed from {ckpt} after epoch {len(history)}")
    elif resume:
        raise ValueError("resume=True needs the out_dir that holds the checkpoint")

    per_batch = steps_every_batch(scheduler)
    loss_fn = TrainingLoss(model, label_smoothing, amp, cuda_graph)  # one for all epochs: graphs are captured once
    epoch = first_epoch = len(history) + 1
    try:
        for epoch in range(len(history) + 1, epochs + 1):
            _set_epoch(train_loader, epoch)
            lr = optimizer.param_groups[0]["lr"]
            start = time.perf_counter()
            first = epoch == first_epoch and verbose
            train_loss, train_acc = train_one_epoch(model, train_loader, optimizer, device, epoch,
                                                    scheduler if per_batch else None, label_smoothing,
                                                    ema, amp, progress,
                                                    estimate_epochs=epochs - epoch + 1 if first else 0,
                                                    loss_fn=loss_fn)
            test_loss, test_acc = evaluate(ema if ema is not None else model, test_loader, device, tta, amp,
                                           tta_shift)
            seconds = time.perf_counter() - start  # evaluate read its results back: the device is done
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(test_loss)
            elif scheduler is not None and not per_batch:
                scheduler.step()
            history.append(dict(zip(HISTORY_KEYS, (epoch, train_loss, train_acc, test_loss, test_acc, lr,
                                                   round(seconds, 3)))))
            if verbose:
                print(f"epoch {epoch:2d}  lr {lr:.4f}  train loss {train_loss:.3f} acc {train_acc:5.2f}%  "
                      f"{scored_on} loss {test_loss:.3f} acc {test_acc:5.2f}%  {seconds:.1f} s")
            if ckpt is not None:
                save_checkpoint(ckpt, model, optimizer, scheduler, history, ema, config)
                save_history(history, hist_path)
    except KeyboardInterrupt:
        if verbose:
            kept = ""
            if ckpt:
                kept = (f"; epoch {len(history)} is saved in {out_dir} (resume=True goes on from it)" if history
                        else "; no epoch had completed, nothing is saved")
            print(f"interrupted during epoch {epoch}{kept}")
        raise
    except NonFiniteLossError as e:
        kept = f" The checkpoint of epoch {len(history)} in {out_dir} is kept." if ckpt and history else ""
        raise NonFiniteLossError(f"{e}.{kept}") from None
    finally:
        vars(loss_fn).pop("forward", None)  # drop the graphed forward, and with it the graphs' GPU memory
    if ema is not None:
        model.load_state_dict(ema.module.state_dict())  # hand back the weights the history scored
    return history


def misclassified(log_probs: torch.Tensor, labels: torch.Tensor, n: int = 10) -> list[tuple[int, int, int]]:
    """The first ``n`` wrong predictions as (index, true label, predicted label)."""
    pred = log_probs.argmax(1)
    wrong = (pred != labels).nonzero().flatten()[:n].tolist()
    return [(i, int(labels[i]), int(pred[i])) for i in wrong]


def best_epoch(history: list[dict]) -> dict:
    """The history entry with the highest test accuracy (the first one on ties)."""
    if not history:
        raise ValueError("the history is empty")
    return max(history, key=lambda h: (h["test_acc"], -h["epoch"]))
