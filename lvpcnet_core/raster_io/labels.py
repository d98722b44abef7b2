"""Training and reference labels on a grid: label rasters, ROI polygons and points, masks."""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
from osgeo import gdal, ogr, osr

from ..errors import LvpcError
from ..gdal_errors import raising as _raising
from .grid import Grid
from .stack import open_raster, read_first_band


@_raising
def read_labels(path: str, grid: Grid, log: Callable[[str], None] = print) -> np.ndarray:
    """A label raster's class codes on `grid` as int32, 0 = unlabelled (nodata -> 0).

    Codes must be integers 0..255: casting 1.5 to 1 or -1 to a code would swap or invent classes without a word."""
    values = read_first_band(path, grid, log)
    shown = not_codes(values)
    if shown:
        raise LvpcError(f"Label raster (LABELS) {path} holds values that are not class codes ({shown}): class codes "
                        "are integers 1 to 255, with 0 or nodata where a pixel is unlabelled. Recode the raster, "
                        "or give the classes as ROIs.")
    return np.nan_to_num(values, nan=0.0).astype(np.int32)


def not_codes(values: np.ndarray) -> str:
    """The first few valid values that are no class code (integer 0..255), as text; "" when all are codes."""
    finite = values[np.isfinite(values)]
    bad = np.unique(finite[(finite != np.round(finite)) | (finite < 0) | (finite > 255)])
    return ", ".join(f"{v:g}" for v in bad[:5]) + (", ..." if bad.size > 5 else "") if bad.size else ""


@_raising
def read_mask(path: str, grid: Grid, log: Callable[[str], None] = print) -> np.ndarray:
    """Where to classify, as a bool (rows, cols) array: a raster's non-zero valid pixels, or inside polygons."""
    name = os.path.basename(str(path))
    try:
        ds = gdal.OpenEx(str(path), gdal.OF_VECTOR)
    except RuntimeError:
        ds = None
    if ds is None:
        return np.nan_to_num(read_first_band(path, grid, log), nan=0.0) != 0
    lyr = _vector_layer(ds, path, None, log)
    features = [(f.GetGeometryRef().Clone(), 1) for f in lyr if f.GetGeometryRef() is not None]
    if not features:
        raise LvpcError(f"MASK layer {name} has no geometries: draw the area to classify or leave MASK empty.")
    return _burn(features, [1] * len(features), lyr.GetSpatialRef(), grid, path, log) != 0


@_raising
def rasterize_rois(path: str, class_field: str, grid: Grid, layer: str | None = None,
                   class_values: dict[str, int] | None = None,
                   log: Callable[[str], None] = print) -> tuple[np.ndarray, list[int], list[str]]:
    """Burn training polygons/points onto `grid`: (labels int32 (rows, cols), class codes, class names).

    An integer field holds the class codes (1..255); a text field holds class names, coded 1..K in sorted
    name order, or by `class_values` (name -> code) when given. Features in another CRS are reprojected;
    polygons burn the pixels whose centre lies inside, points their pixel, later features over earlier ones.
    Features whose class is NULL or empty, or without geometry, are skipped and counted in the log.
    Classes with no pixel on the grid are dropped (logged); at least two must remain.
    """
    ds = open_raster(os.path.basename(str(path)), path, kind="vector")
    lyr = _vector_layer(ds, path, layer, log)
    defn = lyr.GetLayerDefn()
    fields = [defn.GetFieldDefn(i).GetName() for i in range(defn.GetFieldCount())]
    index = defn.GetFieldIndex(class_field)
    if index < 0:
        raise LvpcError(f"ROI layer {path} has no field '{class_field}': choose one of {fields}.")
    ftype = defn.GetFieldDefn(index).GetType()
    if ftype not in (ogr.OFTInteger, ogr.OFTInteger64, ogr.OFTReal, ogr.OFTString):
        raise LvpcError(f"Field '{class_field}' of {path} is neither integer nor text: "
                        "choose a class code or class name field.")
    features, skipped = [], 0
    for feature in lyr:
        geometry = feature.GetGeometryRef()
        value = None if feature.IsFieldNull(index) or not feature.IsFieldSet(index) else feature.GetField(index)
        if isinstance(value, str):
            value = value.strip() or None
        if geometry is None or geometry.IsEmpty() or value is None:
            skipped += 1
            continue
        features.append((geometry.Clone(), value))
    if skipped:
        log(f"ROIs {path}: skipped {skipped} feature(s) with an empty '{class_field}' or no geometry")
    if not features:
        raise LvpcError(f"ROI layer {path} has no features with a geometry and a '{class_field}' value: "
                        "draw training polygons or points and fill in their class.")
    codes, names = _class_codes([v for _, v in features], class_field, path, ftype == ogr.OFTString, class_values)
    labels = _burn(features, codes, lyr.GetSpatialRef(), grid, path, log)
    present = sorted(set(np.unique(labels).tolist()) - {0})
    if not present:
        raise LvpcError(f"No ROI of {path} falls inside the reference grid (bounds {grid.bounds}): "
                        "check the ROI layer's CRS and that it covers the input layers.")
    dropped = sorted(set(names) - set(present))
    if dropped:
        log(f"ROIs {path}: classes without any pixel on the grid are ignored: {[names[c] for c in dropped]}")
    if len(present) < 2:
        raise LvpcError(f"ROI layer {path} gives only one class ({names[present[0]]}) on the grid: "
                        "a classifier needs at least two classes; add ROIs of other classes.")
    return labels, present, [names[c] for c in present]


