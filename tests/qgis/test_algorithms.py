"""train, classify, evaluate, learnprompts and modelinfo through processing.run in headless QGIS, on a small scene.

One model is trained per module (a few seconds with tiny epochs) and reused by the other tests.
"""
from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from .scene import CLASSES, SIZE, Scene, make_scene

pytestmark = pytest.mark.qgis

FAST = {"TEXT_ENCODER": "minilm", "EPOCHS_STAGE1": 3, "EPOCHS_STAGE2": 2, "PATCH_SIZE": 5, "DEVICE": 1}
# The ROI layer's categorized style: class value -> (label, colour); the model must take both.
STYLE = {"built-up": ("Built-up area", (200, 30, 30)), "forest": ("Forest", (20, 120, 40)),
         "water": ("Open water", (30, 60, 220))}


class Recorder:
    """A QgsProcessingFeedback that keeps the log, and cancels at the first progress report when asked to."""

    def __new__(cls, cancel_at_first_progress: bool = False):
        from qgis.core import QgsProcessingFeedback

        class _Recorder(QgsProcessingFeedback):
            def __init__(self) -> None:
                super().__init__()
                self.messages: list[str] = []
                self.percents: list[float] = []

            def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS API)
                self.messages.append(info)
                super().pushInfo(info)

            def setProgress(self, percent: float) -> None:  # noqa: N802 (QGIS API)
                self.percents.append(percent)
                super().setProgress(percent)
                if cancel_at_first_progress:
                    self.cancel()

        return _Recorder()


def run(algorithm, parameters: dict, feedback=None, on_finish=None) -> tuple[dict, object, object]:
    """processing.run with context and feedback kept referenced; returns (results, context, feedback)."""
    import processing
    from qgis.core import QgsProcessingContext

    context = QgsProcessingContext()
    feedback = feedback or Recorder()
    results = processing.run(algorithm, parameters, context=context, feedback=feedback, onFinish=on_finish)
    return results, context, feedback


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    return make_scene(tmp_path_factory.mktemp("scene"))


@pytest.fixture(scope="module")
def styled_rois(lvpc_plugin, scene: Scene):
    """The ROIs as a project layer with a categorized renderer on 'class', as an analyst would have them."""
    from qgis.core import (QgsCategorizedSymbolRenderer, QgsProject, QgsRendererCategory, QgsSymbol,
                           QgsVectorLayer, QgsWkbTypes)
    from qgis.PyQt.QtGui import QColor

    layer = QgsVectorLayer(f"{scene.rois}|layername=rois", "rois", "ogr")
    assert layer.isValid()
    categories = []
    for value, (label, rgb) in STYLE.items():
        symbol = QgsSymbol.defaultSymbol(QgsWkbTypes.PolygonGeometry)
        symbol.setColor(QColor(*rgb))
        categories.append(QgsRendererCategory(value, symbol, label))
    layer.setRenderer(QgsCategorizedSymbolRenderer("class", categories))
    QgsProject.instance().addMapLayer(layer)
    yield layer
    QgsProject.instance().removeMapLayer(layer.id())


@pytest.fixture(scope="module")
def trained(styled_rois, scene: Scene, tmp_path_factory: pytest.TempPathFactory):
    """(model path, report path, feedback) of one lvpc:train run on the styled ROI layer."""
    out = tmp_path_factory.mktemp("model")
    results, _, feedback = run("lvpc:train", {
        "HS": str(scene.hs), "LIDAR": str(scene.lidar), "ROIS": styled_rois, "CLASS_FIELD": "class", **FAST,
        "OUTPUT_MODEL": str(out / "model.lvpc"), "REPORT": str(out / "report.html")})
    return Path(results["OUTPUT_MODEL"]), Path(results["REPORT"]), feedback


def test_train_defaults_are_the_engines(plugin_package) -> None:
    from lvpcnet_core.training import TrainSettings

    from lvpc.algorithms.train import DEFAULTS

    engine = {f.name: f.default for f in fields(TrainSettings)}
    assert DEFAULTS == {key: engine[key] for key in DEFAULTS}


