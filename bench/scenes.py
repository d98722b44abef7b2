"""Scenes the shared data does not hold, made on the fly for the training-time benchmark (issue 15).

- `hyperspectral`: a synthetic 218-band airborne VNIR scene (400-1000 nm, 1 m pixels) of eight urban land covers
  built from MEASURED field spectra (MUUFL Gulfport ASD library), with a 1-band DSM as the second modality.
- `brandenburg4`: the real Brandenburg Sentinel-2 scene as four sensors (10 m, 20 m red edge, 20 m SWIR, 60 m),
  band subsets of the shared GeoTIFFs as VRTs.

Each maker writes into `folder` and returns the modality files and the label raster, which
`bench.common.load_split` reads like a real scene's. Nothing is cached: a scene is a function of its seed and
takes seconds to make. The makers import the engine inside, and only names every revision has: `--against REV`
runs put an older engine first on the path.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HS_CLASSES = {1: "Trees", 2: "Grass", 3: "Sand", 4: "Road", 5: "Building", 6: "Sidewalk", 7: "Bare soil",
              8: "Cloth panels"}
# the library's materials (metadata.csv) each class is made of
MATERIALS = {1: ("LiveOakLeaves", "FriendshipOak", "LeavesBarkMixed"),
             2: ("GrassByBuilding", "GrassClumpInSun", "LandHyacinth"),
             3: ("BeachSand", "SandInSun"),
             4: ("Asphalt",),
             5: ("Building", "Pillar"),
             6: ("Sidewalk", "ConcreteAndMetalSquare"),
             7: ("Dirt", "GroundLitter", "DriedLeaves", "DeadWees"),
             8: ("BlueCloth", "RedCloth", "GreenCloth", "BlackCloth")}
HEIGHT_M = {1: 12.0, 2: 0.3, 5: 8.0}    # above the terrain; the other classes lie on it
WAVELENGTHS_NM = (400.0, 1000.0)        # the ASD spectra are noisy below 400 and above 1000 nm
SPECTRA_PER_CLASS = 4                   # library spectra mixed within a class
REGION_PX = 12.0                        # smoothing of the class fields: regions of a few tens of pixels
MIXTURE_PX = 6.0                        # smoothing of the within-class abundances
BOUNDARY = 0.15                         # softmax temperature of the cover: mixed pixels along region boundaries
ILLUMINATION = 0.15                     # relative brightness variation (slope, shade)
NOISE = 0.02                            # sensor noise, reflectance units
DSM_NOISE_M = 0.3


def hyperspectral(folder: str | Path, library: str | Path, rows: int = 256, cols: int = 512, bands: int = 218,
                  seed: int = 0) -> tuple[dict[str, str], str]:
    """'hs' (`bands` bands) and 'lidar' (DSM, metres) GeoTIFFs and a label raster (dominant class everywhere).

    Classes are smooth regions (argmax of seeded smooth random fields); a class is one material: a few of its
    library spectra mixed with spatially varying abundance. Pixels on region boundaries mix classes, brightness
    varies smoothly, noise is added: separable, but not trivially (seed 0, 500 training pixels per class: a
    100-tree RandomForest on centre pixels scores 90 % OA on the right half). Only trees and buildings stand out in
    the DSM.
    """
    from lvpcnet_core.raster_io import Grid, write_raster
    from lvpcnet_core.synthetic import EPSG_32633

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    spectra, wavelengths, materials = _library(Path(library))
    response = band_response(wavelengths, np.linspace(*WAVELENGTHS_NM, bands))
    cover = _softmax(_fields(rng, len(HS_CLASSES), rows, cols, REGION_PX) / BOUNDARY)
    cube = np.zeros((bands, rows, cols), np.float32)
    for k, names in enumerate(MATERIALS.values()):
        pool = np.flatnonzero(np.isin(materials, names))
        chosen = rng.choice(pool, min(SPECTRA_PER_CLASS, len(pool)), replace=False)
        abundance = _softmax(_fields(rng, len(chosen), rows, cols, MIXTURE_PX))
        cube += cover[k] * np.tensordot((spectra[chosen] @ response.T).astype(np.float32), abundance, axes=(0, 0))
    cube *= 1 + ILLUMINATION * _fields(rng, 1, rows, cols, 2 * REGION_PX)
    cube += rng.normal(0, NOISE, cube.shape).astype(np.float32)
    height = np.array([HEIGHT_M.get(v, 0.0) for v in HS_CLASSES], np.float32)
    dsm = _fields(rng, 1, rows, cols, 8 * REGION_PX)[0] + np.tensordot(height, cover, axes=(0, 0))
    dsm += rng.normal(0, DSM_NOISE_M, dsm.shape).astype(np.float32)
    grid = Grid(EPSG_32633, (500000.0, 1.0, 0.0, 5100000.0, 0.0, -1.0), cols, rows)
    files = {"hs": str(folder / "hs.tif"), "lidar": str(folder / "dsm.tif")}
    write_raster(files["hs"], cube, grid)
    write_raster(files["lidar"], dsm, grid)
    labels = str(folder / "labels.tif")
    write_raster(labels, (cover.argmax(0) + 1).astype(np.uint8), grid, nodata=0)
    return files, labels


def band_response(wavelengths: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """(bands, library samples) Gaussian spectral response, FWHM = the band spacing, each row summing to 1."""
    fwhm = (centres[-1] - centres[0]) / (len(centres) - 1)
    weights = np.exp(-0.5 * ((wavelengths[None, :] - centres[:, None]) / (fwhm / 2.3548)) ** 2)
    return weights / weights.sum(1, keepdims=True)


def brandenburg4(folder: str | Path, source: str | Path) -> tuple[dict[str, str], str]:
    """The Brandenburg Sentinel-2 groups as four sensors: the 10 m and 60 m files, the 20 m file cut into red
    edge (B05 B06 B07 B8A) and SWIR (B11 B12) through VRTs in `folder`. 4 sensors = 14 absence cases."""
    from osgeo import gdal

    folder, source = Path(folder), Path(source)
    folder.mkdir(parents=True, exist_ok=True)
    twenty = gdal.Open(str(source / "s2_20m_B05_B06_B07_B8A_B11_B12.tif"))
    if twenty is None:
        raise FileNotFoundError(f"the Brandenburg scene: {gdal.GetLastErrorMsg()} (LVPC_DATA names the data folder)")
    files = {"s2_10m": str(source / "s2_10m_B02_B03_B04_B08.tif")}
    for name, band_list in (("s2_red_edge", [1, 2, 3, 4]), ("s2_swir", [5, 6])):
        files[name] = str(folder / f"{name}.vrt")
        gdal.Translate(files[name], twenty, format="VRT", bandList=band_list).FlushCache()
    files["s2_60m"] = str(source / "s2_60m_B01_B09_B10.tif")
    return files, str(source / "labels_osm_10m.tif")


def _library(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spectra (n, samples), wavelengths (nm) and each spectrum's material name."""
    with open(folder / "metadata.csv", newline="") as f:
        materials = {int(row["index"]): row["material"] for row in csv.DictReader(f)}
    spectra = np.load(folder / "spectra.npy")
    return spectra, np.load(folder / "wavelengths_nm.npy"), np.array([materials[i] for i in range(len(spectra))])


def _fields(rng: np.random.Generator, n: int, rows: int, cols: int, sigma: float) -> np.ndarray:
    """`n` smooth random fields (n, rows, cols), each of zero mean and unit standard deviation."""
    from scipy.ndimage import gaussian_filter

    noise = rng.standard_normal((n, rows, cols)).astype(np.float32)
    smooth = np.stack([gaussian_filter(f, sigma, mode="reflect") for f in noise])
    smooth -= smooth.mean(axis=(1, 2), keepdims=True)
    return smooth / smooth.std(axis=(1, 2), keepdims=True)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(0, keepdims=True))
    return e / e.sum(0, keepdims=True)
