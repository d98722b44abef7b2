"""Loaders of the accuracy benchmark on .mat/.tif/.npy files written here, on the real Trento LiDAR, and the
table arithmetic (test-pixel cap, mean ± std, paired verdicts)."""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from osgeo import gdal

from bench import accuracy, datasets
from lvpcnet_core.errors import LvpcError

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TRENTO = SHARED / "trento_lidar"
SAMSON = SHARED / "samson"


def _scene_arrays(rows=7, cols=9, bands=5, seed=0):
    rng = np.random.default_rng(seed)
    hs = rng.random((rows, cols, bands)).astype(np.float32)       # MATLAB order (rows, cols, bands)
    lidar = rng.random((rows, cols)).astype(np.float32) * 30
    train = np.zeros((rows, cols), np.uint8)
    test = np.zeros((rows, cols), np.uint8)
    train[0, :3], train[1, :3] = 1, 3
    test[5, :], test[6, :2] = 3, 1
    return hs, lidar, train, test


def test_houston_mat_files_are_read_in_bands_rows_cols(tmp_path):
    hs, lidar, train, test = _scene_arrays()
    scipy.io.savemat(tmp_path / "HSI.mat", {"HSI": hs})
    scipy.io.savemat(tmp_path / "LiDAR.mat", {"LiDAR": lidar})
    scipy.io.savemat(tmp_path / "TRLabel.mat", {"TRLabel": train})
    scipy.io.savemat(tmp_path / "TSLabel.mat", {"TSLabel": test})
    scene = datasets.load_benchmark(tmp_path, "houston2013")
    assert list(scene.arrays) == ["hs", "lidar"]
    assert scene.arrays["hs"].shape == (5, 7, 9) and scene.arrays["hs"].dtype == np.float32
    np.testing.assert_array_equal(scene.arrays["hs"][2], hs[:, :, 2])
    np.testing.assert_array_equal(scene.arrays["lidar"][0], lidar)
    np.testing.assert_array_equal(scene.train, train)
    assert scene.class_values == [1, 3]
    assert scene.class_names == ["Healthy grass", "Synthetic grass"]


def test_augsburg_names_in_one_file_and_modality_choice(tmp_path):
    hs, lidar, train, test = _scene_arrays()
    sar = np.stack([lidar, -lidar, lidar / 2, lidar * 3], axis=2)
    scipy.io.savemat(tmp_path / "augsburg.mat", {"data_HS_LR": hs, "data_SAR_HR": sar, "data_DSM": lidar,
                                                 "TrainImage": train, "TestImage": test})
    scene = datasets.load_benchmark(tmp_path, "augsburg")
    assert list(scene.arrays) == ["hs", "sar", "lidar"]
    np.testing.assert_array_equal(scene.arrays["sar"][1], -lidar)
    assert scene.class_names == ["Forest", "Industrial area"]
    assert list(datasets.load_benchmark(tmp_path, "augsburg", ["hs", "sar"]).arrays) == ["hs", "sar"]
    with pytest.raises(LvpcError, match="no modality 'radar'"):
        datasets.load_benchmark(tmp_path, "augsburg", ["radar"])


def test_trento_variant_names_are_matched_case_insensitively(tmp_path):
    hs, lidar, train, test = _scene_arrays()
    scipy.io.savemat(tmp_path / "HSI_Trento.mat", {"HSI_Trento": hs})
    scipy.io.savemat(tmp_path / "Lidar_Trento.mat", {"Lidar_Trento": lidar})
    scipy.io.savemat(tmp_path / "labels.mat", {"trlabel": train, "tslabel": test})
    scene = datasets.load_benchmark(tmp_path, "trento")
    assert {m: a.shape[0] for m, a in scene.arrays.items()} == {"hs": 5, "lidar": 1}
    assert scene.class_names == ["Apple trees", "Ground"]


def _tif(path: Path, array: np.ndarray, nodata: float | None = None) -> None:
    array = array if array.ndim == 3 else array[None]
    kind = gdal.GDT_Float32 if array.dtype.kind == "f" else gdal.GDT_Byte
    ds = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[2], array.shape[1], array.shape[0], kind)
    for b in range(array.shape[0]):
        band = ds.GetRasterBand(b + 1)
        if nodata is not None:
            band.SetNoDataValue(nodata)
        band.WriteArray(array[b])
    ds = None


def test_geotiff_folder_with_nodata(tmp_path):
    hs, lidar, train, test = _scene_arrays()
    lidar[2, 4] = -9999
    _tif(tmp_path / "HSI.tif", np.ascontiguousarray(hs.transpose(2, 0, 1)))
    _tif(tmp_path / "LiDAR.tif", lidar, nodata=-9999)
    _tif(tmp_path / "TRLabel.tif", train, nodata=0)
    _tif(tmp_path / "TSLabel.tif", test, nodata=0)
    scene = datasets.load_benchmark(tmp_path, "houston2013")
    np.testing.assert_allclose(scene.arrays["hs"][4], hs[:, :, 4])
    assert np.isnan(scene.arrays["lidar"][0, 2, 4]) and np.isfinite(scene.arrays["lidar"]).sum() == 62
    np.testing.assert_array_equal(scene.test, test)


