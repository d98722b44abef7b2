"""LVPCnet engine: language-guided visual prompt compensation for multi-modal remote-sensing classification.

Plain Python (torch, numpy, GDAL); no QGIS import anywhere, so it runs and is tested without QGIS.
Heavy modules are imported where used, so importing the package itself is cheap.
"""

__version__ = "0.1.0"
