"""The plugin object: registers the processing provider, and in QGIS desktop one menu action (no import-time work)."""
from __future__ import annotations

from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QAction

from .deps import INSTALLER_ALGORITHM
from .provider import LvpcProvider

MENU = "&LVPC"  # under Plugins; deps.INSTALLER_MENU names the action for the missing-package message
INSTALL_ACTION = "Install LVPC dependencies…"


class LvpcPlugin:
    def __init__(self, iface) -> None:
        self.iface = iface
        # Referenced for as long as the plugin lives: without it Python frees the provider and its algorithms vanish.
        self.provider: LvpcProvider | None = None
        self.install_action: QAction | None = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        """Register the provider once; QGIS desktop may call this and initGui() both."""
        if self.provider is None:
            self.provider = LvpcProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        self.initProcessing()
        if self.iface is not None and self.install_action is None:  # None: headless (tests), no menus to fill
            self.install_action = QAction(INSTALL_ACTION, self.iface.mainWindow())
            self.install_action.triggered.connect(self.open_installer)
            self.iface.addPluginToMenu(MENU, self.install_action)

    def open_installer(self) -> None:
        """The installer's dialog: its log shows pip's output, and its Cancel button stops pip."""
        import processing

        processing.execAlgorithmDialog(f"lvpc:{INSTALLER_ALGORITHM}")

    def unload(self) -> None:
        if self.install_action is not None:
            self.iface.removePluginMenu(MENU, self.install_action)
            self.install_action.deleteLater()
            self.install_action = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
