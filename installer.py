"""Install the plugin's Python packages for QGIS's own Python, from inside QGIS (`lvpc:installdependencies`).

QGIS runs the Python it was built with, and inside QGIS `sys.executable` is the QGIS program, not that Python: the
interpreter is looked up per system (`find_python`). Its pip installs with `--target` into a staging folder beside
the per-user folder of `deps.user_packages_folder`; only a complete install is renamed into place, the previous one
kept until then, so a failure or a cancel leaves whatever worked before active and nothing half-installed.
Imports nothing heavy: it must run exactly where torch is missing.
"""
from __future__ import annotations

import collections
import contextlib
import glob
import json
import os
import queue
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from lvpcnet_core.errors import Cancelled, LvpcError
from lvpcnet_core.progress import Progress

from .deps import insert_before_site_packages

TORCH_BUILDS = ("auto", "cpu", "cuda")
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# The pinned torch 2.14.1 is built with CUDA 13.0 (PyPI's Linux wheel reports torch.version.cuda == "13.0").
CUDA_INDEX = "https://download.pytorch.org/whl/cu130"
TORCH_PACKAGES = {"torch", "torchvision"}  # those the PyTorch indexes build per CPU / CUDA
# Written into the folder as its last file: a folder with it is a complete install of ours, and may be replaced.
MARKER = ".lvpc-packages.json"

# pip's words for a failure -> what the user reads; the first that matches wins (a network failure ends with
# "No matching distribution", so it is tested before that).
_FAILURES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("No space left on device", "Errno 28", "not enough space on the disk", "Disk quota exceeded"),
     "the disk ran full (No space left on device) in {parent} or in pip's temporary folder ({tmp}): free space "
     "(PyTorch and its libraries take several GB) or choose a TARGET on another disk, then run this again."),
    (("Retrying (Retry(", "Failed to establish a new connection", "Temporary failure in name resolution",
      "Name or service not known", "getaddrinfo failed", "Network is unreachable", "ConnectTimeout", "Read timed out",
      "ProxyError", "Could not fetch URL", "CERTIFICATE_VERIFY_FAILED", "Connection refused"),
     "pip could not reach the package index (no network, or a proxy or firewall in the way): connect to the "
     "internet (behind a proxy, check HTTPS_PROXY as QGIS sees it), then run this again."),
    (("Permission denied", "Errno 13", "Access is denied"),
     "pip was refused access to a file ({line}): choose a TARGET folder your user can write to, then run this again."),
    (("No matching distribution found for",),
     "pip found no release of {package} for this Python ({python}) and system: check its name and version in "
     "PACKAGES (pypi.org lists them), and that pip reaches the package index from here."),
)


