import numpy as np
import pytest
from scipy import ndimage

from lvpcnet_core.errors import LvpcError
from lvpcnet_core.raster_io import ArrayStack
from lvpcnet_core.sampling import (TILE, band_statistics, extract_windows, labelled_pixels, make_samples,
                                   make_samples_at, scene_statistics, spatial_split)


def test_windows_are_centred_normalised_and_padded():
    a = np.arange(2 * 5 * 6, dtype=np.float32).reshape(2, 5, 6)
    a[1, 0, 1] = np.nan
    mean, std = np.array([1.0, 2.0], np.float32), np.array([2.0, 4.0], np.float32)
    w = extract_windows(a, np.array([0, 2]), np.array([0, 3]), 3, mean, std)
    assert w.shape == (2, 2, 3, 3)
    assert w[1, 0, 1, 1] == (a[0, 2, 3] - 1) / 2          # centre pixel
    assert (w[0, :, 0, :] == 0).all() and (w[0, :, :, 0] == 0).all()   # outside the scene
    assert w[0, 1, 1, 2] == 0                              # nodata inside the window is filled


def test_centre_nodata_marks_modality_missing():
    hs = np.ones((2, 4, 4), np.float32)
    lidar = np.ones((1, 4, 4), np.float32)
    lidar[0, 1, 1] = np.nan
    labels = np.zeros((4, 4), int)
    labels[1, 1] = labels[2, 2] = 1
    stats = {m: (np.zeros(a.shape[0], np.float32), np.ones(a.shape[0], np.float32)) for m, a in (("hs", hs), ("lidar", lidar))}
    s = make_samples(ArrayStack({"hs": hs, "lidar": lidar}), labels, [1], 3, stats)
    assert s.available.tolist() == [[True, False], [True, True]]


def test_statistics_ignore_nodata_and_refuse_empty_layers():
    a = np.array([[[1.0, 3.0, np.nan]]], np.float32)
    mean, std = band_statistics(a, "x")
    assert mean[0] == 2 and std[0] == 1
    with pytest.raises(LvpcError, match="'x' has no valid pixels"):
        band_statistics(np.full((1, 2, 2), np.nan, np.float32), "x")


def roi_image() -> np.ndarray:
    """Class 1: eight separate squares; class 2: six squares, two touching class-1 squares; class 3: one blob."""
    image = np.zeros((80, 80), np.int32)
    for i in range(8):
        image[2 + 9 * i:8 + 9 * i, 2:8] = 1
    for i in range(6):
        image[2 + 12 * i:7 + 12 * i, 8:13] = 2 if i < 2 else 0
        image[2 + 12 * i:7 + 12 * i, 20:25] = 2 if i >= 2 else 0
    image[10:60, 35:75] = 3
    return image


def split(image, fraction=0.2, patch=5, seed=0, cap=None):
    rows, cols, labels = labelled_pixels(image, [1, 2, 3], cap, seed)
    return rows, cols, labels, spatial_split(image, [1, 2, 3], rows, cols, labels, fraction, patch, seed)


def chebyshev(rows, cols, a, b) -> np.ndarray:
    return np.maximum(np.abs(rows[a][:, None] - rows[b][None]), np.abs(cols[a][:, None] - cols[b][None]))


@pytest.mark.parametrize("cap", [None, 40])
def test_split_holds_out_whole_areas(cap):
    image = roi_image()
    rows, cols, labels, s = split(image, cap=cap)
    assert s.method[:2] == ["components", "components"]
    assert s.groups[:2].tolist() == [8, 6]
    assert len(np.intersect1d(s.train, s.val)) == 0
    for c, value in enumerate((1, 2)):
        areas, _ = ndimage.label(image == value, structure=np.ones((3, 3)))
        held = {int(a) for a in areas[rows[s.val], cols[s.val]][labels[s.val] == c]}
        trained = {int(a) for a in areas[rows[s.train], cols[s.train]][labels[s.train] == c]}
        assert held and trained and not held & trained       # an area is all validation or all training
        assert len(held) == s.val_groups[c] < s.groups[c]
        n = (labels == c).sum()
        assert 0 < s.val_pixels[c] == (labels[s.val] == c).sum() <= n / 2


