import numpy as np
import pytest

from lvpcnet_core.progress import LvpcError
from lvpcnet_core.sampling import band_statistics, extract_windows, make_samples, stratified_split


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
    s = make_samples({"hs": hs, "lidar": lidar}, labels, [1], 3, stats)
    assert s.available.tolist() == [[True, False], [True, True]]


def test_statistics_ignore_nodata_and_refuse_empty_layers():
    a = np.array([[[1.0, 3.0, np.nan]]], np.float32)
    mean, std = band_statistics(a, "x")
    assert mean[0] == 2 and std[0] == 1
    with pytest.raises(LvpcError, match="'x' has no valid pixels"):
        band_statistics(np.full((1, 2, 2), np.nan, np.float32), "x")


def test_split_is_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [20, 10, 2])
    train, val = stratified_split(labels, 0.2, seed=1)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 32
    assert np.bincount(labels[val], minlength=3).tolist() == [4, 2, 0]
    assert (stratified_split(labels, 0.2, seed=1)[1] == val).all()
