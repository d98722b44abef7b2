"""Training samples: w x w windows around labelled pixels, normalisation statistics, splits.

Arrays are float32 (bands, rows, cols) with NaN for nodata, as `raster_io` returns them. A pixel whose
centre is nodata in a layer has that modality missing; nodata inside a window is filled with the band
mean (0 after normalisation), and windows reaching outside the scene are padded the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .progress import LvpcError


def band_statistics(array: np.ndarray, name: str, max_pixels: int = 2_000_000, seed: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and standard deviation over valid pixels (a random subset for big scenes)."""
    flat = array.reshape(array.shape[0], -1)
    valid = np.isfinite(flat).all(0)
    if not valid.any():
        raise LvpcError(f"layer '{name}' has no valid pixels (all nodata): check its nodata value or choose another layer")
    columns = np.flatnonzero(valid)
    if len(columns) > max_pixels:
        columns = np.random.default_rng(seed).choice(columns, max_pixels, replace=False)
    values = flat[:, columns].astype(np.float64)
    std = values.std(1)
    return values.mean(1).astype(np.float32), np.where(std > 1e-12, std, 1.0).astype(np.float32)


def centre_valid(array: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """True where every band of the pixel is a finite value."""
    return np.isfinite(array[:, rows, cols]).all(0)


def extract_windows(array: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: int,
                    mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Normalised (N, bands, size, size) windows centred on (rows, cols); nodata and outside become 0."""
    # Cells outside the scene are read from the clipped edge, then blanked: the cost follows the windows, not the
    # scene (evaluation cuts a large reference map chunk by chunk; padding the scene would copy it every chunk).
    offsets = np.arange(size) - size // 2
    rr = rows[:, None, None] + offsets[None, :, None]
    cc = cols[:, None, None] + offsets[None, None, :]
    outside = (rr < 0) | (rr >= array.shape[1]) | (cc < 0) | (cc >= array.shape[2])
    windows = array[:, np.clip(rr, 0, array.shape[1] - 1), np.clip(cc, 0, array.shape[2] - 1)]
    windows = np.where(outside[None], np.nan, windows).transpose(1, 0, 2, 3)
    windows = (windows - mean[None, :, None, None]) / std[None, :, None, None]
    return np.ascontiguousarray(np.nan_to_num(windows, nan=0.0, posinf=0.0, neginf=0.0), dtype=np.float32)


@dataclass
class Samples:
    """Windows of every modality at labelled pixels, their class indices (0..K-1) and positions."""

    windows: dict[str, np.ndarray]
    labels: np.ndarray
    rows: np.ndarray
    cols: np.ndarray
    available: np.ndarray          # (N, m) bool, centre valid per modality

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "Samples":
        return Samples({m: w[index] for m, w in self.windows.items()}, self.labels[index], self.rows[index],
                       self.cols[index], self.available[index])


def labelled_pixels(labels: np.ndarray, class_values: list[int], max_per_class: int | None, seed: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, cols and class indices of labelled pixels, at most `max_per_class` of each (random, seeded)."""
    rng = np.random.default_rng(seed)
    rows, cols, index = [], [], []
    for i, value in enumerate(class_values):
        r, c = np.nonzero(labels == value)
        if max_per_class is not None and len(r) > max_per_class:
            keep = np.sort(rng.choice(len(r), max_per_class, replace=False))
            r, c = r[keep], c[keep]
        rows.append(r)
        cols.append(c)
        index.append(np.full(len(r), i, dtype=np.int64))
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(index)


def make_samples(arrays: dict[str, np.ndarray], labels: np.ndarray, class_values: list[int], size: int,
                 stats: dict[str, tuple[np.ndarray, np.ndarray]], max_per_class: int | None = None,
                 seed: int = 0) -> Samples:
    rows, cols, index = labelled_pixels(labels, class_values, max_per_class, seed)
    return make_samples_at(arrays, rows, cols, index, size, stats)


def make_samples_at(arrays: dict[str, np.ndarray], rows: np.ndarray, cols: np.ndarray, index: np.ndarray, size: int,
                    stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> Samples:
    """Samples at given pixels with given class indices."""
    windows = {m: extract_windows(a, rows, cols, size, *stats[m]) for m, a in arrays.items()}
    available = np.stack([centre_valid(a, rows, cols) for a in arrays.values()], axis=1)
    return Samples(windows, index, rows, cols, available)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation indices, `fraction` of every class in validation (at least one sample of
    classes with three or more, none of smaller classes, which all go to training)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * fraction)) if len(idx) >= 3 else 0
        n_val = max(n_val, 1) if fraction > 0 and len(idx) >= 3 else n_val
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))
