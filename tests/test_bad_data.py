"""Damaged CIFAR-10 batches at full size: 10,000 images, ~31 MB, laid out like the official files.

Each damaged file must give ONE clear line (a CifarDataError naming the file), from the
library and from the command line, and nothing in it may run. What the checks catch:

* truncation anywhere;
* a flipped bit that breaks the pickle structure: an opcode, a length field, a memo
  reference, a key, the dtype, the shape, the array's memory order;
* labels outside 0-9;
* a crafted pickle that calls anything (os.system, ...).

What they cannot catch: a flipped bit inside the 30,720,000 pixel bytes, inside the batch
label or a file name, or one that turns a label into another valid label. The batch stays
well formed; only a checksum sees it. For a file with an official name and size,
helpers.data compares torchvision's md5 and warns (CifarDataWarning); other copies
(course subsets, the JPEG copy) have no reference checksum and load unchecked.
"""

import hashlib
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from payloads import Exploit
from torchvision.datasets import CIFAR10

from helpers import data

ROOT = Path(__file__).resolve().parents[1]
N = 10_000


class _Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 strings (SHORT_BINSTRING / BINSTRING), as cPickle
    wrote the official batches, so the test files have their opcodes and size."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(raw)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _py2_pickle(obj) -> bytes:
    f = io.BytesIO()
    _Py2Pickler(f, protocol=2).dump(obj)
    return f.getvalue()


def _batch(rows: np.ndarray, labels: list, batch_label: bytes = b"training batch 1 of 5") -> dict:
    return {b"batch_label": batch_label, b"labels": labels, b"data": rows,
            b"filenames": [f"data_batch_1_{i:05d}.png".encode() for i in range(len(rows))]}


@pytest.fixture(scope="module")
def full():
    """(pickled batch, pixel rows, labels, {name: opcode position}) of one full-size batch."""
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 256, size=(N, data.ROW_BYTES), dtype=np.uint8)
    labels = rng.integers(0, 10, size=N).tolist()
    blob = _py2_pickle(_batch(rows, labels))
    where = {}
    for op, arg, pos in pickletools.genops(blob):
        if op.name == "SHORT_BINSTRING" and arg in ("data", "labels", "u1"):
            where[f"'{arg}'"] = pos
        elif op.name == "BINSTRING":
            where["pixel string"] = pos
        elif op.name == "BININT2" and arg in (N, data.ROW_BYTES):
            where[f"shape {arg}"] = pos
        elif op.name in ("NEWFALSE", "LONG_BINPUT", "STOP", "EMPTY_DICT"):
            where[op.name] = pos  # the last of each: NEWFALSE is the array's Fortran flag
        elif op.name == "BININT1" and "label" not in where and pos > 60:
            where["label"] = pos
    return blob, rows, labels, where


def _folder(tmp_path: Path, blob: bytes, name: str = "data_batch_1") -> Path:
    """A CIFAR-10 folder (small synthetic test batch and meta) whose ``name`` holds ``blob``."""
    folder = data.write_synthetic_cifar(tmp_path, n_train=20, n_test=10, train_batches=1)
    (folder / name).write_bytes(blob)
    return folder / name


def _one_line_error(path: Path, match: str = "") -> str:
    """Load the train split; return the CifarDataError message after checking its form."""
    with pytest.raises(data.CifarDataError) as err:
        data.load_cifar10(path.parent, train=True, download=False)
    message = str(err.value)
    assert "\n" not in message and len(message) < 300, message
    assert str(path) in message and match in message, message
    assert err.value.__cause__ is None and (err.value.__context__ is None or err.value.__suppress_context__)
    return message


def test_the_test_batch_is_official_sized_and_loads(tmp_path, full):
    blob, rows, labels, _ = full
    assert abs(len(blob) - data.OFFICIAL_SIZES["data_batch_1"]) < 10_000  # like the real 31,035,704
    assert blob[:2] == b"\x80\x02" and b"U\x04data" in blob[:30_000]    # cPickle protocol 2, py2 strings
    path = _folder(tmp_path, blob)
    split = data.load_cifar10(path.parent, train=True, download=False)
    assert len(split) == N
    np.testing.assert_array_equal(split.images.transpose(0, 3, 1, 2).reshape(N, -1), rows)
    assert split.labels.tolist() == labels


@pytest.mark.parametrize("keep", [2, 70, 25_000, 15_000_000, -200, -1])
def test_truncated_full_size_batch_is_one_line(tmp_path, full, keep):
    """Cut after the header, in the labels, in the pixels, in the file names, before STOP."""
    blob = full[0]
    path = _folder(tmp_path, blob[:keep])
    _one_line_error(path, "is truncated or corrupt")


FLIPS = [  # (what, position in the batch's opcodes, offset from it, bit)
    ("PROTO opcode", None, 0, 7),
    ("protocol number 2 -> 6", None, 1, 2),
    ("dict opcode", "EMPTY_DICT", 0, 1),
    ("key 'labels'", "'labels'", 3, 0),
    ("key 'data'", "'data'", 2, 1),
    ("dtype name 'u1'", "'u1'", 3, 3),
    ("shape 10000", f"shape {N}", 2, 4),
    ("shape 3072", f"shape {data.ROW_BYTES}", 1, 0),
    ("Fortran flag", "NEWFALSE", 0, 0),
    ("pixel string opcode", "pixel string", 0, 2),
    ("pixel string length, low byte", "pixel string", 1, 0),
    ("pixel string length, high byte", "pixel string", 4, 6),
    ("a label -> 16..25", "label", 1, 4),
    ("last memo index -> opcode", "LONG_BINPUT", 0, 5),
    ("STOP", "STOP", 0, 0),
]


