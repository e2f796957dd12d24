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


def test_validation_split_holds_out_the_last_tenth():
    split = data.CifarSplit(np.zeros((50, 32, 32, 3), np.uint8), np.arange(50) % 10, list(data.CLASS_NAMES))
    train_split, val_split = data.split_validation(split)
    assert (len(train_split), len(val_split)) == (45, 5) and list(val_split.labels) == [5, 6, 7, 8, 9]
    assert list(train_split.labels[-5:]) == [0, 1, 2, 3, 4] and train_split.classes == split.classes
    with pytest.raises(ValueError, match="cannot hold out 10% of 3 images"):  # a tenth of 3 images rounds to none
        data.split_validation(data.CifarSplit(split.images[:3], split.labels[:3], split.classes))


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


def test_official_files_are_told_by_their_sizes(tmp_path, cifar_root):
    assert not data.official_files(cifar_root / data.FOLDER)  # synthetic files: other sizes
    folder = tmp_path / data.FOLDER
    folder.mkdir()
    for name, size in data.OFFICIAL_SIZES.items():  # sparse files of the official sizes
        with open(folder / name, "wb") as f:
            f.truncate(size)
    assert data.official_files(folder)
    with open(folder / "test_batch", "ab") as f:  # one file a byte longer
        f.write(b"\0")
    assert not data.official_files(folder)
    (folder / "test_batch").unlink()
    assert not data.official_files(folder)


def test_describe_files_names_the_folder_inside_the_repository_and_its_kind(tmp_path, cifar_root):
    described = data.describe_files(cifar_root, relative_to=cifar_root)
    assert described == f"CIFAR-10 in {data.FOLDER}, not the official files (a subset or a copy)"
    elsewhere = data.describe_files(cifar_root, relative_to=tmp_path / "repo")  # not inside it: the whole path
    assert elsewhere.startswith(f"CIFAR-10 in {cifar_root / data.FOLDER}, ")


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


def test_a_missing_training_batch_between_others_is_an_error(tmp_path):
    """data_batch_1, 2 and 4 without 3 (a copy cut short) used to train on what was there, unnoticed."""
    folder = data.write_synthetic_cifar(tmp_path, 400, 50, train_batches=4)
    assert len(data.load_cifar10(tmp_path, download=False)) == 400
    (folder / "data_batch_4").unlink()  # a subset: the first batches, none missing
    assert len(data.load_cifar10(tmp_path, download=False)) == 300
    (folder / "data_batch_2").unlink()
    with pytest.raises(data.CifarDataError, match=r"has data_batch_3 but not data_batch_2;"):
        data.load_cifar10(tmp_path, download=False)
    assert len(data.load_cifar10(tmp_path, train=False, download=False)) == 50  # the test split is not affected


def test_crafted_batch_runs_no_code(tmp_path, cifar_root):
    folder = _copy(cifar_root, tmp_path)
    marker = tmp_path / "pwned"
    with open(folder / "data_batch_1", "wb") as f:
        pickle.dump({"data": Exploit(marker), "labels": [0]}, f, protocol=2)
    with pytest.raises(data.CifarDataError, match="not a safe CIFAR batch") as error:
        data.load_cifar10(tmp_path)
    assert "system" in str(error.value)  # it names what the pickle asked for (posix.system or nt.system)
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
    assert data.AUGMENTATIONS == ("s8", "s8-seed-code", "flip", "s9", "s9-seed-code", "s9-light", "crop-flip",
                                  "crop-flip-cutout")
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
    code = _by_name(data.train_transforms("s9-seed-code"))  # jyanivaddi/ERA_V1 session_9/s9.ipynb
    assert code["Affine"].rotate == (-10, 10) and code["Affine"].scale == {"x": (0.95, 1.05), "y": (0.95, 1.05)}
    assert (code["HorizontalFlip"].p, code["Affine"].p, code["CoarseDropout"].p) == (0.5, 0.5, 0.5)
    s8_code = _by_name(data.train_transforms("s8-seed-code"))  # session_8/s8.ipynb: RandomRotation always
    assert (s8_code["HorizontalFlip"].p, s8_code["Rotate"].p) == (0.1, 1.0)
    with pytest.raises(ValueError, match="s9-light, crop-flip, crop-flip-cutout"):
        data.train_transforms("crop")


