"""What the user's numbers and names may be: one table of ranges that the CLI's parser, the QGIS parameters' limits
and the engine's check before any work all read, and the rule for modality names.

Imports nothing heavy: the QGIS algorithms read it to build their dialogs where torch may be missing.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Iterable

from .errors import LvpcError


@dataclass(frozen=True)
class Limit:
    """The values an option accepts; `meaning` ends the message (units, what the ends mean)."""

    low: float
    high: float
    integer: bool = True
    odd: bool = False
    meaning: str = ""

    def problem(self, value: object) -> str | None:
        """None when `value` fits, else what is wrong with it, as the end of a sentence naming the option."""
        whole = isinstance(value, int) and not isinstance(value, bool)
        number = whole or (isinstance(value, float) and not self.integer)
        if number and math.isfinite(value) and self.low <= value <= self.high and (not self.odd or value % 2 == 1):
            return None
        kind = "an odd integer" if self.odd else "an integer" if self.integer else "a number"
        return f"must be {kind} from {self.low:g} to {self.high:g}{self.meaning}, not {value!r}"


LIMITS: dict[str, Limit] = {
    "patch_size": Limit(5, 33, odd=True, meaning=" pixels (odd: the pixel is the centre of its window)"),
    "epochs_stage1": Limit(1, 10000),
    "epochs_stage2": Limit(1, 10000),
    "batch_size": Limit(1, 65536, meaning=" pixels per step"),
    "learning_rate": Limit(1e-7, 1.0, integer=False),
    "patience": Limit(0, 10000, meaning=" epochs (0 = never stop early)"),
    # _hold_out never holds out more than half of a class
    "validation_fraction": Limit(0.0, 0.5, integer=False, meaning=" (0 = no validation; at most half of a class)"),
    "max_samples_per_class": Limit(1, 10_000_000),
    "samples_per_epoch": Limit(1, 10_000_000, meaning=" pixels"),
    "depth": Limit(1, 12, meaning=" transformer blocks"),
    "seed": Limit(0, 2**31 - 1),
    "threads": Limit(1, 1024),
    "block_size": Limit(1, 4096, meaning=" pixels a side"),
    # an exported graph's fixed tile: Deepness overlaps its tiles by at least a window (up to 33 pixels)
    "tile_size": Limit(64, 4096, meaning=" pixels a side"),
}


def option_name(key: str) -> str:
    """How both front ends name an option in a message: the QGIS parameter and the CLI flag."""
    return f"{key.upper()} (--{key.replace('_', '-')})"


def check_options(values: dict[str, object]) -> None:
    """Refuses the first value outside its range; keys without a limit and None (= the default) pass."""
    for key, value in values.items():
        problem = LIMITS[key].problem(value) if key in LIMITS and value is not None else None
        if problem:
            raise LvpcError(f"{option_name(key)} {problem}.")


_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}\Z")
# 'shared' names the shared text features and the shared column of the description table; 'name' and 'class' are
# that table's other columns (JSON and CSV): a modality of one of these names would overwrite them.
_RESERVED = {"shared", "name", "class"}


def modality_name_problem(name: str) -> str | None:
    """None when `name` can name a modality, else why not (it becomes a tensor name and a table column)."""
    if not _NAME.match(name):
        return (f"modality name '{name}' must be a lowercase identifier: a letter, then letters, digits or _ "
                "(at most 32), e.g. hs, lidar, sar, dsm_2")
    if name in _RESERVED or _taken_by_torch(name):
        return f"modality name '{name}' is a reserved word of the model file; call the modality differently"
    return None


def _taken_by_torch(name: str) -> bool:
    """A model keeps its modalities as keys of these torch containers, whose own attribute names are taken."""
    try:
        from torch import nn
    except ImportError:  # describing classes needs no torch; where it is missing, no model is built either
        return False
    return hasattr(nn.ModuleDict, name) or hasattr(nn.ParameterDict, name)


def check_modality_names(names: Iterable[str]) -> None:
    for name in names:
        problem = modality_name_problem(name)
        if problem:
            raise LvpcError(problem)
