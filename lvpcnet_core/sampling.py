"""Training samples: w x w windows around labelled pixels, normalisation statistics, the validation split.

Layers are read from a stack (`raster_io.AlignedStack` on files, `raster_io.ArrayStack` on arrays), float32
(bands, rows, cols) with NaN for nodata, only where they are needed: the tiles holding labelled pixels, with a
halo of half a window, and a bounded sample of the scene for the statistics. Memory follows the labelled pixels,
not the scene. A pixel whose centre is nodata in a layer has that modality missing; nodata inside a window is
filled with the band mean (0 after normalisation), and windows reaching outside the scene are padded the same way.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from .errors import LvpcError

TILE = 256              # windows are cut from tiles of this side (plus halo) read one at a time
STATS_VALUES = 2**23    # float32 values read for a layer's statistics: the whole layer below this, else a sample
STATS_WINDOW = 64       # side of the windows of that sample, spread evenly over the scene


class Stack(Protocol):
    """Co-registered layers read window by window (raster_io.AlignedStack and ArrayStack)."""

    bands: dict[str, int]

    @property
    def names(self) -> list[str]: ...

    @property
    def shape(self) -> tuple[int, int]: ...

    def read(self, name: str, xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray: ...


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


def scene_statistics(stack: Stack, name: str, max_pixels: int = 2_000_000, seed: int = 0,
                     max_values: int = STATS_VALUES) -> tuple[np.ndarray, np.ndarray]:
    """`band_statistics` of a layer of the stack: the whole layer when it holds at most `max_values` values, else
    of STATS_WINDOW-square windows centred on an even grid over the scene, at most `max_values` values in all."""
    rows, cols = stack.shape
    bands = stack.bands[name]
    if rows * cols * bands <= max_values:
        return band_statistics(stack.read(name, 0, 0, cols, rows), name, max_pixels, seed)
    side = STATS_WINDOW
    count = max(1, max_values // (bands * side * side))
    across = max(1, round((count * cols / rows) ** 0.5))
    down = max(1, count // across)
    centres = [(int((i + 0.5) * rows / down), int((j + 0.5) * cols / across)) for i in range(down) for j in range(across)]
    sample = np.concatenate([stack.read(name, c - side // 2, r - side // 2, side, side).reshape(bands, -1)
                             for r, c in centres], axis=1)
    return band_statistics(sample[:, None, :], name, max_pixels, seed)


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


def make_samples(stack: Stack, labels: np.ndarray, class_values: list[int], size: int,
                 stats: dict[str, tuple[np.ndarray, np.ndarray]], max_per_class: int | None = None,
                 seed: int = 0) -> Samples:
    rows, cols, index = labelled_pixels(labels, class_values, max_per_class, seed)
    return make_samples_at(stack, rows, cols, index, size, stats)


def make_samples_at(stack: Stack, rows: np.ndarray, cols: np.ndarray, index: np.ndarray, size: int,
                    stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> Samples:
    """Samples at given pixels with given class indices, read tile by tile: each TILE-square tile that holds
    some of the pixels is read once per modality with a halo of half a window, and their windows cut from it."""
    windows = {m: np.empty((len(rows), stack.bands[m], size, size), np.float32) for m in stack.names}
    available = np.zeros((len(rows), len(stack.names)), bool)
    half = size // 2
    tiles = (rows // TILE) * (stack.shape[1] // TILE + 1) + cols // TILE
    order = np.argsort(tiles, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(tiles[order]) != 0]) if len(rows) else np.array([], int)
    for idx in np.split(order, starts[1:]) if len(rows) else []:
        y0, x0 = rows[idx[0]] // TILE * TILE - half, cols[idx[0]] // TILE * TILE - half
        r, c = rows[idx] - y0, cols[idx] - x0
        for i, m in enumerate(stack.names):
            chunk = stack.read(m, int(x0), int(y0), TILE + 2 * half, TILE + 2 * half)
            windows[m][idx] = extract_windows(chunk, r, c, size, *stats[m])
            available[idx, i] = centre_valid(chunk, r, c)
    return Samples(windows, index, rows, cols, available)


def tile_order(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """An order of the pixels that keeps each tile's pixels together, so chunks of it read few tiles."""
    return np.lexsort((cols, rows, cols // TILE, rows // TILE))


@dataclass
class ValidationSplit:
    """Training and validation sample indices, the validation held out as whole areas, and how it was cut.

    Per-class arrays follow the class indices of the samples. A group is a connected area of a class in the label
    image (`"components"`) or, for a class drawn as one area, a square block of it (`"blocks"`); `"none"`: the class
    has no validation (validation fraction 0, fewer than 3 samples, or a single block).
    """

    train: np.ndarray              # indices into the samples
    val: np.ndarray
    method: list[str]              # per class: "components", "blocks" or "none"
    groups: np.ndarray             # groups holding samples
    val_groups: np.ndarray         # of them held out for validation
    val_pixels: np.ndarray
    block_size: int                # side of the blocks, pixels
    dropped: int                   # training samples within half a window of a validation sample, not used
    kept_in_gap: np.ndarray        # such samples used anyway: without them the class would have no training sample

    def to_dict(self, names: list[str]) -> dict:
        """The split as the training report stores it (plain JSON types, keyed by class name)."""
        def per_class(values) -> dict:
            return {n: (v if isinstance(v, str) else int(v)) for n, v in zip(names, values)}

        return {"method": per_class(self.method), "groups": per_class(self.groups),
                "val_groups": per_class(self.val_groups), "val_pixels": per_class(self.val_pixels),
                "block_size": self.block_size, "dropped_by_gap": self.dropped,
                "kept_in_gap": per_class(self.kept_in_gap)}


def spatial_split(label_image: np.ndarray, class_values: list[int], rows: np.ndarray, cols: np.ndarray,
                  labels: np.ndarray, fraction: float, patch_size: int, seed: int) -> ValidationSplit:
    """Validation of whole connected areas of each class (whole blocks of a class drawn as one area), and no
    training sample within half a window of a validation one.

    Neighbouring pixels share most of their window, so validation pixels drawn at random from the training
    polygons score windows the model has seen (Trento: 98 % validation, 80 % test). `rows`, `cols` and `labels`
    (indices into `class_values`) are the samples, any subset of the labelled pixels of `label_image`.
    """
    rng = np.random.default_rng(seed)
    k = len(class_values)
    side = 2 * patch_size
    in_val = np.zeros(len(labels), bool)
    method = ["none"] * k
    groups, val_groups = np.zeros(k, np.int64), np.zeros(k, np.int64)
    for c, value in enumerate(class_values):
        idx = np.flatnonzero(labels == c)
        if fraction <= 0 or len(idx) < 3:
            continue
        areas, _ = ndimage.label(label_image == value, structure=np.ones((3, 3), bool))
        kind, group = "components", areas[rows[idx], cols[idx]]
        if len(np.unique(group)) < 2:
            dr, dc = rng.integers(0, side, 2)
            kind, group = "blocks", np.stack([(rows[idx] + dr) // side, (cols[idx] + dc) // side], axis=1)
        _, group = np.unique(group, axis=0, return_inverse=True)
        group = group.reshape(-1)
        sizes = np.bincount(group)
        groups[c] = len(sizes)
        if len(sizes) < 2:
            continue
        held = _hold_out(sizes, fraction, rng)
        method[c], val_groups[c] = kind, len(held)
        in_val[idx[np.isin(group, held)]] = True
    near = np.zeros(label_image.shape, bool)
    near[rows[in_val], cols[in_val]] = True
    near = ndimage.maximum_filter(near, size=2 * (patch_size // 2) + 1) if in_val.any() else near
    gap = ~in_val & near[rows, cols]
    in_gap = np.bincount(labels[gap], minlength=k)
    kept = np.where(in_gap == np.bincount(labels[~in_val], minlength=k), in_gap, 0)
    gap &= kept[labels] == 0
    return ValidationSplit(np.flatnonzero(~in_val & ~gap), np.flatnonzero(in_val), method, groups, val_groups,
                           np.bincount(labels[in_val], minlength=k), side, int(gap.sum()), kept)


def _hold_out(sizes: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Groups for validation, in seeded random order: each one that brings the held-out count nearer `fraction`
    of the class without passing half of it; the smallest when none does, so every class validates and trains."""
    target, half = fraction * sizes.sum(), sizes.sum() / 2
    held, count = [], 0
    for g in rng.permutation(len(sizes)):
        if count + sizes[g] / 2 <= target and count + sizes[g] <= half:
            held.append(g)
            count += sizes[g]
    return np.array(held or [int(np.argmin(sizes))])
