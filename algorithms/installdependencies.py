"""lvpc:installdependencies: install LVPC's Python packages for QGIS's own Python, into a per-user folder."""
from __future__ import annotations

import os
from typing import Any

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputFolder,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterString,
)

from ..deps import ENV_VAR, INSTALLER_ALGORITHM, RUNTIME_REQUIREMENTS, user_packages_folder
from .base import FeedbackProgress, LvpcAlgorithm

BUILD_LABELS = ["auto (CUDA when an NVIDIA GPU is found, else CPU)", "CPU", "CUDA (NVIDIA GPU)"]


class InstallDependenciesAlgorithm(LvpcAlgorithm):
    NAME = INSTALLER_ALGORITHM
    DISPLAY_NAME = "Install LVPC dependencies"
    GROUP_ID = "setup"
    GROUP = "Set-up"
    SUMMARY = ("Downloads and installs the Python packages LVPC needs (PyTorch, open_clip, ...) with QGIS's own "
               "Python and pip, into a folder of your user account that the plugin finds by itself: no administrator "
               "rights, and the algorithms run right after, without restarting QGIS. Needs the internet; PyTorch "
               "is large (the CUDA build several GB). A failed or cancelled run leaves the previous install as it was.")
    REQUIRES = ()  # it is what installs them

    TORCH_BUILD = "TORCH_BUILD"
    PACKAGES = "PACKAGES"
    TARGET = "TARGET"
    FOLDER = "FOLDER"

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:  # noqa: N802 (QGIS API)
        self.add(QgsProcessingParameterEnum(self.TORCH_BUILD, "PyTorch build", options=BUILD_LABELS,
                                            defaultValue=0),
                 "<i>auto</i> installs the CUDA build when an NVIDIA driver is installed (nvidia-smi), else the "
                 "smaller CPU build; on macOS there is one build (CPU and Apple GPU).")
        self.add(QgsProcessingParameterString(self.PACKAGES, "Packages", defaultValue=" ".join(RUNTIME_REQUIREMENTS)),
                 "The pip requirements to install, separated by spaces; the default is LVPC's tested, pinned list.",
                 advanced=True)
        self.add(QgsProcessingParameterFile(self.TARGET, "Install into folder", QgsProcessingParameterFile.Folder,
                                            defaultValue=user_packages_folder()),
                 "Replaced as a whole when the install succeeded. The default is the per-user folder the plugin "
                 f"puts on Python's path at start-up; another folder must be named in {ENV_VAR} for the next start.",
                 advanced=True)
        self.addOutput(QgsProcessingOutputFolder(self.FOLDER, "Folder of the installed packages"))

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
                progress: FeedbackProgress) -> dict[str, Any]:
        from .. import installer

        packages = installer.parse_packages(self.parameterAsString(parameters, self.PACKAGES, context))
        folder = installer.install(packages, self.parameterAsFile(parameters, self.TARGET, context), progress,
                                   installer.TORCH_BUILDS[self.parameterAsEnum(parameters, self.TORCH_BUILD, context)])
        loaded = installer.activate(folder)
        progress.info(f"Installed into {folder}; its packages are importable now, without restarting QGIS.")
        if loaded:
            progress.info(f"Already loaded before the install, so used in their old version until QGIS restarts: "
                          f"{', '.join(loaded)}.")
        if os.path.normcase(folder) != os.path.normcase(user_packages_folder()):
            progress.info(f"This is not the default folder: for QGIS to find it at its next start, add it to the "
                          f"environment variable {ENV_VAR}.")
        return {self.FOLDER: folder}
