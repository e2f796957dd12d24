"""The fast path: the whole dataset as one uint8 tensor on the device, augmented in batches.

Per-image albumentations on a few CPU workers cannot feed a GPU (a CIFAR-10 epoch of the S9
net takes seconds there). ``DeviceLoader`` keeps the images on the device, shuffles with a
device permutation and applies the Session 9 augmentations to a whole batch at once, each
sample with its own random parameters:

* horizontal flip with probability ``p_flip``;
* affine shift (+-6.25 %), scale (+-10 %) and rotation (+-15 deg) with probability ``p_affine``,
  through ``affine_grid`` / ``grid_sample`` with reflected borders (like ShiftScaleRotate);
* one ``cutout`` x ``cutout`` hole filled with the mean colour with probability ``p_cutout``;
* normalisation with the dataset mean / std.

On a GPU, images are augmented ``chunk`` at a time (8,192 by default, then cut into batches):
a small net's step is bound by how fast Python launches kernels, and one augmentation call of
~60 kernels per chunk instead of per batch takes most of them away. On a CPU, where launching
costs little, a chunk is one batch (larger ones run slower there: they fall out of the
caches). All random numbers of a chunk are drawn in one call, the constants (mean, std) are
built once per loader, and nothing waits for the device inside the loop: the GPU works through
the batches while Python queues the next. Training batches all have the same size (the last
partial batch of an epoch is dropped, as ``drop_last``), so shapes stay
static for cuDNN's autotuner and for compiled models.

``PRESETS`` holds the arguments that mirror each named albumentations pipeline of
``helpers.data.train_transforms`` (``helpers.data.AUGMENTATIONS``): the same transforms with the
same probabilities and ranges, though not pixel for pixel (interpolation differs, and borders are
always reflected, where the "s8" pipelines' rotation fills them with black). The loader yields
``(images, labels)`` like a DataLoader, so ``helpers.train.fit`` takes it as it is. The
randomness depends only on (seed, epoch), so runs are reproducible and resumable on one kind of
device (a CUDA generator draws other numbers than the CPU's: a run resumed on the other kind goes
on with other, equally random, batches). Needs only torch and numpy.
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


# The albumentations pipelines of helpers.data by name, as augment_batch arguments (see above).
PRESETS = {
    "s8": dict(p_flip=0.1, p_affine=0.1, shift=0.0, scale=0.0, rotate=10.0, p_cutout=0.0),
    "s8-seed-code": dict(p_flip=0.1, p_affine=1.0, shift=0.0, scale=0.0, rotate=10.0, p_cutout=0.0),
    "flip": dict(p_flip=0.5, p_affine=0.0, p_cutout=0.0),
    "s9": dict(p_flip=0.5, p_affine=0.5, p_cutout=0.5),
    "s9-seed-code": dict(p_flip=0.5, p_affine=0.5, p_cutout=0.5, shift=0.05, scale=0.05, rotate=10.0),
    "s9-light": dict(p_flip=0.5, p_affine=0.25, p_cutout=0.25),
    # shifts of -2..2 whole pixels on each axis, reflected borders: the pad-2 random crop
    "crop-flip": dict(p_flip=0.5, p_affine=0.0, p_cutout=0.0, crop=2),
    "crop-flip-cutout": dict(p_flip=0.5, p_affine=0.0, p_cutout=0.5, crop=2),
}


def augment_batch(x: torch.Tensor, generator: torch.Generator,
                  mean: Sequence[float] | torch.Tensor = CIFAR10_MEAN,
                  p_flip: float = 0.5, p_affine: float = 0.5, p_cutout: float = 0.5,
                  shift: float = 0.0625, scale: float = 0.1, rotate: float = 15.0,
                  cutout: int = 16, crop: int = 0) -> torch.Tensor:
    """Augment a float batch (N, 3, H, W) in [0, 1]; every sample draws its own parameters.

    ``mean`` (the cutout fill) may be a tensor already on the device, which saves a copy.
    ``crop`` > 0 takes a random H x W crop of each image padded by ``crop`` reflected pixels
    (shifts of -crop..crop whole pixels, as albumentations' PadIfNeeded(REFLECT_101) + RandomCrop),
    in place of the affine transform.
    """
    n, _, h, w = x.shape
    if crop and p_affine:
        raise ValueError("use crop or the affine transform (p_affine), not both: they draw the same numbers")
    dev = x.device
    r = torch.rand(n, 9, device=dev, generator=generator)  # every random number of the batch at once

    def uniform(col: int, low: float, high: float) -> torch.Tensor:
        return low + (high - low) * r[:, col]

    flip = r[:, 0] < p_flip
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)

    if p_affine > 0:
        use = r[:, 1] < p_affine
        angle = torch.deg2rad(uniform(2, -rotate, rotate))
        s = uniform(3, 1 - scale, 1 + scale)
        tx, ty = uniform(4, -shift, shift) * 2, uniform(5, -shift, shift) * 2  # normalised coords span 2
        cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
        # affine_grid maps output -> input: the inverse of "scale, rotate, then shift"
        theta = torch.stack([torch.stack([cos, sin, -(cos * tx + sin * ty)], 1),
                             torch.stack([-sin, cos, -(-sin * tx + cos * ty)], 1)], 1)
        identity = torch.zeros_like(theta)
        identity[:, 0, 0] = identity[:, 1, 1] = 1.0
        theta = torch.where(use.view(n, 1, 1), theta, identity)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    if crop > 0:
        padded = F.pad(x, (crop, crop, crop, crop), mode="reflect")  # "reflect" leaves out the edge: REFLECT_101
        top = (r[:, 4] * (2 * crop + 1)).long().clamp_(max=2 * crop)  # 0..2*crop, each as likely
        left = (r[:, 5] * (2 * crop + 1)).long().clamp_(max=2 * crop)
        c = x.shape[1]
        rows = (top.view(n, 1, 1, 1) + torch.arange(h, device=dev).view(1, 1, h, 1)).expand(n, c, h, w + 2 * crop)
        cols = (left.view(n, 1, 1, 1) + torch.arange(w, device=dev).view(1, 1, 1, w)).expand(n, c, h, w)
        x = padded.gather(2, rows).gather(3, cols)  # each image's own window: whole pixels, no interpolation

    if p_cutout > 0:
        use = r[:, 6] < p_cutout
        y0 = (r[:, 7] * (h - cutout + 1)).long().clamp_(max=h - cutout)  # the hole's top-left corner
        x0 = (r[:, 8] * (w - cutout + 1)).long().clamp_(max=w - cutout)
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        hole = ((rows >= y0.view(n, 1, 1)) & (rows < (y0 + cutout).view(n, 1, 1)) &
                (cols >= x0.view(n, 1, 1)) & (cols < (x0 + cutout).view(n, 1, 1)) & use.view(n, 1, 1))
        fill = torch.as_tensor(mean, dtype=x.dtype, device=dev).view(1, 3, 1, 1)
        x = torch.where(hole.unsqueeze(1), fill, x)
    return x


class DeviceLoader:
    """Batches of a uint8 dataset kept on ``device``; a drop-in for a DataLoader in ``fit``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 128,
                 device: torch.device | str = "cpu", train: bool = True, seed: int = 0,
                 mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                 channels_last: bool = False, drop_last: bool | None = None, chunk: int | None = None,
                 **augment):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if chunk is not None and chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {chunk}")
        if len(images) == 0:
            raise ValueError("the dataset is empty; check the data folder")
        self.device = torch.device(device)
        self.images = torch.as_tensor(images).to(self.device).permute(0, 3, 1, 2).contiguous()  # N,3,H,W uint8
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(self.device)
        self.batch_size, self.train, self.seed, self.epoch = batch_size, train, seed, 0
        self.augment, self.channels_last = augment, channels_last
        chunk = chunk or (8192 if self.device.type == "cuda" else batch_size)
        self.chunk = max(1, chunk // batch_size) * batch_size  # whole batches per augmentation call
        # training drops the last partial batch (static shapes); evaluation sees every image
        self.drop_last = train and len(labels) >= batch_size if drop_last is None else drop_last
        self._fill = torch.tensor(mean, device=self.device, dtype=torch.float32)  # built once, not per batch
        self._mean = self._fill.view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device, dtype=torch.float32).view(1, 3, 1, 1)

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s order and augmentation next (as ``DistributedSampler.set_epoch``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches (images normalised and, for training, augmented; labels), all on the device."""
        n = len(self.labels)
        g = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, device=self.device, generator=g) if self.train else torch.arange(n, device=self.device)
        end = min(n, len(self) * self.batch_size)
        for start in range(0, end, self.chunk):
            idx = order[start:min(start + self.chunk, end)]
            x = self.images[idx].float().div_(255)
            if self.train:
                x = augment_batch(x, g, self._fill, **self.augment)
            x = (x - self._mean) / self._std
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)  # batch slices below keep the layout
            y = self.labels[idx]
            for b in range(0, len(idx), self.batch_size):
                yield x[b:b + self.batch_size], y[b:b + self.batch_size]
