"""Synthetic co-registered scenes for tests, benchmarks and smoke runs (no real data needed).

Classes occupy blocky regions; each class has its own spectrum (HS), height (LiDAR) and backscatter (SAR)
plus noise, so a classifier can learn them and every modality carries part of the information.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .raster_io import Grid, write_raster

EPSG_32633 = ('PROJCS["WGS 84 / UTM zone 33N",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
              'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
              'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",15],PARAMETER["scale_factor",0.9996],'
              'PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","32633"]]')


@dataclass
class Scene:
    paths: dict[str, str]          # modality -> GeoTIFF
    labels: str                    # label GeoTIFF, 0 = unlabelled
    grid: Grid
    classes: np.ndarray            # (rows, cols) true class codes 1..K


def class_map(height: int, width: int, n_classes: int, cell: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(1, n_classes + 1, size=(-(-height // cell), -(-width // cell)))
    return np.kron(coarse, np.ones((cell, cell), dtype=coarse.dtype))[:height, :width].astype(np.int32)


def make_scene(folder: str | Path, width: int = 40, height: int = 40, bands: dict[str, int] | None = None,
               n_classes: int = 3, cell: int = 8, label_fraction: float = 0.3, noise: float = 0.3, seed: int = 0,
               pixel_size: float = 10.0) -> Scene:
    """Writes one GeoTIFF per modality and a sparse label raster into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bands = bands or {"hs": 8, "lidar": 1}
    rng = np.random.default_rng(seed)
    grid = Grid(EPSG_32633, (500000.0, pixel_size, 0.0, 5100000.0, 0.0, -pixel_size), width, height)
    classes = class_map(height, width, n_classes, cell, seed)
    paths = {}
    for i, (name, n) in enumerate(bands.items()):
        signature = rng.normal(size=(n_classes + 1, n)).astype(np.float32)
        array = signature[classes].transpose(2, 0, 1) + rng.normal(scale=noise, size=(n, height, width)).astype(np.float32)
        paths[name] = str(folder / f"{name}.tif")
        write_raster(paths[name], array.astype(np.float32) * (10.0 ** i), grid)
    labels = np.where(rng.random((height, width)) < label_fraction, classes, 0).astype(np.uint8)
    label_path = str(folder / "labels.tif")
    write_raster(label_path, labels, grid, nodata=0)
    return Scene(paths, label_path, grid, classes)
