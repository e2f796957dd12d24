"""CIFAR-10 on disk, in memory and in a DataLoader.

The python version of CIFAR-10 is a folder ``cifar-10-batches-py/`` of pickled
batches. This module

* downloads it with torchvision's own download routine (URL and md5 from
  ``torchvision.datasets.CIFAR10``), or finds it under a data root;
* reads the batches with a *restricted* unpickler, so a crafted file cannot run
  code, and checks their structure, also for course subsets and copies that are
  not the official files (torchvision's md5 check rejects those);
* writes small synthetic datasets in exactly the same layout, for tests;
* holds out the last tenth of the training images as a validation split;
* builds the albumentations pipelines of Session 8 and Session 9 and the
  DataLoaders that feed them.

Damaged files. A truncated file, a crafted one, labels outside 0-9 and a flipped
bit that breaks the pickle structure (an opcode, a length, a key, the dtype, the
shape) raise CifarDataError with one line that names the file. A flipped bit
inside the pixel bytes, the file names, or one that turns a label into another
valid label leaves a well-formed batch: only a checksum sees it, and only the
official files have one. A file with an official name and size is therefore
checked against torchvision's md5 and a mismatch is a CifarDataWarning; subsets
and re-encoded copies (e.g. the course's JPEG copy) differ in size and are not.

Only numpy, torch, torchvision and albumentations are needed: the module can be
copied into an assignment on its own.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import os
import pickle
import random
import shutil
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

if TYPE_CHECKING:  # for the type hints only: albumentations is imported when a pipeline is built
    import albumentations as A

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
# Sizes in bytes of the files in the official cifar-10-python.tar.gz; their md5s are torchvision's.
OFFICIAL_SIZES = {"data_batch_1": 31035704, "data_batch_2": 31035320, "data_batch_3": 31035999,
                  "data_batch_4": 31035696, "data_batch_5": 31035623, "test_batch": 31035526,
                  "batches.meta": 158}


class CifarDataError(RuntimeError):
    """The CIFAR-10 files are missing or malformed; the one-line message names the file and the fix."""


class CifarDataWarning(UserWarning):
    """A file has an official CIFAR-10 name and size but not the official md5 (probably damaged)."""


# --------------------------------------------------------------------------- files
class _RefusedGlobal(pickle.UnpicklingError):
    """The file asked for a function or class that a CIFAR batch never needs."""


def _short(value: object, limit: int = 60) -> str:
    """ascii() of a value read from a file, cut to ``limit`` characters: safe in a message."""
    text = ascii(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


_RECONSTRUCT = np.zeros(1).__reduce__()[0]  # numpy's array rebuilder, whatever numpy version


class _Opcodes(dict):
    """The unpickler's dispatch table; an unknown opcode byte is a corrupt file, not a KeyError."""

    def __missing__(self, key: int):
        raise pickle.UnpicklingError(f"invalid opcode {key:#04x}")


