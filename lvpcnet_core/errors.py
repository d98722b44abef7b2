"""The errors LVPC reports to the user, apart from the code that raises them.

`LvpcError` is what the CLI prints as one line and the QGIS algorithms turn into a QgsProcessingException: a mistake
the user can fix, named by layer or parameter, with the fix. `Cancelled` ends a run the user stopped; whoever made
partial outputs removes them.
"""
from __future__ import annotations


class LvpcError(Exception):
    """An error the user can fix; its message names the layer or parameter and what to do."""


class Cancelled(Exception):
    """Raised inside long loops when the user cancels; callers remove partial outputs."""
