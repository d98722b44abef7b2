"""Atomic outputs: every file LVPC writes appears whole or not at all, and never damages what was there."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from .progress import LvpcError


def json_value(value):
    """`json.dump(default=...)` for numpy scalars and tuples, which reports and results are full of."""
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(type(value))


@contextmanager
def atomic_output(path: str | os.PathLike, parameter: str = "output") -> Iterator[str]:
    """Yields a temporary path beside `path`; renamed over it only if the block completes.

    A failure (an exception, a cancel, a full disk) deletes the temporary file and leaves `path` as it was.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent or ".")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise LvpcError(f"{parameter}: writing {target} failed ({exc.strerror or exc}): is the disk full? Free space "
                        "or choose another folder; any previous file at that path was left as it was.") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