def requirement_name(requirement: str) -> str:
    """The normalised project name of a pip requirement: `Torch_Vision>=0.2` -> `torch-vision`."""
    return re.split(r"[\s<>=!~;\[@(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def parse_packages(text: str) -> list[str]:
    """PACKAGES as typed: requirements separated by spaces (quotes allowed); pip options are refused, the installer
    sets those itself (`--target` elsewhere would bypass the staging folder)."""
    try:
        packages = shlex.split(text)
    except ValueError as exc:
        raise LvpcError(f"PACKAGES: {exc} in '{text}': separate the requirements by spaces, e.g. six==1.16.0 "
                        "numpy<2") from None
    if not packages:
        raise LvpcError("PACKAGES is empty: give the requirements to install (the default is LVPC's pinned list).")
    options = [p for p in packages if p.startswith("-")]
    if options:
        raise LvpcError(f"PACKAGES: '{options[0]}' is a pip option; give only requirements (name==version), the "
                        "installer sets pip's options itself.")
    return packages


def has_nvidia_gpu(search_path: str | None = None, driver: str = "/proc/driver/nvidia") -> bool:
    """An NVIDIA driver is installed: `nvidia-smi` on PATH (or on `search_path`) or Linux's driver folder."""
    return shutil.which("nvidia-smi", path=search_path) is not None or os.path.isdir(driver)


def torch_build(choice: str, platform: str = sys.platform, gpu: bool = False) -> str:
    """'cpu', 'cuda', or 'pypi' on macOS (one build there, CPU and Apple GPU); `auto` takes CUDA when `gpu`."""
    if choice not in TORCH_BUILDS:
        raise LvpcError(f"TORCH_BUILD: '{choice}' is not one of {', '.join(TORCH_BUILDS)}.")
    if platform == "darwin":
        if choice == "cuda":
            raise LvpcError("TORCH_BUILD: PyTorch has no CUDA build for macOS; choose auto or cpu.")
        return "pypi"
    if choice == "auto":
        return "cuda" if gpu else "cpu"
    return choice


def index_options(build: str, packages: Sequence[str]) -> list[str]:
    """pip's extra index for the chosen torch build; none when PACKAGES holds no torch (nor on macOS).

    An extra index, not a replacement: the other packages come from PyPI, and pip prefers `2.14.1+cpu` over
    PyPI's `2.14.1` for `torch==2.14.1`, so torch and torchvision come as a matched pair of the chosen build.
    """
    if build == "pypi" or not any(requirement_name(p) in TORCH_PACKAGES for p in packages):
        return []
    return ["--extra-index-url", CUDA_INDEX if build == "cuda" else CPU_INDEX]


def pip_command(python: str, staging: str, packages: Sequence[str], index: Sequence[str] = ()) -> list[str]:
    """`python -m pip install --target staging ...`: never the user's or the system's site-packages, no prompts, and
    no progress bars (their carriage returns would flood the log line by line)."""
    return [python, "-m", "pip", "install", "--target", staging, "--no-user", "--no-input", "--progress-bar", "off",
            "--disable-pip-version-check", "--no-warn-script-location", *index, *packages]


def python_candidates(platform: str, executable: str, exec_prefix: str, version: tuple[int, int]) -> list[str]:
    """Where QGIS's Python may be, best first, from the running installation (`sys.exec_prefix`) and program.

    Not `sys.executable`: inside QGIS it is the QGIS program (qgis-bin.exe, QGIS, qgis_process.bin), or, where
    Python could not tell, the first `python3` on PATH (seen: a pyenv shim under Debian's qgis_process), which may
    be another installation. `exec_prefix` also covers a virtual environment's and conda's Python.
    """
    x, y = version
    program = Path(executable).parent
    if platform.startswith("win"):
        # OSGeo4W and the standalone installer: <prefix>\apps\Python3X\python.exe, which is also sys.exec_prefix
        found = [Path(exec_prefix, "python.exe"), program.parent / "apps" / f"Python{x}{y}" / "python.exe"]
    elif platform == "darwin":
        # QGIS.app/Contents/MacOS/QGIS beside QGIS.app/Contents/MacOS/bin/python3
        found = [program / "bin" / f"python{x}.{y}", program / "bin" / "python3",
                 Path(exec_prefix, "bin", f"python{x}.{y}")]
    else:  # Debian's /usr/bin/python3.11 for /usr/bin/qgis
        found = [Path(exec_prefix, "bin", f"python{x}.{y}"), Path(exec_prefix, "bin", "python3")]
    return list(dict.fromkeys(str(p) for p in found))


def find_python(platform: str = sys.platform, executable: str = sys.executable, exec_prefix: str = sys.exec_prefix,
                version: tuple[int, int] = sys.version_info[:2]) -> str:
    """The first of `python_candidates` that exists; its version is checked against QGIS's by `check_pip`."""
    candidates = python_candidates(platform, executable, exec_prefix, version)
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise LvpcError(f"Cannot find the Python {version[0]}.{version[1]} that runs QGIS (looked for "
                    f"{', '.join(candidates)}): install the packages by hand as the README says.")


def pip_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """QGIS's environment (on Windows its Python needs PYTHONHOME from it), with unbuffered UTF-8 output."""
    return {**environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "PIP_NO_INPUT": "1"}


def check_pip(python: str, version: tuple[int, int] = sys.version_info[:2]) -> None:
    """Refuse, before anything is downloaded, a Python without pip or of another version than QGIS's."""
    try:
        done = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True, timeout=120,
                              env=pip_environment(), stdin=subprocess.DEVNULL, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LvpcError(f"Cannot run QGIS's Python {python} ({exc}): install the packages by hand as the README "
                        "says.") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LvpcError(f"QGIS's Python {python} has no pip ({said}). Install pip first: `{python} -m ensurepip "
                        "--upgrade` (Debian/Ubuntu: `sudo apt install python3-pip`), then run this again.")
    reported = re.search(r"\(python (\d+)\.(\d+)\)", done.stdout)
    if reported and (int(reported[1]), int(reported[2])) != tuple(version):
        raise LvpcError(f"{python} is Python {reported[1]}.{reported[2]} but QGIS runs Python {version[0]}."
                        f"{version[1]}; packages built for one do not load in the other. Install by hand with "
                        "QGIS's Python as the README says.")


def run_pip(command: Sequence[str], progress: Progress, keep: int = 400) -> tuple[int, list[str]]:
    """Run pip with each output line passed to `progress.info` as it comes; return its exit code and last lines.

    Lines are read in a thread, so a cancel is seen within a fraction of a second even while pip downloads a large
    wheel in silence; a cancel stops pip and whatever it started (a build backend), then raises Cancelled.
    """
    posix = os.name == "posix"
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace", bufsize=1,
                               env=pip_environment(), start_new_session=posix,
                               creationflags=0 if posix else subprocess.CREATE_NEW_PROCESS_GROUP)
    lines: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    reader.start()
    tail: collections.deque[str] = collections.deque(maxlen=keep)
    try:
        while True:
            if progress.is_canceled():
                raise Cancelled()
            try:
                line = lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                return process.wait(), list(tail)
            line = line.rstrip()
            if line:
                tail.append(line)
                progress.info(line)
    finally:
        if process.poll() is None:
            _stop(process, posix)
        reader.join(timeout=5)
        process.stdout.close()


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _stop(process: subprocess.Popen, posix: bool) -> None:
    """End pip and its children: its process group on POSIX, the process itself elsewhere."""
    try:
        if posix:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        if posix:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()
    except ProcessLookupError:
        process.wait()


