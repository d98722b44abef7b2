"""The engine's jobs end to end on small synthetic GeoTIFFs: train -> classify -> evaluate -> learn prompts."""
import datetime
import importlib.metadata
import json
import pathlib

import numpy as np
import pytest
import torch
from osgeo import gdal

from lvpcnet_core import workflows
from lvpcnet_core.errors import Cancelled, LvpcError
from lvpcnet_core.model_file import load_model, read_metadata
from lvpcnet_core.progress import SilentProgress
from lvpcnet_core.raster_io import Grid
from lvpcnet_core.report import model_summary
from lvpcnet_core.synthetic import make_scene
from lvpcnet_core.training import TrainSettings
from tests.core.test_bad_input import model_metadata, with_metadata

REPO = pathlib.Path(__file__).resolve().parents[2]

from .test_legend import label_band

NAMES, COLORS = ["water", "forest", "meadow"], [(0, 0, 255), (0, 128, 0), (200, 230, 90)]
FAST = TrainSettings(epochs_stage1=15, epochs_stage2=6, batch_size=64, patch_size=5, width=16, depth=2, heads=2,
                     learning_rate=3e-3, patience=0)


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    """(scene, model path, report, progress with the log) of one training run."""
    folder = tmp_path_factory.mktemp("scene")
    scene = make_scene(folder, width=32, height=32)
    label_band(scene.labels, NAMES, COLORS)  # the class names and colours an analyst's label raster carries
    model = str(folder / "m.lvpc")
    progress = SilentProgress()
    report = workflows.train(scene.paths, model, workflows.LabelSource(raster=scene.labels), text_encoder="minilm",
                             settings=FAST, progress=progress)
    return scene, model, report, progress


@pytest.fixture(scope="module")
def trained(training_run):
    return training_run[:3]


def test_train_writes_a_complete_model(trained):
    scene, model, report = trained
    meta = read_metadata(model)
    assert meta["cases"] == ["hs->lidar", "lidar->hs"]
    assert meta["class_values"] == [1, 2, 3]
    assert meta["class_names"] == NAMES and [tuple(c) for c in meta["colors"]] == COLORS  # from the label raster
    assert meta["class_keys"] == NAMES
    assert [d["name"] for d in meta["descriptions"]["classes"]] == NAMES
    assert "open water" in meta["descriptions"]["classes"][0]["shared"]  # the built-in prior of the real name
    assert set(meta["descriptions"]["modalities"]) == {"hs", "lidar"}
    assert meta["text_encoder"] == "minilm"
    assert report["validation"]["hs+lidar|prompts"] > 80