def test_train_writes_model_with_the_layer_style_and_a_report(trained) -> None:
    from lvpcnet_core.model_file import read_metadata

    model, report, feedback = trained
    meta = read_metadata(model)
    assert meta["class_values"] == [1, 2, 3]  # text field: sorted names
    assert meta["class_names"] == [STYLE[c][0] for c in CLASSES]
    assert meta["class_keys"] == CLASSES  # what the ROI field holds, for evaluate and learnprompts on the same layer
    assert [tuple(c) for c in meta["colors"]] == [STYLE[c][1] for c in CLASSES]
    assert meta["config"]["modalities"] == ["hs", "lidar"] and meta["config"]["patch_size"] == 5
    assert meta["report"]["settings"]["epochs_stage1"] == 3 and meta["report"]["settings"]["device"] == "cpu"
    log = "\n".join(feedback.messages)
    assert "lidar" in log.lower() and "20" in log  # what was resampled, from 20 m
    assert "all-MiniLM" in log
    # one polygon per class: validation on blocks of it, every case's accuracy with what it rests on
    assert "blocks of 10 x 10 pixels (a single area)" in log
    assert re.search(r"validation OA [\d.]+ % with lidar \[hs from learned prompts\], \d+ pixels in \d+ held-out "
                     r"block", log)
    assert feedback.percents and max(feedback.percents) == 100
    html = report.read_text(encoding="utf-8")
    assert html.count("<svg") >= 3 and "Built-up area" in html and "lidar available" in html


def test_classify_full_and_lidar_only_loads_styled(lvpc_plugin, trained, scene: Scene, tmp_path: Path) -> None:
    """Run as the dialog runs it: the map is loaded into the project with the model's classes in its legend."""
    from processing.gui.Postprocessing import handleAlgorithmResults
    from qgis.core import QgsPalettedRasterRenderer, QgsProcessingOutputLayerDefinition, QgsProject

    model = str(trained[0])
    out, confidence = tmp_path / "map.tif", tmp_path / "confidence.tif"
    results, _, feedback = run("lvpc:classify", {
        "MODEL": model, "HS": str(scene.hs), "LIDAR": str(scene.lidar), "DEVICE": 1,
        "OUTPUT": QgsProcessingOutputLayerDefinition(str(out), QgsProject.instance()), "CONFIDENCE": str(confidence)},
        on_finish=lambda alg, context, feedback: handleAlgorithmResults(alg, context, feedback, False))
    assert results["OUTPUT"] == str(out) and results["CONFIDENCE"] == str(confidence)
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize) == (SIZE, SIZE)
    assert ds.GetGeoTransform() == gdal.Open(str(scene.hs)).GetGeoTransform()
    classes = ds.ReadAsArray()
    assert set(np.unique(classes)) <= {1, 2, 3}
    band = ds.GetRasterBand(1)
    assert band.GetCategoryNames()[1:4] == [STYLE[c][0] for c in CLASSES]
    assert band.GetColorTable().GetColorEntry(3)[:3] == STYLE["water"][1]
    conf = gdal.Open(str(confidence)).ReadAsArray()
    assert conf.dtype == np.float32 and np.nanmin(conf) > 0 and np.nanmax(conf) <= 1
    (layer,) = QgsProject.instance().mapLayersByName("Classified map")
    renderer = layer.renderer()
    assert isinstance(renderer, QgsPalettedRasterRenderer)
    assert [(c.value, c.label, c.color.name()) for c in renderer.classes()] == [
        (i + 1, STYLE[c][0], "#{:02x}{:02x}{:02x}".format(*STYLE[c][1])) for i, c in enumerate(CLASSES)]
    QgsProject.instance().removeMapLayer(layer.id())

    lidar_only = tmp_path / "lidar_only.tif"
    run("lvpc:classify", {"MODEL": model, "LIDAR": str(scene.lidar), "DEVICE": 1, "OUTPUT": str(lidar_only)})
    ds = gdal.Open(str(lidar_only))
    # trained on 10 m HS + 20 m LiDAR: the LiDAR-only map is made on the full map's 10 m grid, not at 20 m
    assert (ds.RasterXSize, ds.RasterYSize) == (SIZE, SIZE)
    assert ds.GetGeoTransform() == gdal.Open(str(out)).GetGeoTransform()
    assert set(np.unique(ds.ReadAsArray())) <= {1, 2, 3}
    assert lidar_only.with_suffix(".qml").is_file()


