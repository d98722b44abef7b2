"""Raster input and output of LVPC, by concern:

- `grid`: pixel grids and CRSs;
- `stack`: modality layers read on one grid, window by window;
- `labels`: label rasters, ROIs and masks on a grid; `legend`: the class names and colours a label raster carries;
- `class_map`: the classified map, its companions and styles.

The names below are the package's interface (`raster_io.AlignedStack`, ...).
"""
from __future__ import annotations

from .class_map import ClassMapWriter, class_map_info, default_colors, paletted_qml, scan_class_map, write_raster
from .grid import Grid, hectares_per_pixel
from .labels import rasterize_rois, read_labels, read_mask
from .legend import label_legend
from .stack import AlignedStack, ArrayStack, as_stack, gdal_cache_limit

__all__ = [
    "Grid", "hectares_per_pixel", "AlignedStack", "ArrayStack", "as_stack", "gdal_cache_limit", "rasterize_rois",
    "read_labels", "read_mask", "label_legend", "ClassMapWriter", "class_map_info", "default_colors",
    "paletted_qml", "scan_class_map", "write_raster",
]
