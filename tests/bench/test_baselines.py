"""The baselines of the accuracy benchmark (bench/baselines.py) and the 'best alternative' line of its tables."""
from __future__ import annotations

import numpy as np
import pytest

from bench import accuracy, baselines


def _texture_scene(size: int = 40, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class 1: a 1-pixel checkerboard of 0/1; class 2: a 2-pixel one. Every centre pixel is 0 or 1 with equal odds
    in both classes, so only the neighbourhood tells them apart. Training labels on top, test labels below."""
    rows, cols = np.indices((size, size))
    fine, coarse = (rows + cols) % 2, (rows // 2 + cols // 2) % 2
    labels = np.where(cols < size // 2, 1, 2).astype(np.int32)
    image = np.where(labels == 1, fine, coarse).astype(np.float32)
    image += np.random.default_rng(seed).normal(0, 0.05, image.shape).astype(np.float32)
    train, test = labels.copy(), labels.copy()
    train[size // 2 - 1:], test[:size // 2 + 1] = 0, 0
    return image[None], train, test


def _accuracy(method: str, epochs: int = 10) -> float:
    image, train, test = _texture_scene()
    tr, te = baselines.pixel_sets({"pattern": image}, train, test, [1, 2], 150, 0)
    return float((baselines.predict(method, tr, te, seed=0, threads=1, device="cpu", cnn_epochs=epochs)
                  == te.labels).mean())


def test_cnn_learns_a_pattern_the_centre_pixel_does_not_show():
    assert _accuracy("rf") < 0.7            # the centre pixel alone is near chance
    assert _accuracy("cnn") > 0.9


def test_window_forest_features_are_every_bands_flattened_neighbourhood():
    rng = np.random.default_rng(1)
    arrays = {"a": rng.random((3, 12, 12)).astype(np.float32), "b": rng.random((2, 12, 12)).astype(np.float32)}
    labels = np.zeros((12, 12), np.int32)
    labels[4:8, 4:8] = 1
    labels[0, :] = 2
    train, _ = baselines.pixel_sets(arrays, labels, labels, [1, 2], None, 0)
    x = baselines.forest_features(train, baselines.FOREST_WINDOW["rf_window"])
    assert x.shape == (len(train), 25 * 5)
    centre = baselines.forest_features(train, baselines.FOREST_WINDOW["rf"])
    assert centre.shape == (len(train), 5)
    np.testing.assert_allclose(x.reshape(len(train), 5, 25)[:, :, 12], centre)
    mean, std = train.stats["b"]
    np.testing.assert_allclose(centre[:, 4], (arrays["b"][1, train.rows, train.cols] - mean[1]) / std[1], rtol=1e-5)


def _cell(*oa: float) -> dict:
    return {"seeds": list(range(len(oa))), "oa": {"mean": float(np.mean(oa)), "values": list(oa)}}


def test_best_alternative_is_the_highest_other_row_and_ignores_vp1():
    table = {"lvpc": {"complete": _cell(80, 81, 82), "w/o b": _cell(70, 71, 72)},
             "vp1": {"w/o b": _cell(90, 90, 90)},
             "rf": {"complete": _cell(84, 85, 86), "w/o b": _cell(60, 61, 62)},
             "cnn": {"complete": _cell(79, 80, 81), "w/o b": _cell(65, 66, 69)},
             "a-net": {"w/o b": _cell(68, 69, 70)}}
    best = accuracy.best_alternatives(table, accuracy.compare(table), ["complete", "w/o b", "w/o a"])
    assert set(best) == {"complete", "w/o b"}
    assert best["complete"]["row"] == "rf" and best["complete"]["oa"] == pytest.approx(85)
    assert best["complete"]["reference_oa"] == pytest.approx(81) and best["complete"]["verdict"] == "loses to"
    assert best["w/o b"]["row"] == "a-net" and best["w/o b"]["mean_difference"] == pytest.approx(2)