def test_classify_extent_and_mask(lvpc_plugin, trained, scene: Scene, tmp_path: Path) -> None:
    from qgis.core import QgsFeature, QgsGeometry, QgsRectangle, QgsVectorLayer

    mask = QgsVectorLayer("Polygon?crs=EPSG:32633", "mask", "memory")  # a temporary layer: exported for the engine
    feature = QgsFeature()
    feature.setGeometry(QgsGeometry.fromRect(QgsRectangle(500000, 5099800, 500100, 5100000)))  # 10 x 20 px
    mask.dataProvider().addFeatures([feature])
    out = tmp_path / "part.tif"
    run("lvpc:classify", {"MODEL": str(trained[0]), "HS": str(scene.hs), "LIDAR": str(scene.lidar), "DEVICE": 1,
                          "EXTENT": "500000,500200,5099700,5100000 [EPSG:32633]", "MASK": mask, "OUTPUT": str(out)})
    classes = gdal.Open(str(out)).ReadAsArray()
    assert classes.shape == (30, 20)
    assert (classes[:20, :10] > 0).all() and (classes[20:] == 0).all() and (classes[:, 10:] == 0).all()


def test_evaluate_outputs_numbers_report_and_json(lvpc_plugin, trained, scene: Scene, tmp_path: Path) -> None:
    html, js = tmp_path / "accuracy.html", tmp_path / "accuracy.json"
    results, _, _ = run("lvpc:evaluate", {"MODEL": str(trained[0]), "HS": str(scene.hs), "LIDAR": str(scene.lidar),
                                          "LABELS": str(scene.labels), "DEVICE": 1,
                                          "OUTPUT_HTML": str(html), "OUTPUT_JSON": str(js)})
    data = json.loads(js.read_text(encoding="utf-8"))
    assert results["OA"] == pytest.approx(data["oa"]) and results["KAPPA"] == pytest.approx(data["kappa"])
    assert results["AA"] == pytest.approx(data["aa"]) and 0 <= results["OA"] <= 100
    assert data["n"] == 15 * 15 and data["modalities"] == ["hs", "lidar"]
    page = html.read_text(encoding="utf-8")
    assert "confusion matrix" in page and "<svg" in page and "Open water" in page


def test_evaluate_with_temporary_roi_layer_and_one_modality(lvpc_plugin, trained, scene: Scene,
                                                             tmp_path: Path) -> None:
    """A memory layer of reference polygons (text classes) works: exported for the engine, its class field's values
    matched to the model's classes by the keys training kept (the style only renamed them for display)."""
    from qgis.core import QgsFeatureRequest, QgsVectorLayer

    rois = QgsVectorLayer(f"{scene.rois}|layername=rois", "rois", "ogr").materialize(QgsFeatureRequest())
    assert rois.providerType() == "memory"
    results, _, _ = run("lvpc:evaluate", {"MODEL": str(trained[0]), "LIDAR": str(scene.lidar), "ROIS": rois,
                                          "CLASS_FIELD": "class", "FILL": 1, "DEVICE": 1,
                                          "OUTPUT_HTML": str(tmp_path / "a.html")})
    assert 0 <= results["OA"] <= 100


