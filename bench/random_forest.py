"""Benchmark 4: scikit-learn RandomForest, what QGIS users run in dzetsaka / EnMAP-Box, on the same pixels as LVPC.

Features: the centre pixel's spectrum of every modality, concatenated (as dzetsaka and EnMAP-Box do), and,
for comparison, the whole w x w window of every modality flattened (normalised like LVPC's input).
Run alone it uses the split of tradeoff.py; training_time.py calls `forest_rows` on its own pixels.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.common import load_split, machine, save, table

# features are made and predicted in chunks of at most this many bytes: the 11 x 11 windows of a 218-band scene
# take 7 GB for a 256 x 256 crop, 1.7 GB for 16,000 test pixels
FEATURE_BYTES = 2**28


def _features(arrays: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray, window: int) -> np.ndarray:
    from lvpcnet_core import sampling

    if window == 1:
        return np.nan_to_num(np.concatenate([a[:, rows, cols] for a in arrays.values()]).T)
    parts = []
    for a in arrays.values():
        mean, std = sampling.band_statistics(a, "x")
        parts.append(sampling.extract_windows(a, rows, cols, window, mean, std).reshape(len(rows), -1))
    return np.concatenate(parts, axis=1)


def _predict(forest, arrays: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray, window: int
             ) -> tuple[np.ndarray, float]:
    """Classes of the given pixels and the wall time of `forest.predict` alone; features made chunk by chunk."""
    step = max(1, FEATURE_BYTES // (4 * window * window * sum(a.shape[0] for a in arrays.values())))
    classes, seconds = [], 0.0
    for start in range(0, len(rows), step):
        x = _features(arrays, rows[start:start + step], cols[start:start + step], window)
        started = time.perf_counter()
        classes.append(forest.predict(x))
        seconds += time.perf_counter() - started
    return np.concatenate(classes), seconds


def forest_rows(data: dict, crop: dict[str, np.ndarray], trees: tuple[int, ...] = (100, 200), window: int = 11
                ) -> list[dict]:
    """Train on data['train'], score on data['test'], time prediction of every pixel of `crop`."""
    from sklearn.ensemble import RandomForestClassifier

    from lvpcnet_core import metrics, sampling

    rows_tr, cols_tr, y_tr = sampling.labelled_pixels(data["train"], data["values"], None, 0)
    rows_te, cols_te, y_te = sampling.labelled_pixels(data["test"], data["values"], None, 0)
    _, h, w = next(iter(crop.values())).shape
    grid_r, grid_c = (v.ravel() for v in np.mgrid[0:h, 0:w])
    out = []
    for size, label in ((1, "centre pixel"), (window, f"{window}x{window} window")):
        x_tr = _features(data["arrays"], rows_tr, cols_tr, size)
        for n in trees if size == 1 else trees[:1]:
            forest = RandomForestClassifier(n_estimators=n, n_jobs=-1, random_state=0)
            started = time.perf_counter()
            forest.fit(x_tr, y_tr)
            train_s = time.perf_counter() - started
            predicted, _ = _predict(forest, data["arrays"], rows_te, cols_te, size)
            scores = metrics.summarise(metrics.confusion(y_te, predicted, len(data["values"])), data["names"])
            out.append({"method": f"RF {n} trees, {label}", "features": x_tr.shape[1], "OA": scores["oa"],
                        "kappa": scores["kappa"], "train s": train_s,
                        "pixels/s": len(grid_r) / _predict(forest, crop, grid_r, grid_c, size)[1]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["slovenia", "brandenburg"])
    parser.add_argument("--cap", type=int, nargs="+", default=[300, 150])
    args = parser.parse_args()
    rows = []
    for dataset, cap in zip(args.datasets, args.cap):
        data = load_split(dataset, 2, train_cap=cap)
        crop = {m: a[:, :256, :256] for m, a in data["arrays"].items()}
        for row in forest_rows(data, crop):
            rows.append({"dataset": dataset, **row, "load": round(os.getloadavg()[0], 1)})
            print(rows[-1], flush=True)
    table(rows, ["dataset", "method", "features", "OA", "kappa", "train s", "pixels/s", "load"],
          "RandomForest, left-half training / right-half test (same split as tradeoff.py)")
    save("random_forest", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
