"""ONNX export of a trained model: ONNX Runtime on a real block gives ScenePredictor's probabilities (the complete
case and a case with learned prompts), the file carries what Deepness and LVPC read, the CLI refuses bad input."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from lvpcnet_core import onnx_export, workflows
from lvpcnet_core.model_file import load_model
from lvpcnet_core.predict import ScenePredictor
from lvpcnet_core.progress import SilentProgress
from lvpcnet_core.raster_io import AlignedStack
from lvpcnet_core.synthetic import make_scene
from lvpcnet_core.training import TrainSettings

from .test_cli import REPO, cli

TILE = 64
FAST = TrainSettings(epochs_stage1=3, epochs_stage2=2, batch_size=64, patch_size=5, width=16, depth=2, heads=2,
                     learning_rate=3e-3, patience=0, refit=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A model trained on a 64 x 64 scene, its complete case exported in this process (any block size) and its
    LiDAR-only case through the CLI (fixed 64 x 64 tiles)."""
    folder = tmp_path_factory.mktemp("onnx")
    scene = make_scene(folder / "scene", width=TILE, height=TILE)
    model = str(folder / "m.lvpc")
    workflows.train(scene.paths, model, workflows.LabelSource(raster=scene.labels), text_encoder="minilm",
                    settings=FAST, progress=SilentProgress())
    complete = workflows.export_onnx(model, str(folder / "complete.onnx"))
    run = cli("export", model, "--onnx", str(folder / "lidar.onnx"), "--available", "lidar", "--tile-size", str(TILE))
    assert run.returncode == 0, run.stderr
    with AlignedStack(scene.paths, log=lambda _: None) as stack:
        raw = stack.read_all()
    return {"folder": folder, "model": model, "raw": raw, "complete": complete,
            "lidar": json.loads(run.stdout), "scene": scene}


def _reference(model_path: str, raw: dict[str, np.ndarray]) -> np.ndarray:
    """ScenePredictor's probabilities of the layers `raw` as a whole scene (NaN outside it)."""
    model, info = load_model(model_path)
    r = model.cfg.patch_size // 2
    padded = {m: np.pad(a, ((0, 0), (r, r), (r, r)), constant_values=np.nan) for m, a in raw.items()}
    return ScenePredictor(model, info.class_values).predict_probabilities(padded)[0]


def _run(path: Path | str, bands: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"bands": bands[None]})[0][0]


def _agree(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(0) == expected.argmax(0)).mean() >= 0.999


def test_onnx_runtime_gives_the_block_predictions_of_the_complete_case(world):
    raw = {m: a.copy() for m, a in world["raw"].items()}
    raw["lidar"][0, 10, 20] = np.nan    # a pixel without LiDAR: another case for ScenePredictor, nodata here
    bands = np.concatenate([raw["hs"], raw["lidar"]])
    got = _run(world["folder"] / "complete.onnx", bands)
    expected = _reference(world["model"], raw)
    assert np.argwhere(np.isnan(got).any(0)).tolist() == [[10, 20]]
    got[:, 10, 20] = expected[:, 10, 20]
    _agree(got, expected)
    # any block size, and blocks of a batch are classified apart
    part = np.concatenate([world["raw"]["hs"], world["raw"]["lidar"]])[:, 5:30, 7:40]
    batch = ort.InferenceSession(str(world["folder"] / "complete.onnx")).run(None, {"bands": np.stack([part, part])})[0]
    _agree(batch[1], _reference(world["model"], {"hs": part[:-1], "lidar": part[-1:]}))


def test_onnx_runtime_gives_the_block_predictions_with_learned_prompts(world):
    lidar = world["raw"]["lidar"]
    _agree(_run(world["folder"] / "lidar.onnx", lidar), _reference(world["model"], {"lidar": lidar}))
    with pytest.raises(Exception, match="[Ii]nvalid dimensions|[Gg]ot invalid"):
        _run(world["folder"] / "lidar.onnx", lidar[:, :32, :32])   # the fixed tile is enforced