class _BatchUnpickler(pickle._Unpickler):  # the pure-Python unpickler: see below
    """Unpickler that only rebuilds what a CIFAR batch holds: dicts, lists, str, bytes,
    ints and numpy arrays of numbers. Any other global (os.system, eval, ...) is refused,
    and the allowed ones only run with the arguments numpy and Python themselves write
    (so a damaged file cannot build, say, a uint8 dtype that claims to hold objects).

    It is the pure-Python unpickler (about as fast here: a batch is a few large strings),
    because a damaged file must not exhaust memory: the C unpickler grows its memo table
    to whatever index a corrupt LONG_BINPUT names (one flipped bit asked for 16 GB); this
    one keeps the memo in a dict, and every length it reads is bounded by the file.
    """

    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
        ("_codecs", "encode"): codecs.encode,  # how protocol 2 stores bytes
        ("__builtin__", "bytes"): bytes,
        ("builtins", "bytes"): bytes,
    }

    def find_class(self, module: str, name: str):
        try:
            return self._ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise _RefusedGlobal(
                f"refusing to load {_short(f'{module}.{name}')}: a CIFAR batch never contains it") from None

    @staticmethod
    def _call(func, args):
        """func(*args) for the calls a CIFAR batch makes; anything else is corrupt."""
        if isinstance(args, tuple):
            if func is np.dtype and len(args) == 3 and isinstance(args[0], str) \
                    and all(type(a) in (bool, int) and a in (0, 1) for a in args[1:]):
                dtype = np.dtype(args[0])  # ('u1', False, True); Python 2 wrote ('u1', 0, 1)
                if dtype.kind in "biuf" and dtype.names is None and dtype.subdtype is None:
                    return dtype
            if func is _RECONSTRUCT and len(args) == 3 and args[0] is np.ndarray and args[1] == (0,) \
                    and isinstance(args[2], (bytes, str)):
                return func(*args)
            if func is codecs.encode and len(args) == 2 and isinstance(args[0], str) \
                    and args[1] in ("latin1", "latin-1"):
                return func(*args)
            if func is bytes and args == ():
                return b""
        raise pickle.UnpicklingError(f"unexpected call {getattr(func, '__name__', '?')}{_short(args)}")

    @staticmethod
    def _build(inst, state) -> None:
        """inst.__setstate__(state) for the numpy states a CIFAR batch holds."""
        if isinstance(inst, np.dtype) and isinstance(state, tuple) and len(state) in (8, 9) \
                and state[0] in (3, 4) and state[1] in ("<", ">", "|", "=") \
                and state[2:5] == (None, None, None) and state[5:8] == (-1, -1, 0) and state[8:] in ((), (None,)):
            inst.__setstate__(state)
            return
        if isinstance(inst, np.ndarray) and isinstance(state, tuple) and len(state) == 5 and state[0] == 1 \
                and isinstance(state[1], tuple) and all(type(d) is int and d >= 0 for d in state[1]) \
                and isinstance(state[2], np.dtype) and not state[2].hasobject and state[3] is False \
                and isinstance(state[4], (bytes, str)):
            inst.__setstate__(state)  # numpy checks that the bytes fill the shape exactly
            return
        raise pickle.UnpicklingError(f"unexpected state {_short(state)} for a {type(inst).__name__}")

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._call(self.stack[-1], args)

    def _load_build(self) -> None:
        state = self.stack.pop()
        self._build(self.stack[-1], state)

    def _refuse(self) -> None:
        raise pickle.UnpicklingError("an opcode that a CIFAR batch never contains")

    dispatch = _Opcodes(pickle._Unpickler.dispatch)
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build
    for _op in (pickle.INST, pickle.OBJ, pickle.NEWOBJ, pickle.NEWOBJ_EX,  # class instances
                pickle.BYTEARRAY8, pickle.NEXT_BUFFER, pickle.READONLY_BUFFER):  # allocate before reading
        dispatch[_op[0]] = _refuse
    del _op


def _one_line(error: BaseException, limit: int = 160) -> str:
    """``Type: message`` of an exception on one line, shortened: for error messages."""
    text = " ".join(f"{type(error).__name__}: {error}".split()).rstrip(":")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_official_md5(path: Path, blob: bytes) -> None:
    """Warn (one line) when a file has an official name and size but another md5.

    The pickle structure is checked on every load, but a flipped bit inside the pixel
    bytes (or a label changed to another valid label) leaves a well-formed batch that
    only a checksum can catch. Only the official files have a known checksum: course
    subsets and re-encoded copies (e.g. from JPEG) differ in size and are not checked.
    """
    if OFFICIAL_SIZES.get(path.name) != len(blob):
        return
    from torchvision.datasets import CIFAR10

    official = dict(CIFAR10.train_list + CIFAR10.test_list + [[CIFAR10.meta["filename"], CIFAR10.meta["md5"]]])
    if path.name not in official:
        return
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    if md5 != official[path.name]:
        warnings.warn(f"{path} has the size of the official file but md5 {md5}, not {official[path.name]}: "
                      f"it is probably damaged; download or copy CIFAR-10 again", CifarDataWarning, stacklevel=3)