def explain_failure(lines: Sequence[str], code: int, target: Path) -> str:
    """pip's failure in words the user can act on, from its output; unknown ones quote pip's last lines."""
    kept = f" Nothing was changed: {target} is as it was."
    for needles, text in _FAILURES:
        line = next((line for line in lines if any(n in line for n in needles)), None)
        if line is not None:
            package = re.search(r"No matching distribution found for (\S+)", line)
            return "Installing failed: " + text.format(
                parent=target.parent, tmp=tempfile.gettempdir(), line=line.strip(),
                python=f"{sys.version_info[0]}.{sys.version_info[1]}", package=package[1] if package else "a package"
            ) + kept
    last = "\n".join(lines[-8:]) or "(no output)"
    return f"Installing failed: pip exited with code {code}; its last lines:\n{last}\n{kept.strip()}"


def check_target(target: Path) -> None:
    """TARGET is replaced as a whole, so it must be new, empty, or an earlier install of this installer."""
    if target.exists() and not target.is_dir():
        raise LvpcError(f"TARGET: '{target}' is a file; give a folder (it is created when missing).")
    if target.is_dir() and any(target.iterdir()) and not (target / MARKER).is_file():
        raise LvpcError(f"TARGET: '{target}' holds files that this installer did not put there, and an install "
                        "replaces the whole folder: choose a new or empty folder.")