def test_the_file_carries_what_deepness_and_lvpc_read(world):
    complete = onnx.load(str(world["folder"] / "complete.onnx"))
    tiled = onnx.load(str(world["folder"] / "lidar.onnx"))
    assert complete.ir_version == tiled.ir_version == onnx_export.IR_VERSION   # onnxruntime 1.14 on reads it
    assert [o.version for o in complete.opset_import if o.domain in ("", "ai.onnx")] == [onnx_export.OPSET]

    def shape(value):
        return [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]

    # Deepness reads one input, its tile from the input's shape (it must be a number), the classes from dim 1
    assert [i.name for i in complete.graph.input] == ["bands"] and shape(complete.graph.input[0]) == ["N", 9, "H", "W"]
    assert shape(complete.graph.output[0]) == ["N", 3, "H", "W"]
    assert shape(tiled.graph.input[0]) == ["N", 1, TILE, TILE] and shape(tiled.graph.output[0]) == ["N", 3, TILE, TILE]
    meta = {p.key: json.loads(p.value) for p in tiled.metadata_props}
    info = load_model(world["model"])[1]
    assert meta["model_type"] == "Segmentor"
    assert meta["class_names"] == {str(i): n for i, n in enumerate(info.class_names)}
    assert meta["resolution"] == 1000.0                 # 10 m pixels of the training grid, in cm
    assert meta["tile_size"] == TILE and meta["tiles_overlap"] == world["lidar"]["tiles_overlap_percent"] == 7
    assert int(TILE * meta["tiles_overlap"] / 100 * 2) // 2 >= 2 * 2   # Deepness's overlap covers two half-windows
    assert meta["lvpc_modalities"] == ["lidar"] and meta["lvpc_missing"] == ["hs"]
    assert meta["lvpc_bands"] == {"lidar": 1} and meta["lvpc_class_values"] == [1, 2, 3]
    assert meta["lvpc_band_names"] == {"lidar": info.layers["lidar"]["band_names"]}
    assert {p.key: json.loads(p.value) for p in complete.metadata_props}["lvpc_modalities"] == ["hs", "lidar"]
    # Deepness scales its input to 0-1 and standardises it with these: the graph sees the raw values again
    lidar = world["raw"]["lidar"]
    mean, std = (np.array(meta[k], dtype=np.float32) for k in ("standardization_mean", "standardization_std"))
    deepness = (np.float32(lidar.transpose(1, 2, 0) * 1. / 255.) - mean) / std
    np.testing.assert_allclose(_run(world["folder"] / "lidar.onnx", deepness.transpose(2, 0, 1)),
                               _run(world["folder"] / "lidar.onnx", lidar), atol=1e-4)


def test_cli_refuses_bad_input_with_one_error_line(world):
    model, folder = world["model"], world["folder"]
    before = sorted(p.name for p in folder.iterdir())
    for args, message in (
            (["--onnx", str(folder / "x.onnx"), "--available", "hs,sar"], "must name distinct modalities of the model"),
            (["--onnx", model], "is a file of the input MODEL"),
            (["--onnx", str(folder / "x.onnx"), "--tile-size", "10"], "must be an integer from 64 to 4096")):
        run = cli("export", model, *args)
        assert run.returncode == 1, run.stderr
        errors = [line for line in run.stderr.splitlines() if line.startswith("error")]
        assert len(errors) == 1 and message in errors[0], run.stderr
    assert sorted(p.name for p in folder.iterdir()) == before


def test_without_the_onnx_packages_the_message_says_what_to_install(world):
    code = ("import sys; sys.modules['onnxscript'] = None; from lvpcnet_core.cli import main; "
            f"sys.exit(main(['export', {world['model']!r}, '--onnx', {str(world['folder'] / 'y.onnx')!r}]))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(REPO), timeout=300)
    assert run.returncode == 1
    assert "pip install onnx==1.23.1 onnxscript==0.7.2 onnxruntime==1.30.0" in run.stderr.splitlines()[-1]
    assert not (world["folder"] / "y.onnx").exists()


def test_the_packages_named_are_the_pinned_ones(repo_root: Path):
    assert set(onnx_export.PACKAGES) <= set((repo_root / "requirements.txt").read_text().splitlines())


def test_ablations_export_too(tmp_path: Path):
    """Without a shared encoder (vf) and with a CNN rebuilding the missing input (vp2): the same function again."""
    from .helpers import tiny_model

    model = tiny_model(extra={"decoupling": False, "compensation": "reconstruction"})
    model.add_case(("lidar",))
    lidar = np.random.default_rng(5).normal(size=(1, 15, 18)).astype(np.float32)
    onnx_export.export(model, ("lidar",), tmp_path / "vf_vp2.onnx")
    r = model.cfg.patch_size // 2
    padded = np.pad(lidar, ((0, 0), (r, r), (r, r)), constant_values=np.nan)
    _agree(_run(tmp_path / "vf_vp2.onnx", lidar),
           ScenePredictor(model, [1, 2, 3]).predict_probabilities({"lidar": padded})[0])