def safe_unpickle(path: str | os.PathLike) -> dict:
    """Load one CIFAR batch file without executing code; keys come back as str.

    Raises CifarDataError, with a one-line message naming ``path``, for an unreadable,
    truncated, corrupt or crafted file; only numpy arrays, dicts, lists, str, bytes and
    ints can be rebuilt, so nothing in the file is ever executed.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as e:
        raise CifarDataError(f"{path} cannot be read ({_one_line(e)}).") from None
    _check_official_md5(path, blob)
    try:
        # from memory: a corrupt length field can only run into the end of the bytes
        obj = _BatchUnpickler(io.BytesIO(blob), encoding="latin1").load()
    except _RefusedGlobal as e:
        raise CifarDataError(f"{path} is not a safe CIFAR batch ({e}). "
                             f"Replace it with the original file.") from None
    except Exception as e:  # truncated or corrupt: EOFError, UnpicklingError, ValueError, MemoryError...
        raise CifarDataError(f"{path} is truncated or corrupt ({_one_line(e)}). "
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
    try:
        labels = np.asarray(labels)
    except Exception as e:  # e.g. a ragged nested list
        raise CifarDataError(f"{path}: 'labels' is not a list of integers ({_one_line(e)}).") from None
    if labels.ndim != 1 or len(labels) != len(data):
        raise CifarDataError(f"{path}: {len(data)} images but {labels.size} labels.")
    if len(data) == 0:
        raise CifarDataError(f"{path} holds no images.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise CifarDataError(f"{path}: labels must be integers 0-9, found {labels.dtype} values.")
    if labels.min() < 0 or labels.max() > 9:
        bad = int(np.flatnonzero((labels < 0) | (labels > 9))[0])
        raise CifarDataError(f"{path}: labels must be integers 0-9, found {labels.min()}..{labels.max()} "
                             f"(first bad one: image {bad}, label {labels[bad]}).")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # CHW rows -> HWC images
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _read_meta(path: Path) -> list[str]:
    if not path.is_file():
        raise CifarDataError(f"{path} is missing; a CIFAR-10 folder needs {META_FILE} with the class names.")
    names = safe_unpickle(path).get("label_names")
    if not isinstance(names, list) or len(names) != 10:
        raise CifarDataError(f"{path}: 'label_names' must list 10 class names.")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


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
        new_folder = next((p for p in reversed([root, *root.parents]) if not p.exists()), None)
        try:
            download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                         md5=CIFAR10.tgz_md5)
        except Exception as e:  # URLError, timeouts, md5 mismatch: all mean "no data"
            if new_folder is not None:  # made for the download (a mistyped path): leave nothing behind
                shutil.rmtree(new_folder, ignore_errors=True)
            raise CifarDataError(_missing_message(root, f"{type(e).__name__}: {e}")) from None
    else:
        raise CifarDataError(_missing_message(root, "download=False"))
    found = _batches_dir(root)
    if found is None:
        raise CifarDataError(_missing_message(root, f"the archive held no '{FOLDER}/'"))
    return found


def official_files(folder: str | os.PathLike) -> bool:
    """Whether a ``cifar-10-batches-py`` folder holds the official files, judged by their sizes
    (``load_cifar10`` warns when a file of official size has another md5). A subset or a
    re-encoded copy, such as the course's JPEG copy, has other sizes."""
    paths = {name: Path(folder) / name for name in OFFICIAL_SIZES}
    return all(path.is_file() and path.stat().st_size == OFFICIAL_SIZES[name] for name, path in paths.items())


