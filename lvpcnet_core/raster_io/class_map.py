"""The classified map and its companions (confidence, class probabilities), written block by block and published
atomically with their QGIS style; reading an existing class map.
"""
from __future__ import annotations

import colorsys
import os
import sys
import xml.etree.ElementTree as ET
from typing import Iterable

import numpy as np
from osgeo import gdal

from ..errors import LvpcError
from ..files import discard, publish, qml_path, stamp, temporary_beside, write_failed
from ..gdal_errors import raising as _raising
from .grid import Grid
from .labels import not_codes
from .legend import label_legend
from .stack import open_raster, read_valid


@_raising
def class_map_info(path: str) -> tuple[Grid, dict[int, str]]:
    """An existing class map's (MAP) grid and its class names by code, as a label raster's are read (a .qml
    beside it, GDAL category names as lvpc:classify writes them, an attribute table); empty when it has none."""
    grid = Grid.from_dataset(open_raster("MAP", path))
    return grid, {code: name for code, (name, _) in label_legend(path).items() if name and 0 < code < 256}


@_raising
def scan_class_map(path: str, labels: np.ndarray, rows_per_block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per class code of a class map (256 counts; nodata and 0 are not counted) and its codes at the
    labelled (non-zero) pixels of `labels`, a label image on the map's grid, in `np.nonzero` order.

    The map is read in strips of rows, so a map of any size is counted in bounded memory."""
    ds = open_raster("MAP", path)
    width, height = ds.RasterXSize, ds.RasterYSize
    if labels.shape != (height, width):
        raise ValueError(f"labels {labels.shape} are not on the map's {height} x {width} grid")
    step = rows_per_block or max(1, 2**22 // max(width, 1))
    counts = np.zeros(256, dtype=np.int64)
    mapped = []
    for y in range(0, height, step):
        rows = min(step, height - y)
        try:
            values = read_valid(ds, 0, y, width, rows)[0]
        except RuntimeError as exc:
            raise LvpcError(f"MAP: reading {path} failed ({str(exc).strip()}): the file is damaged or truncated; "
                            "check it with `gdalinfo -checksum`, or choose another file.") from None
        shown = not_codes(values)
        if shown:
            raise LvpcError(f"MAP {path} holds values that are not class codes ({shown}): a class map holds integer "
                            "class codes 1 to 255, with 0 or nodata where nothing was classified (a confidence or "
                            "other continuous raster is not a class map). Give the map lvpc:classify wrote, or "
                            "recode the raster.")
        codes = np.nan_to_num(values, nan=0.0).astype(np.int64)
        counts += np.bincount(codes.ravel(), minlength=256)
        mapped.append(codes[labels[y:y + rows] != 0])
    counts[0] = 0
    return counts, np.concatenate(mapped) if mapped else np.zeros(0, dtype=np.int64)


# Okabe-Ito, then Paul Tol's "muted" scheme: both designed to stay distinct under colour-vision deficiency.
_PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7",
            "#117733", "#88CCEE", "#882255", "#DDCC77", "#332288", "#CC6677", "#44AA99", "#999933",
            "#AA4499", "#000000", "#DDDDDD"]


def default_colors(n: int) -> list[tuple[int, int, int]]:
    """n distinct colours: colour-blind-friendly schemes first, then evenly spread hues for very many classes."""
    colors = [tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) for h in _PALETTE[:n]]
    extra = n - len(colors)
    for i in range(extra):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65 if i % 2 else 0.9, 0.95 if i % 3 else 0.7)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return colors


_GTIFF_OPTIONS = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"]


class ClassMapWriter:
    """A classified GeoTIFF (and optional confidence and class-probability GeoTIFFs) written block by block,
    published only on success.

    Files are written to temporary files of this run beside the targets and renamed onto them together, with the
    `.qml` style, when the `with` block ends normally (`files.publish`): a failed or cancelled run never leaves half a
    map or damages an earlier one, and of two runs writing one map the second to finish refuses to replace the first's.
    """

    def __init__(self, path: str, grid: Grid, class_values: list[int], class_names: list[str],
                 colors: list[tuple[int, int, int]], confidence_path: str | None = None,
                 probabilities_path: str | None = None):
        if not len(class_values) == len(class_names) == len(colors):
            raise LvpcError(f"Class map {path}: {len(class_values)} class values, {len(class_names)} names and "
                            f"{len(colors)} colours must match one to one.")
        if len(set(class_values)) != len(class_values) or any(not 1 <= int(v) <= 255 for v in class_values):
            raise LvpcError(f"Class map {path}: class values {class_values} must be distinct and within 1..255 "
                            "(0 is nodata).")
        self.path, self.grid = str(path), grid
        self.class_values = [int(v) for v in class_values]
        self.class_names, self.colors = list(class_names), [tuple(int(c) for c in rgb) for rgb in colors]
        self.confidence_path = str(confidence_path) if confidence_path is not None else None
        self.probabilities_path = str(probabilities_path) if probabilities_path is not None else None
        self._classes: gdal.Dataset | None = None
        self._confidence: gdal.Dataset | None = None
        self._probabilities: gdal.Dataset | None = None
        self._partial: dict[str, str] = {}  # target -> this run's temporary file
        self._stamps: dict[str, tuple | None] = {}
        self._valid = np.zeros(256, dtype=bool)
        self._valid[[0, *self.class_values]] = True

    def _targets(self) -> list[str]:
        return [p for p in (self.path, self.confidence_path, self.probabilities_path) if p is not None]

    @staticmethod
    def sidecars(path: str, style: bool) -> list[str]:
        """The files written beside a map (`style`: with its `.qml`) or a confidence or probability raster: GDAL's
        metadata."""
        return [path + ".aux.xml", *([qml_path(path)] if style else [])]

    def _create(self, path: str, dtype: int, nodata: float, bands: int = 1) -> gdal.Dataset:
        # one band after the other in the file: a block is written band by band without rewriting shared tiles
        options = _GTIFF_OPTIONS + (["INTERLEAVE=BAND"] if bands > 1 else [])
        try:
            self._stamps[path] = stamp(path)
            self._partial[path] = temporary_beside(path, ".tif")
            ds = gdal.GetDriverByName("GTiff").Create(self._partial[path], self.grid.width, self.grid.height, bands,
                                                      dtype, options)
        except (OSError, RuntimeError) as exc:
            raise LvpcError(f"Cannot create the output {path} ({exc}): "
                            "check that its folder exists and is writable.") from exc
        ds.SetGeoTransform(self.grid.geotransform)
        if self.grid.crs_wkt:
            ds.SetProjection(self.grid.crs_wkt)
        for i in range(bands):
            ds.GetRasterBand(i + 1).SetNoDataValue(nodata)
        return ds

    @_raising
    def __enter__(self) -> ClassMapWriter:
        try:
            self._classes = self._create(self.path, gdal.GDT_Byte, 0)
            band = self._classes.GetRasterBand(1)
            table = gdal.ColorTable()
            table.SetColorEntry(0, (0, 0, 0, 0))
            names = [""] * (max(self.class_values) + 1)
            for value, name, rgb in zip(self.class_values, self.class_names, self.colors):
                table.SetColorEntry(value, (*rgb, 255))
                names[value] = name
            band.SetRasterColorTable(table)
            band.SetRasterColorInterpretation(gdal.GCI_PaletteIndex)
            band.SetCategoryNames(names)
            if self.confidence_path is not None:
                self._confidence = self._create(self.confidence_path, gdal.GDT_Float32, float("nan"))
            if self.probabilities_path is not None:
                self._probabilities = self._create(self.probabilities_path, gdal.GDT_Float32, float("nan"),
                                                   len(self.class_values))
                for i, name in enumerate(self.class_names):
                    self._probabilities.GetRasterBand(i + 1).SetDescription(name)
        except BaseException:
            self._discard()
            raise
        return self

    @_raising
    def write(self, xoff: int, yoff: int, classes: np.ndarray, confidence: np.ndarray | None = None,
              probabilities: np.ndarray | None = None) -> None:
        """Write a block of class codes (0 = nodata) and, when those files are open, its confidences and its
        (classes, rows, cols) class probabilities in the order of `class_values`."""
        if self._classes is None:
            raise RuntimeError("ClassMapWriter.write() called outside its `with` block")
        rows, cols = classes.shape
        if xoff < 0 or yoff < 0 or xoff + cols > self.grid.width or yoff + rows > self.grid.height:
            raise ValueError(f"block {cols}x{rows} at ({xoff}, {yoff}) is outside the "
                             f"{self.grid.width}x{self.grid.height} grid")
        codes = np.asarray(classes)
        if codes.size and (codes.min() < 0 or codes.max() > 255 or not self._valid[codes].all()):
            raise ValueError(f"class codes {sorted(set(np.unique(codes).tolist()) - set(self.class_values) - {0})} "
                             "are not among the map's classes")
        if self._confidence is not None and confidence is None:
            raise ValueError("a confidence file is open: pass confidence for every block")
        if self._probabilities is not None and (probabilities is None or
                                                probabilities.shape != (len(self.class_values), rows, cols)):
            raise ValueError(f"a probability file is open: pass ({len(self.class_values)}, {rows}, {cols}) "
                             "probabilities for every block")
        try:
            self._classes.GetRasterBand(1).WriteArray(codes.astype(np.uint8), xoff, yoff)
            if self._confidence is not None:
                conf = np.asarray(confidence, dtype=np.float32).copy()
                conf[codes == 0] = np.nan
                self._confidence.GetRasterBand(1).WriteArray(conf, xoff, yoff)
            if self._probabilities is not None:
                for i, band in enumerate(np.asarray(probabilities, dtype=np.float32)):
                    self._probabilities.GetRasterBand(i + 1).WriteArray(np.where(codes == 0, np.nan, band), xoff, yoff)
        except RuntimeError as err:
            failure = str(err)
        else:
            return
        raise write_failed("OUTPUT", self.path, failure)

    @_raising
    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None:
            self._discard()
            return
        failure = None
        try:
            # A full disk shows up when GDAL flushes its cache: check it here, where it can still stop the rename.
            self._classes.FlushCache()
            for ds in (self._confidence, self._probabilities):
                if ds is not None:
                    ds.FlushCache()
            # closes the files (and writes the .aux.xml with category names)
            self._classes = self._confidence = self._probabilities = None
        except RuntimeError as err:
            failure = str(err)  # kept as text: the exception's frames would keep the datasets open
        files: list[tuple[str | None, str]] = []
        try:
            if failure is None:
                qml = qml_path(self.path)
                self._stamps[qml] = stamp(qml)
                self._partial[qml] = temporary_beside(qml, ".qml")
                with open(self._partial[qml], "w", encoding="utf-8") as f:
                    f.write(paletted_qml(self.class_values, self.class_names, self.colors))
                files.append((self._partial[qml], qml))
        except OSError as err:
            failure = err.strerror or str(err)
        if failure is not None:
            self._discard()
            raise write_failed("OUTPUT", self.path, failure)
        for target in self._targets():
            aux = self._partial[target] + ".aux.xml"
            # an older map's metadata must not stick to the new one
            files += [(self._partial[target], target), (aux if os.path.exists(aux) else None, target + ".aux.xml")]
        self._partial = {}
        publish(files, self._stamps, "OUTPUT")

    def _discard(self) -> None:
        """Close and delete the partial files; whatever lies at the targets stays as it was."""
        # Closing a file that failed to write repeats the failure from GDAL's destructor, which Python would print
        # as "Exception ignored": the failure is already reported, so close these quietly.
        hook, sys.unraisablehook = sys.unraisablehook, lambda _: None
        gdal.PushErrorHandler("CPLQuietErrorHandler")
        try:
            self._classes = self._confidence = self._probabilities = None
        finally:
            gdal.PopErrorHandler()
            sys.unraisablehook = hook
        discard(p for tmp in self._partial.values() for p in (tmp, tmp + ".aux.xml"))
        self._partial = {}


def paletted_qml(class_values: Iterable[int], class_names: Iterable[str],
                 colors: Iterable[tuple[int, int, int]]) -> str:
    """A QGIS 3.22 layer style: paletted renderer on band 1 listing exactly these classes."""
    qgis = ET.Element("qgis", {"version": "3.22.16-Białowieża", "styleCategories": "AllStyleCategories",
                               "hasScaleBasedVisibilityFlag": "0", "minScale": "1e+08", "maxScale": "0"})
    pipe = ET.SubElement(qgis, "pipe")
    provider = ET.SubElement(pipe, "provider")
    ET.SubElement(provider, "resampling", {"enabled": "false", "maxOversampling": "2",
                                           "zoomedInResamplingMethod": "nearestNeighbour",
                                           "zoomedOutResamplingMethod": "nearestNeighbour"})
    renderer = ET.SubElement(pipe, "rasterrenderer", {"type": "paletted", "band": "1", "opacity": "1",
                                                      "alphaBand": "-1", "nodataColor": ""})
    ET.SubElement(renderer, "rasterTransparency")
    min_max = ET.SubElement(renderer, "minMaxOrigin")
    for tag, text in (("limits", "None"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated"),
                      ("cumulativeCutLower", "0.02"), ("cumulativeCutUpper", "0.98"), ("stdDevFactor", "2")):
        ET.SubElement(min_max, tag).text = text
    palette = ET.SubElement(renderer, "colorPalette")
    for value, name, (r, g, b) in zip(class_values, class_names, colors):
        ET.SubElement(palette, "paletteEntry", {"value": str(int(value)), "color": f"#{r:02x}{g:02x}{b:02x}",
                                                "alpha": "255", "label": str(name)})
    ET.SubElement(pipe, "brightnesscontrast", {"brightness": "0", "contrast": "0", "gamma": "1"})
    ET.SubElement(pipe, "huesaturation", {"saturation": "0", "grayscaleMode": "0", "invertColors": "0",
                                          "colorizeOn": "0", "colorizeRed": "255", "colorizeGreen": "128",
                                          "colorizeBlue": "128", "colorizeStrength": "100"})
    ET.SubElement(pipe, "rasterresampler", {"maxOversampling": "2"})
    ET.SubElement(pipe, "resamplingStage").text = "resamplingFilter"
    ET.SubElement(qgis, "blendMode").text = "0"
    ET.indent(qgis)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(qgis, encoding="unicode") + "\n"


@_raising
def write_raster(path: str, array: np.ndarray, grid: Grid, nodata: float | None = None) -> None:
    """Write a (rows, cols) or (bands, rows, cols) array of any GDAL-supported dtype as a GeoTIFF on `grid`."""
    from osgeo import gdal_array

    data = array[np.newaxis] if array.ndim == 2 else array
    if data.shape[1:] != (grid.height, grid.width):
        raise ValueError(f"array {data.shape[1:]} does not match the grid {grid.height}x{grid.width}")
    dtype = gdal_array.NumericTypeCodeToGDALTypeCode(data.dtype)
    if dtype is None:
        raise ValueError(f"GDAL cannot store {data.dtype}")
    options = ["TILED=YES", "COMPRESS=DEFLATE"]
    if data.dtype == np.int8 and dtype == gdal.GDT_Byte:  # GDAL < 3.7 has no Int8 type
        options.append("PIXELTYPE=SIGNEDBYTE")
    ds = gdal.GetDriverByName("GTiff").Create(str(path), grid.width, grid.height, data.shape[0], dtype, options)
    ds.SetGeoTransform(grid.geotransform)
    if grid.crs_wkt:
        ds.SetProjection(grid.crs_wkt)
    for i, band_data in enumerate(data):
        band = ds.GetRasterBand(i + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(band_data)
    ds = None