def test_evaluate_a_class_map_writes_the_area_table(lvpc_plugin, trained, scene: Scene, tmp_path: Path) -> None:
    """MAP: the map lvpc:classify wrote, against the reference; the map's pixels per class are the strata."""
    from qgis.core import QgsApplication, QgsProcessingContext

    out = tmp_path / "map.tif"
    run("lvpc:classify", {"MODEL": str(trained[0]), "HS": str(scene.hs), "LIDAR": str(scene.lidar), "DEVICE": 1,
                          "OUTPUT": str(out)})
    html, js = tmp_path / "accuracy.html", tmp_path / "accuracy.json"
    parameters = {"MAP": str(out), "LABELS": str(scene.labels), "OUTPUT_HTML": str(html), "OUTPUT_JSON": str(js)}
    alg = QgsApplication.processingRegistry().createAlgorithmById("lvpc:evaluate")
    assert alg.checkParameterValues(parameters, QgsProcessingContext())[0]
    ok, message = alg.checkParameterValues({**parameters, "MODEL": str(trained[0])}, QgsProcessingContext())
    assert not ok and message.startswith("give exactly one of MODEL") and message.endswith("not both")
    results, _, _ = run("lvpc:evaluate", parameters)
    data = json.loads(js.read_text(encoding="utf-8"))
    area = data["area_adjusted"]
    classes = gdal.Open(str(out)).ReadAsArray()
    assert data["class_names"] == [STYLE[c][0] for c in CLASSES] and data["n"] == 15 * 15
    assert [area["per_class"][STYLE[c][0]]["map_pixels"] for c in CLASSES] == [int((classes == v).sum())
                                                                               for v in (1, 2, 3)]
    assert area["area_unit"] == "ha" and area["pixel_area"] == pytest.approx(0.01)  # 10 m pixels
    assert sum(c["area"]["estimate"] for c in area["per_class"].values()) == pytest.approx(SIZE * SIZE * 0.01)
    assert results["OA"] == pytest.approx(data["oa"])
    assert results["OA_AREA"] == pytest.approx(area["overall_accuracy"]["estimate"])
    assert results["OA_CI"] == pytest.approx(area["overall_accuracy"]["ci95"])
    page = html.read_text(encoding="utf-8")
    assert "Class areas and accuracies" in page and "Estimated area proportions" in page and "<svg" in page
    assert f"{results['OA_AREA']:.2f} &plusmn; {results['OA_CI']:.2f} %" in page


def test_learnprompts_writes_a_new_model_and_keeps_the_old(lvpc_plugin, trained, scene: Scene,
                                                           tmp_path: Path) -> None:
    from lvpcnet_core.model_file import read_metadata

    before = trained[0].read_bytes()
    out = tmp_path / "relearned.lvpc"
    run("lvpc:learnprompts", {"MODEL": str(trained[0]), "HS": str(scene.hs), "LIDAR": str(scene.lidar),
                              "LABELS": str(scene.labels), "AVAILABLE": [1], "EPOCHS": 1, "DEVICE": 1,
                              "OUTPUT_MODEL": str(out)})
    assert trained[0].read_bytes() == before
    meta = read_metadata(out)
    assert meta["report"]["stage2"]["lidar"]["best_epoch"] == 1
    assert meta["class_names"] == read_metadata(trained[0])["class_names"]


def test_evaluate_and_learnprompts_take_the_styled_training_roi_layer(lvpc_plugin, trained, styled_rois,
                                                                      scene: Scene, tmp_path: Path) -> None:
    """The ROI layer the model was trained on, with its categorized style, serves as reference and for prompts."""
    from lvpcnet_core.model_file import read_metadata

    js = tmp_path / "a.json"
    results, _, _ = run("lvpc:evaluate", {"MODEL": str(trained[0]), "HS": str(scene.hs), "LIDAR": str(scene.lidar),
                                          "ROIS": styled_rois, "CLASS_FIELD": "class", "DEVICE": 1,
                                          "OUTPUT_HTML": str(tmp_path / "a.html"), "OUTPUT_JSON": str(js)})
    data = json.loads(js.read_text(encoding="utf-8"))
    assert data["class_names"] == [STYLE[c][0] for c in CLASSES] and results["OA"] > 50
    assert all(data["per_class"][STYLE[c][0]]["reference_pixels"] > 0 for c in CLASSES)
    out = tmp_path / "relearned.lvpc"
    run("lvpc:learnprompts", {"MODEL": str(trained[0]), "HS": str(scene.hs), "LIDAR": str(scene.lidar),
                              "ROIS": styled_rois, "CLASS_FIELD": "class", "AVAILABLE": [1], "EPOCHS": 1,
                              "DEVICE": 1, "OUTPUT_MODEL": str(out)})
    assert read_metadata(out)["class_keys"] == CLASSES


