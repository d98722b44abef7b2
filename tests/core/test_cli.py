"""`python -m lvpcnet_core` as a user runs it: real subprocesses, real files, exit codes."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lvpcnet_core.synthetic import make_scene


REPO = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "lvpcnet_core", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=600)


def test_help_documents_every_command_and_option():
    top = cli("--help")
    assert top.returncode == 0
    for command in ("train", "classify", "evaluate", "prompts", "info", "export", "describe", "demo"):
        assert command in top.stdout
    train = cli("train", "--help").stdout
    for option in ("--modality", "--labels", "--rois", "--class-field", "--descriptions", "--out", "--device",
                   "--text-encoder", "--patch-size", "--seed"):
        assert option in train
    assert "--json" in cli("evaluate", "--help").stdout


def test_train_classify_evaluate_round_trip(tmp_path):
    scene = make_scene(tmp_path / "scene", width=24, height=24)
    layers = [f"--modality={m}={p}" for m, p in scene.paths.items()]
    model = tmp_path / "m.lvpc"
    run = cli("train", *layers, "--labels", scene.labels, "--out", str(model), "--text-encoder", "minilm",
              "--epochs-stage1", "4", "--epochs-stage2", "2", "--patch-size", "5")
    assert run.returncode == 0, run.stderr
    assert model.exists()
    run = cli("classify", "--model", str(model), f"--modality=lidar={scene.paths['lidar']}", "--out",
              str(tmp_path / "map.tif"))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["pixels_per_case"] == {"lidar": 24 * 24}
    run = cli("evaluate", "--model", str(model), *layers, "--labels", scene.labels, "--json", str(tmp_path / "e.json"))
    assert run.returncode == 0, run.stderr
    figures = json.loads((tmp_path / "e.json").read_text())
    assert {"oa", "aa", "kappa", "per_class", "confusion", "modalities"} <= set(figures)
    assert figures["area_adjusted"] is None and json.loads(run.stdout)["oa_area"] is None
    run = cli("evaluate", "--map", str(tmp_path / "map.tif"), "--labels", scene.labels, "--html",
              str(tmp_path / "e.html"))
    assert run.returncode == 0, run.stderr
    assert 0 <= json.loads(run.stdout)["oa_area"]["estimate"] <= 100
    assert "Class areas and accuracies" in (tmp_path / "e.html").read_text(encoding="utf-8")
    run = cli("info", str(model), "--json", str(tmp_path / "i.json"), "--html", str(tmp_path / "i.html"))
    assert run.returncode == 0, run.stderr
    info = json.loads((tmp_path / "i.json").read_text())
    assert info["summary"]["n_classes"] == 3 and info["summary"]["n_cases"] == 2
    lines = run.stdout.splitlines()
    assert lines[0].startswith(f"model m.lvpc (format 1), trained {info['created']}")
    assert "sensor hs: 8 bands from hs.tif; band names: -, -, -, -, -, -, -, -" in lines
    assert "training grid: 24 x 24 pixels of 10 m, EPSG:32633, origin 500000, 5100000" in lines
    assert f"absence case lidar (missing hs): validation OA {info['cases'][1]['validation_oa']:.1f} % with " \
           "learned prompts" in run.stdout
    assert "<h1>LVPC model</h1>" in (tmp_path / "i.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("args,expected", [
    (["classify", "--model", "nope.lvpc", "--modality", "hs=x.tif", "--out", "o.tif"], "MODEL"),
    (["info", "nope.lvpc"], "MODEL: 'nope.lvpc' does not exist"),
    (["train", "--modality", "hs=a.tif", "--modality", "hs=b.tif", "--labels", "l.tif", "--out", "m.lvpc"], "twice"),
    (["evaluate", "--model", "m.lvpc", "--map", "map.tif", "--labels", "l.tif"], "not allowed with argument"),
])
def test_errors_are_one_line_and_exit_1(tmp_path, args, expected):
    run = cli(*args, cwd=tmp_path)
    assert run.returncode == 1
    assert expected in run.stderr and "Traceback" not in run.stderr


def test_describe_writes_an_editable_table(tmp_path):
    out = tmp_path / "d.csv"
    run = cli("describe", "--classes", "forest,water,roads", "--modalities", "hs,lidar,sar", "--out", str(out))
    assert run.returncode == 0, run.stderr
    header = out.read_text().splitlines()[0]
    assert header == '"class","shared","hs","lidar","sar"'
