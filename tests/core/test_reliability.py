"""Messy input and interruptions: clear messages, nothing half-written, nothing of the user's lost."""
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from osgeo import gdal

from lvpcnet_core import workflows
from lvpcnet_core.errors import Cancelled, LvpcError
from lvpcnet_core.model_file import load_model
from lvpcnet_core.predict import ScenePredictor, classify_scene
from lvpcnet_core.progress import SilentProgress
from lvpcnet_core.raster_io import write_raster
from lvpcnet_core.synthetic import make_scene
from lvpcnet_core.training import TrainSettings

from .helpers import tiny_model

REPO = Path(__file__).resolve().parents[2]
FAST = TrainSettings(epochs_stage1=3, epochs_stage2=2, batch_size=64, patch_size=5, width=16, depth=2, heads=2,
                     patience=0)


@pytest.fixture(scope="module")
def scene_and_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rel")
    scene = make_scene(folder, width=24, height=24)
    model = str(folder / "m.lvpc")
    workflows.train(scene.paths, model, workflows.LabelSource(raster=scene.labels), text_encoder="minilm", settings=FAST)
    return scene, model


class ArraySource:
    """An in-memory BlockSource with NaN outside the scene, like raster_io.AlignedStack."""

    def __init__(self, arrays):
        self.arrays = arrays
        self.bands = {m: a.shape[0] for m, a in arrays.items()}

    def read(self, name, xoff, yoff, xsize, ysize):
        a = self.arrays[name]
        out = np.full((a.shape[0], ysize, xsize), np.nan, np.float32)
        y0, x0 = max(yoff, 0), max(xoff, 0)
        y1, x1 = min(yoff + ysize, a.shape[1]), min(xoff + xsize, a.shape[2])
        if y1 > y0 and x1 > x0:
            out[:, y0 - yoff:y1 - yoff, x0 - xoff:x1 - xoff] = a[:, y0:y1, x0:x1]
        return out


_MODEL = {}


def _model(patch):
    if patch not in _MODEL:
        model = tiny_model(patch_size=patch)
        model.add_case(("hs",))
        model.add_case(("lidar",))
        _MODEL[patch] = model.eval()
    return _MODEL[patch]


def _predict(model, arrays, block):
    h, w = next(iter(arrays.values())).shape[1:]
    classes = np.zeros((h, w), np.uint8)
    conf = np.zeros((h, w), np.float32)

    def write(b):
        classes[b.yoff:b.yoff + b.classes.shape[0], b.xoff:b.xoff + b.classes.shape[1]] = b.classes
        conf[b.yoff:b.yoff + b.classes.shape[0], b.xoff:b.xoff + b.classes.shape[1]] = b.confidence

    classify_scene(ScenePredictor(model, [1, 2, 3]), ArraySource(arrays), w, h, write, SilentProgress(), block)
    return classes, conf


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(height=st.integers(1, 23), width=st.integers(1, 23), block=st.integers(1, 16),
       patch=st.sampled_from([1, 3, 5, 7]), seed=st.integers(0, 2**16), nodata=st.floats(0, 0.5))
def test_tiled_prediction_equals_untiled(height, width, block, patch, seed, nodata):
    rng = np.random.default_rng(seed)
    arrays = {"hs": rng.normal(size=(5, height, width)).astype(np.float32),
              "lidar": rng.normal(size=(1, height, width)).astype(np.float32)}
    for a in arrays.values():
        a[:, rng.random((height, width)) < nodata] = np.nan
    model = _model(patch)
    tiled = _predict(model, arrays, block)
    whole = _predict(model, arrays, max(height, width))
    assert (tiled[0] == whole[0]).all()
    np.testing.assert_allclose(tiled[1], whole[1], atol=1e-5)


