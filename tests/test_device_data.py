"""The on-device loader must match the albumentations pipeline statistically (checked on CPU tensors)."""
import pytest
import torch

from helpers import data
from helpers.device_data import PRESETS, DeviceLoader, augment_batch


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_flip_rate_is_p_flip():
    x = torch.zeros(4000, 3, 8, 8)
    x[..., :4] = 1.0                                  # left half bright: a flip moves it right
    out = augment_batch(x, _generator(), p_flip=0.5, p_affine=0.0, p_cutout=0.0)
    flipped = (out[:, 0, 0, 7] == 1.0).float().mean().item()
    assert 0.47 < flipped < 0.53
    assert torch.equal(augment_batch(x, _generator(), p_flip=0.0, p_affine=0.0, p_cutout=0.0), x)


def test_cutout_is_one_16x16_hole_of_mean_colour():
    x = torch.ones(500, 3, 32, 32)
    out = augment_batch(x, _generator(1), p_flip=0.0, p_affine=0.0, p_cutout=1.0)
    mean = torch.tensor(data.CIFAR10_MEAN).view(1, 3, 1, 1)
    hole = (out == mean).all(1)                       # (N, H, W)
    assert (hole.sum((1, 2)) == 256).all()
    rows, cols = hole.any(2), hole.any(1)
    assert (rows.sum(1) == 16).all() and (cols.sum(1) == 16).all()
    corners = {(r.nonzero()[0].item(), c.nonzero()[0].item()) for r, c in zip(rows, cols)}
    assert len(corners) > 150  # top and left drawn independently: ~240 of the 17 x 17 corners (17 if tied)
    # holes are spread over the whole image, not stuck in one place
    assert rows.float().mean(0).min() > 0 and cols.float().mean(0).min() > 0
    rate = (augment_batch(x, _generator(2), p_flip=0.0, p_affine=0.0, p_cutout=0.5) == mean).all(1).any((1, 2))
    assert 0.43 < rate.float().mean().item() < 0.57


def test_shift_stays_within_6_25_percent_and_goes_both_ways():
    n, size = 2000, 32
    x = torch.zeros(n, 3, size, size)
    x[:, :, 15:17, 15:17] = 1.0                       # a dot at the centre (15.5, 15.5)
    out = augment_batch(x, _generator(3), p_flip=0.0, p_affine=1.0, p_cutout=0.0, scale=0.0, rotate=0.0)
    w = out[:, 0]
    total = w.sum((1, 2))
    coords = torch.arange(size, dtype=torch.float32)
    cx = (w.sum(1) * coords).sum(1) / total - 15.5
    cy = (w.sum(2) * coords).sum(1) / total - 15.5
    limit = 0.0625 * size                             # 2 pixels
    assert cx.abs().max() <= limit + 0.05 and cy.abs().max() <= limit + 0.05
    assert cx.min() < -1.5 and cx.max() > 1.5 and cy.min() < -1.5 and cy.max() > 1.5
    assert abs(cx.mean()) < 0.1 and abs(cy.mean()) < 0.1


def test_scale_rotate_then_shift_moves_a_dot_where_the_drawn_numbers_say():
    n, size, centre = 500, 32, 15.5
    x = torch.zeros(n, 3, size, size)
    x[:, :, 15:17, 23:25] = 1.0                       # a dot 8 pixels right of the centre (column 23.5, row 15.5)
    out = augment_batch(x, _generator(7), p_flip=0.0, p_affine=1.0, p_cutout=0.0, shift=0.0625, scale=0.1, rotate=15.0)
    r = torch.rand(n, 9, generator=_generator(7))     # the same numbers augment_batch drew (columns 2-5)
    angle, s = torch.deg2rad(-15 + 30 * r[:, 2]), 0.9 + 0.2 * r[:, 3]
    tx, ty = (-0.0625 + 0.125 * r[:, 4]) * size, (-0.0625 + 0.125 * r[:, 5]) * size
    expected_x = centre + s * 8 * torch.cos(angle) + tx  # scaled and rotated about the centre, then shifted
    expected_y = centre + s * 8 * torch.sin(angle) + ty  # (rows grow downwards: a positive angle turns clockwise)
    w = out[:, 0]
    coords = torch.arange(size, dtype=torch.float32)
    cx = (w.sum(1) * coords).sum(1) / w.sum((1, 2))
    cy = (w.sum(2) * coords).sum(1) / w.sum((1, 2))
    assert (cx - expected_x).abs().max() < 0.15 and (cy - expected_y).abs().max() < 0.15  # pixels
    assert (expected_y - centre).abs().max() > 3      # the rotation really moved the dot off its row
    assert out.min() >= 0 and out.max() <= 1


