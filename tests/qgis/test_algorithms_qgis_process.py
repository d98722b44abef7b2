"""lvpc:train, classify, evaluate and modelinfo under the real qgis_process binary (QGIS's own Python), on files."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from .scene import CLASSES, SIZE, make_scene

pytestmark = pytest.mark.qgis


def test_train_classify_evaluate_with_json(qgis_process, tmp_path: Path) -> None:
    scene = make_scene(tmp_path / "scene")
    model = tmp_path / "model.lvpc"
    trained = qgis_process.run_json("lvpc:train", HS=scene.hs, LIDAR=scene.lidar, ROIS=scene.rois, CLASS_FIELD="class",
                                    TEXT_ENCODER="minilm", PATCH_SIZE=5, EPOCHS_STAGE1=2, EPOCHS_STAGE2=1, DEVICE=1,
                                    OUTPUT_MODEL=model)
    assert trained["algorithm_details"]["id"] == "lvpc:train"
    assert Path(trained["results"]["OUTPUT_MODEL"]) == model and model.stat().st_size > 0
    log = "\n".join(trained["log"]["info"])
    assert "Reference grid from 'hs'" in log and "lidar: resampled from 20 m to 10 m" in log
    # torch imported by the plugin multiplies in its own BLAS (test below), so it gets its threads
    assert "CPU threads for torch: " in log and "system OpenBLAS" not in log

    out, probabilities = tmp_path / "map.tif", tmp_path / "probabilities.tif"
    classified = qgis_process.run_json("lvpc:classify", MODEL=model, HS=scene.hs, LIDAR=scene.lidar, DEVICE=1,
                                       OUTPUT=out, OUTPUT_PROBABILITIES=probabilities)
    assert Path(classified["results"]["OUTPUT"]) == out
    assert Path(classified["results"]["OUTPUT_PROBABILITIES"]) == probabilities
    ds = gdal.Open(str(probabilities))
    assert ds.RasterCount == 3 and [ds.GetRasterBand(i + 1).GetDescription() for i in range(3)] == CLASSES
    np.testing.assert_allclose(ds.ReadAsArray().sum(0), 1, atol=1e-5)
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (SIZE, SIZE, 1)
    assert ds.GetGeoTransform() == gdal.Open(str(scene.hs)).GetGeoTransform()
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_Byte and band.GetNoDataValue() == 0
    assert set(np.unique(band.ReadAsArray())) <= {1, 2, 3}
    assert band.GetCategoryNames()[1:4] == CLASSES  # no categorized style: the names of the text field
    assert band.GetColorTable() is not None
    qml = out.with_suffix(".qml").read_text(encoding="utf-8")
    assert qml.count("<paletteEntry") == 3 and all(f'label="{name}"' in qml for name in CLASSES)

    evaluated = qgis_process.run_json("lvpc:evaluate", MODEL=model, LIDAR=scene.lidar, ROIS=scene.rois,
                                      CLASS_FIELD="class", DEVICE=1,
                                      OUTPUT_HTML=tmp_path / "accuracy.html")
    assert 0 <= evaluated["results"]["OA"] <= 100 and (tmp_path / "accuracy.html").is_file()

    described = qgis_process.run_json("lvpc:modelinfo", MODEL=model, OUTPUT_HTML=tmp_path / "model.html")
    assert described["results"]["N_CLASSES"] == 3 and described["results"]["N_CASES"] == 2
    assert CLASSES[0] in (tmp_path / "model.html").read_text(encoding="utf-8")


def test_train_without_torch_says_what_to_install(make_qgis_process, repo_root: Path, tmp_path: Path) -> None:
    """A plugin copy without .venv (as installed from the zip), on QGIS's Python that has no torch."""
    plugins = tmp_path / "plugins"
    shutil.copytree(repo_root, plugins / "lvpc", ignore=shutil.ignore_patterns(
        ".venv", ".git", "tests", "dist", "bench", "__pycache__", ".pytest_cache", ".hypothesis", "output"))
    scene = make_scene(tmp_path / "scene")
    qgis_process = make_qgis_process(plugins)
    done = qgis_process("run", "lvpc:train", "--", f"HS={scene.hs}", f"LIDAR={scene.lidar}", f"ROIS={scene.rois}",
                        "CLASS_FIELD=class", f"OUTPUT_MODEL={tmp_path / 'm.lvpc'}",
                        env={"LVPC_PYTHONPATH": "", "PYTHONPATH": ""})
    if done.returncode == 0:
        pytest.fail("lvpc:train ran although QGIS's Python should lack torch")
    message = done.stdout + done.stderr
    assert "LVPC needs the Python package(s)" in message and "torch" in message
    assert f"{plugins / 'lvpc' / '.venv'}/bin/python -m pip install torch==" in message
    assert not (tmp_path / "m.lvpc").exists()


def test_torch_multiplies_in_its_own_blas(qgis_process, tmp_path: Path) -> None:
    """qgis_process loads the system OpenBLAS (QGIS links GDAL's armadillo) before the plugin imports torch; the
    dynamic linker's own record of the run shows libtorch's `sgemm_` bound to libtorch (its MKL), not OpenBLAS."""
    scene = make_scene(tmp_path / "scene")
    trace = tmp_path / "ld" / "bindings"
    trace.parent.mkdir()
    done = qgis_process("run", "lvpc:train", "--", f"HS={scene.hs}", f"LIDAR={scene.lidar}", f"ROIS={scene.rois}",
                        "CLASS_FIELD=class", "TEXT_ENCODER=minilm", "PATCH_SIZE=5", "EPOCHS_STAGE1=1",
                        "EPOCHS_STAGE2=1", "REFIT=false", "DEVICE=1", f"OUTPUT_MODEL={tmp_path / 'model.lvpc'}",
                        env={"LD_DEBUG": "bindings", "LD_DEBUG_OUTPUT": str(trace)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "system OpenBLAS" not in done.stdout and "CPU threads for torch: " in done.stdout
    openblas, sgemm = False, []   # read line by line: the trace is about 100 MB
    for path in trace.parent.iterdir():
        with path.open(errors="replace") as lines:
            for line in lines:
                line = line.rstrip("\n")
                openblas = openblas or "libopenblas" in line
                if "libtorch_cpu.so" in line.split(" to ")[0] and line.endswith("`sgemm_'"):
                    sgemm.append(line)
    assert openblas  # loaded: the binding below is a choice, not a default
    assert sgemm and all("libtorch_cpu.so" in line.split(" to ")[1] for line in sgemm), sgemm[:3]
