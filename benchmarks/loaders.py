"""Images per second of the two input pipelines, feeding the same S9 training step.

    python benchmarks/loaders.py                 # CPU, and CUDA when present
    python benchmarks/loaders.py --batches 20 --data-root ../shared/cifar10-sample

(a) DataLoader + albumentations (the taught path), (b) helpers.device_data.DeviceLoader.
Prints images/s for loading alone and for loading + a training step, the estimated epoch
time for 50,000 images, and the ratio (b)/(a). Not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from helpers import data, models  # noqa: E402
from helpers.train import bf16_autocast, bf16_is_native  # noqa: E402
from helpers.device_data import DeviceLoader  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def throughput(loader, device, batches: int, model=None, optimizer=None, amp=False) -> float:
    """Images per second over ``batches`` batches, after one warm-up batch."""
    it = iter(loader)
    seen, start = 0, None
    for i in range(batches + 1):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if model is not None:
            with bf16_autocast(device.type, amp):
                loss = F.nll_loss(model(x).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if i == 0:
            _sync(device)
            start = time.perf_counter()
        else:
            seen += len(y)
    _sync(device)
    return seen / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", default=None, help="real CIFAR-10; default: 2,048 synthetic images")
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    args = p.parse_args(argv)
    root = args.data_root or data.write_synthetic_cifar(tempfile.mkdtemp(), 2048, 64).parent
    split = data.load_cifar10(root, train=True, download=False)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"{len(split)} images, batch {args.batch_size}, {args.batches} timed batches, torch {torch.__version__}")
    for device in devices:
        name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
        albu = data.make_loader(data.AugmentedCifar(split, data.s9_train_transforms()), args.batch_size,
                                pin_memory=device.type == "cuda")
        fast = DeviceLoader(split.images, split.labels, args.batch_size, device,
                            channels_last=device.type == "cuda")
        amp = bf16_is_native(device)  # as helpers.run's default
        print(f"\n{name}")
        results = {}
        for label, loader in (("albumentations", albu), ("device", fast)):
            load = throughput(loader, device, args.batches)
            torch.manual_seed(0)
            model = models.S9().to(device, memory_format=torch.channels_last if amp else torch.contiguous_format)
            opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
            step = throughput(loader, device, args.batches, model, opt, amp)
            results[label] = (load, step)
            print(f"  {label:15s} loading {load:9.0f} img/s | loading + S9 train step {step:8.0f} img/s "
                  f"| 50k-image epoch ~{50000 / step:7.1f} s")
        (la, sa), (ld, sd) = results["albumentations"], results["device"]
        print(f"  ratio device / albumentations: loading x{ld / la:.1f}, with training x{sd / sa:.2f}")


if __name__ == "__main__":
    main()
