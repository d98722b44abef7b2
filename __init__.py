"""QGIS entry point of the LVPC plugin: QGIS (desktop and qgis_process) calls `classFactory` and nothing else."""
from __future__ import annotations


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    """Return the plugin object; `iface` is None under qgis_process, where only initProcessing() is called."""
    from .deps import add_to_sys_path
    from .lvpc_plugin import LvpcPlugin

    add_to_sys_path()
    return LvpcPlugin(iface)
