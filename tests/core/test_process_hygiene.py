"""The engine shares a process with QGIS and other plugins: importing and using it leaves GDAL and logging as it found them."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SCRIPT = textwrap.dedent("""
    import json, logging, pkgutil, importlib, sys
    import numpy as np
    import open_clip, torch
    from osgeo import gdal, ogr, osr
    from safetensors.torch import save_file

    tmp, exceptions = sys.argv[1], sys.argv[2] == "on"
    for module in (gdal, ogr, osr):
        module.UseExceptions() if exceptions else module.DontUseExceptions()
    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    root.addHandler(Keep())

    def state():
        return [gdal.GetUseExceptions(), ogr.GetUseExceptions(), osr.GetUseExceptions(), root.level,
                len(root.filters), len(root.handlers)]

    before = state()
    import lvpcnet_core
    for info in pkgutil.walk_packages(lvpcnet_core.__path__, "lvpcnet_core."):
        if not info.name.endswith("__main__"):  # __main__ runs the command line
            importlib.import_module(info.name)
    after_import = state()

    from lvpcnet_core import raster_io
    from lvpcnet_core.errors import LvpcError
    from lvpcnet_core.text_encoders import load_text_encoder
    grid = raster_io.Grid("", (0.0, 1.0, 0.0, 4.0, 0.0, -1.0), 4, 4)
    raster_io.write_raster(f"{tmp}/hs.tif", np.arange(32, dtype=np.float32).reshape(2, 4, 4), grid)
    with raster_io.AlignedStack({"hs": f"{tmp}/hs.tif"}, log=lambda _: None) as stack:
        read = stack.read("hs", 1, 1, 2, 2).tolist()
    try:
        raster_io.AlignedStack({"lidar": f"{tmp}/missing.tif"}, log=lambda _: None)
        missing = "no error"
    except LvpcError as err:
        missing = str(err)

    config = {"embed_dim": 8, "quick_gelu": False,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 16, "head_width": 8, "patch_size": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    with open(f"{tmp}/lvpc-hygiene-clip.json", "w") as f:
        json.dump(config, f)
    open_clip.add_model_config(f"{tmp}/lvpc-hygiene-clip.json")
    save_file(open_clip.create_model("lvpc-hygiene-clip").state_dict(), f"{tmp}/clip.safetensors")
    records.clear()
    load_text_encoder(f"clip:lvpc-hygiene-clip:{tmp}/clip.safetensors", log=lambda _: None)
    open_clip_records = [r.getMessage() for r in records if "open_clip" in r.pathname]
    logging.getLogger("another.plugin").info("still heard")
    print(json.dumps({"before": before, "after_import": after_import, "after_use": state(), "read": read,
                      "missing": missing, "open_clip_records": open_clip_records,
                      "others_heard": [r.getMessage() for r in records if r.name == "another.plugin"]}))
""")


@pytest.mark.parametrize("exceptions", ["off", "on"])
def test_gdal_exceptions_and_root_logger_are_left_as_they_were(tmp_path, exceptions):
    """QGIS 3.22 runs with GDAL's exceptions off; a script may have them on: LVPC works either way and changes neither."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONWARNINGS="ignore")
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), exceptions], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    flag = 1 if exceptions == "on" else 0
    assert result["before"][:5] == [flag, flag, flag, logging.INFO, 0]
    assert result["after_import"] == result["before"]
    assert result["after_use"] == result["before"]
    assert result["read"] == [[[5.0, 6.0], [9.0, 10.0]], [[21.0, 22.0], [25.0, 26.0]]]
    assert "Layer 'lidar'" in result["missing"] and "missing.tif" in result["missing"]
    assert result["open_clip_records"] == []
    assert result["others_heard"] == ["still heard"]
