"""Bad input through the real qgis_process binary, as a shell script meets it: exit 1, a message naming the layer or
parameter and the fix, no traceback, no output written, the previous file at the output path intact; the messy inputs
that must work do, and say so in the log. Also: cancel in a headless QGIS (feedback.cancel()), a killed qgis_process,
a full disk, and the same seed giving the same model and map through QGIS.

One tiny model is trained by qgis_process (on messy but valid ROIs, LiDAR in another CRS) and reused; the determinism
test trains a second one. The bad files come from the builders of tests/core/test_bad_input.py; the qgis_process runs
go two at a time.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from osgeo import gdal

from lvpcnet_core.raster_io import Grid
from tests.core.test_bad_input import DAMAGED_METADATA, bad_files, copy_input, messy_rois, run_cases, snapshot, translated

from .conftest import QgisProcess, qgis_process_binary
from .scene import SIZE, make_scene, stripe

pytestmark = pytest.mark.qgis

PREVIOUS = b"the user's previous file"
TINY = {"TEXT_ENCODER": "minilm", "EPOCHS_STAGE1": 2, "EPOCHS_STAGE2": 1, "PATCH_SIZE": 5, "DEVICE": 1}


@dataclass
class Case:
    """One qgis_process run: algorithm, parameters, and what the user must see.

    `error` set: exit 1, the message in the output, the case's folder byte for byte as it was (`output` holds PREVIOUS
    before the run unless it is an input copied there). `error` None: exit 0, `output` written, every `log` line in the JSON log.
    """

    algorithm: str
    parameters: dict[str, Any]
    output: Path
    error: str | None = None
    log: list[str] = field(default_factory=list)


class Ctx:
    """Parameter builders for one case: the world's files, and `out`, the case's own output folder."""

    def __init__(self, world: dict, out: Path) -> None:
        self.w, self.out = world, out
        self.layers = {"HS": world["scene"].hs, "LIDAR": world["scene"].lidar}
        self.model, self.map, self.html = out / "model.lvpc", out / "map.tif", out / "accuracy.html"

    def rois(self, name: str, field: str = "class") -> dict[str, Any]:
        return {"ROIS": self.w[name], "CLASS_FIELD": field}

    def train(self, labels: dict[str, Any] | None = None, **layers: Any) -> Case:
        parameters = {**self.layers, **layers, **(labels or {"LABELS": self.w["scene"].labels}), **TINY,
                      "OUTPUT_MODEL": self.model}
        return Case("lvpc:train", {k: v for k, v in parameters.items() if v is not None}, self.model)

    def classify(self, model: str = "model", **layers: Any) -> Case:
        parameters = {"MODEL": self.w[model], **self.layers, **layers, "DEVICE": 1, "OUTPUT": self.map,
                      "CONFIDENCE": self.out / "confidence.tif"}
        return Case("lvpc:classify", {k: v for k, v in parameters.items() if v is not None}, self.map)

    def evaluate(self, model: str = "model", labels: dict[str, Any] | None = None, **layers: Any) -> Case:
        parameters = {"MODEL": self.w[model], **self.layers, **layers, **(labels or {"LABELS": self.w["scene"].labels}),
                      "DEVICE": 1, "OUTPUT_HTML": self.html}
        return Case("lvpc:evaluate", {k: v for k, v in parameters.items() if v is not None}, self.html)


    def copy(self, name: str) -> Path:
        """The world's file `name` (or the scene's layer) copied into the case's folder, with a .qml beside it."""
        scene = self.w["scene"]
        return copy_input(Path(self.w[name] if name in self.w else getattr(scene, name)), self.out)


def fails(case: Case, error: str, **parameters: Any) -> Case:
    """`case` refused with `error`; `parameters` changed first, and the output is the one named by `output`."""
    case.error = error
    output = parameters.pop("output", None)
    case.parameters.update(parameters)
    case.output = Path(case.parameters[output]) if output else case.output
    return case


def works(case: Case, *log: str) -> Case:
    case.log = list(log)
    return case