def test_train_records_grid_layers_versions_and_date(trained):
    """What a later run needs to know of the training (grid, bands) and what explains a model (versions, date)."""
    scene, model, _ = trained
    meta = read_metadata(model)
    grid = meta["grid"]
    assert Grid(grid["crs_wkt"], tuple(grid["geotransform"]), grid["width"], grid["height"]) == Grid.from_dataset(
        gdal.Open(scene.paths["hs"]))
    assert grid["crs"] == "EPSG:32633" and (grid["width"], grid["height"]) == (32, 32)
    assert {m: layer["bands"] for m, layer in meta["layers"].items()} == meta["config"]["bands"]
    assert {m: layer["file"] for m, layer in meta["layers"].items()} == {
        m: pathlib.Path(p).name for m, p in scene.paths.items()}
    plugin = next(line.split("=", 1)[1] for line in (REPO / "metadata.txt").read_text().splitlines()
                  if line.startswith("version="))
    assert meta["versions"] | {"python": None} == {
        "lvpc_plugin": plugin, "python": None, "torch": torch.__version__, "numpy": np.__version__,
        "gdal": gdal.__version__, "open_clip": importlib.metadata.version("open_clip_torch"),
        "safetensors": importlib.metadata.version("safetensors")}
    created = datetime.datetime.fromisoformat(meta["created"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs(datetime.datetime.now(datetime.timezone.utc) - created) < datetime.timedelta(hours=2)


def test_model_information_reads_the_metadata_into_json_and_html(trained, tmp_path):
    scene, model, report = trained
    meta = read_metadata(model)
    info = workflows.model_information(model, json_path=str(tmp_path / "i.json"), html_path=str(tmp_path / "i.html"))
    assert json.loads((tmp_path / "i.json").read_text()) == info
    assert [(c["value"], c["name"], c["color"]) for c in info["classes"]] == [
        (v, n, "#%02x%02x%02x" % tuple(c)) for v, n, c in zip(meta["class_values"], meta["class_names"], meta["colors"])]
    assert [(m["name"], m["bands"], m["file"]) for m in info["modalities"]] == [
        (m, meta["config"]["bands"][m], pathlib.Path(scene.paths[m]).name) for m in ("hs", "lidar")]
    assert info["grid"] == meta["grid"] and info["created"] == meta["created"] and info["text_encoder"] == "minilm"
    assert info["settings"] == meta["report"]["settings"] and info["settings"]["epochs_stage1"] == 15
    oa = report["validation"]
    assert info["validation_oa"] == oa["hs+lidar|prompts"]
    assert [(c["name"], c["missing"], c["validation_oa"], c["validation_oa_zero_filled"]) for c in info["cases"]] == [
        ("hs", ["lidar"], oa["hs|prompts"], oa["hs|zeros"]), ("lidar", ["hs"], oa["lidar|prompts"], oa["lidar|zeros"])]
    best, worst = sorted([("hs", oa["hs|prompts"]), ("lidar", oa["lidar|prompts"])], key=lambda c: c[1])[::-1]
    assert info["summary"] == {"n_classes": 3, "n_modalities": 2, "n_cases": 2, "pixel_size": scene.grid.resolution,
                               "validation_oa": oa["hs+lidar|prompts"], "best_case": best[0], "best_case_oa": best[1],
                               "worst_case": worst[0], "worst_case_oa": worst[1]}
    html = (tmp_path / "i.html").read_text(encoding="utf-8")
    for text in (*meta["class_names"], info["classes"][0]["color"], "Training grid", "32 x 32 pixels",
                 torch.__version__, meta["created"], f"{oa['lidar|prompts']:.2f}"):
        assert text in html
    assert "not recorded" not in html


def test_model_information_of_a_model_from_before_the_grid_was_recorded(trained, tmp_path):
    """An older model file (no grid, layers, versions, date) still loads and classifies; its information says
    "not recorded" where it has nothing to say."""
    scene, model, _ = trained
    meta = model_metadata(pathlib.Path(model))
    old = with_metadata(pathlib.Path(model), tmp_path / "old.lvpc",
                        {k: v for k, v in meta.items() if k not in ("grid", "layers", "versions", "created")})
    _, loaded = load_model(old)
    assert (loaded.grid, loaded.layers, loaded.versions, loaded.created) == ({}, {}, {}, "")
    workflows.classify(str(old), {"lidar": scene.paths["lidar"]}, str(tmp_path / "map.tif"))
    info = workflows.model_information(str(old), html_path=str(tmp_path / "old.html"))
    assert info["grid"] is info["versions"] is info["created"] is info["summary"]["pixel_size"] is None
    assert [(m["bands"], m["file"], m["band_names"]) for m in info["modalities"]] == [(8, None, None), (1, None, None)]
    assert info["summary"]["n_cases"] == 2 and info["cases"][0]["validation_oa"] is not None
    assert "Training grid: not recorded" in (tmp_path / "old.html").read_text(encoding="utf-8")
    assert "training grid: not recorded" in model_summary(info)


def test_train_validates_on_separate_areas_and_logs_it(training_run):
    _, _, report, progress = training_run
    split = report["validation_split"]
    assert set(split["method"]) == set(report["class_counts"])
    assert set(split["method"].values()) <= {"components", "blocks", "none"}
    assert report["n_val"] == sum(split["val_pixels"].values()) > 0
    assert report["n_train"] + report["n_val"] + split["dropped_by_gap"] == sum(report["class_counts"].values())
    assert all(0 < split["val_groups"][c] < split["groups"][c] for c, m in split["method"].items() if m != "none")
    log = "\n".join(progress.messages)
    assert "spatially separate from training" in log
    oa = report["validation"]["lidar|prompts"]
    assert f"validation OA {oa:.1f} % with lidar [hs from learned prompts], {report['n_val']} pixels in " in log


def test_runs_log_the_device_they_use(training_run, tmp_path):
    """Speed depends on the CPU model and thread count (or the GPU): every run's log says which it got."""
    scene, model, _, progress = training_run
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    cpu = "CPU, " + next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    assert any(m.startswith(f"device: {cpu}, ") and m.endswith("thread" if torch.get_num_threads() == 1 else "threads")
               for m in progress.messages)
    previous = torch.get_num_threads()
    try:
        log = SilentProgress()
        workflows.classify(model, {"lidar": scene.paths["lidar"]}, str(tmp_path / "map.tif"), threads=2, progress=log)
    finally:
        torch.set_num_threads(previous)
    assert f"device: {cpu}, 2 torch threads" in log.messages


def test_classify_full_and_each_subset(trained, tmp_path):
    scene, model, _ = trained
    accuracy = {}
    for case in (("hs", "lidar"), ("hs",), ("lidar",)):
        out = tmp_path / f"{'_'.join(case)}.tif"
        summary = workflows.classify(model, {m: scene.paths[m] for m in case}, str(out), block_size=13)
        ds = gdal.Open(str(out))
        classes = ds.GetRasterBand(1).ReadAsArray()
        assert (ds.RasterXSize, ds.RasterYSize) == (32, 32)
        assert ds.GetGeoTransform() == scene.grid.geotransform
        assert summary["pixels_per_case"] == {"+".join(case): 32 * 32}
        assert set(np.unique(classes)) <= {1, 2, 3}
        accuracy[case] = float((classes == scene.classes).mean())
        assert (tmp_path / f"{'_'.join(case)}.qml").exists()
    assert accuracy[("hs", "lidar")] > 0.8
    assert min(accuracy.values()) > 0.5


def test_block_size_does_not_change_the_map(trained, tmp_path):
    scene, model, _ = trained
    maps = []
    for size in (7, 64):
        out = tmp_path / f"b{size}.tif"
        workflows.classify(model, scene.paths, str(out), confidence=str(tmp_path / f"c{size}.tif"), block_size=size)
        maps.append(gdal.Open(str(out)).ReadAsArray())
        maps.append(gdal.Open(str(tmp_path / f"c{size}.tif")).ReadAsArray())
    assert (maps[0] == maps[2]).all()
    np.testing.assert_allclose(maps[1], maps[3], atol=1e-5)


def test_probabilities_have_a_named_band_per_class_and_agree_with_the_map(trained, tmp_path):
    """One band per class in the model's order, named after it; softmax values summing to 1 wherever the map has a
    class, NaN where it has none (outside the mask), the band of the highest probability the map's class."""
    scene, model, _ = trained
    mask = np.ones((32, 32), np.uint8)
    mask[:5, :] = 0
    from lvpcnet_core.raster_io import write_raster
    write_raster(str(tmp_path / "mask.tif"), mask, scene.grid)
    out, probs = tmp_path / "map.tif", tmp_path / "probs.tif"
    summary = workflows.classify(model, scene.paths, str(out), probabilities=str(probs),
                                 confidence=str(tmp_path / "c.tif"), mask=str(tmp_path / "mask.tif"), block_size=13)
    assert summary["probabilities"] == str(probs)
    classes = gdal.Open(str(out)).ReadAsArray()
    ds = gdal.Open(str(probs))
    meta = read_metadata(model)
    assert ds.RasterCount == len(meta["class_values"]) == 3
    assert [ds.GetRasterBand(i + 1).GetDescription() for i in range(3)] == meta["class_names"]
    assert all(ds.GetRasterBand(i + 1).DataType == gdal.GDT_Float32 for i in range(3))
    assert ds.GetGeoTransform() == scene.grid.geotransform
    p = ds.ReadAsArray()
    valid = classes != 0
    assert valid.sum() == 27 * 32 and not valid[:5].any()
    assert np.isnan(p[:, ~valid]).all() and np.isfinite(p[:, valid]).all()
    np.testing.assert_allclose(p[:, valid].sum(0), 1, atol=1e-5)
    assert ((p[:, valid] >= 0) & (p[:, valid] <= 1)).all()
    assert (np.array(meta["class_values"])[p[:, valid].argmax(0)] == classes[valid]).all()
    confidence = gdal.Open(str(tmp_path / "c.tif")).ReadAsArray()
    np.testing.assert_allclose(p[:, valid].max(0), confidence[valid], atol=1e-6)


def test_evaluate_writes_paper_style_json(trained, tmp_path):
    scene, model, _ = trained
    out = tmp_path / "e.json"
    result = workflows.evaluate(model, scene.paths, workflows.LabelSource(raster=scene.labels), json_path=str(out))
    data = json.loads(out.read_text())
    assert {"oa", "aa", "kappa", "per_class", "confusion", "modalities"} <= set(data)
    assert data["modalities"] == ["hs", "lidar"]
    assert np.array(data["confusion"]).sum() == result["n"] > 0
    assert data["oa"] > 80


def test_learn_prompts_adds_a_case_without_changing_anything_else(trained, tmp_path):
    scene, model, _ = trained
    out = str(tmp_path / "more.lvpc")
    before, _ = load_model(model)
    workflows.learn_prompts(model, scene.paths, workflows.LabelSource(raster=scene.labels), ["lidar"], out,
                            settings=FAST)
    after, _ = load_model(out)
    changed = [k for k, v in before.state_dict().items() if not (after.state_dict()[k] == v).all()]
    assert changed and all(k.startswith("compensators.lidar->hs.") for k in changed)


def test_missing_case_is_explained(trained, tmp_path):
    scene, model, _ = trained
    pruned = str(tmp_path / "pruned.lvpc")
    net, info = load_model(model)
    del net.compensators["lidar->hs"]
    from lvpcnet_core.model_file import save_model
    save_model(pruned, net, info)
    with pytest.raises(LvpcError, match="learnprompts"):
        workflows.classify(pruned, {"lidar": scene.paths["lidar"]}, str(tmp_path / "x.tif"))
    assert not list(tmp_path.glob("x*"))


def test_wrong_band_count_names_the_layer(trained, tmp_path):
    scene, model, _ = trained
    other = make_scene(tmp_path, width=32, height=32, bands={"hs": 8, "lidar": 3})
    with pytest.raises(LvpcError, match=r"LIDAR has 3 bands but the model was trained with 1 bands for LIDAR "
                                         r"\(lidar.tif\)"):  # the training layer, as the model recorded it
        workflows.classify(model, other.paths, str(tmp_path / "x.tif"))
    assert not list(tmp_path.glob("x*"))


def test_cancelled_classification_leaves_previous_map(trained, tmp_path):
    scene, model, _ = trained
    out = tmp_path / "map.tif"
    out.write_bytes(b"previous")
    progress = SilentProgress()
    progress.cancel = True
    with pytest.raises(Cancelled):
        workflows.classify(model, scene.paths, str(out), probabilities=str(tmp_path / "p.tif"), progress=progress)
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.tif"]


def test_single_modality_training_is_refused(tmp_path):
    scene = make_scene(tmp_path, width=12, height=12)
    with pytest.raises(LvpcError, match="at least two modalities"):
        workflows.train({"hs": scene.paths["hs"]}, str(tmp_path / "m.lvpc"), workflows.LabelSource(raster=scene.labels))


def test_v1_training_loads_no_text_encoder(tmp_path, monkeypatch):
    """The v1 ablation trains and classifies with no text encoder anywhere (one that cannot load must not matter)."""
    from dataclasses import replace

    from lvpcnet_core import text_encoders

    def refuse(*args, **kwargs):
        raise AssertionError("v1 loaded a text encoder")

    monkeypatch.setattr(text_encoders, "load_text_encoder", refuse)
    monkeypatch.setattr(text_encoders, "encode_descriptions", refuse)
    scene = make_scene(tmp_path, width=24, height=24)
    model = str(tmp_path / "v1.lvpc")
    report = workflows.train(scene.paths, model, workflows.LabelSource(raster=scene.labels), text_encoder="minilm",
                             settings=replace(FAST, language=False, epochs_stage1=3, epochs_stage2=2))
    assert report["text_encoder"].startswith("none")
    assert not [k for k in load_model(model)[0].state_dict() if k.startswith("text_")]
    workflows.classify(model, {"lidar": scene.paths["lidar"]}, str(tmp_path / "map.tif"))
    assert gdal.Open(str(tmp_path / "map.tif")).ReadAsArray().max() > 0


def test_refit_trains_the_delivered_model_on_every_labelled_pixel(tmp_path):
    """With refit the model in the file is not the validated one: same seed, all pixels, the validated epochs."""
    from dataclasses import replace

    scene = make_scene(tmp_path, width=32, height=32)
    settings = replace(FAST, epochs_stage1=4, epochs_stage2=2, cases=[("lidar",)])
    paths = {}
    for refit in (True, False):
        paths[refit] = str(tmp_path / f"refit_{refit}.lvpc")
        progress = SilentProgress()
        # the refit run also bounds its epochs to 16 pixels, which the log must say (the other run is unbounded)
        report = workflows.train(scene.paths, paths[refit], workflows.LabelSource(raster=scene.labels),
                                 text_encoder="minilm", progress=progress,
                                 settings=replace(settings, refit=refit, samples_per_epoch=16 if refit else None))
        assert report["refit"] is refit
        assert any(m.startswith("refit: training again on all") for m in progress.messages) is refit
        assert any(m.startswith("each epoch draws 16 of the labelled pixels") for m in progress.messages) is refit
    refitted, validated = (load_model(paths[k])[0].state_dict() for k in (True, False))
    assert any(not torch.equal(refitted[k], validated[k]) for k in validated)
