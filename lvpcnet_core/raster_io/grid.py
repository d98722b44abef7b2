"""Pixel grids: CRS, geotransform and size, and the CRS helpers every raster module shares."""
from __future__ import annotations

import math
from dataclasses import dataclass

from osgeo import gdal, osr

from ..errors import LvpcError
from ..gdal_errors import raising as _raising


TOLERANCE = 1e-6  # in pixels: offsets and sizes closer than this to a whole number are whole


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
        c0 = max(0, math.floor(min(cols) + TOLERANCE))
        r0 = max(0, math.floor(min(rows) + TOLERANCE))
        c1 = min(self.width, math.ceil(max(cols) - TOLERANCE))
        r1 = min(self.height, math.ceil(max(rows) - TOLERANCE))
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
        c0, c1 = math.floor((xmin - x0) / px + TOLERANCE), math.ceil((xmax - x0) / px - TOLERANCE)
        r0, r1 = math.floor((ymax - y0) / py + TOLERANCE), math.ceil((ymin - y0) / py - TOLERANCE)
        return lattice.window(c0, r0, c1 - c0, r1 - r0)

    def offset_in(self, other: Grid) -> tuple[int, int] | None:
        """Pixel offset of this grid's origin on `other` when both share pixel size and pixel edges, else None.

        The CRS is not compared here; callers decide whether the two CRSs are the same.
        """
        a, b = self.geotransform, other.geotransform
        if any(abs(a[i] - b[i]) > TOLERANCE * max(abs(b[1]), abs(b[5])) for i in (1, 2, 4, 5)):
            return None
        col, row = other.to_pixel(a[0], a[3])
        if abs(col - round(col)) > TOLERANCE or abs(row - round(row)) > TOLERANCE:
            return None
        return round(col), round(row)

    @_raising
    def srs(self) -> osr.SpatialReference | None:
        return srs_of(self.crs_wkt)

    @_raising
    def to_dict(self) -> dict:
        """The grid as a model file keeps it (JSON), with its CRS's short name and units for people to read."""
        return {"crs": crs_label(self.crs_wkt), "crs_wkt": self.crs_wkt, "geotransform": list(self.geotransform),
                "width": self.width, "height": self.height, "pixel_size": list(self.pixel_size),
                "units": crs_units(self.crs_wkt)}


def srs_of(wkt: str) -> osr.SpatialReference | None:
    if not wkt:
        return None
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def same_crs(a: str, b: str) -> bool:
    sa, sb = srs_of(a), srs_of(b)
    if sa is None or sb is None:
        return sa is None and sb is None
    return bool(sa.IsSame(sb))


def crs_label(wkt: str) -> str:
    srs = srs_of(wkt)
    if srs is None:
        return "no CRS"
    try:
        srs.AutoIdentifyEPSG()
    except RuntimeError:
        pass  # a CRS without an EPSG code (a custom projection, a local CS) goes by its name
    code, authority = srs.GetAuthorityCode(None), srs.GetAuthorityName(None)
    return f"{authority}:{code}" if code and authority else srs.GetName()


def crs_units(wkt: str) -> str:
    srs = srs_of(wkt)
    if srs is None:
        return "px"
    if srs.IsGeographic():
        return "deg"
    return {"metre": "m", "meter": "m"}.get(srs.GetLinearUnitsName(), srs.GetLinearUnitsName())


def hectares_per_pixel(grid: Grid) -> float | None:
    """Area of one pixel in hectares; None without a projected CRS (degrees or no CRS: no fixed pixel area)."""
    srs = srs_of(grid.crs_wkt)
    if srs is None or not srs.IsProjected():
        return None
    width, height = grid.pixel_size
    return width * height * srs.GetLinearUnits() ** 2 / 1e4