def test_missing_labels_and_wrong_shapes_are_user_errors(tmp_path):
    hs, lidar, train, test = _scene_arrays()
    scipy.io.savemat(tmp_path / "data.mat", {"HSI": hs, "LiDAR": lidar[:5], "gt": train})
    with pytest.raises(LvpcError, match="training labels not found.*TRLabel"):
        datasets.load_benchmark(tmp_path, "houston2013")
    scipy.io.savemat(tmp_path / "labels.mat", {"TRLabel": train, "TSLabel": test})
    with pytest.raises(LvpcError, match=r"lidar image has shape \(5, 9\)"):
        datasets.load_benchmark(tmp_path, "houston2013")


@pytest.mark.skipif(importlib.util.find_spec("h5py") is not None, reason="h5py installed: v7.3 files are readable")
def test_matlab_v73_without_h5py_says_what_to_do(tmp_path):
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    (tmp_path / "HSI.mat").write_bytes(header + b"\x00" * 512)
    with pytest.raises(LvpcError, match="v7.3.*h5py"):
        datasets.load_benchmark(tmp_path, "houston2013")


@pytest.mark.skipif(not TRENTO.is_dir(), reason="shared Trento LiDAR not present")
def test_real_trento_lidar_standard_split():
    scene = datasets.load_scene("trento", TRENTO)
    assert list(scene.arrays) == ["lidar"]
    np.testing.assert_array_equal(scene.arrays["lidar"][0], np.load(TRENTO / "lidar.npy"))
    assert int((scene.train > 0).sum()) == 819 and int((scene.test > 0).sum()) == 29395
    assert not ((scene.train > 0) & (scene.test > 0)).any()
    assert scene.class_names == ["Apple trees", "Buildings", "Ground", "Woods", "Vineyard", "Roads"]


@pytest.mark.skipif(not SAMSON.is_dir(), reason="shared Samson scene not present")
def test_samson_is_two_wavelength_sensors_split_in_blocks_with_a_gap():
    scene = datasets.load_scene("samson", SAMSON)
    assert {m: a.shape for m, a in scene.arrays.items()} == {"vis": (78, 95, 95), "red_nir": (78, 95, 95)}
    cube = gdal.Open(str(SAMSON / "image.tif"))
    assert cube.GetRasterBand(78).GetDescription() == "643.4 nm" and cube.GetRasterBand(79).GetDescription() == "646.6 nm"
    np.testing.assert_array_equal(scene.arrays["red_nir"][0], cube.GetRasterBand(79).ReadAsArray())
    tr_rows, tr_cols = np.nonzero(scene.train)
    for r, c in zip(*np.nonzero(scene.test)):
        assert np.min(np.maximum(abs(tr_rows - r), abs(tr_cols - c))) > 5
    assert scene.class_names == ["Soil", "Tree", "Water"]
    for v in scene.class_values:
        assert (scene.train == v).sum() >= 500 and (scene.test == v).sum() >= 200


def test_checkerboard_split_keeps_test_windows_clear_of_training_pixels():
    labels = np.random.default_rng(1).integers(0, 4, (60, 70)).astype(np.int32)
    train, test = datasets.checkerboard_split(labels, block=20, gap=3)
    assert ((train > 0) | (test > 0)).sum() < (labels > 0).sum()
    assert np.all((train == 0) | (train == labels)) and np.all((test == 0) | (test == labels))
    tr_rows, tr_cols = np.nonzero(train)
    for r, c in zip(*np.nonzero(test)):
        assert np.min(np.maximum(abs(tr_rows - r), abs(tr_cols - c))) > 3
    assert (test > 0).sum() > 0.15 * (labels > 0).sum()


def test_test_pixel_cap_is_per_class_and_fixed():
    labels = np.zeros((20, 20), np.int32)
    labels[:10], labels[15, :3] = 2, 5
    capped = accuracy.capped_labels(labels, [2, 5], 50)
    assert (capped == 2).sum() == 50 and (capped == 5).sum() == 3
    assert np.all((capped == 0) | (capped == labels))
    np.testing.assert_array_equal(capped, accuracy.capped_labels(labels, [2, 5], 50))


