"""Class names and colours read from a label raster: a .qml beside it, GDAL category names, an attribute table."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from osgeo import gdal

from lvpcnet_core.raster_io import label_legend
from lvpcnet_core.raster_io import paletted_qml


def label_band(path: str, names: list[str], colors: list[tuple[int, int, int]] | None = None) -> None:
    """Give the label raster at `path` category names for codes 1..n (and a colour table), as GDAL writes them."""
    ds = gdal.Open(str(path), gdal.GA_Update)
    band = ds.GetRasterBand(1)
    if colors:  # before the names: GDAL 3.6's GTiff drops names set before a colour table in update mode
        table = gdal.ColorTable()
        for code, rgb in enumerate(colors, start=1):
            table.SetColorEntry(code, (*rgb, 255))
        band.SetColorTable(table)
    band.SetCategoryNames(["unlabelled", *names])
    ds.FlushCache()


def labels(tmp_path: Path, name: str = "labels.tif") -> str:
    path = str(tmp_path / name)
    ds = gdal.GetDriverByName("GTiff").Create(path, 4, 4, 1, gdal.GDT_Byte)
    ds.GetRasterBand(1).WriteArray(np.array([[1, 2, 3, 0]] * 4, np.uint8))
    ds.FlushCache()
    return path


def test_category_names_and_colour_table(tmp_path: Path) -> None:
    path = labels(tmp_path)
    label_band(path, ["water", "forest", ""], [(0, 0, 255), (0, 128, 0), (9, 9, 9)])
    legend = label_legend(path)
    assert legend[1] == ("water", (0, 0, 255)) and legend[2] == ("forest", (0, 128, 0))
    assert legend[3] == (None, (9, 9, 9))  # an empty name is no name


def test_attribute_table(tmp_path: Path) -> None:
    path = labels(tmp_path)
    ds = gdal.Open(path, gdal.GA_Update)
    rat = gdal.RasterAttributeTable()
    for name, kind, usage in (("Value", gdal.GFT_Integer, gdal.GFU_MinMax), ("Class_Name", gdal.GFT_String, gdal.GFU_Name),
                              ("R", gdal.GFT_Integer, gdal.GFU_Red), ("G", gdal.GFT_Integer, gdal.GFU_Green),
                              ("B", gdal.GFT_Integer, gdal.GFU_Blue)):
        rat.CreateColumn(name, kind, usage)
    for row, (value, name, rgb) in enumerate(((3, "meadow", (200, 230, 90)), (1, "water", (0, 0, 255)))):
        rat.SetValueAsInt(row, 0, value)
        rat.SetValueAsString(row, 1, name)
        for i, v in enumerate(rgb):
            rat.SetValueAsInt(row, 2 + i, v)
    ds.GetRasterBand(1).SetDefaultRAT(rat)
    ds = None
    legend = label_legend(path)
    assert legend[3] == ("meadow", (200, 230, 90)) and legend[1] == ("water", (0, 0, 255)) and 2 not in legend


def test_a_qgis_style_beside_the_file_comes_first(tmp_path: Path) -> None:
    path = labels(tmp_path)
    label_band(path, ["water", "forest", "meadow"])
    (tmp_path / "labels.qml").write_text(paletted_qml([1, 3], ["Open water", "Grassland"], [(1, 2, 3), (4, 5, 6)]),
                                         encoding="utf-8")
    legend = label_legend(path)
    assert legend[1] == ("Open water", (1, 2, 3)) and legend[3] == ("Grassland", (4, 5, 6))
    assert legend[2] == ("forest", None)  # what the style does not name, the categories do


def test_a_plain_raster_has_no_legend(tmp_path: Path) -> None:
    assert label_legend(labels(tmp_path)) == {}
