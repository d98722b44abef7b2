"""Raster and vector I/O: every modality on one reference grid, ROIs as label rasters, the classified map.

All pixel data leaves this module as float32 (bands, rows, cols) with NaN wherever a layer has no
valid value (its nodata value, its mask band, non-finite values, or outside its footprint), so the
rest of the engine needs one rule for "missing". Layers that do not already lie on the reference
grid are warped through an in-memory VRT, so only the blocks that are read are ever resampled.
"""
from __future__ import annotations

import colorsys
import math
import os
import sys
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np
from osgeo import gdal, ogr, osr

from .files import discard, publish, qml_path, stamp, temporary_beside, write_failed
from .gdal_errors import raising as _raising
from .progress import LvpcError


_TOLERANCE = 1e-6  # in pixels: offsets and sizes closer than this to a whole number are whole


@dataclass(frozen=True)
class Grid:
    """A raster pixel grid: CRS (WKT, "" when unknown), GDAL geotransform and size in pixels."""

    crs_wkt: str
    geotransform: tuple[float, float, float, float, float, float]
    width: int
    height: int

    @classmethod
    def from_dataset(cls, ds: gdal.Dataset) -> Grid:
        return cls(ds.GetProjection() or "", tuple(float(v) for v in ds.GetGeoTransform()),
                   ds.RasterXSize, ds.RasterYSize)

    @property
    def pixel_size(self) -> tuple[float, float]:
        """(x, y) pixel size, positive, in CRS units."""
        return abs(self.geotransform[1]), abs(self.geotransform[5])

    @property
    def resolution(self) -> float:
        """One number for the pixel size (geometric mean of x and y), for comparing resolutions."""
        return math.sqrt(self.pixel_size[0] * self.pixel_size[1])

    @property
    def north_up(self) -> bool:
        gt = self.geotransform
        return gt[2] == 0 and gt[4] == 0 and gt[1] > 0 and gt[5] < 0

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) of the outer pixel edges."""
        xs, ys = zip(*(self.to_map(c, r) for c in (0, self.width) for r in (0, self.height)))
        return min(xs), min(ys), max(xs), max(ys)

    def to_map(self, col: float, row: float) -> tuple[float, float]:
        gt = self.geotransform
        return gt[0] + col * gt[1] + row * gt[2], gt[3] + col * gt[4] + row * gt[5]

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        inv = gdal.InvGeoTransform(self.geotransform)
        return inv[0] + x * inv[1] + y * inv[2], inv[3] + x * inv[4] + y * inv[5]

    def window(self, xoff: int, yoff: int, xsize: int, ysize: int) -> Grid:
        """The grid of a block of this grid (may reach outside it)."""
        x, y = self.to_map(xoff, yoff)
        gt = self.geotransform
        return Grid(self.crs_wkt, (x, gt[1], gt[2], y, gt[4], gt[5]), xsize, ysize)

    def crop(self, extent: tuple[float, float, float, float]) -> Grid:
        """The whole pixels of this grid touched by `extent` (xmin, ymin, xmax, ymax in this CRS)."""
        xmin, ymin, xmax, ymax = extent
        if not (xmax > xmin and ymax > ymin):
            raise LvpcError(f"Extent {extent} is empty: give it as xmin, ymin, xmax, ymax with max > min.")
        cols, rows = zip(*(self.to_pixel(x, y) for x in (xmin, xmax) for y in (ymin, ymax)))
        c0 = max(0, math.floor(min(cols) + _TOLERANCE))
        r0 = max(0, math.floor(min(rows) + _TOLERANCE))
        c1 = min(self.width, math.ceil(max(cols) - _TOLERANCE))
        r1 = min(self.height, math.ceil(max(rows) - _TOLERANCE))
        if c1 <= c0 or r1 <= r0:
            raise LvpcError(f"Extent {extent} does not overlap the reference layer (bounds {self.bounds}): "
                            "give an extent in the reference layer's CRS that covers part of it.")
        return self.window(c0, r0, c1 - c0, r1 - r0)

    @classmethod
    def from_dict(cls, data: dict) -> Grid:
        """The grid `to_dict` wrote (a model's training grid)."""
        return cls(data["crs_wkt"], tuple(float(v) for v in data["geotransform"]), int(data["width"]),
                   int(data["height"]))

    def on_lattice(self, lattice: Grid) -> Grid:
        """This grid's extent in the pixels of `lattice` (north-up, same CRS): its origin and pixel size, the whole
        pixels that cover this grid's bounds, so every layer of one scene gives the same grid."""
        x0, px, _, y0, _, py = lattice.geotransform
        xmin, ymin, xmax, ymax = self.bounds
        c0, c1 = math.floor((xmin - x0) / px + _TOLERANCE), math.ceil((xmax - x0) / px - _TOLERANCE)
        r0, r1 = math.floor((ymax - y0) / py + _TOLERANCE), math.ceil((ymin - y0) / py - _TOLERANCE)
        return lattice.window(c0, r0, c1 - c0, r1 - r0)

    def offset_in(self, other: Grid) -> tuple[int, int] | None:
        """Pixel offset of this grid's origin on `other` when both share pixel size and pixel edges, else None.

        The CRS is not compared here; callers decide whether the two CRSs are the same.
        """
        a, b = self.geotransform, other.geotransform
        if any(abs(a[i] - b[i]) > _TOLERANCE * max(abs(b[1]), abs(b[5])) for i in (1, 2, 4, 5)):
            return None
        col, row = other.to_pixel(a[0], a[3])
        if abs(col - round(col)) > _TOLERANCE or abs(row - round(row)) > _TOLERANCE:
            return None
        return round(col), round(row)

    @_raising
    def srs(self) -> osr.SpatialReference | None:
        return _srs(self.crs_wkt)

    @_raising
    def to_dict(self) -> dict:
        """The grid as a model file keeps it (JSON), with its CRS's short name and units for people to read."""
        return {"crs": _crs_label(self.crs_wkt), "crs_wkt": self.crs_wkt, "geotransform": list(self.geotransform),
                "width": self.width, "height": self.height, "pixel_size": list(self.pixel_size),
                "units": _units(self.crs_wkt)}


def _srs(wkt: str) -> osr.SpatialReference | None:
    if not wkt:
        return None
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _same_crs(a: str, b: str) -> bool:
    sa, sb = _srs(a), _srs(b)
    if sa is None or sb is None:
        return sa is None and sb is None
    return bool(sa.IsSame(sb))


def _crs_label(wkt: str) -> str:
    srs = _srs(wkt)
    if srs is None:
        return "no CRS"
    try:
        srs.AutoIdentifyEPSG()
    except RuntimeError:
        pass  # a CRS without an EPSG code (a custom projection, a local CS) goes by its name
    code, authority = srs.GetAuthorityCode(None), srs.GetAuthorityName(None)
    return f"{authority}:{code}" if code and authority else srs.GetName()


def _units(wkt: str) -> str:
    srs = _srs(wkt)
    if srs is None:
        return "px"
    if srs.IsGeographic():
        return "deg"
    return {"metre": "m", "meter": "m"}.get(srs.GetLinearUnitsName(), srs.GetLinearUnitsName())


def _open(name: str, path: str, kind: str = "raster") -> gdal.Dataset:
    flags = gdal.OF_RASTER if kind == "raster" else gdal.OF_VECTOR
    try:
        ds = gdal.OpenEx(str(path), flags)
    except RuntimeError as exc:
        raise LvpcError(f"Layer '{name}': cannot open {path} as a {kind} ({exc}); check the path and format.") from exc
    if ds is None:
        raise LvpcError(f"Layer '{name}': cannot open {path} as a {kind}; check the path and format.")
    return ds


def _nodata(band: gdal.Band) -> float | int | None:
    """The band's nodata value, exact for 64-bit integer bands."""
    if band.DataType == getattr(gdal, "GDT_Int64", -1):
        return band.GetNoDataValueAsInt64()
    if band.DataType == getattr(gdal, "GDT_UInt64", -1):
        return band.GetNoDataValueAsUInt64()
    return band.GetNoDataValue()


def _equals_nodata(raw: np.ndarray, nodata: float | int | None) -> np.ndarray | None:
    """Where `raw` equals `nodata`, compared in the array's own type (None: nothing matches)."""
    if nodata is None or (isinstance(nodata, float) and math.isnan(nodata)):
        return None
    if np.issubdtype(raw.dtype, np.integer):
        info = np.iinfo(raw.dtype)
        if float(nodata) != int(nodata) or not info.min <= int(nodata) <= info.max:
            return None
        return raw == raw.dtype.type(int(nodata))
    return raw == raw.dtype.type(nodata)


def _read_valid(ds: gdal.Dataset, xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray:
    """A window of every band as float32, NaN where nodata, masked out or non-finite (window inside the file)."""
    raw = ds.ReadAsArray(xoff, yoff, xsize, ysize)
    raw = raw.reshape(ds.RasterCount, ysize, xsize)
    out = raw.astype(np.float32)
    for i in range(ds.RasterCount):
        band = ds.GetRasterBand(i + 1)
        invalid = _equals_nodata(raw[i], _nodata(band))
        if invalid is not None:
            out[i][invalid] = np.nan
        flags = band.GetMaskFlags()
        if not flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA):
            out[i][band.GetMaskBand().ReadAsArray(xoff, yoff, xsize, ysize) == 0] = np.nan
    out[~np.isfinite(out)] = np.nan
    return out


def _padded(read: Callable[[int, int, int, int], np.ndarray], bands: int, width: int, height: int,
            xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray:
    """Read a window that may reach outside a width x height raster; NaN outside."""
    out = np.full((bands, ysize, xsize), np.nan, dtype=np.float32)
    x0, y0 = max(xoff, 0), max(yoff, 0)
    x1, y1 = min(xoff + xsize, width), min(yoff + ysize, height)
    if x1 > x0 and y1 > y0:
        out[:, y0 - yoff:y1 - yoff, x0 - xoff:x1 - xoff] = read(x0, y0, x1 - x0, y1 - y0)
    return out


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class _Layer:
    """One raster seen on a target grid: a window of the file when it already lies on the grid, else a warped VRT."""

    def __init__(self, name: str, path: str, grid: Grid, *, reference: str, reference_grid: Grid,
                 resampling: str | None, log: Callable[[str], None]):
        self.name, self.path = name, path
        self.ds = _open(name, path)
        self.bands = self.ds.RasterCount
        self.grid = grid
        self._offset: tuple[int, int] | None = None
        self._source: gdal.Dataset | None = None
        native = Grid.from_dataset(self.ds)
        res = f"{native.resolution:g} {_units(native.crs_wkt)}"
        target = f"{grid.resolution:g} {_units(grid.crs_wkt)}"
        if not native.crs_wkt or not grid.crs_wkt:
            self._place_without_crs(native, path, reference, reference_grid, log)
            return
        offset = grid.offset_in(native)
        if _same_crs(native.crs_wkt, grid.crs_wkt) and offset is not None:
            if not _overlaps(native.bounds, grid.bounds):
                raise self._no_overlap(reference, native.bounds, grid)
            self._offset = offset
            if name != reference:
                log(f"{name}: already on the reference grid ({res}, {_crs_label(native.crs_wkt)}), read as is")
            return
        footprint = self._footprint(native, grid, path)
        if not _overlaps(footprint.bounds, grid.bounds):
            raise self._no_overlap(reference, footprint.bounds, grid)
        if resampling is None:
            resampling = "average" if footprint.resolution < grid.resolution * (1 - _TOLERANCE) else "bilinear"
        self._source = self.ds  # the warped VRT reads from it: keep it open
        self.ds = self._warp(grid, resampling)
        reprojected = not _same_crs(native.crs_wkt, grid.crs_wkt)
        what = (f"reprojected from {_crs_label(native.crs_wkt)} to {_crs_label(grid.crs_wkt)}" if reprojected
                else "resampled")
        finer = {"average": " (source is finer)", "bilinear": " (source is coarser or equal)"}.get(resampling, "")
        log(f"{name}: {what} from {res} to {target} with {resampling}{finer}")

    def _place_without_crs(self, native: Grid, path: str, reference: str, reference_grid: Grid,
                           log: Callable[[str], None]) -> None:
        """A layer or reference without CRS is usable only when it has the reference's very pixel grid."""
        same = (native.width, native.height) == (reference_grid.width, reference_grid.height) and all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
            for a, b in zip(native.geotransform, reference_grid.geotransform))
        if same:
            self._offset = self.grid.offset_in(native)
            if self.name != reference:
                log(f"{self.name}: no CRS on one side, but its size ({native.width} x {native.height}) and "
                    f"geotransform match the reference '{reference}', so it is used as is")
            return
        if not native.crs_wkt:
            raise LvpcError(
                f"Layer '{self.name}' ({path}) has no coordinate reference system and its size "
                f"({native.width} x {native.height}) or geotransform differs from the reference '{reference}' "
                f"({reference_grid.width} x {reference_grid.height}): "
                "assign it a CRS or resample it onto the reference grid.")
        raise LvpcError(
            f"The reference layer '{reference}' has no coordinate reference system, so layer '{self.name}' ({path}) "
            "cannot be reprojected onto it: assign the reference a CRS or choose a reference layer that has one.")

    def _footprint(self, native: Grid, grid: Grid, path: str) -> Grid:
        """The layer's extent and pixel size expressed in the grid's CRS (GDAL's suggested warp output)."""
        try:
            suggested = gdal.Warp("", self.ds, format="VRT", dstSRS=grid.crs_wkt)
        except RuntimeError as exc:
            raise LvpcError(f"Layer '{self.name}' ({path}) cannot be transformed from {_crs_label(native.crs_wkt)} "
                            f"to {_crs_label(grid.crs_wkt)} ({exc}); check its CRS.") from exc
        return Grid.from_dataset(suggested)

    def _no_overlap(self, reference: str, bounds: tuple[float, ...], grid: Grid) -> LvpcError:
        def show(b: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(round(v, 3) for v in b)

        return LvpcError(
            f"Layer '{self.name}' does not overlap the reference layer '{reference}' (its bounds {show(bounds)} "
            f"vs {show(grid.bounds)} in {_crs_label(grid.crs_wkt)}): check that both show the same place and carry "
            "correct CRSs, or narrow the extent.")

    def _warp(self, grid: Grid, resampling: str) -> gdal.Dataset:
        if not grid.north_up:
            raise LvpcError(f"Layer '{self.name}' must be resampled onto the reference grid, but that grid is not "
                            "north-up (rotated or south-up geotransform): warp the reference layer to a north-up "
                            "grid first.")
        src_nodata = []
        for i in range(self.bands):
            band = self.ds.GetRasterBand(i + 1)
            if band.GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE":
                # GDAL < 3.7 warps signed bytes as unsigned (-5 becomes 251)
                raise LvpcError(f"Layer '{self.name}' stores signed bytes and must be resampled onto the reference "
                                "grid, which GDAL would do wrongly: convert it to Int16 or Float32 first.")
            value = _nodata(band)
            src_nodata.append("nan" if value is None else repr(value))
        try:
            return gdal.Warp("", self.ds, format="VRT", outputBounds=grid.bounds, width=grid.width,
                             height=grid.height, dstSRS=grid.crs_wkt, resampleAlg=resampling,
                             srcNodata=" ".join(src_nodata), dstNodata=float("nan"), outputType=gdal.GDT_Float32,
                             workingType=gdal.GDT_Float32)
        except RuntimeError as exc:
            raise self._unreadable(exc) from None

    def read(self, xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray:
        """A window of the target grid (inside it); NaN where the file has no data."""
        try:
            if self._offset is None:
                return _read_valid(self.ds, xoff, yoff, xsize, ysize)
            ox, oy = self._offset
            return _padded(lambda x, y, w, h: _read_valid(self.ds, x, y, w, h), self.bands,
                           self.ds.RasterXSize, self.ds.RasterYSize, xoff + ox, yoff + oy, xsize, ysize)
        except RuntimeError as exc:
            raise self._unreadable(exc) from None

    def _unreadable(self, exc: RuntimeError) -> LvpcError:
        return LvpcError(f"Layer '{self.name}': reading {self.path} failed ({str(exc).strip()}): the file is damaged "
                         "or truncated, or it is a VRT whose source files are missing. Check it with "
                         "`gdalinfo -checksum`, or choose another file.")

    def describe(self) -> dict:
        """The file's name, band count, band descriptions and, when its metadata has them for every band, the
        bands' wavelengths (GDAL's IMAGERY domain, or ENVI's `wavelength`)."""
        ds = self._source or self.ds  # a warped VRT does not carry the bands' descriptions
        bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
        info = {"file": os.path.basename(str(self.path)), "bands": self.bands,
                "band_names": [b.GetDescription() for b in bands]}
        imagery = [b.GetMetadataItem("CENTRAL_WAVELENGTH_UM", "IMAGERY") for b in bands]
        envi = [b.GetMetadataItem("wavelength") for b in bands]
        for values, units in ((imagery, "um"), (envi, bands[0].GetMetadataItem("wavelength_units") or ds.GetMetadataItem("wavelength_units") or "")):
            try:
                wavelengths = [float(v) for v in values]
            except (TypeError, ValueError):
                continue
            return {**info, "wavelengths": wavelengths, "wavelength_units": units}
        return info

    def close(self) -> None:
        self.ds = self._source = None


@contextmanager
def gdal_cache_limit(max_bytes: int = 256 * 2**20) -> Iterator[None]:
    """Caps GDAL's block cache for a one-pass job, restoring the previous cap after.

    GDAL keeps up to 5 % of RAM of blocks by default; a scene read once and written once gains nothing from
    it, and it made the memory of whole-scene classification grow with the scene (docs/performance.md).
    """
    previous = gdal.GetCacheMax()
    gdal.SetCacheMax(min(previous, max_bytes))
    try:
        yield
    finally:
        gdal.SetCacheMax(previous)


class AlignedStack:
    """Named modalities read on one grid: the first modality's, or the one `reference` names."""

    @_raising
    def __init__(self, sources: dict[str, str], reference: str | None = None,
                 extent: tuple[float, float, float, float] | None = None, log: Callable[[str], None] = print,
                 lattice: Grid | None = None):
        """`lattice`: a model's training grid; the stack is then read on its pixels over the reference layer's
        extent (`Grid.on_lattice`), so a map of any subset of the training scene has the grid of the full map."""
        if not sources:
            raise LvpcError("No input layers: give at least one modality.")
        reference = reference if reference is not None else next(iter(sources))
        if reference not in sources:
            raise LvpcError(f"Reference layer '{reference}' is not among the inputs {list(sources)}.")
        _check_distinct_files(sources)
        ref_ds = _open(reference, sources[reference])
        native = Grid.from_dataset(ref_ds)
        ref_ds = None
        base, origin = native, f"'{reference}'"
        if lattice is not None and not _same_crs(lattice.crs_wkt, native.crs_wkt):
            log(f"Warning: layer '{reference}' is in {_crs_label(native.crs_wkt)}, the model was trained in "
                f"{_crs_label(lattice.crs_wkt)}: the map is made on the grid of '{reference}', not on the training "
                "grid; check that the layers are the scene you mean")
        elif lattice is not None and lattice.north_up and native.north_up:
            base, origin = native.on_lattice(lattice), f"the model's training pixels over '{reference}'"
        self.grid = base.crop(extent) if extent is not None else base
        log(f"Reference grid from {origin}: {self.grid.width} x {self.grid.height} px at "
            f"{self.grid.resolution:g} {_units(self.grid.crs_wkt)}, {_crs_label(self.grid.crs_wkt)}"
            + (f", cropped to extent {tuple(extent)}" if extent is not None else ""))
        self._layers: dict[str, _Layer] = {}
        try:
            for name, path in sources.items():
                self._layers[name] = _Layer(name, path, self.grid, reference=reference, reference_grid=native,
                                            resampling=None, log=log)
        except Exception:
            self.close()
            raise
        self.bands = {name: layer.bands for name, layer in self._layers.items()}

    @property
    def names(self) -> list[str]:
        return list(self._layers)

    @_raising
    def read(self, name: str, xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray:
        """(bands, ysize, xsize) float32; cells outside the grid or without data are NaN."""
        if name not in self._layers:
            raise LvpcError(f"Unknown modality '{name}': the stack holds {self.names}.")
        layer = self._layers[name]
        return _padded(layer.read, layer.bands, self.grid.width, self.grid.height, xoff, yoff, xsize, ysize)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the grid."""
        return self.grid.height, self.grid.width

    def read_all(self) -> dict[str, np.ndarray]:
        return {name: self.read(name, 0, 0, self.grid.width, self.grid.height) for name in self._layers}

    @_raising
    def describe(self) -> dict[str, dict]:
        """Every modality's file, bands and band names (`_Layer.describe`): what a model records of its layers."""
        return {name: layer.describe() for name, layer in self._layers.items()}

    @_raising
    def close(self) -> None:
        for layer in self._layers.values():
            layer.close()
        self._layers = {}

    def __enter__(self) -> AlignedStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArrayStack:
    """In-memory co-registered arrays (bands, rows, cols; NaN = nodata) with AlignedStack's reading interface, so
    training and evaluation take benchmark arrays (.mat, .npy) and raster files alike."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        shapes = {a.shape[1:] for a in arrays.values()}
        if len(shapes) != 1:
            raise ValueError(f"arrays on different grids: {shapes}")
        self.arrays = arrays
        self.bands = {name: int(a.shape[0]) for name, a in arrays.items()}

    @property
    def names(self) -> list[str]:
        return list(self.arrays)

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.arrays.values())).shape[1:]

    def read(self, name: str, xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray:
        array = self.arrays[name]
        return _padded(lambda x, y, w, h: array[:, y:y + h, x:x + w], array.shape[0], array.shape[2], array.shape[1],
                       xoff, yoff, xsize, ysize)


def as_stack(layers: AlignedStack | ArrayStack | dict[str, np.ndarray]) -> AlignedStack | ArrayStack:
    """A stack as it is, or in-memory arrays wrapped as one."""
    return layers if isinstance(layers, (AlignedStack, ArrayStack)) else ArrayStack(layers)


def _check_distinct_files(sources: dict[str, str]) -> None:
    """Two modalities from one file is a user slip (a layer picked twice), never a real multi-modal input."""
    seen: dict[str, str] = {}
    for name, path in sources.items():
        key = os.path.normcase(os.path.realpath(path))
        if key in seen:
            raise LvpcError(f"Modalities '{seen[key]}' and '{name}' both use the file {path}: "
                            "give each modality its own layer.")
        seen[key] = name


def _first_band(path: str, grid: Grid, log: Callable[[str], None]) -> np.ndarray:
    """A raster's first band on `grid` (nearest neighbour), float32, NaN where it has no value."""
    layer = _Layer(os.path.basename(str(path)), path, grid, reference="grid", reference_grid=grid, resampling="near",
                   log=log)
    try:
        return _padded(layer.read, layer.bands, grid.width, grid.height, 0, 0, grid.width, grid.height)[0]
    finally:
        layer.close()


@_raising
def read_labels(path: str, grid: Grid, log: Callable[[str], None] = print) -> np.ndarray:
    """A label raster's class codes on `grid` as int32, 0 = unlabelled (nodata -> 0).

    Codes must be integers 0..255: casting 1.5 to 1 or -1 to a code would swap or invent classes without a word."""
    values = _first_band(path, grid, log)
    shown = _not_codes(values)
    if shown:
        raise LvpcError(f"Label raster (LABELS) {path} holds values that are not class codes ({shown}): class codes "
                        "are integers 1 to 255, with 0 or nodata where a pixel is unlabelled. Recode the raster, "
                        "or give the classes as ROIs.")
    return np.nan_to_num(values, nan=0.0).astype(np.int32)


def _not_codes(values: np.ndarray) -> str:
    """The first few valid values that are no class code (integer 0..255), as text; "" when all are codes."""
    finite = values[np.isfinite(values)]
    bad = np.unique(finite[(finite != np.round(finite)) | (finite < 0) | (finite > 255)])
    return ", ".join(f"{v:g}" for v in bad[:5]) + (", ..." if bad.size > 5 else "") if bad.size else ""


def hectares_per_pixel(grid: Grid) -> float | None:
    """Area of one pixel in hectares; None without a projected CRS (degrees or no CRS: no fixed pixel area)."""
    srs = _srs(grid.crs_wkt)
    if srs is None or not srs.IsProjected():
        return None
    width, height = grid.pixel_size
    return width * height * srs.GetLinearUnits() ** 2 / 1e4


@_raising
def class_map_info(path: str) -> tuple[Grid, dict[int, str]]:
    """An existing class map's (MAP) grid and its class names by code, as a label raster's are read (a .qml
    beside it, GDAL category names as lvpc:classify writes them, an attribute table); empty when it has none."""
    from .legend import label_legend

    grid = Grid.from_dataset(_open("MAP", path))
    return grid, {code: name for code, (name, _) in label_legend(path).items() if name and 0 < code < 256}


@_raising
def scan_class_map(path: str, labels: np.ndarray, rows_per_block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per class code of a class map (256 counts; nodata and 0 are not counted) and its codes at the
    labelled (non-zero) pixels of `labels`, a label image on the map's grid, in `np.nonzero` order.

    The map is read in strips of rows, so a map of any size is counted in bounded memory."""
    ds = _open("MAP", path)
    width, height = ds.RasterXSize, ds.RasterYSize
    if labels.shape != (height, width):
        raise ValueError(f"labels {labels.shape} are not on the map's {height} x {width} grid")
    step = rows_per_block or max(1, 2**22 // max(width, 1))
    counts = np.zeros(256, dtype=np.int64)
    mapped = []
    for y in range(0, height, step):
        rows = min(step, height - y)
        try:
            values = _read_valid(ds, 0, y, width, rows)[0]
        except RuntimeError as exc:
            raise LvpcError(f"MAP: reading {path} failed ({str(exc).strip()}): the file is damaged or truncated; "
                            "check it with `gdalinfo -checksum`, or choose another file.") from None
        shown = _not_codes(values)
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


@_raising
def read_mask(path: str, grid: Grid, log: Callable[[str], None] = print) -> np.ndarray:
    """Where to classify, as a bool (rows, cols) array: a raster's non-zero valid pixels, or inside polygons."""
    name = os.path.basename(str(path))
    try:
        ds = gdal.OpenEx(str(path), gdal.OF_VECTOR)
    except RuntimeError:
        ds = None
    if ds is None:
        return np.nan_to_num(_first_band(path, grid, log), nan=0.0) != 0
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
    ds = _open(os.path.basename(str(path)), path, kind="vector")
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