def _disk_limited(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_disk_full_while_writing_keeps_the_previous_map(tmp_path):
    scene = make_scene(tmp_path / "big", width=400, height=400, cell=40, label_fraction=0.02)
    model = tmp_path / "m.lvpc"
    workflows.train(scene.paths, str(model), workflows.LabelSource(raster=scene.labels), text_encoder="minilm",
                    settings=TrainSettings(**{**FAST.to_dict(), "epochs_stage1": 1, "epochs_stage2": 1,
                                              "max_samples_per_class": 30}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "map.tif").write_bytes(b"previous map")
    args = [sys.executable, "-m", "lvpcnet_core", "classify", "--model", str(model), "--out", str(out / "map.tif"),
            "--confidence", str(out / "conf.tif"), *[f"--modality={m}={p}" for m, p in scene.paths.items()]]
    run = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                         preexec_fn=_disk_limited(60_000), timeout=300)
    assert run.returncode == 1, run.stderr
    assert "disk full" in run.stderr and "Traceback" not in run.stderr
    assert sorted(p.name for p in out.iterdir()) == ["map.tif"]
    assert (out / "map.tif").read_bytes() == b"previous map"


def test_cancelled_training_leaves_previous_model(tmp_path, scene_and_model):
    scene, _ = scene_and_model
    out = tmp_path / "m.lvpc"
    out.write_bytes(b"previous model")
    progress = SilentProgress()
    progress.cancel = True
    with pytest.raises(Cancelled):
        workflows.train(scene.paths, str(out), workflows.LabelSource(raster=scene.labels), text_encoder="minilm",
                        settings=FAST, progress=progress)
    assert out.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.lvpc"]


def test_same_seed_gives_same_model_and_map(tmp_path, scene_and_model):
    scene, first = scene_and_model
    second = str(tmp_path / "again.lvpc")
    workflows.train(scene.paths, second, workflows.LabelSource(raster=scene.labels), text_encoder="minilm", settings=FAST)
    a, b = load_model(first)[0].state_dict(), load_model(second)[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    maps = []
    for name, model in (("a", first), ("b", second)):
        workflows.classify(model, scene.paths, str(tmp_path / f"{name}.tif"))
        maps.append(gdal.Open(str(tmp_path / f"{name}.tif")).ReadAsArray())
    assert (maps[0] == maps[1]).all()


def test_nan_inf_and_wide_integers_are_nodata_or_values(tmp_path, scene_and_model):
    scene, model = scene_and_model
    hs = gdal.Open(scene.paths["hs"]).ReadAsArray().astype(np.float32)
    hs[:, 0, 0] = np.nan
    hs[:, 1, 1] = np.inf
    write_raster(str(tmp_path / "hs.tif"), hs, scene.grid)
    lidar = (gdal.Open(scene.paths["lidar"]).ReadAsArray() * 1000 + 3_000_000_000).astype(np.uint32)[None]
    lidar[0, 2, 2] = 4_294_967_295
    write_raster(str(tmp_path / "lidar.tif"), lidar, scene.grid, nodata=4_294_967_295)
    summary = workflows.classify(model, {"hs": str(tmp_path / "hs.tif"), "lidar": str(tmp_path / "lidar.tif")},
                                 str(tmp_path / "map.tif"))
    assert summary["pixels_per_case"] == {"hs+lidar": 24 * 24 - 3, "lidar": 2, "hs": 1}


def test_all_nodata_layer_is_named(tmp_path, scene_and_model):
    scene, _ = scene_and_model
    write_raster(str(tmp_path / "empty.tif"), np.full((1, 24, 24), -9999, np.float32), scene.grid, nodata=-9999)
    with pytest.raises(LvpcError, match="'lidar' has no valid pixels"):
        workflows.train({"hs": scene.paths["hs"], "lidar": str(tmp_path / "empty.tif")}, str(tmp_path / "m.lvpc"),
                        workflows.LabelSource(raster=scene.labels), text_encoder="minilm", settings=FAST)


def test_tiny_rasters_smaller_than_the_window(tmp_path, scene_and_model):
    scene, model = scene_and_model
    from lvpcnet_core.raster_io import Grid
    for size in (1, 3):
        grid = Grid(scene.grid.crs_wkt, scene.grid.geotransform, size, size)
        paths = {}
        for m, p in scene.paths.items():
            paths[m] = str(tmp_path / f"{m}{size}.tif")
            write_raster(paths[m], gdal.Open(p).ReadAsArray()[..., :size, :size].reshape(-1, size, size), grid)
        summary = workflows.classify(model, paths, str(tmp_path / f"map{size}.tif"))
        assert summary["pixels_per_case"] == {"hs+lidar": size * size}
