"""The `lvpc` processing provider: lists the algorithms of `algorithms.ALGORITHMS`, whatever is installed."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms import ALGORITHMS

ICON = Path(__file__).resolve().parent / "icons" / "lvpc.svg"


class LvpcProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "lvpc"

    def name(self) -> str:
        return "LVPC"

    def longName(self) -> str:  # noqa: N802 (QGIS API)
        return "LVPC: multi-modal classification robust to missing modalities (LVPCnet)"

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def svgIconPath(self) -> str:  # noqa: N802 (QGIS API)
        return str(ICON)

    def loadAlgorithms(self) -> None:  # noqa: N802 (QGIS API)
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