def describe_files(root: str | os.PathLike | None = None, relative_to: str | os.PathLike | None = None) -> str:
    """One line for a results table: where the ``cifar-10-batches-py`` folder under ``root`` is (as a path
    inside ``relative_to`` where it is one, e.g. the repository) and whether it holds the official files."""
    folder = ensure_cifar10(root, download=False)
    kind = "the official files" if official_files(folder) else "not the official files (a subset or a copy)"
    inside = relative_to is not None and folder.is_relative_to(relative_to)
    return f"CIFAR-10 in {folder.relative_to(relative_to) if inside else folder}, {kind}"


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
    """Load the train split (``data_batch_1`` up to the last one present: a subset keeps the first few)
    or the test split into memory, validated."""
    folder = ensure_cifar10(root, download)
    classes = _read_meta(folder / META_FILE)
    files = [folder / f for f in TRAIN_FILES if (folder / f).is_file()] if train else [folder / TEST_FILE]
    if not files or not files[0].is_file():
        wanted = "data_batch_1..5" if train else TEST_FILE
        raise CifarDataError(f"{folder} has no {wanted}; the CIFAR-10 folder is incomplete.")
    last = TRAIN_FILES.index(files[-1].name) if train else 0
    gaps = [f for f in TRAIN_FILES[:last] if not (folder / f).is_file()]
    if gaps:  # an extraction or copy cut short: training on what is left would go unnoticed
        raise CifarDataError(f"{folder} has {files[-1].name} but not {', '.join(gaps)}; "
                             "the CIFAR-10 folder is incomplete.")
    parts = [_read_batch(f) for f in files]
    return CifarSplit(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), classes)


def split_validation(split: CifarSplit, fraction: float = 0.1) -> tuple[CifarSplit, CifarSplit]:
    """(train, validation): the last ``fraction`` of ``split`` held out (5,000 of CIFAR-10's 50,000
    training images), for choosing settings without looking at the test batch."""
    n_val = int(round(len(split) * fraction))
    if not 0 < n_val < len(split):
        raise ValueError(f"cannot hold out {fraction:.0%} of {len(split)} images")
    cut = len(split) - n_val
    return (CifarSplit(split.images[:cut], split.labels[:cut], split.classes),
            CifarSplit(split.images[cut:], split.labels[cut:], split.classes))


def write_synthetic_cifar(root: str | os.PathLike, n_train: int = 500, n_test: int = 100,
                          seed: int = 0, train_batches: int = 2) -> Path:
    """Write a small, learnable dataset in the CIFAR-10 python layout and return its folder.

    Each class has its own background colour and a bright square at a
    class-dependent place, plus noise, so a small CNN beats chance in an epoch.
    ``n_train`` images are spread over ``train_batches`` files, each holding at least one.
    """
    if not 1 <= train_batches <= n_train or n_test < 1:
        raise ValueError(f"need 1 <= train_batches <= n_train and n_test >= 1 (every file holds an image), got "
                         f"n_train={n_train}, n_test={n_test}, train_batches={train_batches}")
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


def _cutout(mean: Sequence[float], size: int, p: float) -> A.BasicTransform:
    """One ``size`` x ``size`` hole filled with the mean colour (so it becomes 0 after normalisation)."""
    A, _ = _albumentations()
    return A.CoarseDropout(num_holes_range=(1, 1), hole_height_range=(size, size), hole_width_range=(size, size),
                           fill=tuple(255.0 * m for m in mean), p=p)


def eval_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> A.Compose:
    """Normalise only (uint8 HWC -> float CHW tensor)."""
    A, ToTensorV2 = _albumentations()
    return A.Compose([A.Normalize(mean=mean, std=std, max_pixel_value=255.0), ToTensorV2()], strict=True)