def test_crop_flip_is_a_random_crop_of_the_reflect_padded_image():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    padded = np.pad(image, ((2, 2), (2, 2), (0, 0)), mode="reflect")  # numpy's "reflect" is REFLECT_101
    tf = data.crop_flip_train_transforms(p_flip=0.0)
    windows = set()
    for i in range(60):
        tf.set_random_seed(i)  # seeded: a failure reproduces
        out = tf(image=image)["image"]
        found = [(top, left) for top in range(5) for left in range(5) if torch.allclose(
            out, data.eval_transforms()(image=padded[top:top + 32, left:left + 32].copy())["image"], atol=1e-6)]
        assert len(found) == 1, found  # borders included: one window of the padded image
        windows.add(found[0])
    assert len(windows) > 12  # of the 25 possible


@pytest.mark.parametrize("pipeline", [lambda: data.s9_train_transforms(p_flip=0.0, p_affine=0.0, p_cutout=1.0),
                                      lambda: data.crop_flip_train_transforms(p_flip=0.0, p_cutout=1.0)],
                         ids=["s9", "crop-flip-cutout"])
def test_cutout_leaves_one_16x16_hole_of_mean_colour(pipeline):
    image = np.full((32, 32, 3), 200, np.uint8)
    tf = pipeline()
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
    assert len({x.tobytes() for x in a}) == 4  # each example its own draw (cutout always on: never the same)
    assert set(data.s9_preview_transforms()) >= {"HorizontalFlip", "CoarseDropout 16x16"}


def test_s9_preview_can_show_the_seed_recipes_ranges():
    """The notebook previews each transform with the ranges the seed recipe trains with."""
    seed_code = _by_name(data.train_transforms("s9-seed-code"))["Affine"]
    previews = data.s9_preview_transforms(**dict(data.S9_SEED_CODE_RANGES))
    alone = _by_name(previews["Affine (shift-scale-rotate)"])["Affine"]
    assert alone.p == 1.0 and seed_code.p == 0.5
    for field in ("rotate", "scale", "translate_percent"):
        assert getattr(alone, field) == getattr(seed_code, field)
    assert tuple(alone.rotate) == (-10.0, 10.0)
    default = _by_name(data.s9_preview_transforms()["Affine (shift-scale-rotate)"])["Affine"]
    assert tuple(default.rotate) == (-15.0, 15.0)  # without ranges: the "s9" augmentation's


def test_s8_preview_applies_each_transform_for_certain():
    previews = data.s8_preview_transforms()
    assert list(previews) == ["HorizontalFlip", "Rotate ±10° (black fill)", "training pipeline"]
    flip, rotate, trained = (_by_name(previews[k]) for k in previews)
    assert (flip["HorizontalFlip"].p, flip["Rotate"].p) == (1.0, 0.0)
    assert (rotate["HorizontalFlip"].p, rotate["Rotate"].p) == (0.0, 1.0)
    assert (trained["HorizontalFlip"].p, trained["Rotate"].p) == (0.1, 0.1)
    for r in (rotate["Rotate"], trained["Rotate"]):  # the same rotation as in training
        assert tuple(r.limit) == (-10, 10) and r.border_mode == 0 and r.fill == 0
    image = np.full((32, 32, 3), 200, np.uint8)
    image[:, :8] = 40                                 # not mirror-symmetric
    mirrored = data.augment_examples(image, previews["HorizontalFlip"], n=3)
    assert all((m == image[:, ::-1]).all() for m in mirrored)
    rotated = data.augment_examples(image, previews["Rotate ±10° (black fill)"], n=6)
    assert all((r != image).any() for r in rotated)
    assert sum((r == 0).all(-1).any() for r in rotated) >= 4  # black corners (a tiny angle leaves none)