CASES: dict[str, Callable[[Ctx], Case]] = {
    "no overlap": lambda c: fails(c.train(LIDAR=c.w["far"]), "Layer 'lidar' does not overlap the reference layer 'hs'"),
    "no overlap (classify)": lambda c: fails(c.classify(LIDAR=c.w["far"]), "does not overlap"),
    "layer without CRS": lambda c: fails(c.classify(LIDAR=c.w["no_crs"]),
                                         "Layer 'lidar' ({}) has no coordinate reference system".format(c.w["no_crs"])),
    "other CRS": lambda c: works(c.classify(LIDAR=c.w["utm32"]), "lidar: reprojected from EPSG:32632 to EPSG:32633"),
    "20x finer resolution": lambda c: works(c.classify(LIDAR=c.w["fine"]),
                                            "lidar: resampled from 0.5 m to 10 m with average (source is finer)"),
    "one modality for training": lambda c: fails(c.train(LIDAR=None), "training needs at least two modalities"),
    "band count differs": lambda c: fails(c.classify(HS=c.w["hs3"]), "layer HS has 3 bands but the model was trained with 4"),
    "same file twice": lambda c: fails(c.train(LIDAR=c.w["scene"].hs), "Modalities 'hs' and 'lidar' both use the file"),
    "ROIs: empty layer": lambda c: fails(c.train(c.rois("rois_empty")), "has no features with a geometry"),
    "ROIs: none inside the raster": lambda c: fails(c.train(c.rois("rois_far")), "falls inside the reference grid"),
    "ROIs: class field missing": lambda c: fails(c.train(c.rois("rois_one", "klass")), "klass"),
    "ROIs: all classes NULL": lambda c: fails(c.train(c.rois("rois_null")),
                                              "has no features with a geometry and a 'class' value"),
    "ROIs: only one class": lambda c: fails(c.train(c.rois("rois_one")), "gives only one class (forest)"),
    "ROIs: no CRS (evaluate)": lambda c: works(c.evaluate(labels=c.rois("rois_no_crs")),
                                               "CRS missing on the ROIs or the grid"),
    "raster: all nodata": lambda c: fails(c.train(LIDAR=c.w["empty_nodata"]),
                                          "layer 'lidar' has no valid pixels (all nodata)"),
    "raster: float64 beyond float32, NaN, -inf": lambda c: works(c.classify(HS=c.w["overflow"]),
                                                                 "3 pixels classified with lidar"),
    "raster: Int64 near 1e18, nodata -2**63": lambda c: works(c.classify(LIDAR=c.w["int64"]),
                                                              "4 pixels classified with hs"),
    "raster: 1 pixel": lambda c: works(c.classify(HS=c.w["hs1"], LIDAR=c.w["lidar1"]), "1 pixels classified with hs+lidar"),
    "raster: smaller than the window": lambda c: works(c.classify(HS=c.w["hs3px"], LIDAR=c.w["lidar3px"]),
                                                       "9 pixels classified with hs+lidar"),
    "model: truncated": lambda c: fails(c.classify("truncated"), "MODEL: 'truncated.lvpc' is not a readable LVPC model"),
    "model: not LVPC": lambda c: fails(c.classify("not_lvpc"), "MODEL: 'not_lvpc.lvpc' is not a readable LVPC model"),
    "model: newer format": lambda c: fails(c.evaluate("newer"), "was written by a newer LVPC (model format 99"),
    "model: pickle crafted to run code": lambda c: fails(c.classify("bomb"),
                                                         "MODEL: 'bomb.lvpc' is not a readable LVPC model"),
    "subset without prompts": lambda c: fails(c.classify("no_lidar_case", HS=None), "lvpc:learnprompts"),
    "OUTPUT = HS": lambda c: fails(c.classify(HS=c.copy("hs")), "OUTPUT: '{}' is a file of the input HS".format(
        c.out / "hs.tif"), OUTPUT=c.out / "hs.tif", output="OUTPUT"),
    "OUTPUT_MODEL = LABELS": lambda c: fails(c.train({"LABELS": c.copy("labels")}), "is a file of the input LABELS",
                                             OUTPUT_MODEL=c.out / "labels.tif", output="OUTPUT_MODEL"),
    "OUTPUT_JSON = HS": lambda c: fails(c.evaluate(HS=c.copy("hs")), "OUTPUT_JSON: '{}' is a file of the input HS".format(
        c.out / "hs.tif"), OUTPUT_JSON=c.out / "hs.tif", output="OUTPUT_JSON"),
    "CONFIDENCE = MODEL": lambda c: fails(c.classify(), "is a file of the input MODEL", MODEL=c.copy("model"),
                                          CONFIDENCE=c.out / "model.lvpc"),
    "CONFIDENCE = OUTPUT": lambda c: fails(c.classify(), "is also written as OUTPUT", CONFIDENCE=c.map),
    "BATCH_SIZE=0": lambda c: fails(c.train(), "BATCH_SIZE must be a number from 1 to 65536, not 0", BATCH_SIZE=0),
    "PATCH_SIZE=6": lambda c: fails(c.train(), "PATCH_SIZE (--patch-size) must be an odd integer from 5 to 33",
                                    PATCH_SIZE=6),
    "VALIDATION_FRACTION=1.5": lambda c: fails(c.train(), "VALIDATION_FRACTION must be a number from 0 to 0.5",
                                               VALIDATION_FRACTION=1.5),
    "LEARNING_RATE=nan": lambda c: fails(c.train(), "LEARNING_RATE (--learning-rate) must be a number", LEARNING_RATE="nan"),
    "BLOCK_SIZE=0": lambda c: fails(c.classify(), "BLOCK_SIZE must be a number from 1 to 4096, not 0", BLOCK_SIZE=0),
    "BLOCK_SIZE=-5": lambda c: fails(c.classify(), "BLOCK_SIZE must be a number from 1 to 4096, not -5", BLOCK_SIZE=-5),
    "labels 1.5 and 2.7": lambda c: fails(c.train({"LABELS": c.w["labels_fraction"]}),
                                          "holds values that are not class codes (1.5, 2.7)"),
    "labels -1": lambda c: fails(c.train({"LABELS": c.w["labels_negative"]}), "holds values that are not class codes (-1)"),
    "labels 300": lambda c: fails(c.train({"LABELS": c.w["labels_300"]}), "holds values that are not class codes (300)"),
    "MAP and MODEL both": lambda c: fails(c.evaluate(MAP=c.w["scene"].labels), "give exactly one of MODEL"),
    "MAP 1.5 and 2.7": lambda c: fails(Case("lvpc:evaluate", {"MAP": c.w["labels_fraction"], "LABELS": c.w["scene"].labels,
                                                              "OUTPUT_HTML": c.html}, c.html),
                                       "holds values that are not class codes (1.5, 2.7)"),
    "VRT whose source is missing": lambda c: fails(c.classify(LIDAR=c.w["vrt_missing"]), "VRT whose source files are missing"),
    "truncated GeoTIFF": lambda c: fails(c.classify(LIDAR=c.w["truncated_tif"]), "Layer 'lidar'"),
    **{f"damaged: {n}": (lambda c, n=n: fails(c.classify(f"damaged: {n}"), "MODEL: 'damaged_"))
       for n in DAMAGED_METADATA},
}