def test_loader_batches_normalises_and_is_reproducible(splits):
    train_split, test_split = splits
    loader = DeviceLoader(train_split.images, train_split.labels, batch_size=300, seed=1)
    assert len(train_split) // 300 == len(loader) == 3      # training drops the last partial batch
    loader.set_epoch(2)
    a = [b for b in loader]
    b = [b for b in loader]
    assert [len(y) for _, y in a] == [300] * 3                # static shapes
    every = DeviceLoader(train_split.images, train_split.labels, batch_size=300, seed=1, drop_last=False)
    assert sum(len(y) for _, y in every) == len(train_split) and len(every) == 4
    assert all(torch.equal(p[0], q[0]) for p, q in zip(a, b))
    loader.set_epoch(3)
    assert not torch.equal(next(iter(loader))[0], a[0][0])
    test = DeviceLoader(test_split.images, test_split.labels, batch_size=1000, train=False)
    x, y = next(iter(test))
    expected = torch.stack([data.eval_transforms()(image=im)["image"] for im in test_split.images])
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)
    assert torch.equal(y, torch.as_tensor(test_split.labels))
    with pytest.raises(ValueError, match="batch_size"):
        DeviceLoader(test_split.images, test_split.labels, batch_size=0)
    with pytest.raises(ValueError, match="empty"):
        DeviceLoader(test_split.images[:0], test_split.labels[:0])


def test_training_batches_are_augmented_and_test_batches_are_not(splits):
    train_split, _ = splits
    plain, off = dict(p_flip=0.0, p_affine=0.0, p_cutout=0.0), dict(p_flip=1.0, p_affine=0.0, p_cutout=0.0)
    kept = list(DeviceLoader(train_split.images, train_split.labels, batch_size=100, seed=3, **plain))
    flipped = list(DeviceLoader(train_split.images, train_split.labels, batch_size=100, seed=3, **off))
    for (x, y), (xf, yf) in zip(kept, flipped, strict=True):  # the same order, every image mirrored
        assert torch.equal(y, yf) and torch.equal(xf, x.flip(3)) and not torch.equal(xf, x)
    test = DeviceLoader(train_split.images, train_split.labels, batch_size=100, train=False, **off)
    x, _ = next(iter(test))
    expected = torch.stack([data.eval_transforms()(image=im)["image"] for im in train_split.images[:100]])
    torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)


def test_chunked_augmentation_keeps_order_pairs_and_layout(splits):
    """Augmenting many batches in one call must yield the batches that one call per batch yields."""
    train_split, _ = splits
    plain = dict(p_flip=0.0, p_affine=0.0, p_cutout=0.0)
    per_batch = DeviceLoader(train_split.images, train_split.labels, batch_size=100, seed=1, chunk=100,
                             channels_last=True, **plain)
    chunked = DeviceLoader(train_split.images, train_split.labels, batch_size=100, seed=1, chunk=450,
                           channels_last=True, **plain)
    a, b = list(per_batch), list(chunked)
    assert len(a) == len(b) == len(chunked) == len(train_split) // 100
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xb.shape[0] == 100 and xb.is_contiguous(memory_format=torch.channels_last)
    augmented = list(DeviceLoader(train_split.images, train_split.labels, batch_size=100, seed=1, chunk=450))
    assert [len(y) for _, y in augmented] == [100] * len(a)
    assert torch.equal(torch.cat([y for _, y in augmented]), torch.cat([y for _, y in a]))  # same shuffle
    assert DeviceLoader(train_split.images, train_split.labels, batch_size=100).chunk == 100  # CPU: one batch
    with pytest.raises(ValueError, match="chunk"):
        DeviceLoader(train_split.images, train_split.labels, chunk=0)