def s8_train_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                        p_flip: float = 0.1, p_rotate: float = 0.1) -> A.Compose:
    """Session 8: horizontal flip (p=0.1) and rotation within +-10 degrees (p=0.1), black fill
    as torchvision's RandomRotation."""
    A, ToTensorV2 = _albumentations()
    return A.Compose([
        A.HorizontalFlip(p=p_flip),
        A.Rotate(limit=10, border_mode=0, fill=0, p=p_rotate),  # 0 = cv2.BORDER_CONSTANT
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)


def flip_train_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                          p_flip: float = 0.5) -> A.Compose:
    """Horizontal flip only, with p=0.5: the lightest augmentation that helps a small
    network on CIFAR-10 (the tuned Session 8 GroupNorm recipe uses it)."""
    A, ToTensorV2 = _albumentations()
    return A.Compose([
        A.HorizontalFlip(p=p_flip),
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)


def s9_train_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                        p_flip: float = 0.5, p_affine: float = 0.5, p_cutout: float = 0.5,
                        cutout: int = 16, shift: float = 0.0625, scale: float = 0.1, rotate: float = 15.0) -> A.Compose:
    """Session 9: HorizontalFlip, ShiftScaleRotate (as Affine: shift +-``shift`` of the size, scale
    1 +- ``scale``, rotation +-``rotate`` degrees, reflected borders as ShiftScaleRotate did) and one
    cutout x cutout hole filled with the mean colour (so it becomes 0 after normalisation)."""
    A, ToTensorV2 = _albumentations()
    return A.Compose([
        A.HorizontalFlip(p=p_flip),
        A.Affine(translate_percent=(-shift, shift), scale=(1 - scale, 1 + scale), rotate=(-rotate, rotate),
                 border_mode=4, p=p_affine),  # 4 = cv2.BORDER_REFLECT_101
        _cutout(mean, cutout, p_cutout),
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)


def crop_flip_train_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                               pad: int = 2, size: int = 32, p_flip: float = 0.5, p_cutout: float = 0.0,
                               cutout: int = 16) -> A.Compose:
    """Random ``size`` x ``size`` crops of the image padded by ``pad`` reflected pixels (shifts of up
    to +-pad whole pixels) and horizontal flip p=0.5: the augmentation of fast short CIFAR-10
    training runs (e.g. KellerJordan/cifar10-airbench), lighter than shift-scale-rotate + cutout.
    ``p_cutout`` > 0 adds Session 9's cutout: one ``cutout`` x ``cutout`` hole of the mean colour."""
    A, ToTensorV2 = _albumentations()
    return A.Compose([
        A.PadIfNeeded(min_height=size + 2 * pad, min_width=size + 2 * pad, border_mode=4),  # 4 = REFLECT_101
        A.RandomCrop(height=size, width=size),
        A.HorizontalFlip(p=p_flip),
        *([_cutout(mean, cutout, p_cutout)] if p_cutout > 0 else []),
        A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
        ToTensorV2(),
    ], strict=True)


# The shift-scale-rotate ranges of the Session 9 seed document's code (session_9/s9.ipynb): a shift of up
# to 5 % of the size, scale 1 +- 0.05, rotation up to 10 degrees (the "s9-seed-code" augmentation).
S9_SEED_CODE_RANGES = (("shift", 0.05), ("scale", 0.05), ("rotate", 10.0))
AUGMENTATIONS = ("s8", "s8-seed-code", "flip", "s9", "s9-seed-code", "s9-light", "crop-flip", "crop-flip-cutout")