@pytest.fixture(scope="module")
def process(tmp_path_factory: pytest.TempPathFactory, plugins_dir: Path) -> QgisProcess:
    """qgis_process with the plugin, one profile for the module (made by a first run, so runs in parallel share it)."""
    runner = QgisProcess(plugins_dir, tmp_path_factory.mktemp("qgis-config"))
    assert runner("plugins").returncode == 0
    return runner


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, process: QgisProcess) -> dict:
    """The scene, a model trained by qgis_process on messy ROIs and LiDAR in another CRS (with its JSON), bad files."""
    folder = tmp_path_factory.mktemp("bad")
    scene = make_scene(folder / "scene")
    grid = Grid.from_dataset(gdal.Open(str(scene.hs)))
    classes = np.broadcast_to(stripe(np.arange(SIZE)) + 1, (SIZE, SIZE))
    hs, lidar = str(scene.hs), str(scene.lidar)
    files: dict[str, Any] = {
        "scene": scene, "rois": messy_rois(folder / "messy.gpkg", grid, classes),
        "utm32": translated(lidar, folder / "utm32.tif", dstSRS="EPSG:32632"),
    }
    model = folder / "model.lvpc"
    files["trained"] = train(process, files, model)
    files.update(model=model, folder=folder,
                 **bad_files(folder, hs, lidar, grid, model, water=(25, 12), lidar_corner=2))
    return files


