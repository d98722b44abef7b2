"""Class names and colours that a label raster carries, so a model trained on it names its classes as the file does.

Read from, in this order for each class code: a QGIS style (`<stem>.qml`) beside the file, which is what QGIS shows
when it loads the raster; GDAL's category names; a raster attribute table (a name column, colour columns); the
colour table. LVPC's own maps carry all of them, EnMAP-Box and SCP maps category names or a style.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from osgeo import gdal

from ..files import qml_path
from ..gdal_errors import gdal_raising

Legend = dict[int, tuple[str | None, tuple[int, int, int] | None]]  # class code -> (name, colour)


def label_legend(path: str) -> Legend:
    """Name and colour per class code, None where the file says nothing; {} for a raster without any of them."""
    legend: Legend = {}
    for source in (_qml_legend(path), *_gdal_legends(path)):
        for code, (name, color) in source.items():
            old_name, old_color = legend.get(code, (None, None))
            legend[code] = (old_name or name or None, old_color or color)
    return legend


def _qml_legend(path: str) -> Legend:
    """Entries of a paletted or pseudocolour style beside the raster (QGIS applies `<stem>.qml` on loading)."""
    qml = qml_path(path)
    if not os.path.isfile(qml):
        return {}
    try:
        root = ET.parse(qml).getroot()
    except (ET.ParseError, OSError):
        return {}
    legend: Legend = {}
    for entry in [*root.iter("paletteEntry"), *root.iter("item")]:
        try:
            code = int(float(entry.get("value", "")))
        except ValueError:
            continue
        legend.setdefault(code, (entry.get("label") or None, _hex_color(entry.get("color"))))
    return legend


def _hex_color(text: str | None) -> tuple[int, int, int] | None:
    if not text or not text.startswith("#") or len(text) not in (7, 9):
        return None
    try:
        return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5))
    except ValueError:
        return None


def _gdal_legends(path: str) -> list[Legend]:
    """[category names + colour table, attribute table] of the first band."""
    try:
        with gdal_raising():
            ds = gdal.Open(str(path))  # kept referenced: a band outliving its dataset crashes GDAL
            ds.GetMetadata()  # loads the .aux.xml: GDAL 3.6's GTiff returns no category names before that
            band = ds.GetRasterBand(1)
            table = band.GetColorTable()
            colors = {i: tuple(table.GetColorEntry(i)[:3]) for i in range(table.GetCount())} if table else {}
            categories = {i: (name.strip() or None, colors.get(i))
                          for i, name in enumerate(band.GetCategoryNames() or [])}
            for code, color in colors.items():
                categories.setdefault(code, (None, color))
            return [categories, _attribute_table(band.GetDefaultRAT())]
    except RuntimeError:  # not readable here: reading the labels themselves reports it with the parameter's name
        return []


def _attribute_table(rat: gdal.RasterAttributeTable | None) -> Legend:
    """Code -> (name, colour) from a RAT: the value column (or the row), the name column (or the first text one)."""
    if rat is None or rat.GetRowCount() == 0:
        return {}
    usage = {rat.GetUsageOfCol(i): i for i in range(rat.GetColumnCount())}
    texts = [i for i in range(rat.GetColumnCount()) if rat.GetTypeOfCol(i) == gdal.GFT_String]
    name_col = usage.get(gdal.GFU_Name, texts[0] if texts else None)
    value_col = usage.get(gdal.GFU_MinMax, usage.get(gdal.GFU_Min))
    rgb = [usage.get(u) for u in (gdal.GFU_Red, gdal.GFU_Green, gdal.GFU_Blue)]
    legend: Legend = {}
    for row in range(rat.GetRowCount()):
        code = rat.GetValueAsInt(row, value_col) if value_col is not None else row
        name = rat.GetValueAsString(row, name_col).strip() if name_col is not None else ""
        color = tuple(rat.GetValueAsInt(row, c) for c in rgb) if None not in rgb else None
        legend[code] = (name or None, color)
    return legend