def train_transforms(name: str, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> A.Compose:
    """The training pipeline called ``name``:

    * "s8": the Session 8 seed document's flip and rotation, p=0.1 each;
    * "s8-seed-code": as its code did it (jyanivaddi/ERA_V1, session_8/s8.ipynb): flip p=0.1, rotation always;
    * "flip": horizontal flip, p=0.5;
    * "s9": the Session 9 seed's flip, shift-scale-rotate and cutout, p=0.5 each;
    * "s9-seed-code": the same with the ranges of its code (session_9/s9.ipynb): shift 0.05, scale 0.05,
      rotation 10 degrees;
    * "s9-light": the same three, with shift-scale-rotate and cutout at p=0.25 only;
    * "crop-flip": random crops of the image reflect-padded by 2 pixels, and horizontal flip p=0.5;
    * "crop-flip-cutout": the same and Session 9's 16x16 cutout of the mean colour, p=0.5.
    """
    if name == "s8":
        return s8_train_transforms(mean, std)
    if name == "s8-seed-code":
        return s8_train_transforms(mean, std, p_rotate=1.0)
    if name == "flip":
        return flip_train_transforms(mean, std)
    if name == "s9":
        return s9_train_transforms(mean, std)
    if name == "s9-seed-code":
        return s9_train_transforms(mean, std, **dict(S9_SEED_CODE_RANGES))
    if name == "s9-light":
        return s9_train_transforms(mean, std, p_affine=0.25, p_cutout=0.25)
    if name == "crop-flip":
        return crop_flip_train_transforms(mean, std)
    if name == "crop-flip-cutout":
        return crop_flip_train_transforms(mean, std, p_cutout=0.5)
    raise ValueError(f"unknown augmentation {name!r}; choose one of {', '.join(AUGMENTATIONS)}")


def denormalize(x: torch.Tensor, mean: Sequence[float] = CIFAR10_MEAN,
                std: Sequence[float] = CIFAR10_STD) -> torch.Tensor:
    """Undo Normalize on a (C,H,W) or (N,C,H,W) tensor, clipped to [0, 1] for display."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
    return (x * s + m).clamp(0, 1)


def s8_preview_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> dict:
    """Each Session 8 augmentation alone (always applied) and the training pipeline as used
    (p=0.1 each, so most training images pass unchanged)."""
    return {
        "HorizontalFlip": s8_train_transforms(mean, std, p_flip=1.0, p_rotate=0.0),
        "Rotate ±10° (black fill)": s8_train_transforms(mean, std, p_flip=0.0, p_rotate=1.0),
        "training pipeline": s8_train_transforms(mean, std),
    }


def s9_preview_transforms(mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD,
                          **ranges: float) -> dict:
    """Each Session 9 augmentation alone (always applied) and the training pipeline as used (p=0.5
    each); ``ranges`` (shift, scale, rotate) replace ``s9_train_transforms``' defaults, e.g.
    ``**dict(S9_SEED_CODE_RANGES)`` for the ranges the seed recipe trains with."""
    return {
        "HorizontalFlip": s9_train_transforms(mean, std, p_flip=1.0, p_affine=0.0, p_cutout=0.0, **ranges),
        "Affine (shift-scale-rotate)": s9_train_transforms(mean, std, p_flip=0.0, p_affine=1.0, p_cutout=0.0,
                                                           **ranges),
        "CoarseDropout 16x16": s9_train_transforms(mean, std, p_flip=0.0, p_affine=0.0, p_cutout=1.0, **ranges),
        "all three (p=1)": s9_train_transforms(mean, std, p_flip=1.0, p_affine=1.0, p_cutout=1.0, **ranges),
        "training pipeline": s9_train_transforms(mean, std, **ranges),
    }


def seed_transform(transform: A.Compose, seed: int) -> None:
    """Make the next call of an albumentations pipeline depend only on ``seed``.

    All its transforms share one generator pair and draw from it in turn, so they are
    applied independently. (``transform.set_random_seed(seed)`` gives every transform the
    same stream: transforms with equal p would then be applied all together or not at all.)
    """
    transform.set_random_state(np.random.default_rng(seed), random.Random(seed))


def augment_examples(image: np.ndarray, transform: A.Compose, n: int = 8, seed: int = 0,
                     mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD) -> list[np.ndarray]:
    """``n`` augmented copies of one HWC uint8 image, turned back into HWC uint8 for display."""
    out = []
    for i in range(n):
        seed_transform(transform, seed + i)
        x = denormalize(transform(image=image)["image"], mean, std)
        out.append((x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    return out


# --------------------------------------------------------------------------- datasets and loaders
# The epoch contract. The augmentation of sample i in epoch e depends only on (seed, e, i):
# not on the worker count, the worker that draws it, or what ran before. In a DataLoader the
# epoch travels *with each index*: EpochSampler (it runs in the main process) yields (epoch, i)
# pairs and AugmentedCifar seeds the transform from the pair it receives. Persistent workers
# hold copies of the dataset made when they started, so a set_epoch() on the main process's
# dataset never reaches them; an epoch read from those copies would repeat epoch 0 forever.
class AugmentedCifar(Dataset):
    """Feeds HWC uint8 images through an albumentations pipeline.

    The augmentation of sample ``i`` in epoch ``e`` depends only on (seed, e, i), never on
    worker count or on what ran before, so runs are reproducible and resumable.

    ``ds[i]`` uses the epoch of the last ``ds.set_epoch(e)``; ``ds[(e, i)]`` uses ``e``. The
    loaders of :func:`make_loader` pass (epoch, i) pairs from their :class:`EpochSampler`, so
    in a loader the sampler's epoch decides the augmentation: call
    ``loader.sampler.set_epoch(e)`` before each epoch (``helpers.train.fit`` does, and sets
    the dataset's epoch too).
    """

    def __init__(self, split: CifarSplit, transform, seed: int = 0):
        self.images, self.labels, self.classes = split.images, split.labels, split.classes
        self.transform, self.seed, self.epoch = transform, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch used by plain integer indexing (``ds[i]``)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = index if isinstance(index, tuple) else (self.epoch, index)
        seed_transform(self.transform, (self.seed * 1_000_003 + int(epoch)) * 1_000_003 + int(i))
        image = self.transform(image=self.images[i])["image"]
        return image, int(self.labels[i])


def default_workers() -> int:
    """Data-loading workers for this machine: every core but one (the main process feeds the
    model), at most 8, none on a 1-core machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores - 1))


