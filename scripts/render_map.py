"""Render classified maps with QGIS itself (offscreen print layout: maps side by side, one legend) to a PNG.

Each map is loaded as QGIS loads it in the desktop app, so its .qml style (the model's classes, names, colours)
is what the picture shows. Used for docs/demo_map.png after `make demo`:

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/render_map.py docs/demo_map.png \
        "HS + LiDAR=demo/output/demo_map.tif" "LiDAR only=demo/output/demo_map_lidar_only.tif"
"""
from __future__ import annotations

import argparse
import sys

from qgis.core import (
    QgsApplication,
    QgsLayout,
    QgsLayoutExporter,
    QgsLayoutItemLabel,
    QgsLayoutItemLegend,
    QgsLayoutItemMap,
    QgsLayoutPoint,
    QgsLayoutSize,
    QgsMapLayerLegendUtils,
    QgsProject,
    QgsRasterLayer,
    QgsSimpleLegendNode,
    QgsUnitTypes,
)
from qgis.PyQt.QtGui import QFont

MAP_MM = 90.0  # width of each map on the page
MARGIN_MM = 5.0
LEGEND_MM = 55.0


def render(out_png: str, maps: list[tuple[str, str]], title: str, dpi: int = 150) -> None:
    project = QgsProject.instance()
    layers = []
    for caption, path in maps:
        layer = QgsRasterLayer(path, caption)
        if not layer.isValid():
            raise SystemExit(f"render_map: cannot open {path}")
        project.addMapLayer(layer)
        layers.append(layer)
    extent = layers[0].extent()
    map_h = MAP_MM * extent.height() / extent.width()
    layout = QgsLayout(project)
    layout.initializeDefaults()
    page = layout.pageCollection().page(0)
    width = MARGIN_MM * (len(maps) + 2) + MAP_MM * len(maps) + LEGEND_MM
    page.setPageSize(QgsLayoutSize(width, map_h + 30, QgsUnitTypes.LayoutMillimeters))
    heading = QgsLayoutItemLabel(layout)
    heading.setText(title)
    heading.setFont(QFont("Sans", 14))
    heading.attemptMove(QgsLayoutPoint(MARGIN_MM, 3, QgsUnitTypes.LayoutMillimeters))
    heading.attemptResize(QgsLayoutSize(width - 2 * MARGIN_MM, 9, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(heading)
    for i, layer in enumerate(layers):
        x = MARGIN_MM + i * (MAP_MM + MARGIN_MM)
        caption = QgsLayoutItemLabel(layout)
        caption.setText(layer.name())
        caption.setFont(QFont("Sans", 10))
        caption.attemptMove(QgsLayoutPoint(x, 13, QgsUnitTypes.LayoutMillimeters))
        caption.attemptResize(QgsLayoutSize(MAP_MM, 6, QgsUnitTypes.LayoutMillimeters))
        layout.addLayoutItem(caption)
        item = QgsLayoutItemMap(layout)
        item.attemptMove(QgsLayoutPoint(x, 20, QgsUnitTypes.LayoutMillimeters))
        item.attemptResize(QgsLayoutSize(MAP_MM, map_h, QgsUnitTypes.LayoutMillimeters))
        item.setLayers([layer])
        item.setExtent(layer.extent())
        item.setFrameEnabled(True)
        layout.addLayoutItem(item)
    legend = QgsLayoutItemLegend(layout)
    legend.setTitle("Classes")
    legend.setAutoUpdateModel(False)
    group = legend.model().rootGroup()
    group.clear()
    node = group.addLayer(layers[0])  # every map has the model's classes: one legend
    node.setName("")
    # only the classes: drop the renderer's "Band 1 (Palette)" heading, a plain text node
    entries = legend.model().layerLegendNodes(node)
    QgsMapLayerLegendUtils.setLegendNodeOrder(node, [i for i, entry in enumerate(entries)
                                                     if not isinstance(entry, QgsSimpleLegendNode)])
    legend.model().refreshLayerLegend(node)
    legend.attemptMove(QgsLayoutPoint(MARGIN_MM * (len(maps) + 1) + MAP_MM * len(maps), 20,
                                      QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(legend)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = dpi
    settings.generateWorldFile = False  # a picture for the docs, not a georeferenced image
    settings.exportMetadata = False
    result = QgsLayoutExporter(layout).exportToImage(out_png, settings)
    if result != QgsLayoutExporter.Success:
        raise SystemExit(f"render_map: export failed ({result})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_png")
    parser.add_argument("maps", nargs="+", help="CAPTION=PATH of a classified GeoTIFF (its .qml beside it)")
    parser.add_argument("--title", default="LVPC demo: land cover of the bundled Slovenia scene")
    args = parser.parse_args(argv)
    maps = [tuple(m.split("=", 1)) if "=" in m else (m, m) for m in args.maps]
    app = QgsApplication([], False)
    app.initQgis()
    render(args.out_png, maps, args.title)
    print(f"wrote {args.out_png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