def test_pipeline_draws_are_independent_across_transforms():
    """seed_transform: flip and rotation (p=0.1 each) happen alone too, not only together."""
    tf = data.s8_train_transforms()
    image = (np.arange(32 * 32 * 3) % 251).astype(np.uint8).reshape(32, 32, 3)
    plain = data.eval_transforms()(image=image)["image"]
    mirrored = data.eval_transforms()(image=image[:, ::-1].copy())["image"]
    outcomes = {"unchanged": 0, "flip only": 0, "rotated": 0}
    for seed in range(400):
        data.seed_transform(tf, seed)
        x = tf(image=image)["image"]
        outcomes["unchanged" if torch.equal(x, plain) else "flip only" if torch.equal(x, mirrored) else "rotated"] += 1
    assert 0.75 < outcomes["unchanged"] / 400 < 0.87  # 0.9 * 0.9 = 0.81
    assert outcomes["flip only"] >= 20                # 0.09 * 400 = 36; 0 if both shared one stream


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


def _run_epoch(loader, epoch):
    """One epoch as helpers.train.fit runs it (its _set_epoch: loader, sampler, dataset).

    Returns the batches in order and the images re-sorted by dataset index."""
    for part in (loader, loader.sampler, loader.dataset):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)
    batches = [(x.clone(), y.clone()) for x, y in loader]
    order = [i[1] if isinstance(i, tuple) else i for i in loader.sampler]
    by_index = torch.empty_like(torch.cat([x for x, _ in batches]))
    by_index[torch.tensor(order)] = torch.cat([x for x, _ in batches])
    return batches, by_index


def _fresh_fraction(a, b):
    """Fraction of images whose augmentation differs between two epochs."""
    return (a != b).flatten(1).any(1).float().mean().item()


def _same_batches(a, b):
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


def test_persistent_workers_augment_each_epoch_afresh_and_reproducibly(splits):
    """The epoch contract with persistent workers: sample i of epoch e depends on (seed, e, i) only."""
    transform = data.s9_train_transforms(p_flip=0.5, p_affine=1.0, p_cutout=1.0)

    def loader(workers):
        return data.make_loader(data.AugmentedCifar(splits[1], transform, seed=1), 64, train=True, seed=1,
                                num_workers=workers)

    first = loader(2)
    assert first.num_workers == 2 and first.persistent_workers
    batches1, images1 = _run_epoch(first, 1)
    batches2, images2 = _run_epoch(first, 2)
    assert _fresh_fraction(images1, images2) > 0.9            # epoch 2 is not epoch 1 again
    assert _same_batches(_run_epoch(loader(2), 2)[0], batches2)  # a fresh loader (a resumed run)
    assert _same_batches(_run_epoch(loader(0), 2)[0], batches2)  # and the worker count does not matter
    assert _same_batches(_run_epoch(first, 1)[0], batches1)      # going back to epoch 1 repeats it

    # What the first assertion guards against: persistent workers whose dataset copy keeps the
    # epoch it had when they started. Such a loader repeats epoch 1's augmentation.
    ds = data.AugmentedCifar(splits[1], transform, seed=1)
    stale = torch.utils.data.DataLoader(ds, 64, sampler=data.EpochSampler(len(ds), seed=1), num_workers=2,
                                        persistent_workers=True)
    assert _fresh_fraction(_run_epoch(stale, 1)[1], _run_epoch(stale, 2)[1]) == 0.0


