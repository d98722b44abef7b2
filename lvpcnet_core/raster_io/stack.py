"""Aligned reading: modality layers on one grid (warped VRTs where a layer is on another grid), window by window, NaN
for nodata; in-memory arrays behind the same interface.
"""
from __future__ import annotations

import math
import os
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
from osgeo import gdal

from ..errors import LvpcError
from ..gdal_errors import raising as _raising
from .grid import Grid, TOLERANCE, crs_label, crs_units, same_crs


def open_raster(name: str, path: str, kind: str = "raster") -> gdal.Dataset:
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


def read_valid(ds: gdal.Dataset, xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray:
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
        self.ds = open_raster(name, path)
        self.bands = self.ds.RasterCount
        self.grid = grid
        self._offset: tuple[int, int] | None = None
        self._source: gdal.Dataset | None = None
        native = Grid.from_dataset(self.ds)
        res = f"{native.resolution:g} {crs_units(native.crs_wkt)}"
        target = f"{grid.resolution:g} {crs_units(grid.crs_wkt)}"
        if not native.crs_wkt or not grid.crs_wkt:
            self._place_without_crs(native, path, reference, reference_grid, log)
            return
        offset = grid.offset_in(native)
        if same_crs(native.crs_wkt, grid.crs_wkt) and offset is not None:
            if not _overlaps(native.bounds, grid.bounds):
                raise self._no_overlap(reference, native.bounds, grid)
            self._offset = offset
            if name != reference:
                log(f"{name}: already on the reference grid ({res}, {crs_label(native.crs_wkt)}), read as is")
            return
        footprint = self._footprint(native, grid, path)
        if not _overlaps(footprint.bounds, grid.bounds):
            raise self._no_overlap(reference, footprint.bounds, grid)
        if resampling is None:
            resampling = "average" if footprint.resolution < grid.resolution * (1 - TOLERANCE) else "bilinear"
        self._source = self.ds  # the warped VRT reads from it: keep it open
        self.ds = self._warp(grid, resampling)
        reprojected = not same_crs(native.crs_wkt, grid.crs_wkt)
        what = (f"reprojected from {crs_label(native.crs_wkt)} to {crs_label(grid.crs_wkt)}" if reprojected
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
            raise LvpcError(f"Layer '{self.name}' ({path}) cannot be transformed from {crs_label(native.crs_wkt)} "
                            f"to {crs_label(grid.crs_wkt)} ({exc}); check its CRS.") from exc
        return Grid.from_dataset(suggested)

    def _no_overlap(self, reference: str, bounds: tuple[float, ...], grid: Grid) -> LvpcError:
        def show(b: tuple[float, ...]) -> tuple[float, ...]:
            return tuple(round(v, 3) for v in b)

        return LvpcError(
            f"Layer '{self.name}' does not overlap the reference layer '{reference}' (its bounds {show(bounds)} "
            f"vs {show(grid.bounds)} in {crs_label(grid.crs_wkt)}): check that both show the same place and carry "
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
                return read_valid(self.ds, xoff, yoff, xsize, ysize)
            ox, oy = self._offset
            return _padded(lambda x, y, w, h: read_valid(self.ds, x, y, w, h), self.bands,
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
        envi_units = bands[0].GetMetadataItem("wavelength_units") or ds.GetMetadataItem("wavelength_units") or ""
        for values, units in ((imagery, "um"), (envi, envi_units)):
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
        ref_ds = open_raster(reference, sources[reference])
        native = Grid.from_dataset(ref_ds)
        ref_ds = None
        base, origin = native, f"'{reference}'"
        if lattice is not None and not same_crs(lattice.crs_wkt, native.crs_wkt):
            log(f"Warning: layer '{reference}' is in {crs_label(native.crs_wkt)}, the model was trained in "
                f"{crs_label(lattice.crs_wkt)}: the map is made on the grid of '{reference}', not on the training "
                "grid; check that the layers are the scene you mean")
        elif lattice is not None and lattice.north_up and native.north_up:
            base, origin = native.on_lattice(lattice), f"the model's training pixels over '{reference}'"
        self.grid = base.crop(extent) if extent is not None else base
        log(f"Reference grid from {origin}: {self.grid.width} x {self.grid.height} px at "
            f"{self.grid.resolution:g} {crs_units(self.grid.crs_wkt)}, {crs_label(self.grid.crs_wkt)}"
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


def read_first_band(path: str, grid: Grid, log: Callable[[str], None]) -> np.ndarray:
    """A raster's first band on `grid` (nearest neighbour), float32, NaN where it has no value."""
    layer = _Layer(os.path.basename(str(path)), path, grid, reference="grid", reference_grid=grid, resampling="near",
                   log=log)
    try:
        return _padded(layer.read, layer.bands, grid.width, grid.height, 0, 0, grid.width, grid.height)[0]
    finally:
        layer.close()
