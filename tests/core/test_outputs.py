"""The output policy and the foreign-error messages, walked systematically: every key of a model's metadata removed,
retyped and out of range; a set of broken rasters; two runs writing one map at once; the temporaries, the renames
and the finished files' mode. Each refusal is an LvpcError (the one `error:` line of the CLI, the one QGIS error)
and leaves the output folder as it was.
"""
from __future__ import annotations

import os
import stat
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from lvpcnet_core import workflows
from lvpcnet_core.errors import LvpcError
from lvpcnet_core.files import check_outputs
from lvpcnet_core.model_file import ModelInfo, save_model
from lvpcnet_core.raster_io import ClassMapWriter, Grid, default_colors
from lvpcnet_core.synthetic import make_scene
from tests.core.helpers import tiny_model
from tests.core.test_bad_input import (PREVIOUS, changed, cli, model_metadata, snapshot, truncated_raster,
                                       vrt_without_source, with_metadata)


def write_model(path: Path, seed: int, names: list[str]) -> Path:
    """A tiny untrained model for the scene's layers (hs 8 bands, lidar 1), with prompts for both absence cases."""
    model = tiny_model(seed, bands={"hs": 8, "lidar": 1}, patch_size=5)
    for case in (("hs",), ("lidar",)):
        model.add_case(case)
    save_model(path, model, ModelInfo([1, 2, 3], names, default_colors(3), {}, "minilm", {"note": "test"}))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("outputs")
    scene = make_scene(folder / "scene", width=24, height=24)
    return {"folder": folder, "scene": scene, "model": write_model(folder / "a.lvpc", 0, ["a", "b", "c"]),
            "other_model": write_model(folder / "b.lvpc", 1, ["x", "y", "z"])}


def _retyped(value: object) -> object:
    return {str: 7, int: "7", float: "0.5", list: {"x": 1}, dict: [1]}[type(value)]


def _out_of_range(value: object) -> list:
    if type(value) is int:
        return [-1, 10**9]
    if type(value) is float:
        return [-1.0, 1e9]
    if type(value) is list:
        return [value[:-1], value + value[-1:]]  # one entry missing, one repeated
    return []  # text and tables: every value of the type is one a model may hold


def metadata_variants(meta: dict) -> dict[str, dict | str]:
    """Every key of the metadata and of its configuration removed, retyped and out of range, and a few wholes."""
    variants: dict[str, dict | str] = {"not JSON": "{not json", "a list": "[1, 2]",
                                       "unknown key": changed(meta, ("colour",), [1])}
    for path in [(k,) for k in meta] + [("config", k) for k in meta["config"]]:
        value = meta[path[0]] if len(path) == 1 else meta["config"][path[1]]
        name = ".".join(path)
        variants[f"{name} removed"] = changed(meta, path)
        variants[f"{name} retyped"] = changed(meta, path, _retyped(value))
        for i, wrong in enumerate(_out_of_range(value)):
            variants[f"{name} out of range ({i})"] = changed(meta, path, wrong)
    return variants


# a model without its training report is still a model (the report is what training measured, nothing it needs), and
# so is one without what models trained before issue 14 did not record
STILL_A_MODEL = {f"{key} removed" for key in ("report", "grid", "layers", "versions", "created")}


def test_the_variants_cover_every_key_of_the_metadata(world: dict) -> None:
    meta = model_metadata(world["model"])
    names = metadata_variants(meta)
    for key in [*meta, *(f"config.{k}" for k in meta["config"])]:
        assert {f"{key} removed", f"{key} retyped"} <= set(names), key
    assert len(meta["config"]) == 16 and len(meta) == 14


def _classify(world: dict, model: Path, out: Path, layers: dict[str, str] | None = None) -> None:
    workflows.classify(str(model), layers or world["scene"].paths, str(out), confidence=str(out.with_suffix(".c.tif")),
                       device="cpu")


