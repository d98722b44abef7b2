"""Shared base of the LVPC algorithms: help text beside each parameter, engine errors as QGIS errors, progress.

Subclasses declare their parameters with `add(parameter, help)` and do their work in `process(...)` (not `run`: QGIS owns that name), importing
`lvpcnet_core` inside it: the engine (and torch) load only when an algorithm runs, so the provider lists its
algorithms even where torch is missing, and a run there fails with a message that says what to install.
"""
from __future__ import annotations

from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
)

from ..deps import PIP_NAMES, install_hint, missing_modules


class FeedbackProgress:
    """The engine's `Progress` over a QgsProcessingFeedback: messages to the log, percent to the bar, cancel flag back."""

    def __init__(self, feedback: QgsProcessingFeedback) -> None:
        self.feedback = feedback

    def info(self, message: str) -> None:
        self.feedback.pushInfo(message)

    def set_progress(self, percent: float) -> None:
        self.feedback.setProgress(percent)

    def is_canceled(self) -> bool:
        return self.feedback.isCanceled()


class LvpcAlgorithm(QgsProcessingAlgorithm):
    """Base of every `lvpc:` algorithm; a subclass sets the class attributes and writes `initAlgorithm` and `process`."""

    NAME = ""            # id inside the provider: lvpc:<NAME>
    DISPLAY_NAME = ""
    GROUP_ID = ""
    GROUP = ""
    SUMMARY = ""         # first paragraph of the help panel
    # Top-level modules checked before a run; the default is what the network needs.
    REQUIRES: tuple[str, ...] = ("torch", "torchvision", "open_clip")

    def __init__(self) -> None:
        super().__init__()
        self._help: list[tuple[str, str]] = []

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.DISPLAY_NAME

    def groupId(self) -> str:  # noqa: N802 (QGIS API)
        return self.GROUP_ID

    def group(self) -> str:
        return self.GROUP

    def createInstance(self) -> LvpcAlgorithm:  # noqa: N802 (QGIS API)
        return type(self)()

    def add(self, parameter: QgsProcessingParameterDefinition, help_text: str) -> None:
        """Add a parameter with its help, written once: the tooltip and the help panel both show it."""
        parameter.setHelp(help_text)
        self._help.append((parameter.description(), help_text))
        self.addParameter(parameter)

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        items = "".join(f"<dt><b>{label}</b></dt><dd>{text}</dd>" for label, text in self._help)
        return f"<p>{self.SUMMARY}</p><dl>{items}</dl>"

    def processAlgorithm(self, parameters: dict[str, Any], context: QgsProcessingContext,  # noqa: N802 (QGIS API)
                         feedback: QgsProcessingFeedback) -> dict[str, Any]:
        missing = missing_modules(self.REQUIRES)
        if missing:
            raise QgsProcessingException(install_hint(missing))
        from lvpcnet_core.progress import Cancelled, LvpcError

        try:
            return self.process(parameters, context, feedback, FeedbackProgress(feedback))
        except LvpcError as error:
            raise QgsProcessingException(str(error)) from error
        except Cancelled as error:
            raise QgsProcessingException(f"{self.DISPLAY_NAME}: cancelled by the user.") from error
        except ModuleNotFoundError as error:
            module = (error.name or "").partition(".")[0]
            if module in PIP_NAMES:
                raise QgsProcessingException(install_hint([module])) from error
            raise

    def process(self, parameters: dict[str, Any], context: QgsProcessingContext, feedback: QgsProcessingFeedback,
            progress: FeedbackProgress) -> dict[str, Any]:
        """The algorithm's work: read parameters, call one `lvpcnet_core` function, return the outputs."""
        raise NotImplementedError
