"""Real QGIS for the tests: a headless QgsApplication with an isolated profile, the plugin loaded the way QGIS
loads it (a folder named `lvpc` on a plugin path), and the real qgis_process binary with a throw-away profile.

QGIS cannot be initialised twice in one process, so there is one QgsApplication per test session.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

PLUGIN = "lvpc"
QGIS_PREFIX = "/usr"
PROCESSING_PLUGINS = "/usr/share/qgis/python/plugins"


def qgis_process_binary() -> str:
    """`qgis_process.bin` when present (Debian's `qgis_process` wrapper may be broken), else `qgis_process`."""
    binary = shutil.which("qgis_process.bin") or shutil.which("qgis_process")
    if binary is None:
        pytest.fail("no qgis_process binary on PATH: run `make setup`")
    return binary


def link_plugin(plugins_dir: Path, source: Path) -> Path:
    """Make `plugins_dir/lvpc` point at `source`, as `make deploy` does."""
    plugins_dir.mkdir(parents=True, exist_ok=True)
    link = plugins_dir / PLUGIN
    link.symlink_to(source, target_is_directory=True)
    return link


class QgisProcess:
    """The real qgis_process with QGIS_PLUGINPATH = `plugins_dir` and the plugin enabled in a throw-away profile."""

    def __init__(self, plugins_dir: Path, config_root: Path) -> None:
        self.plugins_dir = plugins_dir
        self.config_root = config_root
        ini = config_root / "profiles" / "default" / "QGIS" / "QGIS3.ini"
        ini.parent.mkdir(parents=True, exist_ok=True)
        ini.write_text(f"[PythonPlugins]\n{PLUGIN}=true\n", encoding="utf-8")

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        # XDG_DATA_HOME: the per-user package folder of lvpc:installdependencies inside the throw-away profile too
        environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(self.plugins_dir),
                       "QGIS_CUSTOM_CONFIG_PATH": str(self.config_root),
                       "XDG_DATA_HOME": str(self.config_root / "data"), **(env or {})}
        return subprocess.run([qgis_process_binary(), *args], capture_output=True, text=True, env=environment,
                              timeout=timeout, check=False)

    def run(self, algorithm: str, **parameters: Any) -> subprocess.CompletedProcess:
        """`qgis_process --json run ALG -- NAME=value ...`; a list repeats NAME (multi-layer parameters).

        A multiple-choice enum takes one comma-separated value instead: MODALITIES="0,2".
        """
        pairs = [f"{name}={v}" for name, value in parameters.items()
                 for v in (value if isinstance(value, (list, tuple)) else [value])]
        return self("--json", "run", algorithm, "--", *pairs)

    def run_json(self, algorithm: str, **parameters: Any) -> dict[str, Any]:
        """Run, insist on success, and return the parsed JSON document."""
        done = self.run(algorithm, **parameters)
        assert done.returncode == 0, f"qgis_process failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return json.loads(done.stdout)


@pytest.fixture(scope="session")
def qgis_config_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("qgis-config")


@pytest.fixture(scope="session")
def qgis_app(qgis_config_root: Path):
    """The session's QgsApplication, headless, with its profile under a temporary folder, and Processing ready."""
    os.environ["QGIS_CUSTOM_CONFIG_PATH"] = str(qgis_config_root)
    from qgis.core import QgsApplication

    QgsApplication.setPrefixPath(QGIS_PREFIX, True)
    app = QgsApplication([], False)
    app.initQgis()
    if PROCESSING_PLUGINS not in sys.path:
        sys.path.append(PROCESSING_PLUGINS)
    from processing.core.Processing import Processing

    Processing.initialize()
    yield app
    app.exitQgis()


@pytest.fixture(scope="session")
def plugins_dir(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """A plugin folder holding `lvpc` -> the working tree, as `make deploy` makes in a real profile."""
    folder = tmp_path_factory.mktemp("plugins")
    link_plugin(folder, repo_root)
    return folder


@pytest.fixture(scope="session")
def plugin_package(plugins_dir: Path) -> ModuleType:
    """The plugin imported as the package `lvpc`, as QGIS imports it (needs no QgsApplication)."""
    sys.path.insert(0, str(plugins_dir))
    return importlib.import_module(PLUGIN)


@pytest.fixture(scope="session")
def lvpc_plugin(qgis_app, plugin_package: ModuleType):
    """The plugin object as qgis_process makes it: classFactory(None), then initProcessing()."""
    plugin = plugin_package.classFactory(None)
    plugin.initProcessing()
    yield plugin
    plugin.unload()


@pytest.fixture
def make_qgis_process(tmp_path: Path) -> Callable[[Path], QgisProcess]:
    """Build a QgisProcess over any plugin folder (e.g. an unpacked zip), each with its own fresh profile."""
    count = iter(range(1000))
    return lambda folder: QgisProcess(folder, tmp_path / f"qgis-config-{next(count)}")


@pytest.fixture
def qgis_process(make_qgis_process: Callable[[Path], QgisProcess], plugins_dir: Path) -> QgisProcess:
    """qgis_process with the working tree as plugin `lvpc`, enabled in a fresh profile."""
    return make_qgis_process(plugins_dir)