def test_single_blob_class_is_cut_into_blocks():
    image = roi_image()
    rows, cols, labels, s = split(image, fraction=0.2)
    assert s.method[2] == "blocks" and s.block_size == 10
    n = (labels == 2).sum()
    assert 0.1 * n < s.val_pixels[2] <= 0.5 * n and 1 <= s.val_groups[2] < s.groups[2]
    val, train = s.val[labels[s.val] == 2], s.train[labels[s.train] == 2]

    def blocks(index, dr, dc):
        return set(zip((rows[index] + dr) // 10, (cols[index] + dc) // 10))

    # whole blocks: some grid of 10 x 10 blocks has no block with both validation and training pixels of the blob
    assert any(not blocks(val, dr, dc) & blocks(train, dr, dc) for dr in range(10) for dc in range(10))


def test_gap_keeps_training_windows_off_validation_pixels():
    image = roi_image()
    for patch in (5, 9):
        rows, cols, labels, s = split(image, patch=patch)
        assert chebyshev(rows, cols, s.train, s.val).min() > patch // 2
        assert s.dropped > 0 and len(s.train) + len(s.val) + s.dropped == len(labels)
        assert not s.kept_in_gap.any()


def test_split_is_seeded():
    image = roi_image()
    a, b = split(image, seed=3)[3], split(image, seed=3)[3]
    assert (a.val == b.val).all() and (a.train == b.train).all()
    assert any(not np.array_equal(split(image, seed=k)[3].val, a.val) for k in range(4))


def test_fraction_zero_and_tiny_classes_train_only():
    image = roi_image()
    rows, cols, labels, s = split(image, fraction=0)
    assert len(s.val) == 0 and len(s.train) == len(labels) and s.method == ["none"] * 3 and s.dropped == 0
    tiny = np.zeros((20, 20), np.int32)
    tiny[2:8, 2:8], tiny[12:18, 12:18], tiny[0, 19], tiny[19, 0] = 1, 1, 2, 2
    rows, cols, labels = labelled_pixels(tiny, [1, 2], None, 0)
    s = spatial_split(tiny, [1, 2], rows, cols, labels, 0.2, 5, 0)
    assert s.method == ["components", "none"] and set(np.flatnonzero(labels == 1)) <= set(s.train.tolist())
    assert s.val_pixels.tolist() == [36, 0] and (labels[s.train] == 0).sum() == 36


def test_gap_never_takes_a_class_whole():
    image = np.zeros((10, 10), np.int32)
    image[0:3, 0], image[0:3, 2] = 1, 1      # two areas one pixel apart: whichever trains lies in the other's gap
    image[6:9, 6:9] = 2
    rows, cols, labels = labelled_pixels(image, [1, 2], None, 0)
    s = spatial_split(image, [1, 2], rows, cols, labels, 0.5, 5, 0)
    assert s.val_pixels[0] == 3 and s.kept_in_gap.tolist() == [3, 0]
    assert (labels[s.train] == 0).sum() == 3 and s.dropped == 0


class CountingStack(ArrayStack):
    """An ArrayStack that counts the values it is asked to read."""

    read_values = 0

    def read(self, name, xoff, yoff, xsize, ysize):
        self.read_values += self.bands[name] * xsize * ysize
        return super().read(name, xoff, yoff, xsize, ysize)


def test_windows_read_tile_by_tile_equal_those_cut_from_the_whole_scene():
    rng = np.random.default_rng(0)
    hs = rng.normal(size=(3, 300, 530)).astype(np.float32)
    hs[:, 100:140, 250:270] = np.nan
    lidar = rng.normal(size=(1, 300, 530)).astype(np.float32)
    # corners, tile edges (255/256, 511/512) and random pixels, in no particular order
    rows = np.r_[0, 299, 0, 299, 255, 256, 120, rng.integers(0, 300, 40)]
    cols = np.r_[0, 0, 529, 529, 511, 512, 260, rng.integers(0, 530, 40)]
    stats = {"hs": (np.full(3, 0.1, np.float32), np.full(3, 2.0, np.float32)),
             "lidar": (np.zeros(1, np.float32), np.ones(1, np.float32))}
    stack = CountingStack({"hs": hs, "lidar": lidar})
    samples = make_samples_at(stack, rows, cols, np.arange(len(rows)), 7, stats)
    for name, array in (("hs", hs), ("lidar", lidar)):
        np.testing.assert_array_equal(samples.windows[name], extract_windows(array, rows, cols, 7, *stats[name]))
    assert samples.available[:, 0].tolist() == np.isfinite(hs[:, rows, cols]).all(0).tolist()
    assert samples.available[6, 0] == False and samples.available[6, 1] == True  # noqa: E712 (numpy bools)


def test_windows_of_a_few_pixels_read_only_their_tiles():
    hs = np.ones((4, 2000, 2000), np.float32)
    stack = CountingStack({"hs": hs})
    stats = {"hs": (np.zeros(4, np.float32), np.ones(4, np.float32))}
    make_samples_at(stack, np.array([10, 20, 1900]), np.array([10, 30, 1900]), np.zeros(3, int), 11, stats)
    assert stack.read_values == 2 * 4 * (TILE + 10) ** 2  # two tiles, not the 16 M values of the scene


def test_scene_statistics_read_a_bounded_sample_of_a_large_scene():
    rng = np.random.default_rng(1)
    hs = (rng.normal(size=(2, 1000, 1500)) * [[[3.0]], [[0.5]]] + [[[10.0]], [[-2.0]]]).astype(np.float32)
    small = CountingStack({"hs": hs})
    exact = scene_statistics(small, "hs")  # 3 M values: the whole layer, as band_statistics
    np.testing.assert_array_equal(exact[0], band_statistics(hs, "hs")[0])
    large = CountingStack({"hs": hs})
    mean, std = scene_statistics(large, "hs", max_values=200_000)
    assert large.read_values <= 200_000
    np.testing.assert_allclose(mean, [10.0, -2.0], atol=0.1)
    np.testing.assert_allclose(std, [3.0, 0.5], rtol=0.05)