def replace_folder(new: Path, target: Path) -> None:
    """Put `new` at `target` by renames in one folder: the previous `target` is moved aside first, put back if the
    second rename fails, and deleted only once `new` is in place."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.time_ns()}") if target.exists() else None
    try:
        if old is not None:
            os.replace(target, old)
        try:
            os.replace(new, target)
        except OSError:
            if old is not None:
                os.replace(old, target)
            raise
    except OSError as exc:
        raise LvpcError(f"TARGET: the new packages could not be put in place of {target} ({exc.strerror}); the "
                        "previous folder is still the active one. If QGIS has packages of it loaded (Windows keeps "
                        "them locked), restart QGIS and run this first.") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def target_lock(folder: Path) -> Iterator[None]:
    """Held for a whole install into `folder`: a second install into it meanwhile is refused, and what an install
    that was killed left beside it (`recover_leftovers`) is known to be stale. The lock file itself stays."""
    try:
        fd = os.open(folder.with_name(f".{folder.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LvpcError(f"TARGET: cannot write in {folder.parent} ({exc.strerror}): choose a folder your user can "
                        "write to.") from None
    try:
        try:
            if os.name == "nt":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise LvpcError(f"TARGET: another install into {folder} is running; wait until it is done.") from None
        yield
    finally:
        os.close(fd)


def recover_leftovers(folder: Path) -> list[str]:
    """Clean up after an install that was killed (QGIS closed by force), under `target_lock`: a killed install's
    staging folder is deleted; a previous install set aside but not replaced is put back. Returns what was removed."""
    def beside(kind: str) -> list[Path]:
        return sorted(folder.parent.glob(f".{glob.escape(folder.name)}.{kind}-*"), key=lambda p: p.stat().st_mtime)

    old = beside("old")
    if old and not folder.exists():
        os.replace(old.pop(), folder)
    removed = beside("staging") + old
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return [str(path) for path in removed]


def install(packages: Sequence[str], target: str | os.PathLike, progress: Progress, torch_choice: str = "auto",
            python: str | None = None, platform: str = sys.platform, gpu: bool | None = None) -> str:
    """Install `packages` with QGIS's Python and pip into `target`, atomically; return the folder's path.

    `python` and `gpu` default to what this machine has (`find_python`, `has_nvidia_gpu`).
    """
    folder = Path(target).expanduser().absolute()
    check_target(folder)
    build = torch_build(torch_choice, platform, has_nvidia_gpu() if gpu is None else gpu)
    index = index_options(build, packages)
    python = python or find_python(platform)
    check_pip(python)
    progress.info(f"QGIS's Python: {python}" + (f"; PyTorch build: {build}" if index or build == "pypi" else ""))
    progress.set_progress(5)
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LvpcError(f"TARGET: cannot create {folder.parent} ({exc.strerror}): choose a folder your user can "
                        "write to.") from None
    with target_lock(folder):
        removed = recover_leftovers(folder)
        if removed:
            progress.info(f"Removed what an interrupted install left: {', '.join(removed)}")
        check_target(folder)  # again: a recovered previous install is back
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.staging-", dir=folder.parent))
        except OSError as exc:
            raise LvpcError(f"TARGET: cannot create a folder in {folder.parent} ({exc.strerror}): is the disk full? "
                            "Choose a folder your user can write to.") from None
        try:
            command = pip_command(python, str(staging), packages, index)
            progress.info("Running: " + shlex.join(command))
            code, lines = run_pip(command, progress)
            if code != 0:
                raise LvpcError(explain_failure(lines, code, folder))
            progress.set_progress(90)
            try:
                (staging / MARKER).write_text(json.dumps({"packages": list(packages), "torch_build": build,
                                                          "python": python}, indent=1), encoding="utf-8")
            except OSError as exc:
                raise LvpcError(f"TARGET: writing into {staging} failed ({exc.strerror}): is the disk full? Nothing "
                                f"was changed: {folder} is as it was.") from None
            replace_folder(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # a failed or cancelled install; gone already after success
    progress.set_progress(100)
    return str(folder)


def activate(folder: str, path: list[str] | None = None) -> list[str]:
    """Make `folder`'s packages importable in this process now, without restarting QGIS; return its top-level
    modules that are loaded already (from elsewhere or an older install): those stay in use until QGIS restarts."""
    insert_before_site_packages([folder], path)
    names = {entry.name.partition(".")[0] for entry in os.scandir(folder)
             if (entry.is_dir() and (Path(entry.path) / "__init__.py").is_file()) or entry.name.endswith(".py")}
    return sorted(name for name in names if name in sys.modules)
