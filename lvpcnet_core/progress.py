"""Progress reporting shared by the CLI and the QGIS algorithms.

The engine never prints: it talks to a `Progress` so that QGIS (QgsProcessingFeedback) and the command
line (tqdm) show the same messages, and cancellation is one flag checked inside every long loop.
"""
from __future__ import annotations

import sys
from typing import Protocol

from .errors import Cancelled


class Progress(Protocol):
    def info(self, message: str) -> None: ...

    def set_progress(self, percent: float) -> None: ...

    def is_canceled(self) -> bool: ...


class SilentProgress:
    """Progress for library use and tests: keeps messages, never cancels unless told to."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.percent = 0.0
        self.cancel = False

    def info(self, message: str) -> None:
        self.messages.append(message)

    def set_progress(self, percent: float) -> None:
        self.percent = percent

    def is_canceled(self) -> bool:
        return self.cancel


class TqdmProgress:
    """Command-line progress: one tqdm bar over 0-100 %, messages written above it."""

    def __init__(self, description: str = "lvpc") -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=100, desc=description, unit="%", file=sys.stderr,
                         bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
        self._tqdm = tqdm

    def info(self, message: str) -> None:
        self._tqdm.write(message, file=sys.stderr)

    def set_progress(self, percent: float) -> None:
        self._bar.n = max(0.0, min(100.0, percent))
        self._bar.refresh()

    def is_canceled(self) -> bool:
        return False

    def close(self) -> None:
        self._bar.close()


def check_cancel(progress: Progress) -> None:
    """Raise `Cancelled` when the user asked to stop; called once per batch or block."""
    if progress.is_canceled():
        raise Cancelled("cancelled by the user")