def test_crop_flip_preset_is_a_random_crop_of_the_reflect_padded_image():
    import torch.nn.functional as F
    x = torch.rand(400, 3, 32, 32)
    out = augment_batch(x, _generator(5), **{**PRESETS["crop-flip"], "p_flip": 0.0})
    padded = F.pad(x, (2, 2, 2, 2), mode="reflect")  # REFLECT_101, as albumentations' border_mode=4
    counts, windows = {}, set()
    for a, b in zip(out, padded):
        found = [(top, left) for top in range(5) for left in range(5) if torch.equal(a, b[:, top:top + 32, left:left + 32])]
        assert len(found) == 1, found  # the whole image, borders included: one window of the padded image
        windows.add(found[0])
        for axis, v in enumerate(found[0]):
            counts[(axis, v)] = counts.get((axis, v), 0) + 1
    assert all(50 < counts.get((axis, v), 0) < 110 for axis in (0, 1) for v in range(5))  # ~80 each
    assert len(windows) == 25  # top and left drawn independently: every pair turns up, not just the diagonal
    with pytest.raises(ValueError, match="not both"):
        augment_batch(x, _generator(5), p_affine=0.5, crop=2)


def test_presets_match_the_albumentations_pipelines_by_name():
    from helpers.device_data import PRESETS
    assert set(PRESETS) == set(data.AUGMENTATIONS)
    x = torch.rand(400, 3, 8, 8)
    out = augment_batch(x, _generator(4), **PRESETS["flip"])   # flip only: each image is itself or its mirror
    same = (out == x).flatten(1).all(1)
    mirrored = (out == x.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and 0.4 < mirrored.float().mean().item() < 0.6
    assert PRESETS["s8"]["p_flip"] == 0.1 and PRESETS["s8"]["rotate"] == 10.0 and PRESETS["s8"]["p_cutout"] == 0
    # every preset uses the probabilities of the albumentations pipeline of the same name
    kinds = {"HorizontalFlip": "p_flip", "Affine": "p_affine", "Rotate": "p_affine", "CoarseDropout": "p_cutout"}
    for name, preset in PRESETS.items():
        probabilities = {kinds[type(t).__name__]: t.p for t in data.train_transforms(name).transforms
                         if type(t).__name__ in kinds}
        assert {key: preset.get(key, 0.0) for key in kinds.values()} == {"p_flip": 0.0, "p_affine": 0.0,
                                                                          "p_cutout": 0.0, **probabilities}, name
        ranges = {"shift": 0.0625, "scale": 0.1, "rotate": 15.0, **preset}  # augment_batch's defaults
        for t in data.train_transforms(name).transforms:  # ... and its ranges
            if type(t).__name__ == "Affine":
                assert t.rotate == (-ranges["rotate"], ranges["rotate"]), name
                assert t.scale["x"] == pytest.approx((1 - ranges["scale"], 1 + ranges["scale"])), name
                assert t.translate_percent["x"] == pytest.approx((-ranges["shift"], ranges["shift"])), name
            if type(t).__name__ == "Rotate":
                assert t.limit == (-ranges["rotate"], ranges["rotate"]) and ranges["shift"] == ranges["scale"] == 0
        crops = [t for t in data.train_transforms(name).transforms if type(t).__name__ == "RandomCrop"]
        assert bool(crops) == bool(preset.get("crop")), name  # a pad-and-crop pipeline <-> the crop argument
