"""CIFAR-10 on disk, in memory and in a DataLoader.

The python version of CIFAR-10 is a folder ``cifar-10-batches-py/`` of pickled
batches. This module

* downloads it with torchvision's own download routine (URL and md5 from
  ``torchvision.datasets.CIFAR10``), or finds it under a data root;
* reads the batches with a *restricted* unpickler, so a crafted file cannot run
  code, and checks their structure (also for course subsets smaller than the
  official files, which torchvision's md5 check rejects);
* writes small synthetic datasets in exactly the same layout, for tests;
* builds the albumentations pipelines of Session 8 and Session 9 and the
  DataLoaders that feed them.

Only numpy, torch, torchvision and albumentations are needed: the module can be
copied into an assignment on its own.
"""

from __future__ import annotations

import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)  # std over all pixels, not the mean of per-image stds (0.2023...)
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer",
               "dog", "frog", "horse", "ship", "truck")
FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
ROW_BYTES = 32 * 32 * 3


class CifarDataError(RuntimeError):
    """The CIFAR-10 files are missing or malformed; the message says how to fix it."""


# --------------------------------------------------------------------------- files
class _RefusedGlobal(pickle.UnpicklingError):
    """The file asked for a function or class that a CIFAR batch never needs."""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds what a CIFAR batch holds: dicts, lists, str,
    bytes, ints and numpy arrays. Any other global (os.system, eval, ...) is refused."""

    _reconstruct = np.zeros(1).__reduce__()[0]  # numpy's array rebuilder, whatever numpy version
    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("_codecs", "encode"): __import__("codecs").encode,  # how protocol 2 stores bytes
        ("__builtin__", "bytes"): bytes,
        ("builtins", "bytes"): bytes,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"refusing to load '{module}.{name}': a CIFAR batch never contains it") from None


def safe_unpickle(path: str | os.PathLike) -> dict:
    """Load one CIFAR batch file without executing code; keys come back as str."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            obj = _BatchUnpickler(f, encoding="latin1").load()
    except _RefusedGlobal as e:
        raise CifarDataError(f"{path} is not a safe CIFAR batch ({e}). "
                             f"Replace it with the original file.") from None
    except Exception as e:  # truncated or corrupt: EOFError, ValueError, ...
        raise CifarDataError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}). "
                             f"Delete it and download or copy CIFAR-10 again.") from None
    if not isinstance(obj, dict):
        raise CifarDataError(f"{path} holds a {type(obj).__name__}, expected a dict of a CIFAR batch.")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (images N x 32 x 32 x 3 uint8, labels N int64) of a validated batch."""
    d = safe_unpickle(path)
    missing = {"data", "labels"} - d.keys()
    if missing:
        raise CifarDataError(f"{path} lacks the key(s) {sorted(missing)}; is it a CIFAR-10 batch?")
    data, labels = d["data"], d["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise CifarDataError(f"{path}: 'data' must be a 2-D uint8 array, got "
                             f"{type(data).__name__} {getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}.")
    if data.shape[1] != ROW_BYTES:
        raise CifarDataError(f"{path}: each image row must hold {ROW_BYTES} bytes (32x32x3), "
                             f"got {data.shape[1]}.")
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != len(data):
        raise CifarDataError(f"{path}: {len(data)} images but {labels.size} labels.")
    if len(data) == 0:
        raise CifarDataError(f"{path} holds no images.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 9:
        raise CifarDataError(f"{path}: labels must be integers 0-9, found {labels.min()}..{labels.max()}.")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> HWC images
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_meta(path: Path) -> list[str]:
    if not path.is_file():
        raise CifarDataError(f"{path} is missing; a CIFAR-10 folder needs {META_FILE} with the class names.")
    names = safe_unpickle(path).get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise CifarDataError(f"{path}: 'label_names' must list 10 class names.")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: the argument, else $CIFAR10_ROOT, else ./data."""
    return Path(root if root is not None else os.environ.get("CIFAR10_ROOT", "data")).expanduser()


def _batches_dir(root: Path) -> Path | None:
    for candidate in (root / FOLDER, root):
        if (candidate / TEST_FILE).is_file() or (candidate / META_FILE).is_file():
            return candidate
    return None


def _missing_message(root: Path, reason: str) -> str:
    return (f"CIFAR-10 not found under '{root}' and it could not be downloaded ({reason}). "
            f"Put {ARCHIVE} (from https://www.cs.toronto.edu/~kriz/cifar.html) or the extracted "
            f"'{FOLDER}/' folder in '{root}', or point --data-root / CIFAR10_ROOT at the folder "
            f"that contains it.")


