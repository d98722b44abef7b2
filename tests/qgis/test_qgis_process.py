"""The real qgis_process binary (QGIS's own Python, not the test venv) finds, lists and runs the plugin."""
from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis


def test_lists_lvpc_algorithms(qgis_process) -> None:
    done = qgis_process("list")
    assert done.returncode == 0, done.stderr
    assert "lvpc:describeclasses" in done.stdout


def test_plugin_is_not_loaded_when_disabled(qgis_process) -> None:
    """Guards the test above: the algorithms come from the plugin path + enabled profile, not from somewhere else."""
    ini = qgis_process.config_root / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.write_text("[PythonPlugins]\nlvpc=false\n", encoding="utf-8")
    done = qgis_process("list")
    assert done.returncode == 0, done.stderr
    assert "lvpc:" not in done.stdout


def test_runs_describeclasses_with_json(qgis_process, tmp_path: Path) -> None:
    from lvpcnet_core.language import DescriptionTable

    out = tmp_path / "descriptions.json"
    result = qgis_process.run_json("lvpc:describeclasses", CLASSES="forest,water,built-up", MODALITIES="0,1,2",
                                   OUTPUT=out)
    assert result["algorithm_details"]["id"] == "lvpc:describeclasses"
    assert Path(result["results"]["OUTPUT"]) == out
    table = DescriptionTable.load(out)
    assert table.classes == ["forest", "water", "built-up"]
    assert table.modalities == ["hs", "lidar", "sar"]


def test_engine_error_exits_1_with_the_message(qgis_process, tmp_path: Path) -> None:
    done = qgis_process.run("lvpc:describeclasses", OUTPUT=tmp_path / "x.json")
    assert done.returncode == 1
    assert "No classes: give names in CLASSES" in done.stdout + done.stderr