def _vector_layer(ds: gdal.Dataset, path: str, name: str | None, log: Callable[[str], None]) -> ogr.Layer:
    available = [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount())]
    if name is not None:
        if name not in available:
            raise LvpcError(f"ROI file {path} has no layer '{name}': choose one of {available}.")
        return ds.GetLayerByName(name)
    if not available:
        raise LvpcError(f"ROI file {path} holds no vector layer.")
    if len(available) > 1:
        log(f"ROI file {path} holds layers {available}; using '{available[0]}'")
    return ds.GetLayer(0)


def _class_codes(values: list, field: str, path: str, text: bool,
                 class_values: dict[str, int] | None) -> tuple[list[int], dict[int, str]]:
    """Per-feature class codes and code -> name."""
    if text:
        mapping = class_values or {n: i + 1 for i, n in enumerate(sorted(set(values)))}
        unknown = sorted(set(values) - set(mapping))
        if unknown:
            raise LvpcError(f"Field '{field}' of {path} has classes {unknown} unknown to the model or class map "
                            f"(it knows {sorted(mapping)}): rename them or train a model with these classes.")
        codes = [int(mapping[v]) for v in values]
        names = {int(c): n for n, c in mapping.items()}
    else:
        if any(float(v) != int(v) for v in values):
            raise LvpcError(f"Field '{field}' of {path} holds fractional numbers: use an integer class code field.")
        codes = [int(v) for v in values]
        inverse = {int(c): n for n, c in (class_values or {}).items()}
        names = {c: inverse.get(c, str(c)) for c in set(codes)}
    bad = sorted({c for c in codes if not 1 <= c <= 255})
    if bad:
        raise LvpcError(f"Class codes {bad} in field '{field}' of {path} are outside 1..255 "
                        "(0 means unlabelled): recode the classes.")
    return codes, names


# What GeoPackage layers without a CRS report (srs_id 0 and -1 of the GeoPackage standard).
_UNDEFINED_SRS = ("undefined geographic srs", "undefined cartesian srs")


def _burn(features: list, codes: list[int], source_srs: osr.SpatialReference | None, grid: Grid, path: str,
          log: Callable[[str], None]) -> np.ndarray:
    """Rasterise geometries with their codes onto the grid, reprojecting them into the grid's CRS."""
    target_srs = grid.srs()
    transform = None
    if source_srs is not None and (source_srs.GetName() or "").lower() in _UNDEFINED_SRS:
        source_srs = None  # a GeoPackage layer saved without CRS reports a placeholder, not a real CRS
    if source_srs is not None and target_srs is not None:
        source_srs = source_srs.Clone()
        source_srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        if not source_srs.IsSame(target_srs):
            transform = osr.CoordinateTransformation(source_srs, target_srs)
    elif source_srs is None or target_srs is None:
        log(f"ROIs {path}: CRS missing on the ROIs or the grid; coordinates are taken as the grid's")
    memory = ogr.GetDriverByName("Memory").CreateDataSource("")
    mem_layer = memory.CreateLayer("rois", srs=target_srs)
    mem_layer.CreateField(ogr.FieldDefn("code", ogr.OFTInteger))
    pixel_area = abs(grid.geotransform[1] * grid.geotransform[5])
    small = 0
    for (geometry, _), code in zip(features, codes):
        if transform is not None:
            try:
                geometry.Transform(transform)
            except RuntimeError as exc:
                raise LvpcError(f"ROIs {path}: a feature cannot be reprojected to the grid's CRS ({exc}); "
                                "check the ROI layer's CRS.") from exc
        if geometry.GetDimension() == 2 and geometry.GetArea() < pixel_area:
            geometry = geometry.Centroid()  # would burn no pixel centre: keep it as the pixel under its centre
            small += 1
        feature = ogr.Feature(mem_layer.GetLayerDefn())
        feature.SetGeometry(geometry)
        feature.SetField("code", code)
        mem_layer.CreateFeature(feature)
    target = gdal.GetDriverByName("MEM").Create("", grid.width, grid.height, 1, gdal.GDT_Int32)
    target.SetGeoTransform(grid.geotransform)
    if grid.crs_wkt:
        target.SetProjection(grid.crs_wkt)
    if small:
        log(f"ROIs {path}: {small} polygon(s) smaller than a pixel were burned as the pixel under their centre")
    gdal.RasterizeLayer(target, [1], mem_layer, options=["ATTRIBUTE=code"])
    return target.ReadAsArray().astype(np.int32)