def test_aggregate_and_paired_verdicts():
    def run(seed, lvpc, rf):
        cell = lambda oa: {"oa": oa, "aa": oa - 1, "kappa": oa - 2, "n": 10, "per_class": {}}
        return [{"seed": seed, "unit": "lvpc", "cells": {"lvpc": {"complete": cell(lvpc)}}},
                {"seed": seed, "unit": "rf", "cells": {"rf": {"complete": cell(rf)}}}]
    results = run(0, 80.0, 70.0) + run(1, 82.0, 71.0) + run(2, 84.0, 73.0)
    table = accuracy.aggregate(results)
    assert table["lvpc"]["complete"]["oa"]["mean"] == pytest.approx(82.0)
    assert table["lvpc"]["complete"]["oa"]["std"] == pytest.approx(2.0)
    assert accuracy.compare(table)["rf"]["complete"]["verdict"] == "beats"
    noisy = run(0, 80.0, 70.0) + run(1, 70.0, 80.0) + run(2, 75.0, 74.0)
    assert accuracy.compare(accuracy.aggregate(noisy))["rf"]["complete"]["verdict"] == "ties"


def test_benchmark_runs_writes_table_and_reuses_cached_runs(tmp_path):
    rows, cols = 24, 24
    rng = np.random.default_rng(3)
    labels = np.where(np.arange(cols)[None, :] < cols // 2, 1, 2).repeat(rows, 0).astype(np.uint8)
    hs = rng.normal(0, 0.1, (rows, cols, 4)).astype(np.float32) + labels[..., None]
    lidar = rng.normal(0, 0.1, (rows, cols)).astype(np.float32) + 3 * labels
    train, test = labels.copy(), labels.copy()
    train[rows // 2:], test[:rows // 2] = 0, 0
    data = tmp_path / "trento"
    data.mkdir()
    scipy.io.savemat(data / "trento.mat", {"HSI": hs, "LiDAR": lidar, "TRLabel": train, "TSLabel": test})
    argv = ["--dataset", "trento", "--data", str(data), "--seeds", "0", "--epochs1", "2", "--epochs2", "1",
            "--methods", "lvpc", "rf", "--out", str(tmp_path / "out"), "--device", "cpu"]
    accuracy.main(argv)
    table = (tmp_path / "out" / "trento.md").read_text()
    assert "| method | complete | w/o lidar | w/o hs |" in table
    assert "| LVPC (prompts) |" in table and "| vp1 zero-fill | — |" in table and "| RandomForest" in table
    cached = tmp_path / "out" / "runs" / "trento" / "lvpc__seed0.json"
    stamp = cached.stat().st_mtime_ns
    accuracy.main(argv)
    assert cached.stat().st_mtime_ns == stamp
    result = json.loads((tmp_path / "out" / "trento.json").read_text())
    assert result["table"]["rf"]["complete"]["oa"]["mean"] > 90


def test_set_changes_engine_defaults_and_keys_the_cache():
    key, value = accuracy._setting("stem_depth=0")
    assert (key, value) == ("stem_depth", 0)
    assert accuracy._setting("refit=false") == ("refit", False)
    with pytest.raises(argparse.ArgumentTypeError):
        accuracy._setting("no_such_setting=1")
    args = argparse.Namespace(epochs1=1, epochs2=1, patience=0, train_per_class=None, test_per_class=None,
                              text_encoder="minilm", modalities=None, set={"stem_depth": 0}, cnn_epochs=1, dev=False)
    assert accuracy.run_config(args, "lvpc")["engine"]["stem_depth"] == 0
    assert "dev" not in accuracy.run_config(args, "lvpc")   # runs cached before --dev existed stay valid
    assert accuracy.run_config(argparse.Namespace(**{**vars(args), "dev": True}), "lvpc")["dev"] is True
    from lvpcnet_core.training import TrainSettings

    default = accuracy.run_config(argparse.Namespace(**{**vars(args), "set": {}}), "lvpc")["engine"]["stem_depth"]
    assert default == TrainSettings().stem_depth
    assert "engine" not in accuracy.run_config(args, "rf")


def test_development_split_holds_out_training_areas_and_never_touches_the_test_part():
    rng = np.random.default_rng(0)
    labels = np.zeros((120, 120), np.int32)
    for i in range(12):   # 12 squares of 8 x 8 px per class, apart from each other
        for v in (1, 2):
            r, c = 10 * (i // 6 * 2 + v - 1) + 5, 18 * (i % 6) + 3
            labels[r:r + 8, c:c + 8] = v
    test = np.where(rng.random(labels.shape) < 0.5, labels, 0)
    scene = datasets.Scene("toy", {"a": np.zeros((1, 120, 120), np.float32)}, labels, test, [1, 2], ["x", "y"], "toy")
    dev = datasets.development_split(scene, gap=2, seed=1)
    assert not np.any((dev.test > 0) & (labels == 0))          # development pixels come from the training part
    assert np.array_equal(dev.test[dev.test > 0], labels[dev.test > 0])
    for v in (1, 2):                                            # a third of each class's 12 areas, whole
        from scipy.ndimage import label
        assert label(dev.test == v)[1] == 4 and label(dev.train == v)[1] >= 1
    from scipy.ndimage import binary_dilation
    near = binary_dilation(dev.test > 0, structure=np.ones((5, 5), bool))
    assert not np.any(near & (dev.train > 0))                   # no training pixel within the gap
    assert dev.name == "toy_dev" and "test part unused" in dev.split
