"""workflows.evaluate with MAP: an existing class map against reference labels, with the Olofsson area table."""
import json

import numpy as np
import pytest

from lvpcnet_core import workflows
from lvpcnet_core.accuracy import assess
from lvpcnet_core.errors import LvpcError
from lvpcnet_core.raster_io import ClassMapWriter, Grid, scan_class_map, write_raster
from lvpcnet_core.synthetic import EPSG_32633

GRID = Grid(EPSG_32633, (500000.0, 10.0, 0.0, 5100000.0, 0.0, -10.0), 20, 20)  # 10 m: 0.01 ha a pixel


def class_map(path, names=("forest", "water")) -> np.ndarray:
    """Class 1 in columns 0-11, class 2 in 12-19, the last row unclassified (0), written as lvpc:classify does."""
    codes = np.where(np.arange(20) < 12, 1, 2)[None, :].repeat(20, 0).astype(np.uint8)
    codes[19] = 0
    with ClassMapWriter(str(path), GRID, [1, 2], list(names), [(0, 100, 0), (0, 0, 200)]) as writer:
        writer.write(0, 0, codes)
    return codes


def reference(path, extra: dict[tuple[int, int], int] | None = None) -> str:
    """Every other pixel: class 1 in columns 0-9, class 2 from column 10 (the map calls column 10 class 1)."""
    labels = np.zeros((20, 20), np.uint8)
    labels[0:19:2, 0:20:2] = np.where(np.arange(0, 20, 2) < 10, 1, 2)
    for (row, col), code in (extra or {}).items():
        labels[row, col] = code
    write_raster(str(path), labels, GRID, nodata=0)
    return str(path)


def test_map_counts_strata_and_the_area_table(tmp_path) -> None:
    class_map(tmp_path / "map.tif")
    labels = reference(tmp_path / "ref.tif", {(19, 1): 1})  # on the unclassified row: not scored
    out_json, out_html = tmp_path / "a.json", tmp_path / "a.html"
    result = workflows.evaluate(None, {}, workflows.LabelSource(raster=labels), map_path=str(tmp_path / "map.tif"),
                                json_path=str(out_json), html_path=str(out_html))
    assert result["class_names"] == ["forest", "water"]  # the map's category names
    assert result["confusion"] == [[50, 0], [10, 40]] and result["oa"] == 90.0
    assert result["unclassified_reference_pixels"] == 1
    area = result["area_adjusted"]
    forest, water = area["per_class"]["forest"], area["per_class"]["water"]
    assert (forest["map_pixels"], water["map_pixels"]) == (12 * 19, 8 * 19)
    assert forest["map_area"] == pytest.approx(2.28) and area["area_unit"] == "ha"
    # forest: 228 mapped pixels, 50 of its 60 samples are forest -> 190 pixels; water gets the other 190
    assert forest["area_pixels"]["estimate"] == pytest.approx(190) and forest["area"]["estimate"] == pytest.approx(1.9)
    assert water["area"]["estimate"] == pytest.approx(1.9)
    expected = assess([[50, 10], [0, 40]], [228, 152], ["forest", "water"], 0.01, "ha").to_dict()
    assert area == expected  # the file's counts and strata, through the same estimator
    assert json.loads(out_json.read_text())["area_adjusted"]["overall_accuracy"]["ci95"] == pytest.approx(
        expected["overall_accuracy"]["ci95"])
    page = out_html.read_text(encoding="utf-8")
    assert "Class areas and accuracies" in page and "1.90 &plusmn; " in page and "<svg" in page


def test_scan_reads_in_strips_of_rows(tmp_path) -> None:
    codes = class_map(tmp_path / "map.tif")
    labels = np.zeros((20, 20), np.int32)
    labels[::3, ::2] = 1
    whole = scan_class_map(str(tmp_path / "map.tif"), labels)
    strips = scan_class_map(str(tmp_path / "map.tif"), labels, rows_per_block=3)
    assert (whole[0] == strips[0]).all() and (whole[1] == strips[1]).all()
    assert whole[0][1:3].tolist() == [228, 152] and whole[0][0] == 0
    assert whole[1].tolist() == codes[labels != 0].tolist()


def test_reference_class_missing_from_the_map_is_an_omission(tmp_path) -> None:
    class_map(tmp_path / "map.tif")
    labels = reference(tmp_path / "ref.tif", {(1, 1): 3})
    result = workflows.evaluate(None, {}, workflows.LabelSource(raster=labels), map_path=str(tmp_path / "map.tif"))
    assert result["class_names"] == ["forest", "water", "class 3"]
    third = result["area_adjusted"]["per_class"]["class 3"]
    assert third["map_pixels"] == 0 and third["users_accuracy"]["estimate"] is None
    assert third["producers_accuracy"]["estimate"] == 0.0 and third["area_pixels"]["estimate"] > 0


@pytest.mark.parametrize("case, message", [
    ("both", "exactly one of MODEL .* not both"),
    ("neither", "exactly one of MODEL .* not neither"),
    ("layers", "leave HS empty"),
    ("float map", "not class codes"),
    ("other codes", "share no class code"),
])
def test_bad_map_input_is_explained_and_writes_nothing(tmp_path, case: str, message: str) -> None:
    class_map(tmp_path / "map.tif")
    labels = reference(tmp_path / "ref.tif")
    map_path, model, layers = str(tmp_path / "map.tif"), None, {}
    if case == "both":
        model = str(tmp_path / "m.lvpc")
    elif case == "neither":
        map_path = None
    elif case == "layers":
        layers = {"hs": labels}
    elif case == "float map":
        write_raster(str(tmp_path / "conf.tif"), np.full((20, 20), 0.75, np.float32), GRID)
        map_path = str(tmp_path / "conf.tif")
    else:
        write_raster(str(tmp_path / "other.tif"), np.full((20, 20), 7, np.uint8), GRID, nodata=0)
        map_path = str(tmp_path / "other.tif")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(LvpcError, match=message):
        workflows.evaluate(model, layers, workflows.LabelSource(raster=labels), map_path=map_path,
                           json_path=str(tmp_path / "a.json"), html_path=str(tmp_path / "a.html"))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
