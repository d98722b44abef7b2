"""Benchmark scenes as in-memory arrays: the paper's datasets in their published forms, and the shared real scenes.

A `Scene` holds co-registered float32 arrays (bands, rows, cols) with NaN = nodata, and a training and a test
label image (0 = unlabelled) on the same grid: what `lvpcnet_core.workflows.fit_arrays` and `evaluate_arrays` take.

Published forms read by `load_benchmark(folder, dataset)` (variable or file names matched case-insensitively):

| dataset | modalities | training / test labels |
|---|---|---|
| houston2013 | hs: `HSI`, `Houston_HSI`, `data_HS_LR`; lidar: `LiDAR`, `Houston_LiDAR`, `DSM`, `data_DSM`, `data_MS_HR` | `TRLabel` / `TSLabel` (also `TrainImage` / `TestImage`, `train_data` / `test_data`, `train_gt` / `test_gt`) |
| trento | hs: `HSI`, `HSI_Trento`; lidar: `LiDAR`, `Lidar_Trento`, `Lidar1_Trento`, `lidar` | as above |
| augsburg | hs: `data_HS_LR`; sar: `data_SAR_HR`; lidar: `data_DSM` | as above |

Every `.mat` file (MATLAB v5 through scipy; v7.3/HDF5 through h5py when it is installed), `.tif`/`.tiff`
(GDAL, one file per variable, named after it) and `.npy` file in the folder is searched; arrays may be
(rows, cols), (rows, cols, bands) as MATLAB stores them, or (bands, rows, cols): the label map's shape decides.
A lone ground-truth map (`gt`, `GT_Trento`) is not a train/test split and is not used: the published protocol
needs the standard training and test maps.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lvpcnet_core.errors import LvpcError


@dataclass
class Scene:
    name: str
    arrays: dict[str, np.ndarray]
    train: np.ndarray
    test: np.ndarray
    class_values: list[int]
    class_names: list[str]
    split: str

    def summary(self) -> str:
        bands = ", ".join(f"{m} {a.shape[0]} bands" for m, a in self.arrays.items())
        rows, cols = self.train.shape
        return (f"{self.name}: {cols} x {rows} px, {bands}; {int((self.train > 0).sum())} training and "
                f"{int((self.test > 0).sum())} test pixels, {len(self.class_values)} classes; split: {self.split}")


@dataclass(frozen=True)
class DatasetSpec:
    modalities: dict[str, tuple[str, ...]]
    class_names: tuple[str, ...]
    train: tuple[str, ...] = ("TRLabel", "TrainImage", "train_data", "train_gt", "TR")
    test: tuple[str, ...] = ("TSLabel", "TestImage", "test_data", "test_gt", "TE")


SPECS: dict[str, DatasetSpec] = {
    "houston2013": DatasetSpec(
        {"hs": ("HSI", "Houston_HSI", "data_HS_LR"),
         "lidar": ("LiDAR", "Houston_LiDAR", "DSM", "data_DSM", "data_MS_HR")},
        ("Healthy grass", "Stressed grass", "Synthetic grass", "Trees", "Soil", "Water", "Residential",
         "Commercial", "Road", "Highway", "Railway", "Parking lot 1", "Parking lot 2", "Tennis court",
         "Running track")),
    "trento": DatasetSpec(
        {"hs": ("HSI", "HSI_Trento"), "lidar": ("LiDAR", "Lidar_Trento", "Lidar1_Trento", "lidar")},
        ("Apple trees", "Buildings", "Ground", "Woods", "Vineyard", "Roads")),
    "augsburg": DatasetSpec(
        {"hs": ("data_HS_LR",), "sar": ("data_SAR_HR",), "lidar": ("data_DSM",)},
        ("Forest", "Residential area", "Industrial area", "Low plants", "Allotment", "Commercial area", "Water")),
}


def load_benchmark(folder: str | Path, dataset: str, modalities: list[str] | None = None) -> Scene:
    """A paper dataset from its published files; `modalities=None` takes every modality found in the folder."""
    if dataset not in SPECS:
        raise LvpcError(f"unknown dataset '{dataset}': choose one of {', '.join(SPECS)}")
    spec, folder = SPECS[dataset], Path(folder)
    found = _variables(folder)
    train = _pick(found, spec.train, "training labels", folder)
    test = _pick(found, spec.test, "test labels", folder)
    train_labels, test_labels = _label_map(_read(train)), _label_map(_read(test))
    shape = train_labels.shape
    if train_labels.ndim != 2 or test_labels.shape != shape:
        raise LvpcError(f"{folder}: the training labels {train_labels.shape} and test labels {test_labels.shape} "
                        "must be two maps of the same size")
    wanted = modalities or [m for m, names in spec.modalities.items() if _find(found, names)]
    if not wanted:
        raise LvpcError(f"{folder}: no {dataset} image found; expected one of "
                        + "; ".join(f"{m}: {', '.join(n)}" for m, n in spec.modalities.items()))
    arrays = {}
    for m in wanted:
        if m not in spec.modalities:
            raise LvpcError(f"{dataset} has no modality '{m}': choose from {', '.join(spec.modalities)}")
        arrays[m] = _oriented(_read(_pick(found, spec.modalities[m], f"the {m} image", folder)), shape, m)
    values = sorted(int(v) for v in np.union1d(np.unique(train_labels), np.unique(test_labels)) if v > 0)
    names = [spec.class_names[v - 1] if v <= len(spec.class_names) else f"class {v}" for v in values]
    return Scene(dataset, arrays, train_labels, test_labels, values, names, "the published training/test maps")


def _variables(folder: Path) -> dict[str, tuple[Path, str]]:
    """Lower-case variable name -> (file, variable) for every array stored in the folder."""
    if not folder.is_dir():
        raise LvpcError(f"dataset folder '{folder}' does not exist")
    found: dict[str, tuple[Path, str]] = {}
    for path in sorted(folder.iterdir()):
        suffix = path.suffix.lower()
        if suffix == ".mat":
            for name in _mat_names(path):
                found.setdefault(name.lower(), (path, name))
        elif suffix in (".tif", ".tiff", ".npy"):
            found.setdefault(path.stem.lower(), (path, path.stem))
    return found


def _mat_names(path: Path) -> list[str]:
    import scipy.io

    try:
        return [name for name, shape, kind in scipy.io.whosmat(str(path)) if kind != "char" and len(shape) in (2, 3)]
    except NotImplementedError:  # MATLAB v7.3 = HDF5
        return list(_h5py(path).File(path, "r").keys())


def _h5py(path: Path):
    try:
        import h5py
    except ImportError:
        raise LvpcError(f"{path.name} is a MATLAB v7.3 (HDF5) file: install h5py (pip install h5py) or re-save it "
                        "in MATLAB with save(..., '-v7')") from None
    return h5py


def _find(found: dict[str, tuple[Path, str]], names: tuple[str, ...]) -> tuple[Path, str] | None:
    return next((found[n.lower()] for n in names if n.lower() in found), None)


def _pick(found, names: tuple[str, ...], what: str, folder: Path) -> tuple[Path, str]:
    hit = _find(found, names)
    if hit is None:
        raise LvpcError(f"{folder}: {what} not found; expected a variable or file named {' or '.join(names)}")
    return hit


def _read(entry: tuple[Path, str]) -> np.ndarray:
    """The array as stored: MATLAB order for .mat (rows, cols[, bands]), GDAL order for GeoTIFF."""
    path, name = entry
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if suffix in (".tif", ".tiff"):
        from osgeo import gdal

        gdal.UseExceptions()
        ds = gdal.Open(str(path))
        data = ds.ReadAsArray().astype(np.float64)
        nodata = ds.GetRasterBand(1).GetNoDataValue()
        if nodata is not None:
            data[data == nodata] = np.nan
        return data
    import scipy.io

    try:
        return scipy.io.loadmat(str(path), variable_names=[name])[name]
    except NotImplementedError:
        with _h5py(path).File(path, "r") as f:
            return np.asarray(f[name]).T  # HDF5 keeps MATLAB's column-major dimensions reversed


def _label_map(array: np.ndarray) -> np.ndarray:
    return np.nan_to_num(np.asarray(array, dtype=np.float64), nan=0.0).astype(np.int32)


def _oriented(array: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    """float32 (bands, rows, cols) from (rows, cols), (rows, cols, bands) or (bands, rows, cols)."""
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 2 and a.shape == shape:
        return a[None]
    if a.ndim == 3 and a.shape[1:] == shape:
        return np.ascontiguousarray(a)
    if a.ndim == 3 and a.shape[:2] == shape:
        return np.ascontiguousarray(a.transpose(2, 0, 1))
    raise LvpcError(f"the {name} image has shape {a.shape}, which does not match the label maps {shape}")


def checkerboard_split(labels: np.ndarray, block: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Spatially disjoint train/test label images: square blocks alternate like a chessboard.

    Test pixels closer than `gap` px to a training block are dropped, so no test window (of 2*gap+1 px)
    contains a training pixel."""
    from scipy.ndimage import binary_dilation

    rows, cols = np.indices(labels.shape)
    is_train = ((rows // block + cols // block) % 2) == 0
    near = binary_dilation(is_train, structure=np.ones((2 * gap + 1, 2 * gap + 1), bool)) if gap else is_train
    train = np.where(is_train, labels, 0)
    test = np.where(near, 0, labels)
    return train.astype(np.int32), test.astype(np.int32)


def development_split(scene: Scene, fraction: float = 1 / 3, gap: int = 5, seed: int = 0) -> Scene:
    """The scene with its TEST part replaced by a development part of its TRAINING part: `fraction` of every class's
    connected areas (4-connectivity, seeded) held out, training pixels within `gap` px of them dropped.

    What the defaults are chosen on (docs/benchmarks/README.md): the test part is never seen."""
    from scipy.ndimage import binary_dilation, label

    rng = np.random.default_rng(seed)
    dev = np.zeros_like(scene.train)
    for v in scene.class_values:
        areas, n = label(scene.train == v)
        held = rng.permutation(np.arange(1, n + 1))[:max(1, round(n * fraction))] if n > 1 else []
        dev[np.isin(areas, held)] = v
    near = binary_dilation(dev > 0, structure=np.ones((2 * gap + 1, 2 * gap + 1), bool))
    train = np.where(near, 0, scene.train).astype(np.int32)
    split = (f"development split of the training part ({scene.split}): {fraction:.2f} of every class's connected "
             f"areas held out (seed {seed}), training pixels within {gap} px of them dropped; the test part unused")
    return Scene(f"{scene.name}_dev", scene.arrays, train, dev, scene.class_values, scene.class_names, split)


def read_geotiffs(sources: dict[str, str], labels: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Co-registered GeoTIFF modalities (warped onto the first one's grid) and the label raster on that grid."""
    from lvpcnet_core import raster_io

    with raster_io.AlignedStack(sources, log=lambda _: None) as stack:
        arrays = stack.read_all()
        grid = stack.grid
    return arrays, raster_io.read_labels(labels, grid, log=lambda _: None)


def block_split_scene(name: str, arrays: dict[str, np.ndarray], label_image: np.ndarray, class_names: dict[int, str],
                      block: int, gap: int, min_pixels: int = 20) -> Scene:
    """A scene with one label map, split in blocks by `checkerboard_split`.

    Classes with fewer than `min_pixels` pixels in the training or the test part are dropped (they cannot be
    learned or scored); the split description says which."""
    train, test = checkerboard_split(label_image, block, gap)
    values, dropped = [], []
    for v in sorted(int(v) for v in np.unique(label_image) if v > 0):
        enough = (train == v).sum() >= min_pixels and (test == v).sum() >= min_pixels
        (values if enough else dropped).append(v)
    for v in dropped:
        train[train == v] = 0
        test[test == v] = 0
    split = (f"checkerboard of {block} x {block} px blocks (training on even blocks, test on odd), test pixels within "
             f"{gap} px of a training block dropped")
    if dropped:
        split += f"; classes {[class_names.get(v, v) for v in dropped]} dropped (under {min_pixels} px in a part)"
    return Scene(name, arrays, train, test, values, [class_names.get(v, f"class {v}") for v in values], split)


def load_geotiff_scene(name: str, sources: dict[str, str], labels: str, class_names: dict[int, str], block: int,
                       gap: int, min_pixels: int = 20) -> Scene:
    """GeoTIFF modalities and one label raster (`read_geotiffs`), split in blocks (`block_split_scene`)."""
    return block_split_scene(name, *read_geotiffs(sources, labels), class_names, block, gap, min_pixels)


SLOVENIA_CLASSES = {1: "Cultivated land", 2: "Forest", 3: "Grassland", 4: "Shrubland", 8: "Artificial surface"}
BRANDENBURG_CLASSES = {1: "Forest", 2: "Meadow", 3: "Farmland", 4: "Residential", 5: "Scrub", 6: "Grass",
                       7: "Water", 8: "Wetland"}
SAMSON_CLASSES = {1: "Soil", 2: "Tree", 3: "Water"}   # the README's rock/soil: "Soil" has a built-in description
SAMSON_SPLIT_BAND = 78                                # bands 1-78: 401-643 nm; 79-156: 647-889 nm


def load_slovenia(folder: str | Path, block: int = 25, gap: int = 5) -> Scene:
    """Sentinel-2 (13 bands, as the 'hs' modality) and the DEM (as 'lidar'), RABA land-use labels."""
    folder = Path(folder)
    return load_geotiff_scene("slovenia", {"hs": str(folder / "s2_l1c_20150711.tif"), "lidar": str(folder / "dem.tif")},
                              str(folder / "labels.tif"), SLOVENIA_CLASSES, block, gap)


def load_brandenburg(folder: str | Path, block: int = 128, gap: int = 5) -> Scene:
    """Sentinel-2 resolution groups as modalities: 10 m bands ('s2_10m') and 20 m bands ('s2_20m', warped to 10 m)."""
    folder = Path(folder)
    return load_geotiff_scene("brandenburg", {"s2_10m": str(folder / "s2_10m_B02_B03_B04_B08.tif"),
                                              "s2_20m": str(folder / "s2_20m_B05_B06_B07_B8A_B11_B12.tif")},
                              str(folder / "labels_osm_10m.tif"), BRANDENBURG_CLASSES, block, gap)


def load_samson(folder: str | Path, block: int = 19, gap: int = 5) -> Scene:
    """The 156-band Samson cube cut by wavelength into two 'sensors' of 78 bands: 'vis' (401-643 nm, blue to
    orange) and 'red_nir' (647-889 nm, red, red edge, near infrared); labels: the dominant endmember (`gt.tif`).

    Many bands and few classes: a development scene for band handling, too easy for accuracy claims. 19 px blocks
    make a 5 x 5 board on the 95 x 95 scene, with at least 4 blocks of every class in each part."""
    folder = Path(folder)
    arrays, labels = read_geotiffs({"image": str(folder / "image.tif")}, str(folder / "gt.tif"))
    image = arrays["image"]
    if image.shape[0] != 2 * SAMSON_SPLIT_BAND:
        raise LvpcError(f"{folder / 'image.tif'} has {image.shape[0]} bands; the Samson cube has "
                        f"{2 * SAMSON_SPLIT_BAND}")
    cube = {"vis": image[:SAMSON_SPLIT_BAND], "red_nir": image[SAMSON_SPLIT_BAND:]}
    return block_split_scene("samson", cube, labels, SAMSON_CLASSES, block, gap)


def load_scene(dataset: str, folder: str | Path, modalities: list[str] | None = None) -> Scene:
    """One entry point for the command line: a paper dataset or one of the shared scenes."""
    if dataset == "slovenia":
        return load_slovenia(folder)
    if dataset == "brandenburg":
        return load_brandenburg(folder)
    if dataset == "samson":
        return load_samson(folder)
    return load_benchmark(folder, dataset, modalities)
