"""The output policy: every file LVPC writes is checked against the run's inputs before any work, written to a
temporary file of its own and renamed into place last, so it appears whole or not at all and never destroys what
the user had.

One rule for every front end (CLI, QGIS algorithms) and every kind of file (map, confidence, `.qml`, model,
reports, JSON, descriptions): `check_outputs` before the work, then `atomic_output`, or `temporary_beside` and
`publish` for files published together.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .errors import LvpcError

# Files that belong to an input although they are not its path: GDAL's metadata and overviews, QGIS's style, the
# parts of a shapefile and a GeoPackage's journal. Writing any of them damages the input as surely as writing it.
_COMPANIONS = (".aux.xml", ".ovr", "-wal", "-shm")
_SHAPEFILE_PARTS = (".shx", ".dbf", ".prj", ".cpg", ".qpj", ".sbn", ".sbx", ".qix")


def json_value(value):
    """`json.dump(default=...)` for numpy scalars and tuples, which reports and results are full of."""
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(type(value))


def qml_path(path: str | os.PathLike) -> str:
    """The QGIS style written beside a map: QGIS applies `<stem>.qml` when it loads `<stem>.<ext>`."""
    return os.path.splitext(str(path))[0] + ".qml"


def _key(path: str | os.PathLike) -> str:
    return os.path.normcase(os.path.realpath(os.fspath(path)))


def _belongings(path: str) -> list[str]:
    """An input's path and the files beside it that are part of it."""
    stem, ext = os.path.splitext(path)
    parts = [path, qml_path(path), *(path + c for c in _COMPANIONS)]
    if ext.lower() == ".shp":
        parts += [stem + p for p in _SHAPEFILE_PARTS]
    return parts


def _same_file(a: str, b: str | os.PathLike) -> bool:
    """Also true for two names of one file (a hard link), which realpath does not see."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: dict[str, str | os.PathLike | None], inputs: dict[str, str | os.PathLike | None], *,
                  sidecars: dict[str, Iterable[str]] | None = None, replaceable: Iterable[str] = ()) -> None:
    """Refuses, before any work, every output that would destroy an input, another output of the run, or cannot be
    written; the message names both parameters.

    `outputs` and `inputs` map parameter names (OUTPUT, HS, MODEL, ...) to paths; None or "" = not given.
    `sidecars` lists the other files an output writes beside it (a map's `.qml`), which follow the same rule.
    `replaceable` names inputs the user may write over on purpose (a model updated in place): the output may be the
    input itself, never a file beside it.
    """
    protected: dict[str, str] = {}
    for name, path in inputs.items():
        if path:
            for part in _belongings(os.fspath(path)):
                protected.setdefault(_key(part), name)
    written: dict[str, str] = {}
    for parameter, path in outputs.items():
        if not path:
            continue
        path = os.fspath(path)
        _check_writable(parameter, path)
        for i, target in enumerate([path, *(sidecars or {}).get(parameter, ())]):
            what = f"{parameter} (its companion file {os.path.basename(target)})" if i else parameter
            key = _key(target)
            other = protected.get(key) or next((n for n, p in inputs.items() if p and _same_file(target, p)), None)
            if other is not None and not (other in replaceable and i == 0 and key == _key(inputs[other])):
                raise LvpcError(f"{what}: '{target}' is a file of the input {other}: writing it would destroy that "
                                f"input. Choose another file name for {parameter}.")
            if key in written:
                raise LvpcError(f"{what}: '{target}' is also written as {written[key]}: give each output its own "
                                "file name.")
            written[key] = what


def _check_writable(parameter: str, path: str) -> None:
    target = Path(path)
    folder = target.resolve().parent
    if not folder.is_dir():
        raise LvpcError(f"{parameter}: the folder '{folder}' does not exist; choose an existing folder")
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        limit = 255
    if len(os.fsencode(target.name)) > limit:
        raise LvpcError(f"{parameter}: the file name '{target.name[:40]}...' is longer than the {limit} bytes this "
                        "folder allows; choose a shorter name.")
    if target.is_dir():
        raise LvpcError(f"{parameter}: '{path}' is a folder; give a file name inside it (e.g. {target / 'out'}).")
    try:
        fd, probe = tempfile.mkstemp(prefix=".lvpc-probe.", dir=folder)
    except OSError as exc:
        raise LvpcError(f"{parameter}: cannot write in '{folder}' ({exc.strerror}); choose a folder you can write "
                        "to") from None
    os.close(fd)
    os.unlink(probe)


def temporary_beside(target: str | os.PathLike, suffix: str = ".partial") -> str:
    """A new, empty file of this run only in the target's folder (so the final rename cannot cross file systems)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:80]}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    return tmp


def stamp(path: str | os.PathLike) -> tuple[int, int, int, int] | None:
    """What lies at `path` (None: nothing): publishing compares it, to see another run's file written meanwhile."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux); threads may be running."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def _folder_lock(folders: Iterable[str]) -> Iterator[None]:
    """Serialises publication between runs writing into the same folders (POSIX; elsewhere renames stay atomic)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with ExitStack() as stack:
        for folder in sorted(set(folders)):
            fd = os.open(folder, os.O_RDONLY)
            stack.callback(os.close, fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield


def publish(files: list[tuple[str | None, str]], stamps: dict[str, tuple | None], parameter: str) -> None:
    """Renames every (temporary, target) into place, at once for other LVPC runs; a None temporary removes the target
    (a stale companion of an older file). Refused, deleting the temporaries, when a target changed since `stamps`
    were taken: another run wrote it meanwhile, and its file stays whole."""
    mode = 0o666 & ~_umask()
    try:
        with _folder_lock(os.path.dirname(os.path.abspath(t)) for _, t in files):
            changed = [t for t, s in stamps.items() if stamp(t) != s]
            if changed:
                raise LvpcError(f"{parameter}: '{changed[0]}' was written by another run while this one worked; it "
                                "is in use, and this run wrote nothing: choose another file name or run again when "
                                "the other run is done.")
            for tmp, target in files:
                if tmp is None:
                    Path(target).unlink(missing_ok=True)
                    continue
                os.chmod(tmp, mode)
                os.replace(tmp, target)
    except OSError as exc:
        raise write_failed(parameter, exc.filename or files[0][1], exc.strerror or str(exc)) from None
    finally:
        discard(tmp for tmp, _ in files if tmp is not None)


def write_failed(parameter: str, path: str, reason: str) -> LvpcError:
    """The one message of a write that failed after the checks (a full disk, a folder removed meanwhile)."""
    return LvpcError(f"{parameter}: writing the output {path} failed ({reason}): is the disk full? Free space or "
                     "choose another folder; any previous file at that path was left as it was.")


def discard(paths: Iterable[str]) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


@contextmanager
def atomic_output(path: str | os.PathLike, parameter: str = "output") -> Iterator[str]:
    """Yields a temporary path beside `path`; renamed over it only if the block completes.

    A failure (an exception, a cancel, a full disk) deletes the temporary file and leaves `path` as it was.
    """
    target = os.fspath(path)
    before = stamp(target)
    tmp = temporary_beside(target)
    try:
        yield tmp
    except OSError as exc:
        discard([tmp])
        raise write_failed(parameter, target, exc.strerror or str(exc)) from None
    except BaseException:
        discard([tmp])
        raise
    publish([(tmp, target)], {target: before}, parameter)