class EpochSampler(Sampler):
    """Shuffles with a permutation that depends only on (seed, epoch), like DistributedSampler,
    so an interrupted run resumed at epoch e sees exactly the order it would have seen.

    With ``with_epoch=True`` it yields ``(epoch, index)`` pairs instead of indices, for a
    dataset (AugmentedCifar) that seeds its augmentation from them: the epoch then reaches
    DataLoader workers, persistent ones included, with every index.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, with_epoch: bool = False):
        self.n, self.seed, self.shuffle, self.with_epoch, self.epoch = n, seed, shuffle, with_epoch, 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next iteration: its order and, with ``with_epoch``, its augmentation."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = range(self.n)
        if not self.with_epoch:
            return iter(order)
        epoch = self.epoch  # fixed when the epoch starts
        return ((epoch, i) for i in order)


def make_loader(dataset: Dataset, batch_size: int = 128, train: bool = True, seed: int = 0,
                num_workers: int | None = None, pin_memory: bool | None = None, *,
                drop_last: bool = False, prefetch_factor: int = 4) -> DataLoader:
    """A DataLoader with a per-epoch seeded shuffle (train) and a worker count for the machine.

    * ``num_workers``: None picks :func:`default_workers`; 0 loads in the main process.
    * Workers are persistent (started once, not every epoch) and each keeps
      ``prefetch_factor`` batches ready; ``pin_memory`` (default: when CUDA is available)
      lets ``x.to("cuda", non_blocking=True)`` overlap the copy with compute.
    * Epochs: call ``loader.sampler.set_epoch(e)`` before each epoch (``helpers.train.fit``
      does). For an AugmentedCifar the sampler passes (epoch, index) pairs, so sample i of
      epoch e is augmented the same way whatever the worker count and however the loader
      was made. Another dataset gets plain indices; if it has its own ``set_epoch``, its
      workers are restarted every epoch so that they see it.
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if num_workers is not None and (not isinstance(num_workers, int) or isinstance(num_workers, bool)
                                    or num_workers < 0):
        raise ValueError(f"num_workers must be 0 (load in the main process) or a positive number of "
                         f"worker processes, got {num_workers!r}")
    if len(dataset) == 0:
        raise ValueError("the dataset is empty; check the data folder")
    workers = default_workers() if num_workers is None else num_workers
    with_epoch = isinstance(dataset, AugmentedCifar)
    # A dataset that reads its epoch from its own attribute needs fresh workers every epoch.
    persistent = workers > 0 and (with_epoch or not hasattr(dataset, "set_epoch"))
    return DataLoader(dataset, batch_size=batch_size,
                      sampler=EpochSampler(len(dataset), seed, train, with_epoch=with_epoch),
                      num_workers=workers, persistent_workers=persistent, drop_last=drop_last,
                      prefetch_factor=prefetch_factor if workers > 0 else None,
                      pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
                      generator=torch.Generator().manual_seed(seed))
