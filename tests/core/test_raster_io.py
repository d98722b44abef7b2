"""Tests for lvpcnet_core.raster_io on real GeoTIFF / GeoPackage files written into tmp_path."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from lvpcnet_core.errors import LvpcError
from lvpcnet_core.raster_io import (AlignedStack, ClassMapWriter, Grid, default_colors, rasterize_rois, read_labels,
                                    write_raster)

BRANDENBURG = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "brandenburg"
X0, Y0 = 500000.0, 5800000.0  # origin of the 10 m reference grid, EPSG:32633


def wkt(epsg: int) -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    return srs.ExportToWkt()


def utm_grid(res: float = 10.0, width: int = 40, height: int = 30, x0: float = X0, y0: float = Y0) -> Grid:
    return Grid(wkt(32633), (x0, res, 0.0, y0, 0.0, -res), width, height)


def to_lonlat() -> osr.CoordinateTransformation:
    utm, geo = osr.SpatialReference(wkt(32633)), osr.SpatialReference(wkt(4326))
    for s in (utm, geo):
        s.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return osr.CoordinateTransformation(utm, geo)


def centres(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates of every pixel centre, (rows, cols) each."""
    cols, rows = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    gt = grid.geotransform
    return gt[0] + cols * gt[1], gt[3] + rows * gt[5]


@pytest.fixture
def ref(tmp_path: Path) -> tuple[str, Grid]:
    grid = utm_grid()
    path = str(tmp_path / "ref.tif")
    write_raster(path, np.arange(2 * 30 * 40, dtype=np.float32).reshape(2, 30, 40), grid)
    return path, grid