@pytest.mark.parametrize("what, anchor, offset, bit", FLIPS, ids=[f[0] for f in FLIPS])
def test_bit_flip_in_the_structure_is_one_line(tmp_path, full, what, anchor, offset, bit):
    blob, _, _, where = full
    at = (where[anchor] if anchor else 0) + offset
    damaged = bytearray(blob)
    damaged[at] ^= 1 << bit
    _one_line_error(_folder(tmp_path, bytes(damaged)))


def test_flips_the_structure_checks_cannot_see(tmp_path, full):
    """A flip in a pixel, a file name or a memo index leaves a well-formed batch (documented);
    the memo flip must not cost memory either (the C unpickler would grow its table to 2**26)."""
    blob, rows, labels, where = full
    pixel = where["pixel string"] + 5 + 1234  # opcode, 4-byte length, then the pixels
    memo = where["LONG_BINPUT"] + 4           # highest byte of the last memo index
    damaged = bytearray(blob)
    damaged[pixel] ^= 1
    damaged[memo] ^= 1 << 2
    path = _folder(tmp_path, bytes(damaged))
    tracemalloc.start()
    try:
        split = data.load_cifar10(path.parent, train=True, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 300e6, f"loading a 31 MB batch peaked at {peak / 1e6:.0f} MB"
    flat = split.images.transpose(0, 3, 1, 2).reshape(N, -1)
    assert (flat != rows).sum() == 1 and split.labels.tolist() == labels


@pytest.mark.parametrize("bad", [10, -1, 255])
def test_labels_out_of_range_at_full_size(tmp_path, full, bad):
    _, rows, labels, _ = full
    labels = list(labels)
    labels[9876] = bad
    path = _folder(tmp_path, _py2_pickle(_batch(rows, labels)))
    _one_line_error(path, f"first bad one: image 9876, label {bad}")


@pytest.mark.parametrize("place", ["first", "last"])
def test_malicious_full_size_batch_runs_nothing(tmp_path, full, place):
    _, rows, labels, _ = full
    marker = tmp_path / "pwned"
    batch = _batch(rows, labels)
    evil = {b"exploit": Exploit(marker)}
    batch = {**evil, **batch} if place == "first" else {**batch, **evil}
    path = _folder(tmp_path, pickle.dumps(batch, protocol=2))
    message = _one_line_error(path, "is not a safe CIFAR batch")
    assert "system" in message and not marker.exists()


def test_official_name_and_size_with_another_md5_warns_once(tmp_path, full, monkeypatch):
    """A damaged official file loads with a one-line warning; another size is not checked."""
    _, rows, labels, _ = full
    target = data.OFFICIAL_SIZES["data_batch_1"]
    base = len(_py2_pickle(_batch(rows, labels, b"")))
    pad = target - base - (3 if target - base >= 256 else 0)  # BINSTRING's length field is 3 bytes longer
    blob = _py2_pickle(_batch(rows, labels, b"x" * pad))
    assert len(blob) == target
    path = _folder(tmp_path, blob)
    with pytest.warns(data.CifarDataWarning) as record:
        assert len(data.load_cifar10(path.parent, train=True, download=False)) == N
    assert len(record) == 1
    message = str(record[0].message)
    assert "\n" not in message and str(path) in message and "c99cafc152244af753f735de768cd75f" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.CifarDataWarning)
        # one byte shorter is not an official size: not checked
        path.write_bytes(_py2_pickle(_batch(rows, labels, b"x" * (pad - 1))))
        assert len(data.load_cifar10(path.parent, train=True, download=False)) == N
        # the official-sized bytes under a matching md5 load silently: the comparison can pass
        path.write_bytes(blob)
        official = [["data_batch_1", hashlib.md5(blob).hexdigest()]] + CIFAR10.train_list[1:]
        monkeypatch.setattr(CIFAR10, "train_list", official)
        assert len(data.load_cifar10(path.parent, train=True, download=False)) == N


def test_command_line_ends_with_one_line_naming_the_file(tmp_path, full):
    """python -m helpers.run on a folder with a damaged file: `error: <one line>`, no traceback."""
    blob = full[0]
    cases = {  # flips and bad labels take the same path (a CifarDataError from load_cifar10)
        "truncated": blob[: len(blob) // 2],
        "malicious": pickle.dumps({b"data": Exploit(tmp_path / "pwned"), b"labels": [0]}, protocol=2),
    }
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "NO_ALBUMENTATIONS_UPDATE": "1"}  # the repo first, then what the machine adds (the GPU packages)
    runs = {}
    for name, damaged in cases.items():  # side by side: each start imports torch
        path = _folder(tmp_path / name, damaged)
        cmd = [sys.executable, "-m", "helpers.run", "s8", "--data-root", str(tmp_path / name), "--epochs", "1",
               "--device", "cpu", "--out", str(tmp_path / name / "out"), "--no-progress"]
        runs[name] = path, subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)
    try:
        for name, (path, proc) in runs.items():
            out, err = proc.communicate(timeout=120)
            lines = err.strip().splitlines()
            assert proc.returncode == 1, (name, proc.returncode, err)
            assert "Traceback" not in err and lines, (name, err)
            assert lines[-1].startswith("error: ") and str(path) in lines[-1], (name, err)
            assert not (tmp_path / name / "out").exists()
    finally:  # a hung or failed case must not leave the other process running
        for _, proc in runs.values():
            proc.kill()
            proc.wait()
    assert not (tmp_path / "pwned").exists()