def test_modelinfo_outputs_numbers_report_and_json(lvpc_plugin, trained, scene: Scene, tmp_path: Path) -> None:
    """The model's metadata through processing: the numbers for the model builder, the same in the JSON, an HTML page
    with the classes of the ROI layer's style and the training grid; nothing but the MODEL is needed."""
    from lvpcnet_core.model_file import read_metadata

    model = trained[0]
    results, _, feedback = run("lvpc:modelinfo", {"MODEL": str(model), "OUTPUT_HTML": str(tmp_path / "model.html"),
                                                 "OUTPUT_JSON": str(tmp_path / "model.json")})
    info = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    meta = read_metadata(model)
    validation = meta["report"]["validation"]
    assert {k: results[k] for k in ("N_CLASSES", "N_MODALITIES", "N_CASES", "PIXEL_SIZE")} == {
        "N_CLASSES": 3, "N_MODALITIES": 2, "N_CASES": 2, "PIXEL_SIZE": 10}
    assert results["VALIDATION_OA"] == validation["hs+lidar|prompts"]
    cases = {c: validation[f"{c}|prompts"] for c in ("hs", "lidar")}
    assert (results["BEST_CASE_OA"], results["WORST_CASE_OA"]) == (max(cases.values()), min(cases.values()))
    assert results["BEST_CASE"] in cases and results["WORST_CASE"] in cases
    assert info["summary"] == {"n_classes": 3, "n_modalities": 2, "n_cases": 2, "pixel_size": 10.0,
                               "validation_oa": results["VALIDATION_OA"], "best_case": results["BEST_CASE"],
                               "best_case_oa": results["BEST_CASE_OA"], "worst_case": results["WORST_CASE"],
                               "worst_case_oa": results["WORST_CASE_OA"]}
    assert info["grid"]["width"] == SIZE and info["modalities"][0]["file"] == Path(scene.hs).name
    html = Path(results["OUTPUT_HTML"]).read_text(encoding="utf-8")
    assert all(STYLE[c][0] in html for c in CLASSES) and "#%02x%02x%02x" % STYLE["water"][1] in html
    assert f"{SIZE} x {SIZE} pixels" in html and "not recorded" not in html
    assert any(m.startswith("training grid: ") for m in feedback.messages)

    from tests.core.test_bad_input import model_metadata, with_metadata

    recorded = ("grid", "layers", "versions", "created")
    old = with_metadata(model, tmp_path / "old.lvpc", {k: v for k, v in model_metadata(model).items() if k not in recorded})
    results, _, _ = run("lvpc:modelinfo", {"MODEL": str(old), "OUTPUT_HTML": str(tmp_path / "old.html")})
    assert results["PIXEL_SIZE"] is None and results["N_CASES"] == 2
    assert "Training grid: not recorded" in (tmp_path / "old.html").read_text(encoding="utf-8")


def test_cancelled_classify_and_train_leave_no_output(lvpc_plugin, trained, scene: Scene, tmp_path: Path) -> None:
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="cancelled"):
        run("lvpc:classify", {"MODEL": str(trained[0]), "HS": str(scene.hs), "LIDAR": str(scene.lidar),
                              "DEVICE": 1, "BLOCK_SIZE": 16, "OUTPUT": str(tmp_path / "map.tif"),
                              "CONFIDENCE": str(tmp_path / "conf.tif")}, feedback=Recorder(True))
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run("lvpc:train", {"HS": str(scene.hs), "LIDAR": str(scene.lidar), "ROIS": str(scene.rois),
                           "CLASS_FIELD": "code", **FAST, "OUTPUT_MODEL": str(tmp_path / "m.lvpc"),
                           "REPORT": str(tmp_path / "r.html")}, feedback=Recorder(True))
    assert list(tmp_path.iterdir()) == []


