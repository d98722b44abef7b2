"""Baselines an analyst would try instead of LVPC, on LVPC's training pixels and the benchmark's test pixels.

- `rf`: RandomForest on the centre pixel's values (what dzetsaka and EnMAP-Box users run);
- `rf_window`: RandomForest on the flattened 5 x 5 neighbourhood of every band (25 x bands features);
- `cnn`: a plain small CNN on LVPC's 11 x 11 windows (3 conv layers 3 x 3, 64 channels, batch norm + ReLU,
  global average pool, linear), per-sample flips and quarter turns, Adam 1e-3, batch 64, last epoch kept.

Each is retrained for every test set on exactly that set's modalities (stacked), as a user would: it knows in
advance which modality will be missing, while LVPC has one model for all cases. Inputs are standardised per band
with LVPC's statistics (`sampling.band_statistics`; nodata and outside the scene = 0, the band mean). A forest is
blind to that scaling except at ties: a test value exactly between two training values (common on an integer
DEM) may fall on the other side of the threshold after rounding, so `rf` differs slightly from a forest on raw values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lvpcnet_core.encoders import ModelConfig

METHODS = ("rf", "rf_window", "cnn")
INPUTS = "windows standardised per band"   # in the cached runs' settings: the forests were once run on raw values
FOREST_WINDOW = {"rf": 1, "rf_window": 5}
CNN_WINDOW = ModelConfig.patch_size   # LVPC's window
CHUNK = 2048                          # test windows cut and classified at a time (156 bands x 11 x 11 = 75 MB)


@dataclass
class Pixels:
    """Labelled pixels (class indices 0..K-1) of one label image and the modalities to cut windows from."""

    arrays: dict[str, np.ndarray]
    stats: dict[str, tuple[np.ndarray, np.ndarray]]
    rows: np.ndarray
    cols: np.ndarray
    labels: np.ndarray
    n_classes: int

    def __len__(self) -> int:
        return len(self.labels)

    def windows(self, size: int, part: slice = slice(None)) -> np.ndarray:
        """(N, bands of every modality, size, size): LVPC's standardised windows, modalities stacked in order."""
        from lvpcnet_core.raster_io import ArrayStack
        from lvpcnet_core.sampling import make_samples_at

        samples = make_samples_at(ArrayStack(self.arrays), self.rows[part], self.cols[part], self.labels[part], size, self.stats)
        return np.concatenate(list(samples.windows.values()), axis=1)

    def chunks(self) -> list[slice]:
        return [slice(start, start + CHUNK) for start in range(0, len(self), CHUNK)]


def pixel_sets(arrays: dict[str, np.ndarray], train_labels: np.ndarray, test_labels: np.ndarray,
               class_values: list[int], cap: int | None, seed: int) -> tuple[Pixels, Pixels]:
    """Training pixels: LVPC's draw (`labelled_pixels(train, values, cap, seed)`), none held out; test pixels: all
    of the test image, in the order every other row of the benchmark scores them."""
    from lvpcnet_core.sampling import band_statistics, labelled_pixels

    stats = {m: band_statistics(a, m, seed=seed) for m, a in arrays.items()}
    n = len(class_values)
    return (Pixels(arrays, stats, *labelled_pixels(train_labels, class_values, cap, seed), n),
            Pixels(arrays, stats, *labelled_pixels(test_labels, class_values, None, 0), n))


def predict(method: str, train: Pixels, test: Pixels, seed: int, threads: int = 1, device: str = "cpu",
            cnn_epochs: int = 150) -> np.ndarray:
    """Class indices predicted at the test pixels by `method` (one of METHODS) trained on the training pixels."""
    if method == "cnn":
        return predict_cnn(train, test, seed, cnn_epochs, device, threads)
    return predict_forest(train, test, FOREST_WINDOW[method], seed, threads)


def forest_features(pixels: Pixels, size: int, part: slice = slice(None)) -> np.ndarray:
    """(N, size * size * bands): every band's size x size neighbourhood, flattened."""
    windows = pixels.windows(size, part)
    return windows.reshape(len(windows), -1)


def predict_forest(train: Pixels, test: Pixels, size: int, seed: int, threads: int) -> np.ndarray:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=threads)
    forest.fit(forest_features(train, size), train.labels)
    return np.concatenate([forest.predict(forest_features(test, size, part)) for part in test.chunks()])


def small_cnn(bands: int, n_classes: int, width: int = 64) -> nn.Sequential:
    """Three 3 x 3 conv + batch norm + ReLU layers, global average pool, linear: a CNN written in ten minutes."""
    layers: list[nn.Module] = []
    for i in range(3):
        layers += [nn.Conv2d(bands if i == 0 else width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                   nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, n_classes))


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each sample turned by its own random quarter turns and mirrored or not: the 8 symmetries of the square,
    drawn as a turn count and a mirror flag per sample, applied by the engine's `dihedral`."""
    from lvpcnet_core.training import dihedral

    n = len(x)
    turns = torch.randint(0, 4, (n,), generator=generator)
    mirror = torch.randint(0, 2, (n,), generator=generator).bool()
    # turning a mirrored window by k = mirroring the window turned by -k, the engine's view 4 + (-k mod 4)
    return dihedral(x, torch.where(mirror, 4 + (-turns) % 4, turns))


def predict_cnn(train: Pixels, test: Pixels, seed: int, epochs: int, device: str, threads: int,
                batch_size: int = 64, learning_rate: float = 1e-3) -> np.ndarray:
    from lvpcnet_core.training import resolve_device

    target = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(train.windows(CNN_WINDOW)).to(target)
    y = torch.from_numpy(train.labels).to(target)
    model = small_cnn(x.shape[1], train.n_classes).to(target)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator).to(target)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            loss = F.cross_entropy(model(augment(x[idx], generator)), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(test.windows(CNN_WINDOW, part)).to(target)).argmax(1).cpu()
                               .numpy() for part in test.chunks()])