def test_sampler_order_depends_on_seed_and_epoch_and_carries_the_epoch(splits):
    sampler = data.EpochSampler(50, seed=3, with_epoch=True)
    sampler.set_epoch(2)
    pairs = list(sampler)
    assert {e for e, _ in pairs} == {2} and sorted(i for _, i in pairs) == list(range(50))
    assert [i for _, i in pairs] != list(range(50))
    assert list(sampler) == pairs
    sampler.set_epoch(3)
    assert [i for _, i in sampler] != [i for _, i in pairs]
    assert list(data.EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]
    ds = data.AugmentedCifar(splits[1], data.s9_train_transforms(p_cutout=1.0), seed=4)
    ds.set_epoch(7)
    torch.testing.assert_close(ds[(7, 3)][0], ds[3][0], rtol=0, atol=0)
    assert not torch.equal(ds[(6, 3)][0], ds[3][0])


def test_default_workers_leave_a_core_for_the_model(monkeypatch):
    for cores, expected in ((1, 0), (2, 1), (5, 4), (16, 8), (64, 8)):
        monkeypatch.setattr(data.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert data.default_workers() == expected


def test_loader_options(splits):
    ds = data.AugmentedCifar(splits[1], data.eval_transforms())  # 200 images
    assert len(data.make_loader(ds, 64, num_workers=0)) == 4
    assert len(data.make_loader(ds, 64, num_workers=0, drop_last=True)) == 3
    plain = data.make_loader(ds, 64, num_workers=0, pin_memory=False)
    assert not plain.pin_memory and not plain.persistent_workers and plain.num_workers == 0
    assert data.make_loader(ds, 64, num_workers=0).pin_memory == torch.cuda.is_available()
    workers = data.make_loader(ds, 64, num_workers=2, pin_memory=True)  # no worker starts before iter()
    assert workers.persistent_workers and workers.prefetch_factor == 4 and workers.pin_memory
    assert data.make_loader(ds, 64).num_workers == data.default_workers()
    # other datasets get plain indices; one with its own set_epoch gets fresh workers every epoch
    tensors = torch.utils.data.TensorDataset(torch.arange(10.0))
    assert torch.equal(next(iter(data.make_loader(tensors, 4, train=False, num_workers=0)))[0], torch.arange(4.0))
    assert data.make_loader(tensors, 4, num_workers=2).persistent_workers

    class OwnEpoch(torch.utils.data.TensorDataset):
        def set_epoch(self, epoch):
            self.epoch = epoch

    assert not data.make_loader(OwnEpoch(torch.arange(10.0)), 4, num_workers=2).persistent_workers


@pytest.mark.parametrize("bad", [-1, -4, 1.5, "2"])
def test_loader_rejects_bad_worker_counts_in_one_sentence(splits, bad):
    ds = data.AugmentedCifar(splits[1], data.eval_transforms())
    with pytest.raises(ValueError, match="num_workers") as err:
        data.make_loader(ds, 8, num_workers=bad)
    message = str(err.value)
    assert "\n" not in message and message.count(". ") == 0 and repr(bad) in message


def test_loader_rejects_bad_batch_size_and_empty_data(splits):
    ds = data.AugmentedCifar(splits[1], data.eval_transforms())
    for bad in (0, -3):
        with pytest.raises(ValueError, match="batch_size"):
            data.make_loader(ds, bad)
    empty = data.CifarSplit(splits[1].images[:0], splits[1].labels[:0], splits[1].classes)
    with pytest.raises(ValueError, match="empty"):
        data.make_loader(data.AugmentedCifar(empty, data.eval_transforms()), 8)


@pytest.mark.parametrize("n_train, n_test, batches", [(1, 10, 2), (10, 0, 1), (10, 10, 0)])
def test_synthetic_data_refuses_sizes_it_could_not_load_again(tmp_path, n_train, n_test, batches):
    """One image in two batch files wrote an empty data_batch_2, which load_cifar10 then refused."""
    with pytest.raises(ValueError, match="every file holds an image"):
        data.write_synthetic_cifar(tmp_path, n_train=n_train, n_test=n_test, train_batches=batches)
    assert not list(tmp_path.rglob("*_batch*"))