def _same_network_without(meta: dict, variant: str) -> bool:
    """Whether the variant removes a configuration key that models may lack (older models) and that, at its value
    for older models, gives the network the same tensors: then it is still the same model."""
    from lvpcnet_core.model_file import _CONFIG_OPTIONAL
    from lvpcnet_core.network import build_network

    key = variant.removeprefix("config.").removesuffix(" removed")
    if variant != f"config.{key} removed" or key not in _CONFIG_OPTIONAL:
        return False
    older = {k: v for k, v in meta["config"].items() if k != key}

    def shapes(config: dict) -> dict:
        return {k: t.shape for k, t in build_network(config, meta["cases"]).state_dict().items()}

    return shapes(meta["config"]) == shapes({**older, key: _CONFIG_OPTIONAL[key]})


def test_malformed_model(world: dict, tmp_path: Path, variant: str) -> None:
    """Each malformed model: refused with one message naming MODEL, the folder as it was; or, for a variant that is
    still a model, classified."""
    meta = model_metadata(world["model"])
    model = with_metadata(world["model"], tmp_path / "model.lvpc", metadata_variants(meta)[variant])
    out = tmp_path / "map.tif"
    out.write_bytes(PREVIOUS)
    before = snapshot(tmp_path)
    if variant in STILL_A_MODEL or _same_network_without(meta, variant):
        _classify(world, model, out)
        assert gdal.Open(str(out)).ReadAsArray().any()
        return
    with pytest.raises(LvpcError, match="MODEL: 'model.lvpc' "):
        _classify(world, model, out)
    assert snapshot(tmp_path) == before


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """The variants come from a real model's metadata, so the list grows with the format by itself."""
    if metafunc.function.__name__ == "test_malformed_model":
        with tempfile.TemporaryDirectory() as folder:
            meta = model_metadata(write_model(Path(folder) / "model.lvpc", 0, ["a", "b", "c"]))
        metafunc.parametrize("variant", list(metadata_variants(meta)))


BROKEN_RASTERS = {
    "VRT without its source": lambda src, out: vrt_without_source(src, out.with_suffix(".vrt")),
    "VRT of broken XML": lambda src, out: _written(out.with_suffix(".vrt"), b"<VRTDataset rasterXSize="),
    "GeoTIFF cut in half": lambda src, out: truncated_raster(src, out),
    "GeoTIFF cut after 200 bytes": lambda src, out: _written(out, Path(src).read_bytes()[:200]),
    "empty file": lambda src, out: _written(out, b""),
    "text named .tif": lambda src, out: _written(out, b"not a raster\n"),
}


def _written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("broken", list(BROKEN_RASTERS))
def test_broken_raster(world: dict, tmp_path: Path, broken: str) -> None:
    """A broken layer (classify) or label raster (train): one message naming it, nothing written."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    bad = str(BROKEN_RASTERS[broken](world["scene"].paths["lidar"], inputs / "bad.tif"))
    out = tmp_path / "map.tif"
    out.write_bytes(PREVIOUS)
    model = tmp_path / "model.lvpc"
    model.write_bytes(PREVIOUS)
    before = snapshot(tmp_path)
    with pytest.raises(LvpcError, match="Layer 'lidar'"):
        _classify(world, world["model"], out, {"hs": world["scene"].paths["hs"], "lidar": bad})
    with pytest.raises(LvpcError, match="Layer 'bad"):
        workflows.train(world["scene"].paths, str(model), workflows.LabelSource(raster=bad))
    assert snapshot(tmp_path) == before


def test_two_runs_on_one_map(world: dict, tmp_path: Path) -> None:
    """Two CLI classify runs started together on one output, different models and layers, three times: both finish,
    each wins cleanly or says the output is in use; the map and its .qml and .aux.xml are one run's, no temporary."""
    scene = world["scene"].paths
    runs = [["--model", str(world["model"]), f"--modality=hs={scene['hs']}", f"--modality=lidar={scene['lidar']}"],
            ["--model", str(world["other_model"]), f"--modality=lidar={scene['lidar']}"]]
    alone = []
    for i, args in enumerate(runs):
        done = cli(["classify", *args, "--out", str(tmp_path / f"alone{i}.tif"), "--device", "cpu"])
        assert done.returncode == 0, done.stderr
        alone.append({ext: (tmp_path / f"alone{i}{ext}").read_bytes() for ext in (".qml", ".tif.aux.xml")}
                     | {"map": gdal.Open(str(tmp_path / f"alone{i}.tif")).ReadAsArray()})
    assert not np.array_equal(alone[0]["map"], alone[1]["map"])
    race = tmp_path / "race"
    race.mkdir()
    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            done = list(pool.map(lambda args: cli(["classify", *args, "--out", str(race / "map.tif"),
                                                   "--device", "cpu"]), runs))
        for run in done:
            assert run.returncode == 0 or (run.returncode == 1 and "is in use" in run.stderr.splitlines()[-1]), \
                run.stderr
            assert "Traceback" not in run.stderr
        assert any(run.returncode == 0 for run in done)
        final = gdal.Open(str(race / "map.tif")).ReadAsArray()
        winner = next(a for a in alone if np.array_equal(a["map"], final))
        assert (race / "map.qml").read_bytes() == winner[".qml"]
        assert (race / "map.tif.aux.xml").read_bytes() == winner[".tif.aux.xml"]
        assert sorted(p.name for p in race.iterdir()) == ["map.qml", "map.tif", "map.tif.aux.xml"]