def test_layers_are_checked_against_the_model_before_the_run(lvpc_plugin, trained, scene: Scene,
                                                            tmp_path: Path) -> None:
    """The dialog refuses a wrong layer at once, with the engine's message, before anything loads or runs."""
    from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException

    def check(algorithm: str, **parameters) -> tuple[bool, str]:
        alg = QgsApplication.processingRegistry().createAlgorithmById(algorithm)
        return alg.checkParameterValues({"MODEL": str(trained[0]), **parameters}, QgsProcessingContext())

    out = {"OUTPUT": str(tmp_path / "map.tif")}
    assert check("lvpc:classify", HS=str(scene.hs), LIDAR=str(scene.lidar), **out)[0]
    assert check("lvpc:classify", LIDAR=str(scene.lidar), **out)[0]
    bands = gdal.Open(str(scene.hs)).RasterCount
    assert check("lvpc:classify", HS=str(scene.lidar), **out) == (
        False, f"layer HS has 1 bands but the model was trained with {bands} bands for HS (hs.tif): give the same kind of "
               "image as in training")
    assert check("lvpc:evaluate", LIDAR=str(scene.lidar), SAR=str(scene.lidar), LABELS=str(scene.labels),
                 OUTPUT_HTML=str(tmp_path / "a.html")) == (
        False, "the model was trained on hs, lidar; it has no sar layer: leave SAR empty")
    ok, message = check("lvpc:learnprompts", HS=str(scene.hs), LIDAR=str(scene.hs), LABELS=str(scene.labels),
                        AVAILABLE=[1], OUTPUT_MODEL=str(tmp_path / "m.lvpc"))
    assert not ok and message.startswith(f"layer LIDAR has {bands} bands but the model was trained with 1")
    with pytest.raises(QgsProcessingException, match="layer HS has 1 bands"):
        run("lvpc:classify", {"MODEL": str(trained[0]), "HS": str(scene.lidar), "DEVICE": 1, **out})
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_raster_that_is_not_a_file(lvpc_plugin, trained, tmp_path: Path) -> None:
    from qgis.core import QgsProcessingException, QgsProject, QgsRasterLayer

    wms = QgsRasterLayer("type=xyz&url=http://localhost:9/{z}/{x}/{y}.png&zmax=19&zmin=0", "tiles", "wms")
    assert wms.isValid()
    QgsProject.instance().addMapLayer(wms)
    try:
        with pytest.raises(QgsProcessingException, match="LIDAR: layer 'tiles' comes from the 'wms' provider"):
            run("lvpc:classify", {"MODEL": str(trained[0]), "LIDAR": wms, "OUTPUT": str(tmp_path / "m.tif")})
    finally:
        QgsProject.instance().removeMapLayer(wms.id())
    assert not (tmp_path / "m.tif").exists()


def test_graphical_model_chains_describe_train_classify_evaluate(lvpc_plugin, scene: Scene, tmp_path: Path) -> None:
    """tests/qgis/models/lvpc_chain.model3 (made by make_lvpc_chain.py) runs end to end and yields OA."""
    from qgis.core import QgsProcessingModelAlgorithm

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(Path(__file__).parent / "models" / "lvpc_chain.model3"))
    assert [model.childAlgorithm(c).algorithmId() for c in ("describe", "train", "classify", "evaluate")] == [
        "lvpc:describeclasses", "lvpc:train", "lvpc:classify", "lvpc:evaluate"]
    out_map, report = tmp_path / "map.tif", tmp_path / "accuracy.html"
    results, _, _ = run(model, {"hs": str(scene.hs), "lidar": str(scene.lidar), "rois": str(scene.rois),
                                "class_field": "class", "reference": str(scene.rois), "epochs_stage1": 3,
                                "epochs_stage2": 2, "text_encoder": "minilm",
                                "classify:Classified map": str(out_map), "evaluate:Accuracy report": str(report)})
    assert results["classify:Classified map"] == str(out_map) and out_map.with_suffix(".qml").is_file()
    assert set(np.unique(gdal.Open(str(out_map)).ReadAsArray())) <= {1, 2, 3}
    evaluated = results["CHILD_RESULTS"]["evaluate"]
    assert 0 <= evaluated["OA"] <= 100 and evaluated["OUTPUT_HTML"] == str(report)
    assert f"{evaluated['OA']:.2f} %" in report.read_text(encoding="utf-8")