def test_coarser_layer_is_resampled_bilinear_onto_the_reference_grid(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    coarse = utm_grid(res=20.0, width=20, height=15)
    xs, ys = centres(coarse)
    path = str(tmp_path / "coarse.tif")
    write_raster(path, np.stack([xs - X0, Y0 - ys]).astype(np.float32), coarse)  # a linear field: bilinear is exact
    messages: list[str] = []
    with AlignedStack({"hs": ref[0], "sar": path}, log=messages.append) as stack:
        assert stack.grid == ref[1] and stack.bands == {"hs": 2, "sar": 2}
        sar = stack.read_all()["sar"]
    fx, fy = centres(ref[1])
    inner = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(sar[0][inner], (fx - X0)[inner], atol=1e-3)
    np.testing.assert_allclose(sar[1][inner], (Y0 - fy)[inner], atol=1e-3)
    assert any("sar" in m and "20 m" in m and "10 m" in m and "bilinear" in m for m in messages), messages


def test_finer_layer_is_averaged(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    # 2.5 m: bilinear at a 10 m centre would see only the middle 2 x 2 of the 4 x 4 source pixels
    fine = np.random.default_rng(0).integers(0, 1000, size=(120, 160)).astype(np.uint16)
    path = str(tmp_path / "fine.tif")
    write_raster(path, fine, utm_grid(res=2.5, width=160, height=120))
    messages: list[str] = []
    with AlignedStack({"hs": ref[0], "lidar": path}, log=messages.append) as stack:
        lidar = stack.read_all()["lidar"][0]
    np.testing.assert_allclose(lidar, fine.reshape(30, 4, 40, 4).mean(axis=(1, 3)), rtol=1e-6)
    assert any("lidar" in m and "2.5 m" in m and "average" in m for m in messages), messages


@pytest.mark.parametrize("pixel_deg", [0.00004, 0.0004])  # finer (average) and coarser (bilinear) than 10 m
def test_layer_in_another_crs_lands_where_its_coordinates_say(tmp_path: Path, ref: tuple[str, Grid],
                                                             pixel_deg: float) -> None:
    lon0, lat0 = to_lonlat().TransformPoint(X0 - 100, Y0 + 100)[:2]  # covers the reference grid
    size = round(0.01 / pixel_deg)
    geo = Grid(wkt(4326), (lon0, pixel_deg, 0.0, lat0, 0.0, -pixel_deg), size, size)
    lons, lats = centres(geo)
    path = str(tmp_path / "geo.tif")
    write_raster(path, np.stack([(lons - lon0) * 1e4, (lat0 - lats) * 1e4]).astype(np.float32), geo)
    messages: list[str] = []
    with AlignedStack({"hs": ref[0], "sar": path}, log=messages.append) as stack:
        sar = stack.read_all()["sar"]
    xs, ys = centres(ref[1])
    points = np.array(to_lonlat().TransformPoints(np.column_stack([xs.ravel(), ys.ravel()]).tolist()))
    expected_x = ((points[:, 0] - lon0) * 1e4).reshape(xs.shape)
    expected_y = ((lat0 - points[:, 1]) * 1e4).reshape(xs.shape)
    # one 10 m pixel is about 1.5 units of lon and 0.9 of lat: a shift by a pixel would fail these
    np.testing.assert_allclose(sar[0][1:-1, 1:-1], expected_x[1:-1, 1:-1], atol=0.15)
    np.testing.assert_allclose(sar[1][1:-1, 1:-1], expected_y[1:-1, 1:-1], atol=0.15)
    algorithm = "average" if pixel_deg < 1e-4 else "bilinear"
    assert any("EPSG:4326" in m and "EPSG:32633" in m and algorithm in m for m in messages), messages


def test_partly_covering_layer_is_nan_outside_its_footprint(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    path = str(tmp_path / "half.tif")
    write_raster(path, np.ones((15, 10), np.float32), utm_grid(res=20.0, width=10, height=15))  # left 200 m only
    with AlignedStack({"hs": ref[0], "sar": path}) as stack:
        sar = stack.read_all()["sar"][0]
    assert np.all(sar[:, :19] == 1) and np.all(np.isnan(sar[:, 21:]))


@pytest.mark.parametrize("dtype,nodata", [(np.uint16, 65535), (np.int32, -9999), (np.uint32, 4000000000),
                                          (np.int64, -2 ** 40), (np.float32, -3.0e38), (np.int8, -128)])
def test_nodata_values_become_nan_for_any_type(tmp_path: Path, ref: tuple[str, Grid], dtype: type,
                                               nodata: float) -> None:
    values = np.random.default_rng(1).integers(0, 100, size=(30, 40)).astype(dtype)
    values[3:5, 7:9] = nodata
    path = str(tmp_path / "layer.tif")
    write_raster(path, values, ref[1], nodata=nodata)
    with AlignedStack({"hs": ref[0], "lidar": path}) as stack:
        lidar = stack.read("lidar", 0, 0, 40, 30)[0]
    assert lidar.dtype == np.float32
    assert np.isnan(lidar[3:5, 7:9]).all() and np.isnan(lidar).sum() == 4
    valid = ~np.isnan(lidar)
    np.testing.assert_array_equal(lidar[valid], values[valid].astype(np.float32))


def test_mask_band_and_non_finite_values_become_nan_also_when_warped(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    fine = np.ones((60, 80), np.float32)
    fine[0:2, 0:2] = np.nan         # a whole 10 m pixel without data
    fine[10, 10] = np.nan           # a quarter of one: the average of the rest
    fine[11, 11] = 5.0
    masked_path = str(tmp_path / "masked.tif")
    write_raster(masked_path, np.full((30, 40), 7, np.uint8), ref[1])
    ds = gdal.Open(masked_path, gdal.GA_Update)
    ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    mask = np.full((30, 40), 255, np.uint8)
    mask[20:, 30:] = 0
    ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds = None
    fine_path = str(tmp_path / "fine.tif")
    write_raster(fine_path, fine, utm_grid(res=5.0, width=80, height=60))
    with AlignedStack({"hs": ref[0], "masked": masked_path, "fine": fine_path}) as stack:
        data = stack.read_all()
    assert np.isnan(data["masked"][0][20:, 30:]).all() and (data["masked"][0][:20] == 7).all()
    assert np.isnan(data["fine"][0, 0, 0]) and data["fine"][0, 5, 5] == pytest.approx((1 + 1 + 5) / 3)
    assert np.isnan(data["fine"]).sum() == 1


@pytest.mark.parametrize("name", ["hs", "sar"])
def test_reads_reaching_outside_the_grid_are_nan_there_and_equal_read_all_inside(
        tmp_path: Path, ref: tuple[str, Grid], name: str) -> None:
    path = str(tmp_path / "coarse.tif")
    write_raster(path, np.random.default_rng(2).random((15, 20), dtype=np.float32), utm_grid(20.0, 20, 15))
    with AlignedStack({"hs": ref[0], "sar": path}) as stack:
        whole = stack.read_all()[name]
        halo = stack.read(name, -5, -3, 40 + 10, 30 + 6)
        corner = stack.read(name, 35, 27, 11, 11)
        outside = stack.read(name, -20, 0, 11, 11)
    assert halo.shape == (whole.shape[0], 36, 50)
    np.testing.assert_array_equal(halo[:, 3:33, 5:45], whole)
    halo[:, 3:33, 5:45] = np.nan
    assert np.isnan(halo).all()
    np.testing.assert_array_equal(corner[:, :3, :5], whole[:, 27:, 35:])
    assert np.isnan(corner[:, 3:]).all() and np.isnan(corner[:, :, 5:]).all()
    assert np.isnan(outside).all()


def test_extent_crops_the_reference_to_whole_pixels(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    path = str(tmp_path / "coarse.tif")
    write_raster(path, np.random.default_rng(3).random((15, 20), dtype=np.float32), utm_grid(20.0, 20, 15))
    sources = {"hs": ref[0], "sar": path}
    with AlignedStack(sources) as stack:
        full = stack.read_all()
    extent = (X0 + 52.0, Y0 - 181.0, X0 + 203.0, Y0 - 29.5)  # cols 5..20, rows 2..18 touched
    with AlignedStack(sources, extent=extent) as stack:
        assert (stack.grid.width, stack.grid.height) == (16, 17)
        assert stack.grid.geotransform[0] == X0 + 50 and stack.grid.geotransform[3] == Y0 - 20
        cropped = stack.read_all()
    for name in sources:
        np.testing.assert_allclose(cropped[name], full[name][:, 2:19, 5:21], rtol=1e-5)
    with pytest.raises(LvpcError, match="does not overlap"):
        AlignedStack(sources, extent=(0.0, 0.0, 10.0, 10.0))


def test_stack_describes_its_layers_bands_and_wavelengths_for_the_model_file(tmp_path: Path,
                                                                             ref: tuple[str, Grid]) -> None:
    """Band descriptions and the IMAGERY wavelengths are read from the file, also for a layer that is warped; a layer
    without wavelengths on every band records none; the grid as a dict keeps what rebuilds it."""
    coarse = utm_grid(res=20.0, width=20, height=15)
    path = str(tmp_path / "coarse.tif")
    write_raster(path, np.ones((3, 15, 20), np.float32), coarse)
    ds = gdal.Open(path, gdal.GA_Update)
    for i, (name, um) in enumerate((("B4 red", 0.665), ("B8 nir", 0.842), ("B11 swir", 1.61))):
        ds.GetRasterBand(i + 1).SetDescription(name)
        ds.GetRasterBand(i + 1).SetMetadataItem("CENTRAL_WAVELENGTH_UM", str(um), "IMAGERY")
    ds = None
    with AlignedStack({"lidar": ref[0], "hs": path}, log=lambda m: None) as stack:
        described = stack.describe()
        grid = stack.grid.to_dict()
    assert described["hs"] == {"file": "coarse.tif", "bands": 3, "band_names": ["B4 red", "B8 nir", "B11 swir"],
                               "wavelengths": [0.665, 0.842, 1.61], "wavelength_units": "um"}
    assert described["lidar"] == {"file": "ref.tif", "bands": 2, "band_names": ["", ""]}
    assert Grid(grid["crs_wkt"], tuple(grid["geotransform"]), grid["width"], grid["height"]) == ref[1]
    assert grid["crs"] == "EPSG:32633" and grid["units"] == "m" and grid["pixel_size"] == [10.0, 10.0]


def test_envi_wavelengths_and_band_names_are_described(tmp_path: Path) -> None:
    """ENVI headers give GDAL per-band `wavelength` and `wavelength_units` items (GDAL 3.6 has no IMAGERY domain)."""
    ds = gdal.GetDriverByName("ENVI").Create(str(tmp_path / "hs.img"), 4, 3, 2, gdal.GDT_Float32)
    ds.SetGeoTransform((0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
    ds = None
    with open(tmp_path / "hs.hdr", "a", encoding="ascii") as header:
        header.write("wavelength units = Nanometers\nwavelength = {450.0, 550.5}\nband names = {blue, green}\n")
    with AlignedStack({"hs": str(tmp_path / "hs.img")}, log=lambda m: None) as stack:
        described = stack.describe()["hs"]
    assert described["wavelengths"] == [450.0, 550.5] and described["wavelength_units"] == "Nanometers"
    assert described["band_names"][0].startswith("blue") and described["bands"] == 2


def test_a_crs_without_epsg_code_is_named_by_its_name(tmp_path: Path) -> None:
    """GDAL raises when it finds no EPSG code for a CRS (a custom Lambert, a local CS): the layer is still read."""
    srs = osr.SpatialReference()
    srs.ImportFromProj4("+proj=lcc +lat_1=40 +lat_2=50 +lat_0=45 +lon_0=10 +datum=WGS84 +units=m")
    grid = Grid(srs.ExportToWkt(), (0.0, 5.0, 0.0, 0.0, 0.0, -5.0), 4, 3)
    path = str(tmp_path / "lcc.tif")
    write_raster(path, np.ones((1, 3, 4), np.float32), grid)
    messages: list[str] = []
    with AlignedStack({"hs": path}, log=messages.append) as stack:
        assert stack.grid.to_dict()["crs"] == srs.GetName() == "unknown"
    assert messages == ["Reference grid from 'hs': 4 x 3 px at 5 m, unknown"]


def test_reference_can_be_another_modality(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    path = str(tmp_path / "coarse.tif")
    write_raster(path, np.ones((15, 20), np.float32), utm_grid(20.0, 20, 15))
    with AlignedStack({"hs": ref[0], "sar": path}, reference="sar") as stack:
        assert (stack.grid.width, stack.grid.height, stack.grid.pixel_size) == (20, 15, (20.0, 20.0))
        assert stack.read_all()["hs"].shape == (2, 15, 20)


def test_layer_that_does_not_overlap_names_both_layers(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    path = str(tmp_path / "far.tif")
    write_raster(path, np.ones((15, 20), np.float32), utm_grid(20.0, 20, 15, x0=X0 + 5000))
    with pytest.raises(LvpcError, match="'sar'.*'hs'"):
        AlignedStack({"hs": ref[0], "sar": path}, log=lambda m: None)


def test_same_file_for_two_modalities_is_refused(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    same = os.path.join(os.path.dirname(ref[0]), "..", os.path.basename(os.path.dirname(ref[0])), "ref.tif")
    with pytest.raises(LvpcError, match="'hs' and 'sar'"):
        AlignedStack({"hs": ref[0], "sar": same}, log=lambda m: None)


def test_layer_without_crs_is_accepted_only_on_the_reference_pixel_grid(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    plain = str(tmp_path / "plain.tif")
    write_raster(plain, np.full((30, 40), 3, np.int16), Grid("", ref[1].geotransform, 40, 30))
    messages: list[str] = []
    with AlignedStack({"hs": ref[0], "lidar": plain}, log=messages.append) as stack:
        assert (stack.read_all()["lidar"] == 3).all()
    assert any("lidar" in m and "no CRS" in m for m in messages), messages
    other = str(tmp_path / "other.tif")
    write_raster(other, np.ones((30, 41), np.int16), Grid("", ref[1].geotransform, 41, 30))
    with pytest.raises(LvpcError, match="'lidar'.*no coordinate reference system"):
        AlignedStack({"hs": ref[0], "lidar": other}, log=lambda m: None)


def test_read_labels_uses_nearest_neighbour_and_nodata_as_unlabelled(tmp_path: Path, ref: tuple[str, Grid]) -> None:
    labels = np.random.default_rng(4).integers(1, 6, size=(15, 20)).astype(np.uint8)
    labels[0, :] = 255
    path = str(tmp_path / "labels.tif")
    write_raster(path, labels, utm_grid(20.0, 20, 15), nodata=255)
    out = read_labels(path, ref[1], log=lambda m: None)
    expected = np.where(labels == 255, 0, labels).repeat(2, axis=0).repeat(2, axis=1)
    assert out.dtype == np.int32
    np.testing.assert_array_equal(out, expected)


def write_vector(path: str, epsg: int, fields: dict[str, int], rows: list[tuple[ogr.Geometry, dict]]) -> None:
    """A GeoPackage layer 'rois' in EPSG:`epsg` with the given fields and (geometry, values) rows."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(path)
    srs = osr.SpatialReference(wkt(epsg))
    layer = ds.CreateLayer("rois", srs=srs)
    for name, ftype in fields.items():
        layer.CreateField(ogr.FieldDefn(name, ftype))
    for geometry, values in rows:
        feature = ogr.Feature(layer.GetLayerDefn())
        feature.SetGeometry(geometry)
        for name, value in values.items():
            if value is None:
                feature.SetFieldNull(name)
            else:
                feature.SetField(name, value)
        layer.CreateFeature(feature)
    ds = None


def utm_box_in_4326(col0: int, row0: int, col1: int, row1: int) -> ogr.Geometry:
    """A rectangle whose edges lie 2 m inside pixels col0..col1-1, rows row0..row1-1, given in EPSG:4326."""
    x0, x1 = X0 + col0 * 10 - 3, X0 + col1 * 10 + 3
    y0, y1 = Y0 - row0 * 10 + 3, Y0 - row1 * 10 - 3
    ring = ogr.Geometry(ogr.wkbLinearRing)
    for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)):
        ring.AddPoint_2D(x, y)
    polygon = ogr.Geometry(ogr.wkbPolygon)
    polygon.AddGeometry(ring)
    polygon.Transform(to_lonlat())
    return polygon


def utm_point_in_4326(col: int, row: int) -> ogr.Geometry:
    point = ogr.Geometry(ogr.wkbPoint)
    point.AddPoint_2D(X0 + col * 10 + 2.5, Y0 - row * 10 - 7.5)  # off-centre, inside the pixel
    point.Transform(to_lonlat())
    return point


def test_rasterize_text_polygons_from_another_crs(tmp_path: Path) -> None:
    grid = utm_grid()
    path = str(tmp_path / "rois.gpkg")
    write_vector(path, 4326, {"name": ogr.OFTString}, [
        (utm_box_in_4326(2, 3, 6, 5), {"name": "water"}),
        (utm_box_in_4326(10, 10, 12, 13), {"name": "forest"}),
        (utm_box_in_4326(20, 20, 22, 22), {"name": None}),
        (utm_box_in_4326(100, 100, 102, 102), {"name": "zzz outside"}),
        (utm_box_in_4326(30, 1, 31, 2), {"name": " urban "}),
    ])
    messages: list[str] = []
    labels, values, names = rasterize_rois(path, "name", grid, log=messages.append)
    assert labels.dtype == np.int32 and labels.shape == (30, 40)
    assert (names, values) == (["forest", "urban", "water"], [1, 2, 3])
    expected = np.zeros((30, 40), np.int32)
    expected[3:5, 2:6], expected[10:13, 10:12], expected[1, 30] = 3, 1, 2
    np.testing.assert_array_equal(labels, expected)
    assert any("skipped 1" in m for m in messages) and any("zzz outside" in m for m in messages), messages

    labels, values, names = rasterize_rois(path, "name", grid, class_values={"forest": 4, "water": 9, "urban": 2,
                                                                               "zzz outside": 8}, log=lambda m: None)
    assert (values, names) == ([2, 4, 9], ["urban", "forest", "water"]) and labels[3, 2] == 9
    with pytest.raises(LvpcError, match="unknown"):
        rasterize_rois(path, "name", grid, class_values={"forest": 1, "water": 2}, log=lambda m: None)


def test_rasterize_integer_points_from_another_crs(tmp_path: Path) -> None:
    grid = utm_grid()
    path = str(tmp_path / "points.gpkg")
    write_vector(path, 4326, {"code": ogr.OFTInteger}, [
        (utm_point_in_4326(0, 0), {"code": 7}), (utm_point_in_4326(39, 29), {"code": 3}),
        (utm_point_in_4326(17, 4), {"code": 7}),
    ])
    labels, values, names = rasterize_rois(path, "code", grid, log=lambda m: None)
    assert (values, names) == ([3, 7], ["3", "7"])
    assert labels[0, 0] == 7 and labels[29, 39] == 3 and labels[4, 17] == 7 and np.count_nonzero(labels) == 3


def test_rasterize_errors_name_the_problem(tmp_path: Path) -> None:
    grid = utm_grid()
    path = str(tmp_path / "rois.gpkg")
    write_vector(path, 32633, {"cls": ogr.OFTString, "other": ogr.OFTInteger},
                 [(utm_box_in_4326(1, 1, 3, 3), {"cls": "a", "other": 1})])
    with pytest.raises(LvpcError, match=r"no field 'klasse'.*'cls', 'other'"):
        rasterize_rois(path, "klasse", grid, log=lambda m: None)
    with pytest.raises(LvpcError, match="falls inside"):  # lon/lat numbers stored as UTM: far away
        rasterize_rois(path, "cls", grid, log=lambda m: None)
    empty = str(tmp_path / "empty.gpkg")
    write_vector(empty, 32633, {"cls": ogr.OFTString}, [])
    with pytest.raises(LvpcError, match="no features"):
        rasterize_rois(empty, "cls", grid, log=lambda m: None)
    one = str(tmp_path / "one.gpkg")
    write_vector(one, 4326, {"cls": ogr.OFTString},
                 [(utm_box_in_4326(1, 1, 3, 3), {"cls": "a"}), (utm_box_in_4326(5, 5, 6, 6), {"cls": "a"})])
    with pytest.raises(LvpcError, match=r"only one class \(a\)"):
        rasterize_rois(one, "cls", grid, log=lambda m: None)


def test_class_map_writer_writes_colours_names_and_a_qml_of_exactly_the_classes(tmp_path: Path) -> None:
    grid = utm_grid()
    target, confidence_target = tmp_path / "map.tif", tmp_path / "confidence.tif"
    colors = default_colors(3)
    classes = np.zeros((30, 40), np.int32)
    classes[:, :20], classes[:, 20:30], classes[:, 30:] = 2, 5, 9
    classes[0, 0] = 0
    with ClassMapWriter(str(target), grid, [2, 5, 9], ["forest", "water & lake", "urban"], colors,
                        confidence_path=str(confidence_target)) as writer:
        for yoff in (0, 16):
            writer.write(0, yoff, classes[yoff:yoff + 16], np.full((min(16, 30 - yoff), 40), 0.75, np.float32))
        assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["confidence.tif", "map.qml", "map.tif", "map.tif.aux.xml"]
    ds = gdal.Open(str(target))
    band = ds.GetRasterBand(1)
    np.testing.assert_array_equal(band.ReadAsArray(), classes)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 0
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE" and band.GetBlockSize() == [256, 256]
    table = band.GetRasterColorTable()
    assert [table.GetColorEntry(v)[:3] for v in (2, 5, 9)] == colors
    assert band.GetCategoryNames()[2] == "forest" and band.GetCategoryNames()[9] == "urban"
    assert Grid.from_dataset(ds) == grid
    conf = gdal.Open(str(confidence_target)).ReadAsArray()
    assert np.isnan(conf[0, 0]) and np.all(conf.ravel()[1:] == 0.75)

    palette = ET.parse(tmp_path / "map.qml").getroot().find("pipe/rasterrenderer")
    assert palette.get("type") == "paletted" and palette.get("band") == "1"
    entries = [(e.get("value"), e.get("color"), e.get("label")) for e in palette.find("colorPalette")]
    assert entries == [(str(v), "#%02x%02x%02x" % c, n)
                       for v, c, n in zip([2, 5, 9], colors, ["forest", "water & lake", "urban"])]


def test_class_map_writer_leaves_nothing_on_error_and_keeps_the_previous_map(tmp_path: Path) -> None:
    grid = utm_grid()
    target = tmp_path / "map.tif"
    with ClassMapWriter(str(target), grid, [1, 2], ["a", "b"], default_colors(2)) as writer:
        writer.write(0, 0, np.ones((30, 40), np.int32))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(RuntimeError, match="stop"):
        with ClassMapWriter(str(target), grid, [1, 2, 3], ["a", "b", "c"], default_colors(3),
                            confidence_path=str(tmp_path / "conf.tif")) as writer:
            writer.write(0, 0, np.full((10, 10), 3, np.int32), np.ones((10, 10), np.float32))
            raise RuntimeError("stop")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with pytest.raises(ValueError, match="not among"):
        with ClassMapWriter(str(target), grid, [1, 2], ["a", "b"], default_colors(2)) as writer:
            writer.write(0, 0, np.full((5, 5), 4, np.int32))
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_default_colors_are_distinct() -> None:
    for n in (1, 8, 18, 40):
        colors = default_colors(n)
        assert len(colors) == n and len(set(colors)) == n
        assert all(0 <= c <= 255 for rgb in colors for c in rgb)


@pytest.mark.skipif(not BRANDENBURG.is_dir(), reason="../shared/data/brandenburg is not available")
def test_brandenburg_10_20_60_m_groups_align_on_the_10_m_grid() -> None:
    sources = {"s2_10m": str(BRANDENBURG / "s2_10m_B02_B03_B04_B08.tif"),
               "s2_20m": str(BRANDENBURG / "s2_20m_B05_B06_B07_B8A_B11_B12.tif"),
               "s2_60m": str(BRANDENBURG / "s2_60m_B01_B09_B10.tif")}
    messages: list[str] = []
    with AlignedStack(sources, log=messages.append) as stack:
        assert (stack.grid.width, stack.grid.height) == (1536, 768)
        assert stack.bands == {"s2_10m": 4, "s2_20m": 6, "s2_60m": 3}
        block = {name: stack.read(name, 600, 300, 120, 120) for name in sources}
    source = gdal.Open(sources["s2_20m"])  # kept referenced: a band outliving its dataset crashes GDAL
    source_20m = source.GetRasterBand(1).ReadAsArray(300, 150, 60, 60).astype(np.float32)
    upsampled_back = block["s2_20m"][0].reshape(60, 2, 60, 2).mean(axis=(1, 3))
    assert np.corrcoef(upsampled_back.ravel(), source_20m.ravel())[0, 1] > 0.98
    assert all(np.isfinite(b).all() for b in block.values())
    assert len([m for m in messages if "bilinear" in m]) == 2
    labels = read_labels(str(BRANDENBURG / "labels_osm_10m.tif"), stack.grid, log=lambda m: None)
    assert labels.shape == (768, 1536) and set(np.unique(labels)) <= set(range(9))


def test_polygons_smaller_than_a_pixel_burn_the_pixel_under_their_centre(tmp_path: Path) -> None:
    grid = utm_grid()

    def tiny_box(col: int, row: int) -> ogr.Geometry:
        x, y = X0 + col * 10 + 1, Y0 - row * 10 - 1   # a 3 m square off the pixel centre
        ring = ogr.Geometry(ogr.wkbLinearRing)
        for px, py in ((x, y), (x + 3, y), (x + 3, y - 3), (x, y - 3), (x, y)):
            ring.AddPoint_2D(px, py)
        polygon = ogr.Geometry(ogr.wkbPolygon)
        polygon.AddGeometry(ring)
        return polygon

    path = str(tmp_path / "tiny.gpkg")
    write_vector(path, 32633, {"code": ogr.OFTInteger}, [(tiny_box(3, 4), {"code": 1}), (tiny_box(8, 9), {"code": 2})])
    messages: list[str] = []
    labels, values, _ = rasterize_rois(path, "code", grid, log=messages.append)
    assert values == [1, 2] and labels[4, 3] == 1 and labels[9, 8] == 2 and np.count_nonzero(labels) == 2
    assert any("smaller than a pixel" in m for m in messages)


def test_a_layer_on_the_training_lattice_covers_its_extent_with_the_training_pixels():
    from lvpcnet_core.raster_io import Grid
    from lvpcnet_core.synthetic import EPSG_32633

    training = Grid(EPSG_32633, (500000.0, 10.0, 0.0, 5100000.0, 0.0, -10.0), 40, 40)
    coarse = Grid(EPSG_32633, (500000.0, 20.0, 0.0, 5100000.0, 0.0, -20.0), 20, 20)  # same scene at 20 m
    assert coarse.on_lattice(training) == training
    # a part of the scene off the lattice by a fraction of a pixel: the training pixels that cover it
    part = Grid(EPSG_32633, (500105.0, 30.0, 0.0, 5099895.0, 0.0, -30.0), 3, 2)
    assert part.on_lattice(training) == Grid(EPSG_32633, (500100.0, 10.0, 0.0, 5099900.0, 0.0, -10.0), 10, 7)


def test_layers_in_another_crs_than_training_are_read_on_their_own_grid_with_a_warning(tmp_path):
    from lvpcnet_core.raster_io import AlignedStack, Grid
    from lvpcnet_core.synthetic import EPSG_32633, make_scene

    scene = make_scene(tmp_path, width=8, height=8)
    other = osr.SpatialReference()
    other.ImportFromEPSG(32634)
    training = Grid(other.ExportToWkt(), (500000.0, 5.0, 0.0, 5100000.0, 0.0, -5.0), 16, 16)
    messages = []
    with AlignedStack(scene.paths, log=messages.append, lattice=training) as stack:
        assert (stack.grid.geotransform, stack.grid.width) == (scene.grid.geotransform, scene.grid.width)
    assert any(m.startswith("Warning: layer 'hs' is in EPSG:32633, the model was trained in EPSG:32634") for m in messages)
    with AlignedStack(scene.paths, log=messages.append, lattice=Grid(EPSG_32633, training.geotransform, 16, 16)) as stack:
        assert stack.grid.pixel_size == (5.0, 5.0) and (stack.grid.width, stack.grid.height) == (16, 16)
