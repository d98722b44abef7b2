"""The made benchmark scenes (bench/scenes.py) as `bench.common.load_split` gives them to the training-time benchmark:
band counts, modalities, classes, pixel counts, and the synthetic scene's determinism and content."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal

from bench import scenes
from bench.common import DATA, load_split
from lvpcnet_core.errors import LvpcError
from lvpcnet_core.network import absence_cases

LIBRARY = DATA / "spectral_libraries" / "muufl_gulfport_asd"
needs_library = pytest.mark.skipif(not LIBRARY.is_dir(), reason="shared spectral library not present (LVPC_DATA)")
needs_brandenburg = pytest.mark.skipif(not (DATA / "brandenburg").is_dir(),
                                       reason="shared Brandenburg scene not present (LVPC_DATA)")
SMALL = {"rows": 48, "cols": 96, "bands": 24}


def _read(path: str) -> np.ndarray:
    return gdal.Open(path).ReadAsArray()


def _halves(data: dict) -> tuple[int, int]:
    half = data["grid"].width // 2
    return int((data["train"][:, half:] > 0).sum()), int((data["test"][:, :half] > 0).sum())


@needs_library
def test_hyperspectral_is_218_bands_and_a_dsm_with_500_training_pixels_in_each_of_8_classes():
    data = load_split("hyperspectral", 2, train_cap=500)
    assert {m: a.shape for m, a in data["arrays"].items()} == {"hs": (218, 256, 512), "lidar": (1, 256, 512)}
    assert data["names"] == ["trees", "grass", "sand", "road", "building", "sidewalk", "bare soil", "cloth panels"]
    assert [int((data["train"] == v).sum()) for v in data["values"]] == [500] * 8
    assert [int((data["test"] == v).sum()) for v in data["values"]] == [2000] * 8
    assert _halves(data) == (0, 0)                      # training from the left half, test from the right
    assert all(np.isfinite(a).all() for a in data["arrays"].values())
    assert len(absence_cases(list(data["arrays"]))) == 2


@needs_library
def test_hyperspectral_is_a_function_of_its_seed(tmp_path):
    first, labels = scenes.hyperspectral(tmp_path / "a", LIBRARY, seed=3, **SMALL)
    again, labels_again = scenes.hyperspectral(tmp_path / "b", LIBRARY, seed=3, **SMALL)
    other, labels_other = scenes.hyperspectral(tmp_path / "c", LIBRARY, seed=4, **SMALL)
    for m in ("hs", "lidar"):
        np.testing.assert_array_equal(_read(first[m]), _read(again[m]))
        assert not np.array_equal(_read(first[m]), _read(other[m]))
    np.testing.assert_array_equal(_read(labels), _read(labels_again))
    assert not np.array_equal(_read(labels), _read(labels_other))
    assert gdal.Open(first["hs"]).RasterCount == 24 and gdal.Open(first["lidar"]).RasterCount == 1


@needs_library
def test_hyperspectral_classes_look_like_their_materials(tmp_path):
    files, label_path = scenes.hyperspectral(tmp_path, LIBRARY, rows=128, cols=128, seed=0)
    cube, dsm, labels = _read(files["hs"]), _read(files["lidar"]), _read(label_path)
    band = {nm: int(np.argmin(abs(np.linspace(*scenes.WAVELENGTHS_NM, 218) - nm))) for nm in (450, 670, 850)}
    mean = {v: cube[:, labels == v].mean(1) for v in scenes.HS_CLASSES}
    red_edge = {v: m[band[850]] / m[band[670]] for v, m in mean.items()}
    assert min(red_edge[1], red_edge[2]) > 1.5 * max(red_edge[v] for v in (3, 4, 5, 6))   # trees, grass: leaves
    assert mean[3][band[450]] > 2 * mean[4][band[450]]          # sand far brighter than asphalt
    assert dsm[labels == 1].mean() > dsm[labels == 4].mean() + 8   # trees stand out of the DSM, roads do not
    assert 0 < np.mean(labels[:, :64] == 1) < 0.5 and len(np.unique(labels[:, :64])) == 8


def test_band_response_averages_the_library_around_each_centre():
    wavelengths = np.arange(325.0, 1076.0)
    response = scenes.band_response(wavelengths, np.linspace(400.0, 1000.0, 218))
    np.testing.assert_allclose(response.sum(1), 1.0)
    assert np.abs(wavelengths[response.argmax(1)] - np.linspace(400.0, 1000.0, 218)).max() <= 0.5
    np.testing.assert_allclose(response @ (2 * wavelengths), 2 * np.linspace(400.0, 1000.0, 218), atol=1e-6)


@needs_library
def test_a_modality_count_the_scene_lacks_is_refused_naming_the_option():
    with pytest.raises(LvpcError, match=r"--modalities 3: hyperspectral has 2 \(hs, lidar\)"):
        load_split("hyperspectral", 3, scene=SMALL)


@needs_brandenburg
def test_brandenburg4_is_the_real_scene_as_four_sensors_with_14_absence_cases():
    four = load_split("brandenburg4", 4, train_cap=73)
    three = load_split("brandenburg", 3, train_cap=73)
    assert {m: a.shape[0] for m, a in four["arrays"].items()} == {"s2_10m": 4, "s2_red_edge": 4, "s2_swir": 2,
                                                                   "s2_60m": 3}
    np.testing.assert_array_equal(four["arrays"]["s2_10m"], three["arrays"]["hs"])
    np.testing.assert_array_equal(four["arrays"]["s2_red_edge"], three["arrays"]["lidar"][:4])
    np.testing.assert_array_equal(four["arrays"]["s2_swir"], three["arrays"]["lidar"][4:])
    np.testing.assert_array_equal(four["arrays"]["s2_60m"], three["arrays"]["sar"])
    np.testing.assert_array_equal(four["train"], three["train"])
    assert len(four["values"]) == 8 and int((four["train"] > 0).sum()) == 8 * 73
    assert _halves(four) == (0, 0)
    assert len(absence_cases(list(four["arrays"]))) == 14
