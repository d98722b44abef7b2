"""The plugin inside a headless QGIS: provider registration, unload, and describeclasses through processing.run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from osgeo import ogr

pytestmark = pytest.mark.qgis


def test_profile_is_isolated(qgis_app, qgis_config_root: Path) -> None:
    from qgis.core import QgsApplication

    assert Path(QgsApplication.qgisSettingsDirPath()).resolve().is_relative_to(qgis_config_root.resolve())


def test_provider_registers_with_icon_and_algorithms(lvpc_plugin) -> None:
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("lvpc")
    assert provider is lvpc_plugin.provider
    assert provider.name() == "LVPC"
    assert Path(provider.svgIconPath()).is_file()
    assert not provider.icon().isNull()
    ids = [alg.id() for alg in provider.algorithms()]
    assert "lvpc:describeclasses" in ids
    for alg in provider.algorithms():
        assert alg.group() and alg.groupId(), alg.id()
        assert alg.displayName(), alg.id()
        # every parameter's help is in the help panel
        for parameter in alg.parameterDefinitions():
            assert parameter.help() and parameter.description() in alg.shortHelpString(), (alg.id(), parameter.name())


def test_unload_removes_provider_and_init_is_idempotent(lvpc_plugin) -> None:
    from qgis.core import QgsApplication

    registry = QgsApplication.processingRegistry()
    lvpc_plugin.unload()
    assert registry.providerById("lvpc") is None
    assert registry.algorithmById("lvpc:describeclasses") is None
    lvpc_plugin.initGui()  # the desktop path: initGui -> initProcessing
    lvpc_plugin.initProcessing()  # a second call must not register twice
    assert [p.id() for p in registry.providers()].count("lvpc") == 1
    assert registry.algorithmById("lvpc:describeclasses") is not None


def run_algorithm(algorithm: str, parameters: dict) -> dict:
    """processing.run with a context and feedback kept referenced for the whole run (a temporary one crashed QGIS)."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback

    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    return processing.run(algorithm, parameters, context=context, feedback=feedback)


def test_describeclasses_from_names(lvpc_plugin, tmp_path: Path) -> None:
    from lvpcnet_core.language import DescriptionTable

    out = tmp_path / "descriptions.json"
    result = run_algorithm("lvpc:describeclasses",
                           {"CLASSES": "forest, water ,forest", "MODALITIES": [0, 2], "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    json.loads(out.read_text(encoding="utf-8"))
    table = DescriptionTable.load(out)
    assert table.classes == ["forest", "water"]
    assert table.modalities == ["hs", "sar"]


def test_describeclasses_from_layer_field_to_csv(lvpc_plugin, tmp_path: Path, demo_dir: Path) -> None:
    from lvpcnet_core.language import DescriptionTable

    rois = demo_dir / "rois.gpkg"
    dataset = ogr.Open(str(rois))  # kept referenced: GDAL frees the layer with its dataset
    expected = sorted({feature.GetField("class") for feature in dataset.GetLayer(0)})
    out = tmp_path / "descriptions.csv"
    run_algorithm("lvpc:describeclasses", {"VECTOR": str(rois), "CLASS_FIELD": "class", "OUTPUT": str(out)})
    table = DescriptionTable.load(out)
    assert table.classes == expected
    assert table.modalities == ["hs", "lidar"]  # the default


def test_describeclasses_without_classes_says_which_parameters(lvpc_plugin, tmp_path: Path) -> None:
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    algorithm = lvpc_plugin.provider.algorithm("describeclasses").create()
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    with pytest.raises(QgsProcessingException, match="CLASSES.*VECTOR.*CLASS_FIELD"):
        algorithm.processAlgorithm({"OUTPUT": str(tmp_path / "x.json")}, context, feedback)
    assert not (tmp_path / "x.json").exists()


def test_missing_package_message_says_what_to_install(lvpc_plugin, plugin_package, tmp_path: Path) -> None:
    """An algorithm whose packages are absent fails before any work, naming the package and the pip command."""
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProcessingFeedback

    describe = type(lvpc_plugin.provider.algorithm("describeclasses"))
    needs_absent = type("NeedsAbsent", (describe,), {"REQUIRES": ("torch", "lvpc_absent_package")})()
    needs_absent.initAlgorithm()
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    venv = Path(plugin_package.__file__).resolve().parent / ".venv"
    with pytest.raises(QgsProcessingException) as raised:
        needs_absent.processAlgorithm({"CLASSES": "a", "OUTPUT": str(tmp_path / "x.json")}, context, feedback)
    message = str(raised.value)
    assert "lvpc_absent_package" in message and "torch," not in message  # torch is installed here
    assert f"{venv}/bin/python -m pip install torch==2.14.1 torchvision==0.29.1" in message
    assert not (tmp_path / "x.json").exists()
