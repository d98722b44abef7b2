import json
import pickle

import pytest
import torch

from lvpcnet_core.errors import LvpcError
from lvpcnet_core.model_file import FORMAT, ModelInfo, library_versions, load_model, read_metadata, save_model

from .helpers import tiny_model


def _info():
    return ModelInfo([1, 2, 5], ["a", "b", "c"], [(1, 2, 3), (4, 5, 6), (7, 8, 9)], {"classes": []}, "test-encoder",
                     {"note": "x"})


def test_round_trip_keeps_weights_prompts_and_metadata(tmp_path):
    model = tiny_model()
    model.add_case(("lidar",))
    path = tmp_path / "m.lvpc"
    save_model(path, model, _info())
    loaded, info = load_model(path)
    assert info.class_values == [1, 2, 5] and info.colors[2] == (7, 8, 9)
    assert list(loaded.compensators) == ["lidar->hs"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key])
    assert [p.name for p in tmp_path.iterdir()] == ["m.lvpc"]


def test_training_grid_layers_versions_and_date_round_trip_and_are_checked(tmp_path):
    from tests.core.test_bad_input import model_metadata, with_metadata

    grid = {"crs": "EPSG:32633", "crs_wkt": "", "geotransform": [0.0, 10.0, 0.0, 0.0, 0.0, -10.0], "width": 4,
            "height": 3, "pixel_size": [10.0, 10.0], "units": "m"}
    layers = {"hs": {"file": "hs.tif", "bands": 5, "band_names": ["a", "b", "c", "d", "e"]}}
    info = _info()
    info.grid, info.layers, info.versions, info.created = grid, layers, library_versions(), "2026-12-03T10:00:00+00:00"
    path = tmp_path / "m.lvpc"
    save_model(path, tiny_model(), info)
    _, loaded = load_model(path)
    assert (loaded.grid, loaded.layers, loaded.created) == (grid, layers, info.created)
    assert loaded.versions["torch"] == torch.__version__ and set(loaded.versions) >= {"gdal", "numpy", "lvpc_plugin"}
    meta = model_metadata(path)
    for key, wrong in (("grid", {**grid, "geotransform": [0.0, 10.0]}), ("grid", {**grid, "width": 0}),
                       ("grid", {k: v for k, v in grid.items() if k != "crs"}), ("layers", {"sar": {}}),
                       ("layers", {"hs": {**layers["hs"], "band_names": ["a"]}}),
                       ("layers", {"hs": {**layers["hs"], "wavelengths": [0.5] * 5}})):
        with pytest.raises(LvpcError, match=f"damaged: '{key}'"):
            read_metadata(with_metadata(path, tmp_path / "bad.lvpc", {**meta, key: wrong}))


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / "m.lvpc"
    save_model(path, tiny_model(), _info())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(LvpcError, match="damaged|not a readable"):
        load_model(path)


def test_other_files_and_newer_versions_are_refused(tmp_path):
    other = tmp_path / "x.lvpc"
    other.write_text("hello")
    with pytest.raises(LvpcError, match="not a readable LVPC model"):
        read_metadata(other)
    path = tmp_path / "m.lvpc"
    save_model(path, tiny_model(), _info())
    from safetensors.torch import load_file, save_file
    meta = read_metadata(path)
    meta["format_version"] = 99
    save_file(load_file(str(path)), str(path), metadata={"lvpc": json.dumps(meta)})
    with pytest.raises(LvpcError, match="newer LVPC"):
        read_metadata(path)
    assert meta["format"] == FORMAT


class _Exploit:
    def __reduce__(self):
        return (open, ("/tmp/lvpc_pwned_marker", "w"))


def test_pickle_crafted_to_run_code_is_not_executed(tmp_path):
    import os
    marker = "/tmp/lvpc_pwned_marker"
    if os.path.exists(marker):
        os.remove(marker)
    path = tmp_path / "evil.lvpc"
    torch.save({"x": _Exploit()}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(LvpcError):
        load_model(path)
    assert not os.path.exists(marker)