def ensure_cifar10(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """Return the ``cifar-10-batches-py`` folder, extracting or downloading it if needed.

    Raises CifarDataError with one clear sentence when the data cannot be had.
    """
    root = data_root(root)
    found = _batches_dir(root)
    if found is not None:
        return found
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import download_and_extract_archive, extract_archive

    if (root / ARCHIVE).is_file():
        try:
            extract_archive(str(root / ARCHIVE), str(root))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise CifarDataError(f"{root / ARCHIVE} is corrupt ({e}); delete it and download again.") from None
    elif download:
        try:
            download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                         md5=CIFAR10.tgz_md5)
        except Exception as e:  # URLError, timeouts, md5 mismatch: all mean "no data"
            raise CifarDataError(_missing_message(root, f"{type(e).__name__}: {e}")) from None
    else:
        raise CifarDataError(_missing_message(root, "download=False"))
    found = _batches_dir(root)
    if found is None:
        raise CifarDataError(_missing_message(root, f"the archive held no '{FOLDER}/'"))
    return found


@dataclass
class CifarSplit:
    """Images (N, 32, 32, 3) uint8 in HWC order, labels (N,) int64, and class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def load_cifar10(root: str | os.PathLike | None = None, train: bool = True,
                 download: bool = True) -> CifarSplit:
    """Load the train (all ``data_batch_*`` present) or test split into memory, validated."""
    folder = ensure_cifar10(root, download)
    classes = _read_meta(folder / META_FILE)
    files = [folder / f for f in TRAIN_FILES if (folder / f).is_file()] if train else [folder / TEST_FILE]
    if not files or not files[0].is_file():
        wanted = "data_batch_1..5" if train else TEST_FILE
        raise CifarDataError(f"{folder} has no {wanted}; the CIFAR-10 folder is incomplete.")
    parts = [_read_batch(f) for f in files]
    return CifarSplit(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), classes)


def write_synthetic_cifar(root: str | os.PathLike, n_train: int = 500, n_test: int = 100,
                          seed: int = 0, train_batches: int = 2) -> Path:
    """Write a small, learnable dataset in the CIFAR-10 python layout and return its folder.

    Each class has its own background colour and a bright square at a
    class-dependent place, plus noise, so a small CNN beats chance in an epoch.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    palette = rng.integers(30, 226, size=(10, 3))

    def make(n: int) -> tuple[np.ndarray, list[int]]:
        labels = rng.integers(0, 10, size=n)
        img = palette[labels][:, None, None, :] + rng.normal(0, 25, size=(n, 32, 32, 3))
        for i, c in enumerate(labels):
            y, x = 4 + 6 * (c // 4), 4 + 7 * (c % 4)
            img[i, y:y + 8, x:x + 8] = 255 - palette[c]
        rows = np.clip(img, 0, 255).astype(np.uint8).transpose(0, 3, 1, 2).reshape(n, ROW_BYTES)
        return rows, labels.tolist()

    def dump(name: str, obj: dict) -> None:
        with open(folder / name, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    sizes = np.array_split(np.arange(n_train), train_batches)
    for i, part in enumerate(sizes, start=1):
        rows, labels = make(len(part))
        dump(f"data_batch_{i}", {"batch_label": f"synthetic batch {i}", "labels": labels,
                                 "data": rows, "filenames": [f"{j}.png" for j in part]})
    rows, labels = make(n_test)
    dump(TEST_FILE, {"batch_label": "synthetic test batch", "labels": labels, "data": rows,
                     "filenames": [f"t{j}.png" for j in range(n_test)]})
    dump(META_FILE, {"label_names": list(CLASS_NAMES), "num_cases_per_batch": len(sizes[0]),
                     "num_vis": ROW_BYTES})
    return folder


# --------------------------------------------------------------------------- statistics
def mean_std(images: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and std (population) over all pixels, in [0, 1], streamed in chunks.

    Sums are accumulated in float64, so the result matches numpy on the whole array.
    """
    if len(images) == 0:
        raise ValueError("mean_std needs at least one image")
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].reshape(-1, 3).astype(np.float64) / 255.0
        total += x.sum(0)
        total_sq += (x * x).sum(0)
    n = images.shape[0] * images.shape[1] * images.shape[2]
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean ** 2, 0.0))
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


# --------------------------------------------------------------------------- augmentation
def _albumentations():
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no online version check
    import albumentations as A
    from albumentations.pytorch import ToTensorV2
    return A, ToTensorV2


def eval_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD):
    """Normalise only (uint8 HWC -> float CHW tensor)."""
    A, ToTensorV2 = _albumentations()
    return A.Compose([A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()], strict=True)


def s8_train_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD):
    """Session 8: horizontal flip (p=0.1) and rotation within +-10 degrees (p=0.1), black fill
    as torchvision's RandomRotation."""
    A, ToTensorV2 = _albumentations()
    return A.Compose([
        A.HorizontalFlip(p=0.1),
        A.Rotate(limit=10, border_mode=0, fill=0, p=0.1),  # 0 = cv2.BORDER_CONSTANT
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)


def flip_train_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                          p_flip: float = 0.5):
    """Horizontal flip only, with p=0.5: the lightest augmentation that helps a small
    network on CIFAR-10 (the tuned Session 8 recipe uses it)."""
    A, ToTensorV2 = _albumentations()
    return A.Compose([
        A.HorizontalFlip(p=p_flip),
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)


def s9_train_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                        p_flip: float = 0.5, p_affine: float = 0.5, p_cutout: float = 0.5,
                        cutout: int = 16):
    """Session 9: HorizontalFlip, ShiftScaleRotate (as Affine: shift 0.0625, scale 0.1,
    rotate 15, reflected borders as ShiftScaleRotate did) and one cutout x cutout hole
    filled with the mean colour (so it becomes 0 after normalisation)."""
    A, ToTensorV2 = _albumentations()
    fill = tuple(255.0 * m for m in mean)
    return A.Compose([
        A.HorizontalFlip(p=p_flip),
        A.Affine(translate_percent=(-0.0625, 0.0625), scale=(0.9, 1.1), rotate=(-15, 15),
                 border_mode=4, p=p_affine),  # 4 = cv2.BORDER_REFLECT_101
        A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(cutout, cutout),
                        hole_width_range=(cutout, cutout), fill=fill, p=p_cutout),
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)


AUGMENTATIONS = ("s8", "flip", "s9", "s9-light")


def train_transforms(name: str, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD):
    """The training pipeline called ``name``:

    * "s8": the Session 8 seed's flip and rotation, p=0.1 each;
    * "flip": horizontal flip, p=0.5;
    * "s9": the Session 9 seed's flip, shift-scale-rotate and cutout, p=0.5 each;
    * "s9-light": the same three, with shift-scale-rotate and cutout at p=0.25 only.
    """
    if name == "s8":
        return s8_train_transforms(mean, std)
    if name == "flip":
        return flip_train_transforms(mean, std)
    if name == "s9":
        return s9_train_transforms(mean, std)
    if name == "s9-light":
        return s9_train_transforms(mean, std, p_affine=0.25, p_cutout=0.25)
    raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)}")


def denormalize(x: torch.Tensor, mean: Sequence[float] = CIFAR10_MEAN,
                std: Sequence[float] = CIFAR10_STD) -> torch.Tensor:
    """Undo Normalize on a (C,H,W) or (N,C,H,W) tensor, clipped to [0, 1] for display."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)


def s9_preview_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> dict:
    """Each Session 9 augmentation alone (always applied) and the training pipeline as used."""
    return {
        "HorizontalFlip": s9_train_transforms(mean, std, p_flip=1.0, p_affine=0.0, p_cutout=0.0),
        "Affine (shift-scale-rotate)": s9_train_transforms(mean, std, p_flip=0.0, p_affine=1.0, p_cutout=0.0),
        "CoarseDropout 16x16": s9_train_transforms(mean, std, p_flip=0.0, p_affine=0.0, p_cutout=1.0),
        "all three (p=1)": s9_train_transforms(mean, std, p_flip=1.0, p_affine=1.0, p_cutout=1.0),
        "training pipeline": s9_train_transforms(mean, std),
    }


def augment_examples(image: np.ndarray, transform, n: int = 8, seed: int = 0,
                     mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> list[np.ndarray]:
    """``n`` augmented copies of one HWC uint8 image, turned back into HWC uint8 for display."""
    out = []
    for i in range(n):
        transform.set_random_seed(seed + i)
        x = denormalize(transform(image=image)["image"], mean, std)
        out.append((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return out


# --------------------------------------------------------------------------- datasets and loaders
class AugmentedCifar(Dataset):
    """Feeds HWC uint8 images through an albumentations pipeline.

    The augmentation of sample ``i`` in epoch ``e`` depends only on (seed, e, i), never on
    worker count or on what ran before, so runs are reproducible and resumable. Call
    ``set_epoch(e)`` before each epoch (``helpers.train.fit`` does).
    """

    def __init__(self, split: CifarSplit, transform, seed: int = 0):
        self.images, self.labels, self.classes = split.images, split.labels, split.classes
        self.transform, self.seed, self.epoch = transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        self.transform.set_random_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + int(i))
        image = self.transform(image=self.images[i])["image"]
        return image, int(self.labels[i])


def default_workers() -> int:
    """Data-loading workers for this machine: one per core, at most 4, none on a 1-core box."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores < 2 else min(4, cores)


class EpochSampler(Sampler[int]):
    """Shuffles with a permutation that depends only on (seed, epoch), like DistributedSampler,
    so an interrupted run resumed at epoch e sees exactly the order it would have seen."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())


def make_loader(dataset: Dataset, batch_size: int = 128, train: bool = True, seed: int = 0,
                num_workers: int | None = None, pin_memory: bool | None = None) -> DataLoader:
    """A DataLoader with a per-epoch seeded shuffle (train) and a worker count for the machine."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; check the data folder")
    workers = default_workers() if num_workers is None else num_workers
    return DataLoader(dataset, batch_size=batch_size, sampler=EpochSampler(len(dataset), seed, train),
                      num_workers=workers, persistent_workers=False,
                      pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
                      generator=torch.Generator().manual_seed(seed))
