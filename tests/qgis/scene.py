"""A small synthetic scene on disk for the algorithm tests: HS (4 bands, 10 m), LIDAR (1 band, 20 m: resampled),
label raster and ROI polygons of three classes in vertical stripes that each modality separates on its own."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from osgeo import ogr, osr

from lvpcnet_core.raster_io import Grid, write_raster

EPSG = 32633
SIZE = 30  # pixels of 10 m
X0, Y0 = 500000.0, 5100000.0
CLASSES = ["built-up", "forest", "water"]  # sorted: a text field codes them 1, 2, 3 in this order


@dataclass(frozen=True)
class Scene:
    hs: Path
    lidar: Path
    labels: Path
    rois: Path  # layer "rois": fields "class" (text) and "code" (integer)


def _wkt() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(EPSG)
    return srs.ExportToWkt()


def stripe(cols: np.ndarray) -> np.ndarray:
    """Class index 0..2 of each column: three vertical stripes."""
    return np.minimum(cols * 3 // SIZE, 2)


def make_scene(folder: Path, seed: int = 0) -> Scene:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    wkt = _wkt()
    grid = Grid(wkt, (X0, 10.0, 0.0, Y0, 0.0, -10.0), SIZE, SIZE)
    klass = np.broadcast_to(stripe(np.arange(SIZE)), (SIZE, SIZE))
    signature = np.array([[0.1, 0.3, 0.2, 0.5], [0.05, 0.1, 0.05, 0.4], [0.08, 0.06, 0.03, 0.02]], np.float32)
    hs = signature[klass].transpose(2, 0, 1) + rng.normal(0, 0.01, (4, SIZE, SIZE)).astype(np.float32)
    scene = Scene(folder / "hs.tif", folder / "lidar.tif", folder / "labels.tif", folder / "rois.gpkg")
    write_raster(str(scene.hs), hs.astype(np.float32), grid)
    coarse = Grid(wkt, (X0, 20.0, 0.0, Y0, 0.0, -20.0), SIZE // 2, SIZE // 2)
    height = np.array([12.0, 25.0, 0.0], np.float32)[stripe(np.arange(0, SIZE, 2))]
    lidar = np.broadcast_to(height, (SIZE // 2, SIZE // 2)) + rng.normal(0, 0.3, (SIZE // 2, SIZE // 2))
    write_raster(str(scene.lidar), lidar.astype(np.float32), coarse, nodata=-9999.0)
    labels = np.zeros((SIZE, SIZE), np.uint8)
    labels[::2, ::2] = (klass[::2, ::2] + 1).astype(np.uint8)  # a sparse reference: every other pixel
    write_raster(str(scene.labels), labels, grid, nodata=0)
    _write_rois(scene.rois, wkt)
    return scene


def _write_rois(path: Path, wkt: str) -> None:
    """One polygon per class, 6 x 20 pixels in the middle of its stripe."""
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    layer = ds.CreateLayer("rois", srs, ogr.wkbPolygon)
    layer.CreateField(ogr.FieldDefn("class", ogr.OFTString))
    layer.CreateField(ogr.FieldDefn("code", ogr.OFTInteger))
    for i, name in enumerate(CLASSES):
        c0 = i * SIZE // 3 + 2
        xmin, xmax = X0 + c0 * 10, X0 + (c0 + 6) * 10
        ymax, ymin = Y0 - 50, Y0 - 250
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetField("class", name)
        feature.SetField("code", i + 1)
        feature.SetGeometry(ogr.CreateGeometryFromWkt(
            f"POLYGON(({xmin} {ymin},{xmax} {ymin},{xmax} {ymax},{xmin} {ymax},{xmin} {ymin}))"))
        layer.CreateFeature(feature)
    ds = None
