"""`make package` builds a zip that QGIS can install and that works on its own, without the developer's venv."""
from __future__ import annotations

import configparser
import subprocess
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

# What the QGIS plugin repository requires in metadata.txt, plus what qgis_process needs to load the provider.
REQUIRED = ["name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
            "tracker", "tags", "icon", "experimental", "hasProcessingProvider"]


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(["make", "-s", "-C", str(repo_root), "package", f"DIST={out}"], check=True, capture_output=True)
    (built,) = out.glob("*.zip")
    return built


def test_zip_has_one_lvpc_folder_and_no_developer_files(plugin_zip: Path) -> None:
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert {n.split("/")[0] for n in names} == {"lvpc"}
    for needed in ("__init__.py", "metadata.txt", "provider.py", "deps.py", "installer.py", "icons/lvpc.svg", "LICENSE",
                   "algorithms/describeclasses.py", "lvpcnet_core/progress.py", "demo/ATTRIBUTION.md"):
        assert f"lvpc/{needed}" in names
    for name in names:
        parts = name.split("/")
        assert parts[1] not in {"tests", ".venv", ".git", ".ci", "bench", "scripts", "Makefile"}, name
        assert "__pycache__" not in parts and not name.endswith(".pyc"), name


def test_zip_metadata_parses_with_every_required_field(plugin_zip: Path) -> None:
    metadata = configparser.ConfigParser(interpolation=None)
    metadata.read_string(zipfile.ZipFile(plugin_zip).read("lvpc/metadata.txt").decode("utf-8"))
    general = metadata["general"]
    for field in REQUIRED:
        assert general.get(field, "").strip(), field
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["hasProcessingProvider"] == "yes"
    assert plugin_zip.name == f"lvpc-{general['version']}.zip"
    assert f"lvpc/{general['icon']}" in zipfile.ZipFile(plugin_zip).namelist()


def test_unpacked_zip_runs_under_qgis_process(plugin_zip: Path, make_qgis_process, tmp_path: Path) -> None:
    """Installed from the zip (no .venv beside it), the provider loads and a text-only algorithm runs."""
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(plugin_zip).extractall(plugins)
    qgis_process = make_qgis_process(plugins)
    listed = qgis_process("list")
    assert "lvpc:describeclasses" in listed.stdout, listed.stderr
    out = tmp_path / "d.csv"
    result = qgis_process.run_json("lvpc:describeclasses", CLASSES="forest", OUTPUT=out)
    assert Path(result["results"]["OUTPUT"]) == out and out.stat().st_size > 0
