"""GDAL errors as exceptions inside LVPC's own GDAL calls only, never process-wide."""
from __future__ import annotations

import functools
from contextlib import contextmanager
from typing import Callable, Iterator

from osgeo import gdal, ogr, osr


@contextmanager
def gdal_raising() -> Iterator[None]:
    """GDAL, OGR and OSR raise RuntimeError on errors inside LVPC's own calls only.

    Their exception switch is process-wide: setting it at import would change GDAL's behaviour for every
    other plugin and script in the QGIS process, so it is set around each call and restored after.
    """
    modules = (gdal, ogr, osr)
    previous = [m.GetUseExceptions() for m in modules]
    for m in modules:
        m.UseExceptions()
    try:
        yield
    finally:
        for m, used in reversed(list(zip(modules, previous))):  # GDAL keeps the handlers as a stack
            if not used:
                m.DontUseExceptions()


def raising(function: Callable) -> Callable:
    """Runs `function` inside `gdal_raising`: every LVPC entry point that reaches GDAL."""
    @functools.wraps(function)
    def call(*args, **kwargs):
        with gdal_raising():
            return function(*args, **kwargs)
    return call