def test_a_map_written_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    """Two writers of one map at once: each has its own temporary; the one that finishes second refuses, so the
    first one's map stays whole; nothing temporary is left."""
    grid = Grid("", (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), 4, 3)
    path = str(tmp_path / "map.tif")
    first = ClassMapWriter(path, grid, [1, 2], ["a", "b"], [(1, 2, 3), (4, 5, 6)])
    second = ClassMapWriter(path, grid, [1, 2], ["a", "b"], [(1, 2, 3), (4, 5, 6)])
    with pytest.raises(LvpcError, match="was written by another run while this one worked; it is in use"):
        with first:
            first.write(0, 0, np.ones((3, 4), np.uint8))
            with second:
                second.write(0, 0, np.full((3, 4), 2, np.uint8))
                assert len(list(tmp_path.iterdir())) == 2  # two temporaries, one per run
    assert (gdal.Open(path).ReadAsArray() == 2).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.qml", "map.tif", "map.tif.aux.xml"]


def test_finished_files_get_the_umask_mode(world: dict, tmp_path: Path) -> None:
    """Temporaries are private (mkstemp, 0600); the finished map, style, model and JSON get what the umask gives."""
    previous = os.umask(0o027)
    try:
        _classify(world, world["model"], tmp_path / "map.tif")
        write_model(tmp_path / "model.lvpc", 0, ["a", "b", "c"])
        workflows.write_json(tmp_path / "figures.json", {"oa": 1})
    finally:
        os.umask(previous)
    for name in ("map.tif", "map.qml", "map.c.tif", "model.lvpc", "figures.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o640, name


def test_links_and_in_place_updates(tmp_path: Path) -> None:
    """A symbolic or hard link to an input is that input; only an input named replaceable may be the output, and
    never the files beside it."""
    model = tmp_path / "model.lvpc"
    model.write_bytes(b"model")
    (tmp_path / "soft.lvpc").symlink_to(model)
    os.link(model, tmp_path / "hard.lvpc")
    for name in ("soft.lvpc", "hard.lvpc"):
        with pytest.raises(LvpcError, match="is a file of the input MODEL"):
            check_outputs({"OUTPUT_MODEL": tmp_path / name}, {"MODEL": model})
    check_outputs({"OUTPUT_MODEL": model}, {"MODEL": model}, replaceable={"MODEL"})
    with pytest.raises(LvpcError, match=r"OUTPUT \(its companion file model.qml\)"):
        check_outputs({"OUTPUT": tmp_path / "model.tif"}, {"MODEL": model}, replaceable={"MODEL"},
                      sidecars={"OUTPUT": [str(tmp_path / "model.qml")]})
    with pytest.raises(LvpcError, match="is longer than"):
        check_outputs({"OUTPUT": tmp_path / ("x" * 300)}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.lvpc", "model.lvpc", "soft.lvpc"]
