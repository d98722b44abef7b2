"""The plugin object: registers the processing provider and nothing else (no menus, no import-time work)."""
from __future__ import annotations

from qgis.core import QgsApplication

from .provider import LvpcProvider


class LvpcPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        # Referenced for as long as the plugin lives: without it Python frees the provider and its algorithms vanish.
        self.provider: LvpcProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        """Register the provider once; QGIS desktop may call this and initGui() both."""
        if self.provider is None:
            self.provider = LvpcProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