def train(process: QgisProcess, world: dict, model: Path) -> dict:
    """lvpc:train on the messy ROIs with LiDAR in another CRS; the parsed JSON result."""
    return process.run_json("lvpc:train", HS=world["scene"].hs, LIDAR=world["utm32"], ROIS=world["rois"],
                            CLASS_FIELD="class", **TINY, OUTPUT_MODEL=model)


@pytest.fixture(scope="module")
def runs(world: dict, process: QgisProcess) -> dict[str, tuple[Case, subprocess.CompletedProcess, Path, dict]]:
    return run_cases(world, CASES, Ctx, lambda case: process.run(case.algorithm, **case.parameters))


def test_messy_but_valid_rois_and_another_crs_train(world: dict) -> None:
    """Points, a polygon smaller than a pixel, NULL/empty classes, a one-pixel class, LiDAR in UTM 32: logged, trained."""
    log = "\n".join(world["trained"]["log"]["info"])
    assert "skipped 2 feature(s) with an empty 'class'" in log
    assert "1 polygon(s) smaller than a pixel were burned as the pixel under their centre" in log
    assert "lidar: reprojected from EPSG:32632 to EPSG:32633" in log
    assert "lonely 1" in log
    assert Path(world["trained"]["results"]["OUTPUT_MODEL"]) == world["model"]


@pytest.mark.parametrize("name", list(CASES))
def test_qgis_process(runs: dict, world: dict, name: str) -> None:
    case, run, folder, before = runs[name]
    if case.error is None:
        assert run.returncode == 0, run.stdout + run.stderr
        log = "\n".join(json.loads(run.stdout)["log"]["info"])
        for line in case.log:
            assert line in log
        assert case.output.is_file()
        return
    message = run.stdout + run.stderr
    assert run.returncode == 1, message
    assert case.error in message and "Traceback" not in message, message
    after = snapshot(folder)
    assert {name: after.get(name) for name in before} == before
    # QGIS itself (not LVPC) caches the statistics of a raster it loads as <input>.aux.xml beside it
    assert all(name.endswith(".aux.xml") and name[:-8] in before for name in set(after) - set(before)), after.keys()
    assert not (world["folder"] / "BOMB_RAN").exists()


def environment(process: QgisProcess) -> dict[str, str]:
    """The environment QgisProcess runs qgis_process in, for runs that need Popen or resource limits."""
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(process.plugins_dir),
            "QGIS_CUSTOM_CONFIG_PATH": str(process.config_root)}


def arguments(algorithm: str, **parameters: Any) -> list[str]:
    return [qgis_process_binary(), "run", algorithm, "--", *(f"{k}={v}" for k, v in parameters.items())]


