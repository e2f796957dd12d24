import pickle
import shutil
import tarfile
import urllib.error

import numpy as np
import pytest
import torch
from payloads import Exploit

from helpers import data


def _copy(src, dst):
    shutil.copytree(src / data.FOLDER, dst / data.FOLDER)
    return dst / data.FOLDER


# ---------------------------------------------------------------- loading
def test_synthetic_data_round_trips_through_the_loader(cifar_root, splits):
    train, test = splits
    assert train.images.shape == (1024, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (200, 32, 32, 3)
    assert train.labels.dtype == np.int64 and set(np.unique(train.labels)) <= set(range(10))
    assert train.classes == list(data.CLASS_NAMES)
    # the on-disk rows are CHW-ordered like the official files
    raw = data.safe_unpickle(cifar_root / data.FOLDER / "data_batch_1")
    np.testing.assert_array_equal(raw["data"][0].reshape(3, 32, 32).transpose(1, 2, 0), train.images[0])


def test_same_seed_writes_the_same_data(tmp_path):
    a = data.write_synthetic_cifar(tmp_path / "a", 64, 16, seed=3)
    b = data.write_synthetic_cifar(tmp_path / "b", 64, 16, seed=3)
    assert (a / "data_batch_1").read_bytes() == (b / "data_batch_1").read_bytes()


def test_root_comes_from_argument_then_environment(monkeypatch, cifar_root):
    monkeypatch.setenv("CIFAR10_ROOT", str(cifar_root))
    assert data.data_root() == cifar_root
    assert data.data_root("elsewhere").name == "elsewhere"
    monkeypatch.delenv("CIFAR10_ROOT")
    assert str(data.data_root()) == "data"
    # the batches folder itself is accepted as a root too
    assert len(data.load_cifar10(cifar_root / data.FOLDER, train=False)) == 200


def test_archive_in_root_is_extracted(tmp_path, cifar_root):
    with tarfile.open(tmp_path / data.ARCHIVE, "w:gz") as tar:
        tar.add(cifar_root / data.FOLDER, arcname=data.FOLDER)
    assert len(data.load_cifar10(tmp_path, train=True)) == 1024


def test_missing_data_offline_gives_one_clear_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(data.CifarDataError) as err:
        data.load_cifar10(tmp_path / "nowhere")
    message = str(err.value)
    assert data.ARCHIVE in message and data.FOLDER in message and "nowhere" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained urllib traceback
    with pytest.raises(data.CifarDataError, match="download=False"):
        data.ensure_cifar10(tmp_path / "nowhere", download=False)


@pytest.mark.parametrize("damage, expected", [
    (lambda d: d.update(data=d["data"][:, :3000]), "3072 bytes"),
    (lambda d: d.update(labels=[12] * len(d["labels"])), "labels must be integers 0-9"),
    (lambda d: d.update(labels=d["labels"][:-1]), "labels"),
    (lambda d: d.update(data=d["data"][:0], labels=[]), "no images"),
    (lambda d: d.pop("labels"), "lacks the key"),
    (lambda d: d.update(data=d["data"].astype(np.float32)), "uint8"),
])
def test_malformed_batch_names_the_file(tmp_path, cifar_root, damage, expected):
    folder = _copy(cifar_root, tmp_path)
    batch = data.safe_unpickle(folder / "data_batch_2")
    damage(batch)
    with open(folder / "data_batch_2", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    with pytest.raises(data.CifarDataError, match=expected) as err:
        data.load_cifar10(tmp_path)
    assert "data_batch_2" in str(err.value)


def test_truncated_batch_and_missing_meta(tmp_path, cifar_root):
    folder = _copy(cifar_root, tmp_path)
    blob = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.CifarDataError, match="test_batch is truncated or corrupt"):
        data.load_cifar10(tmp_path, train=False)
    (folder / data.META_FILE).unlink()
    with pytest.raises(data.CifarDataError, match="batches.meta"):
        data.load_cifar10(tmp_path, train=True)


def test_crafted_batch_runs_no_code(tmp_path, cifar_root):
    folder = _copy(cifar_root, tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({"data": Exploit(marker), "labels": [0]}, f, protocol=2)
    with pytest.raises(data.CifarDataError, match="not a safe CIFAR batch.*posix.system|not a safe CIFAR batch"):
        data.load_cifar10(tmp_path)
    assert not marker.exists()
    # the same payload through plain pickle would have run: the test can fail
    pickle.loads(pickle.dumps(Exploit(marker)))
    assert marker.exists()


# ---------------------------------------------------------------- statistics
def test_mean_std_matches_numpy(splits):
    images = splits[0].images
    mean, std = data.mean_std(images, chunk=100)  # several chunks
    x = images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, x.mean(axis=(0, 1, 2)), atol=1e-10)
    np.testing.assert_allclose(std, x.std(axis=(0, 1, 2)), atol=1e-10)
    assert data.CIFAR10_STD == (0.2470, 0.2435, 0.2616)
    assert data.CIFAR10_MEAN == (0.4914, 0.4822, 0.4465)


# ---------------------------------------------------------------- augmentation
def _by_name(compose):
    return {type(t).__name__: t for t in compose.transforms}


def test_pipelines_are_strict_and_use_albumentations_2_arguments():
    s8, s9 = _by_name(data.s8_train_transforms()), _by_name(data.s9_train_transforms())
    assert data.s8_train_transforms().strict and data.s9_train_transforms().strict
    assert s8["HorizontalFlip"].p == 0.1 and s8["Rotate"].p == 0.1 and tuple(s8["Rotate"].limit) == (-10, 10)
    cut = s9["CoarseDropout"]
    assert cut.num_holes_range == (1, 1) and cut.hole_height_range == (16, 16) and cut.hole_width_range == (16, 16)
    np.testing.assert_allclose(cut.fill, [255 * m for m in data.CIFAR10_MEAN])
    aff = s9["Affine"]
    assert aff.rotate == (-15, 15) and aff.scale == {"x": (0.9, 1.1), "y": (0.9, 1.1)}
    assert aff.translate_percent == {"x": (-0.0625, 0.0625), "y": (-0.0625, 0.0625)}
    assert list(_by_name(data.eval_transforms())) == ["Normalize", "ToTensorV2"]


def test_augmentations_by_name():
    assert data.AUGMENTATIONS == ("s8", "flip", "s9", "s9-light")
    for name in data.AUGMENTATIONS:
        assert data.train_transforms(name).strict
    assert list(_by_name(data.train_transforms("s8"))) == list(_by_name(data.s8_train_transforms()))
    assert list(_by_name(data.train_transforms("s9"))) == list(_by_name(data.s9_train_transforms()))
    light = _by_name(data.train_transforms("s9-light"))
    assert (light["HorizontalFlip"].p, light["Affine"].p, light["CoarseDropout"].p) == (0.5, 0.25, 0.25)
    flip = data.train_transforms("flip")
    assert list(_by_name(flip)) == ["HorizontalFlip", "Normalize", "ToTensorV2"] and flip.transforms[0].p == 0.5
    image = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    mirrored = data.flip_train_transforms(p_flip=1.0)(image=image)["image"]
    torch.testing.assert_close(mirrored, data.eval_transforms()(image=image[:, ::-1].copy())["image"])
    with pytest.raises(ValueError, match="s8, flip, s9, s9-light"):
        data.train_transforms("crop")


def test_cutout_leaves_one_16x16_hole_of_mean_colour():
    image = np.full((32, 32, 3), 200, np.uint8)
    tf = data.s9_train_transforms(p_flip=0.0, p_affine=0.0, p_cutout=1.0)
    for seed in range(5):
        tf.set_random_seed(seed)
        x = tf(image=image)["image"]                  # normalised: mean colour becomes ~0
        hole = (x.abs() < 0.02).all(0)                # all three channels at the mean
        rows, cols = hole.nonzero(as_tuple=True)
        assert hole.sum() == 256
        assert rows.max() - rows.min() == 15 and cols.max() - cols.min() == 15
        assert not (x.abs() < 0.02).all(0)[~hole].any()


def test_eval_transform_normalises_and_denormalize_inverts(splits):
    image = splits[1].images[0]
    x = data.eval_transforms()(image=image)["image"]
    expected = (torch.tensor(image).permute(2, 0, 1) / 255 - torch.tensor(data.CIFAR10_MEAN).view(3, 1, 1)) \
        / torch.tensor(data.CIFAR10_STD).view(3, 1, 1)
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(data.denormalize(x), torch.tensor(image).permute(2, 0, 1) / 255, atol=1e-5, rtol=0)


def test_augment_examples_are_images_and_seeded(splits):
    image = splits[0].images[0]
    a = data.augment_examples(image, data.s9_train_transforms(p_cutout=1.0), n=4, seed=7)
    b = data.augment_examples(image, data.s9_train_transforms(p_cutout=1.0), n=4, seed=7)
    assert all(x.shape == (32, 32, 3) and x.dtype == np.uint8 for x in a)
    assert all((x == y).all() for x, y in zip(a, b))
    assert set(data.s9_preview_transforms()) >= {"HorizontalFlip", "CoarseDropout 16x16"}


# ---------------------------------------------------------------- dataset and loaders
def test_augmentation_depends_only_on_seed_epoch_and_index(splits):
    ds = data.AugmentedCifar(splits[0], data.s9_train_transforms(p_flip=1.0, p_affine=1.0, p_cutout=1.0), seed=5)
    ds.set_epoch(3)
    first, label = ds[10]
    _ = ds[11]
    again, _ = ds[10]
    torch.testing.assert_close(first, again)
    assert label == int(splits[0].labels[10]) and first.shape == (3, 32, 32)
    ds.set_epoch(4)
    assert not torch.equal(ds[10][0], first)


def test_loader_order_is_per_epoch_and_workers_do_not_matter(splits):
    ds = data.AugmentedCifar(splits[1], data.s9_train_transforms(), seed=1)
    batches = []
    for workers in (0, 2):
        loader = data.make_loader(ds, 64, train=True, seed=1, num_workers=workers)
        loader.sampler.set_epoch(2)
        ds.set_epoch(2)
        batches.append(next(iter(loader)))
    torch.testing.assert_close(batches[0][0], batches[1][0])
    assert torch.equal(batches[0][1], batches[1][1])
    loader.sampler.set_epoch(3)
    assert list(loader.sampler) != list(range(len(ds))) and len(list(loader.sampler)) == len(ds)
    assert 0 <= data.default_workers() <= 4


def test_loader_rejects_bad_batch_size_and_empty_data(splits):
    ds = data.AugmentedCifar(splits[1], data.eval_transforms())
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            data.make_loader(ds, bad)
    empty = data.CifarSplit(splits[1].images[:0], splits[1].labels[:0], splits[1].classes)
    with pytest.raises(ValueError, match="empty"):
        data.make_loader(data.AugmentedCifar(empty, data.eval_transforms()), 8)