def test_killed_training_keeps_the_previous_model(world: dict, process: QgisProcess, tmp_path: Path) -> None:
    """qgis_process killed (SIGKILL, like a crash or power cut) in the middle of training: the old model is intact."""
    model = tmp_path / "model.lvpc"
    model.write_bytes(PREVIOUS)
    run = subprocess.Popen(arguments("lvpc:train", HS=world["scene"].hs, LIDAR=world["scene"].lidar,
                                     LABELS=world["scene"].labels, **{**TINY, "EPOCHS_STAGE1": 10000},
                                     OUTPUT_MODEL=model),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment(process))
    lines = []
    try:
        assert run.stdout is not None
        for line in run.stdout:
            lines.append(line)
            if "stage 1 epoch" in line:
                break
        else:
            pytest.fail("qgis_process ended before training began:\n" + "".join(lines))
    finally:
        run.kill()
        run.communicate(timeout=60)
    assert run.returncode == -signal.SIGKILL
    assert model.read_bytes() == PREVIOUS
    assert [p.name for p in tmp_path.iterdir()] == [model.name]


def test_disk_full_keeps_the_previous_map(world: dict, process: QgisProcess, tmp_path: Path) -> None:
    """Files larger than 2000 bytes cannot be written (RLIMIT_FSIZE, as on a full disk): exit 1, the old map kept."""
    themap = tmp_path / "map.tif"
    themap.write_bytes(PREVIOUS)

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    run = subprocess.run(arguments("lvpc:classify", MODEL=world["model"], HS=world["scene"].hs,
                                   LIDAR=world["scene"].lidar, DEVICE=1, OUTPUT=themap,
                                   CONFIDENCE=tmp_path / "confidence.tif"),
                         capture_output=True, text=True, env=environment(process), preexec_fn=limited, timeout=300)
    message = run.stdout + run.stderr
    assert run.returncode == 1, message
    assert "is the disk full?" in message and "Traceback" not in message
    assert themap.read_bytes() == PREVIOUS
    assert [p.name for p in tmp_path.iterdir()] == [themap.name]


def test_cancel_keeps_the_previous_model_and_map(lvpc_plugin, world: dict, tmp_path: Path) -> None:
    """feedback.cancel() during lvpc:train and lvpc:classify in QGIS: 'cancelled', the previous files intact."""
    from qgis.core import QgsProcessingException

    from .test_algorithms import Recorder, run

    model, themap = tmp_path / "model.lvpc", tmp_path / "map.tif"
    for path in (model, themap):
        path.write_bytes(PREVIOUS)
    with pytest.raises(QgsProcessingException, match="Train LVPCnet model: cancelled by the user"):
        run("lvpc:train", {"HS": str(world["scene"].hs), "LIDAR": str(world["scene"].lidar),
                           "LABELS": str(world["scene"].labels), **TINY, "OUTPUT_MODEL": str(model)},
            feedback=Recorder(True))
    with pytest.raises(QgsProcessingException, match="Classify with LVPCnet model: cancelled by the user"):
        run("lvpc:classify", {"MODEL": str(world["model"]), "HS": str(world["scene"].hs),
                              "LIDAR": str(world["scene"].lidar), "DEVICE": 1, "BLOCK_SIZE": 16,
                              "OUTPUT": str(themap)}, feedback=Recorder(True))
    assert model.read_bytes() == PREVIOUS and themap.read_bytes() == PREVIOUS
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model.name, themap.name])


def test_same_seed_gives_the_same_model_and_map(world: dict, process: QgisProcess, tmp_path: Path) -> None:
    """A second lvpc:train with the same seed and inputs: bit-identical tensors, the same classified map."""
    from safetensors.numpy import load_file

    again = tmp_path / "again.lvpc"
    train(process, world, again)
    first, second = load_file(str(world["model"])), load_file(str(again))
    assert first.keys() == second.keys()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    maps = [tmp_path / "first.tif", tmp_path / "second.tif"]
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda pair: process.run("lvpc:classify", MODEL=pair[0], HS=world["scene"].hs,
                                                      LIDAR=world["utm32"], DEVICE=1, OUTPUT=pair[1]),
                             zip((world["model"], again), maps)))
    assert all(d.returncode == 0 for d in done), [d.stderr for d in done]
    first_map, second_map = (gdal.Open(str(m)).ReadAsArray() for m in maps)
    assert (first_map > 0).all() and np.array_equal(first_map, second_map)
