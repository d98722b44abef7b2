"""Bad input through `python -m lvpcnet_core`, as a user meets it: exit 1, one `error:` line naming the layer or
parameter, no traceback, nothing written, the previous file at the output path intact; and the messy inputs that
must work (points, NULL classes, sub-pixel polygons, a one-pixel class, other CRSs, wild resolutions, 1-pixel scenes).

The bad files are made by the builders below; tests/qgis/test_bad_input.py feeds the same kinds to qgis_process.
One tiny model is trained (by the CLI, on messy but valid ROIs) and reused; the CLI runs go in parallel.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal, ogr, osr

from lvpcnet_core.raster_io import Grid, write_raster
from lvpcnet_core.synthetic import make_scene

REPO = Path(__file__).resolve().parents[2]
PREVIOUS = b"the user's previous file"
TINY = ["--text-encoder", "minilm", "--epochs-stage1", "2", "--epochs-stage2", "1", "--patch-size", "5",
        "--device", "cpu"]


# ---- builders of bad (and messy but valid) files; tests/qgis/test_bad_input.py uses them too ----

def srs_of(wkt: str) -> osr.SpatialReference:
    srs = osr.SpatialReference()
    srs.ImportFromWkt(wkt)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def write_features(path: Path, wkt: str | None, features: list[tuple[str, object]],
                   kind: int = ogr.OFTString, layer: str = "rois") -> Path:
    """A GeoPackage layer of (geometry WKT, class value) with the class in field 'class'; None = NULL class."""
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(path))
    lyr = ds.CreateLayer(layer, srs_of(wkt) if wkt else None, ogr.wkbUnknown)
    lyr.CreateField(ogr.FieldDefn("class", kind))
    for geometry, value in features:
        feature = ogr.Feature(lyr.GetLayerDefn())
        feature.SetGeometry(ogr.CreateGeometryFromWkt(geometry))
        if value is not None:
            feature.SetField("class", value)
        lyr.CreateFeature(feature)
    ds = None
    return path


def pixel_square(grid: Grid, col: int, row: int, size: float = 1.0) -> str:
    """A square polygon of `size` pixels a side, centred on pixel (col, row)."""
    x, y = grid.geotransform[0] + (col + 0.5) * grid.geotransform[1], grid.geotransform[3] + (row + 0.5) * grid.geotransform[5]
    h = abs(grid.geotransform[1]) * size / 2
    return f"POLYGON(({x - h} {y - h},{x + h} {y - h},{x + h} {y + h},{x - h} {y + h},{x - h} {y - h}))"


def pixel_point(grid: Grid, col: int, row: int) -> str:
    return f"POINT({grid.geotransform[0] + (col + 0.5) * grid.geotransform[1]} " \
           f"{grid.geotransform[3] + (row + 0.5) * grid.geotransform[5]})"


def messy_rois(path: Path, grid: Grid, classes: np.ndarray) -> Path:
    """Valid but messy training ROIs: polygons for the first class, points for the others, one polygon smaller than
    a pixel, features with a NULL and an empty class, and a class ('lonely') labelling a single pixel."""
    features: list[tuple[str, object]] = []
    names = {1: "built-up", 2: "forest", 3: "water"}
    rows, cols = np.nonzero(classes[2:-2, 2:-2])
    for row, col in zip(rows + 2, cols + 2):
        code = int(classes[row, col])
        if (row + col) % 3:
            continue
        features.append((pixel_square(grid, col, row, 1.2) if code == 1 else pixel_point(grid, col, row), names[code]))
    features.append((pixel_square(grid, 3, 3, 0.3), "forest"))
    features += [(pixel_square(grid, 5, 5, 2), None), (pixel_square(grid, 6, 6, 2), "  ")]
    features.append((pixel_point(grid, 1, 1), "lonely"))
    return write_features(path, grid.crs_wkt, features)


def translated(source: str, out: Path, **options) -> Path:
    """gdal.Translate/Warp of `source` (Warp when a CRS or resolution change is asked)."""
    warp = {"dstSRS", "xRes", "yRes"} & set(options)
    (gdal.Warp if warp else gdal.Translate)(str(out), str(source), **options)  # dropped at once: closed, written
    return out


def shifted(source: str, out: Path, dx: float) -> Path:
    """The same raster moved `dx` map units east: it no longer overlaps the original."""
    translated(source, out)
    ds = gdal.Open(str(out), gdal.GA_Update)
    x0, *rest = ds.GetGeoTransform()
    ds.SetGeoTransform((x0 + dx, *rest))
    ds = None
    return out


def without_crs(source: str, out: Path) -> Path:
    translated(source, out)
    ds = gdal.Open(str(out), gdal.GA_Update)
    ds.SetProjection("")
    ds = None
    return out


def first_bands(source: str, out: Path, n: int) -> Path:
    return translated(source, out, bandList=list(range(1, n + 1)))


def all_nodata(source: str, out: Path) -> Path:
    ds = gdal.Open(source)
    write_raster(str(out), np.full((ds.RasterCount, ds.RasterYSize, ds.RasterXSize), -9999, np.float32),
                 Grid.from_dataset(ds), nodata=-9999)
    return out


def overflowing(source: str, out: Path) -> Path:
    """Float64 with values beyond float32 (1e300 becomes inf) and NaN: nodata there, the rest classified."""
    ds = gdal.Open(source)
    array = ds.ReadAsArray().astype(np.float64).reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)
    array[:, 0, 0], array[:, 0, 1], array[:, 0, 2] = 1e300, -np.inf, np.nan
    write_raster(str(out), array, Grid.from_dataset(ds))
    return out


def wide_integers(source: str, out: Path) -> Path:
    """Int64 values near 1e18 (beyond float32's exact integers), the top-left pixel at the Int64 minimum = nodata."""
    ds = gdal.Open(source)
    array = (ds.ReadAsArray().reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize) * 1e15).astype(np.int64)
    nodata = int(np.iinfo(np.int64).min)
    array[:, 0, 0] = nodata
    write_raster(str(out), array, Grid.from_dataset(ds), nodata=nodata)
    return out


def corner(source: str, out: Path, size: int) -> Path:
    """The top-left `size` x `size` pixels: a scene smaller than the model's window."""
    return translated(source, out, srcWin=[0, 0, size, size])


def truncated_model(model: Path, out: Path) -> Path:
    out.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    return out


def not_a_model(raster: str, out: Path) -> Path:
    out.write_bytes(Path(raster).read_bytes())
    return out


def model_metadata(model: Path) -> dict:
    """The JSON metadata of a model file, read from its header."""
    data = model.read_bytes()
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    return json.loads(header["__metadata__"]["lvpc"])


def with_metadata(model: Path, out: Path, meta: dict | str) -> Path:
    """The model with its metadata replaced (a dict, or raw text such as broken JSON); tensors untouched."""
    data = model.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    header["__metadata__"]["lvpc"] = meta if isinstance(meta, str) else json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    out.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length:])
    return out


def changed(meta: dict, path: tuple, value: object = KeyError) -> dict:
    """A deep copy of `meta` with the key at `path` set to `value`, or removed (the default)."""
    meta = json.loads(json.dumps(meta))
    *parents, last = path
    node = meta
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return meta


def newer_model(model: Path, out: Path) -> Path:
    """The model with its metadata claiming a future format version (header rewritten, tensors untouched)."""
    return with_metadata(model, out, changed(model_metadata(model), ("format_version",), 99))


# The damaged models the issue met as tracebacks: safetensors valid, the JSON metadata wrong.
DAMAGED_METADATA: dict[str, Callable[[dict], dict | str]] = {
    "bad JSON": lambda m: json.dumps(m)[:-5],
    "config key missing": lambda m: changed(m, ("config", "width")),
    "config key unknown": lambda m: changed(m, ("config", "colour"), 3),
    "config key mistyped": lambda m: changed(m, ("config", "depth"), "four"),
    "bad cases entry": lambda m: changed(m, ("cases", 0), "hs->hs"),
    "no colours": lambda m: changed(m, ("colors",)),
    "class values > 255": lambda m: changed(m, ("class_values", 0), 300),
    "metadata not an object": lambda m: json.dumps([m]),
    "modalities mistyped": lambda m: changed(m, ("config", "modalities"), "hs,lidar"),
}


def damaged_models(model: Path, folder: Path) -> dict[str, Path]:
    meta = model_metadata(model)
    return {f"damaged: {name}": with_metadata(model, folder / f"damaged_{i}.lvpc", make(meta))
            for i, (name, make) in enumerate(DAMAGED_METADATA.items())}


def label_raster(source: str, out: Path, codes: tuple[float, float]) -> Path:
    """A Float32 label raster on `source`'s grid: the left half `codes[0]`, the right half `codes[1]`."""
    ds = gdal.Open(source)
    labels = np.zeros((ds.RasterYSize, ds.RasterXSize), np.float32)
    labels[:, : ds.RasterXSize // 2], labels[:, ds.RasterXSize // 2:] = codes
    write_raster(str(out), labels, Grid.from_dataset(ds))
    return out


def vrt_without_source(source: str, out: Path) -> Path:
    """A VRT over a copy of `source` that is then deleted, as when a VRT is moved without its files."""
    copy = translated(source, out.with_suffix(".source.tif"))
    gdal.BuildVRT(str(out), [str(copy)])  # dropped at once: written
    copy.unlink()
    return out


def truncated_raster(source: str, out: Path) -> Path:
    """A GeoTIFF cut after its header, as a copy interrupted half way."""
    data = Path(source).read_bytes()
    out.write_bytes(data[: len(data) // 2])
    return out


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def pickle_bomb(out: Path, marker: Path) -> Path:
    """A pickle (the format of torch.save) that creates `marker` when unpickled: loading must not run it."""
    out.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    return out


def without_case(model: Path, out: Path, case: str) -> Path:
    """The model minus the prompts of one absence case, as a model trained before that case was added."""
    from lvpcnet_core.model_file import load_model, save_model

    net, info = load_model(model)
    del net.compensators[case]
    save_model(out, net, info)
    return out


# ---- the CLI cases ----

@dataclass
class Case:
    """One CLI run: the arguments after `python -m lvpcnet_core`, and what the user must see.

    `error` set: exit 1, the last stderr line `error: ...` containing it, and the case's folder byte for byte as it
    was: `output` (PREVIOUS before the run, unless it is one of the inputs copied there) and every other file.
    `error` None: exit 0 and `log` in stderr.
    """

    args: list[str]
    output: Path
    error: str | None = None
    log: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)   # environment variables of this run


def cli(args: list[str], timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lvpcnet_core", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env or {})},
                          timeout=timeout)


def bad_files(folder: Path, hs: str, lidar: str, grid, model: Path, water: tuple[int, int],
              lidar_corner: int) -> dict:
    """The bad layers, ROIs and model files both the CLI and the qgis_process tests feed in (`model` must exist)."""
    inside = [(pixel_square(grid, 4, 4, 3), "forest"), (pixel_square(grid, *water, 3), "water")]
    far = [(pixel_square(grid, c + 10000, r, 3), name) for (c, r), name in (((4, 4), "forest"), (water, "water"))]
    return {
        "far": shifted(lidar, folder / "far.tif", 100_000.0),
        "no_crs": without_crs(translated(lidar, folder / "small.tif", width=12, height=12), folder / "no_crs.tif"),
        "fine": translated(lidar, folder / "fine.tif", xRes=0.5, yRes=0.5, resampleAlg="near"),
        "hs3": first_bands(hs, folder / "hs3.tif", 3),
        "empty_nodata": all_nodata(lidar, folder / "empty_nodata.tif"),
        "overflow": overflowing(hs, folder / "overflow.tif"),
        "int64": wide_integers(lidar, folder / "int64.tif"),
        "hs1": corner(hs, folder / "hs1.tif", 1), "lidar1": corner(lidar, folder / "lidar1.tif", 1),
        "hs3px": corner(hs, folder / "hs3px.tif", 3),
        "lidar3px": corner(lidar, folder / "lidar3px.tif", lidar_corner),
        "rois_empty": write_features(folder / "rois_empty.gpkg", grid.crs_wkt, []),
        "rois_far": write_features(folder / "rois_far.gpkg", grid.crs_wkt, far),
        "rois_null": write_features(folder / "rois_null.gpkg", grid.crs_wkt, [(w, None) for w, _ in inside]),
        "rois_one": write_features(folder / "rois_one.gpkg", grid.crs_wkt, [(w, "forest") for w, _ in inside]),
        "rois_no_crs": write_features(folder / "rois_no_crs.gpkg", None, inside),
        "truncated": truncated_model(model, folder / "truncated.lvpc"),
        "not_lvpc": not_a_model(hs, folder / "not_lvpc.lvpc"),
        "newer": newer_model(model, folder / "newer.lvpc"),
        "bomb": pickle_bomb(folder / "bomb.lvpc", folder / "BOMB_RAN"),
        "no_lidar_case": without_case(model, folder / "no_lidar_case.lvpc", "lidar->hs"),
        "labels_fraction": label_raster(lidar, folder / "labels_fraction.tif", (1.5, 2.7)),
        "labels_negative": label_raster(lidar, folder / "labels_negative.tif", (-1, 2)),
        "labels_300": label_raster(lidar, folder / "labels_300.tif", (1, 300)),
        "vrt_missing": vrt_without_source(lidar, folder / "vrt_missing.vrt"),
        "truncated_tif": truncated_raster(lidar, folder / "truncated_tif.tif"),
        **damaged_models(model, folder),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The scene, a model trained by the CLI on messy ROIs (with its run), and the bad files."""
    folder = tmp_path_factory.mktemp("bad")
    scene = make_scene(folder / "scene", width=24, height=24)
    hs, lidar = scene.paths["hs"], scene.paths["lidar"]
    rois = messy_rois(folder / "messy.gpkg", scene.grid, scene.classes)
    model = folder / "model.lvpc"
    trained = cli(["train", f"--modality=hs={hs}", f"--modality=lidar={lidar}", "--rois", str(rois),
                   "--class-field", "class", *TINY, "--out", str(model)])
    assert trained.returncode == 0, trained.stderr
    files = {"hs": hs, "utm32": translated(lidar, folder / "utm32.tif", dstSRS="EPSG:32632"),
             **bad_files(folder, hs, lidar, scene.grid, model, water=(12, 12), lidar_corner=3)}
    files["rois_codes"] = write_features(folder / "rois_codes.gpkg", scene.grid.crs_wkt,
                                         [(pixel_square(scene.grid, c, r, 3), 300) for c, r in ((4, 4), (12, 12))],
                                         kind=ogr.OFTInteger)
    return {"folder": folder, "scene": scene, "model": model, "trained": trained, **files}


class Ctx:
    """Argument builders for one case: the world's files, and `out`, the case's own output folder."""

    def __init__(self, world: dict, out: Path) -> None:
        self.w, self.out = world, out
        self.hs = f"--modality=hs={world['scene'].paths['hs']}"
        self.lidar = f"--modality=lidar={world['scene'].paths['lidar']}"
        self.labels = ["--labels", world["scene"].labels]
        self.model, self.map, self.figures = out / "model.lvpc", out / "map.tif", out / "figures.json"

    def layer(self, modality: str, name: str) -> str:
        return f"--modality={modality}={self.w[name]}"

    def copy(self, name: str, as_name: str | None = None) -> Path:
        """The world's file `name` copied into the case's folder (with a .qml style beside it), to be written over."""
        scene = self.w["scene"]
        source = self.w[name] if name in self.w else scene.paths.get(name) or getattr(scene, name)
        return copy_input(Path(source), self.out, as_name)

    def rois(self, name: str, field: str = "class") -> list[str]:
        return ["--rois", str(self.w[name]), "--class-field", field]

    def train(self, *layers: str, labels: list[str] | None = None) -> list[str]:
        return ["train", *layers, *(labels or self.labels), *TINY, "--out", str(self.model)]

    def classify(self, *layers: str, model: str = "model") -> list[str]:
        return ["classify", "--model", str(self.w[model]), *layers, "--out", str(self.map),
                "--confidence", str(self.out / "confidence.tif")]

    def evaluate(self, *layers: str, model: str = "model", labels: list[str] | None = None) -> list[str]:
        return ["evaluate", "--model", str(self.w[model]), *layers, *(labels or self.labels),
                "--json", str(self.figures)]


def copy_input(source: Path, folder: Path, as_name: str | None = None) -> Path:
    """A copy of an input in `folder`, with a .qml style of its own beside it (the user's style of that layer)."""
    target = folder / (as_name or source.name)
    target.write_bytes(source.read_bytes())
    target.with_suffix(".qml").write_text("<qgis>the user's style</qgis>", encoding="utf-8")
    return target


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file in `folder` (its subfolders too) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


OUT_OF_RANGE = [("--batch-size", "0", "an integer from 1 to 65536"), ("--patch-size", "4", "an odd integer from 5 to 33"),
                ("--validation-fraction", "1.5", "a number from 0 to 0.5"), ("--threads", "-1", "an integer from 1 to 1024"),
                ("--learning-rate", "nan", "a number from 1e-07 to 1, not nan"),
                ("--block-size", "0", "an integer from 1 to 4096"), ("--block-size", "-5", "an integer from 1 to 4096")]

CASES: dict[str, Callable[[Ctx], Case]] = {
    "no overlap": lambda c: Case(c.train(c.hs, c.layer("lidar", "far")), c.model,
                                 "Layer 'lidar' does not overlap the reference layer 'hs'"),
    "no overlap (classify)": lambda c: Case(c.classify(c.hs, c.layer("lidar", "far")), c.map, "does not overlap"),
    "layer without CRS": lambda c: Case(c.classify(c.hs, c.layer("lidar", "no_crs")), c.map,
                                        f"Layer 'lidar' ({c.w['no_crs']}) has no coordinate reference system"),
    "other CRS": lambda c: Case(c.classify(c.hs, c.layer("lidar", "utm32")), c.map,
                                log=["lidar: reprojected from EPSG:32632 to EPSG:32633"]),
    "20x finer resolution": lambda c: Case(c.classify(c.hs, c.layer("lidar", "fine")), c.map,
                                           log=["lidar: resampled from 0.5 m to 10 m with average (source is finer)"]),
    "one modality for training": lambda c: Case(c.train(c.hs), c.model, "training needs at least two modalities"),
    "band count differs": lambda c: Case(c.classify(c.layer("hs", "hs3"), c.lidar), c.map,
                                         "layer HS has 3 bands but the model was trained with 8"),
    "same file twice": lambda c: Case(c.train(c.hs, c.layer("lidar", "hs")), c.model,
                                      "Modalities 'hs' and 'lidar' both use the file"),
    "ROIs: empty layer": lambda c: Case(c.train(c.hs, c.lidar, labels=c.rois("rois_empty")), c.model,
                                        "has no features with a geometry"),
    "ROIs: none inside the raster": lambda c: Case(c.train(c.hs, c.lidar, labels=c.rois("rois_far")), c.model,
                                                   f"No ROI of {c.w['rois_far']} falls inside"),
    "ROIs: class field missing": lambda c: Case(c.train(c.hs, c.lidar, labels=c.rois("rois_one", "klass")), c.model,
                                                "has no field 'klass': choose one of ['class']"),
    "ROIs: all classes NULL": lambda c: Case(c.train(c.hs, c.lidar, labels=c.rois("rois_null")), c.model,
                                             "has no features with a geometry and a 'class' value"),
    "ROIs: only one class": lambda c: Case(c.train(c.hs, c.lidar, labels=c.rois("rois_one")), c.model,
                                           "gives only one class (forest)"),
    "ROIs: codes outside 1..255": lambda c: Case(c.train(c.hs, c.lidar, labels=c.rois("rois_codes")), c.model,
                                                 "Class codes [300] in field 'class'"),
    "ROIs: no CRS (evaluate)": lambda c: Case(c.evaluate(c.hs, c.lidar, labels=c.rois("rois_no_crs")), c.figures,
                                              log=["CRS missing on the ROIs or the grid"]),
    "raster: all nodata": lambda c: Case(c.train(c.hs, c.layer("lidar", "empty_nodata")), c.model,
                                         "layer 'lidar' has no valid pixels (all nodata)"),
    "raster: float64 beyond float32, NaN, -inf": lambda c: Case(c.classify(c.layer("hs", "overflow"), c.lidar), c.map,
                                                                log=["3 pixels classified with lidar"]),
    "raster: Int64 near 1e18, nodata -2**63": lambda c: Case(c.classify(c.hs, c.layer("lidar", "int64")), c.map,
                                                             log=["1 pixels classified with hs"]),
    "raster: 1 pixel": lambda c: Case(c.classify(c.layer("hs", "hs1"), c.layer("lidar", "lidar1")), c.map,
                                      log=["1 pixels classified with hs+lidar"]),
    "raster: smaller than the window": lambda c: Case(c.classify(c.layer("hs", "hs3px"), c.layer("lidar", "lidar3px")),
                                                      c.map, log=["9 pixels classified with hs+lidar"]),
    "model: truncated": lambda c: Case(c.classify(c.hs, c.lidar, model="truncated"), c.map,
                                       "MODEL: 'truncated.lvpc' is not a readable LVPC model file"),
    "model: not LVPC": lambda c: Case(c.classify(c.hs, c.lidar, model="not_lvpc"), c.map,
                                      "MODEL: 'not_lvpc.lvpc' is not a readable LVPC model file"),
    "model: newer format": lambda c: Case(c.evaluate(c.hs, c.lidar, model="newer"), c.figures,
                                          "was written by a newer LVPC (model format 99"),
    "evaluate --map 1.5 and 2.7": lambda c: Case(["evaluate", "--map", str(c.w["labels_fraction"]), *c.labels, "--json",
                                                  str(c.figures)], c.figures,
                                                 "holds values that are not class codes (1.5, 2.7)"),
    "evaluate --map with a layer": lambda c: Case(["evaluate", "--map", c.w["scene"].labels, c.lidar, *c.labels,
                                                   "--json", str(c.figures)], c.figures,
                                                  "with MAP, the map is evaluated as it is: leave LIDAR empty"),
    "model: pickle crafted to run code": lambda c: Case(c.classify(c.hs, c.lidar, model="bomb"), c.map,
                                                        "MODEL: 'bomb.lvpc' is not a readable LVPC model file"),
    "LVPC_BF16 neither 0, 1 nor auto": lambda c: Case(c.classify(c.hs, c.lidar), c.map, "LVPC_BF16='yes': use 0 (fp32), "
                                                      "1 (bf16) or auto", env={"LVPC_BF16": "yes"}),
    "subset without prompts": lambda c: Case(c.classify(c.lidar, model="no_lidar_case"), c.map, "lvpc:learnprompts"),
    # outputs that name an input, another output, a folder or nowhere: refused before any work
    "classify --out = the LiDAR input": lambda c: Case(
        ["classify", "--model", str(c.w["model"]), c.hs, f"--modality=lidar={c.copy('lidar')}", "--out",
         str(c.out / "lidar.tif")], c.out / "lidar.tif", "OUTPUT: '" + str(c.out / "lidar.tif") + "' is a file of the input LIDAR"),
    "classify --out beside the LiDAR input (its .qml)": lambda c: Case(
        ["classify", "--model", str(c.w["model"]), c.hs, f"--modality=lidar={c.copy('lidar')}", "--out",
         str(c.out / "lidar.tiff")], c.out / "lidar.tiff",
        "OUTPUT (its companion file lidar.qml): '" + str(c.out / "lidar.qml") + "' is a file of the input LIDAR"),
    "train --out = the label raster": lambda c: Case(
        ["train", c.hs, c.lidar, "--labels", str(c.copy("labels", "labels.tif")), *TINY, "--out",
         str(c.out / "labels.tif")], c.out / "labels.tif", "OUTPUT_MODEL: '" + str(c.out / "labels.tif") + "' is a file of the input LABELS"),
    "evaluate --json = the HS raster": lambda c: Case(
        ["evaluate", "--model", str(c.w["model"]), f"--modality=hs={c.copy('hs')}", c.lidar, *c.labels, "--json",
         str(c.out / "hs.tif")], c.out / "hs.tif", "OUTPUT_JSON: '" + str(c.out / "hs.tif") + "' is a file of the input HS"),
    "classify --confidence = the model": lambda c: Case(
        ["classify", "--model", str(c.copy("model")), c.hs, c.lidar, "--out", str(c.map), "--confidence",
         str(c.out / "model.lvpc")], c.map, "CONFIDENCE: '" + str(c.out / "model.lvpc") + "' is a file of the input MODEL"),
    "classify --confidence = --out": lambda c: Case(
        ["classify", "--model", str(c.w["model"]), c.hs, c.lidar, "--out", str(c.map), "--confidence", str(c.map)],
        c.map, "CONFIDENCE: '" + str(c.map) + "' is also written as OUTPUT"),
    "output is a folder": lambda c: Case(c.train(c.hs, c.lidar)[:-1] + [str(c.out)], c.model,
                                         f"OUTPUT_MODEL: '{c.out}' is a folder"),
    "output folder missing": lambda c: Case(c.train(c.hs, c.lidar)[:-1] + [str(c.out / "nope" / "m.lvpc")], c.model,
                                            f"OUTPUT_MODEL: the folder '{c.out / 'nope'}' does not exist"),
    "prompts --out beside the model is no in-place update": lambda c: Case(
        ["prompts", "--model", str(c.copy("model")), c.hs, c.lidar, *c.labels, "--available", "lidar", *TINY[2:],
         "--out", str(c.out / "model.qml")], c.out / "model.qml", "is a file of the input MODEL"),
    # numbers out of range: refused by the parser, one line, exit 1
    **{f"{flag} {value}": (lambda c, flag=flag, value=value, message=message: Case(
        (c.classify(c.hs, c.lidar) if flag == "--block-size" else c.train(c.hs, c.lidar)) + [flag, value],
        c.map if flag == "--block-size" else c.model, f"{flag}: must be {message}"))
       for flag, value, message in OUT_OF_RANGE},
    # modality names
    "modality name h.s": lambda c: Case(c.train(f"--modality=h.s={c.w['hs']}", c.lidar), c.model,
                                        "modality name 'h.s' must be a lowercase identifier"),
    "modality name shared": lambda c: Case(c.train(f"--modality=shared={c.w['hs']}", c.lidar), c.model,
                                           "modality name 'shared' is a reserved word"),
    # label rasters: integer codes 1..255 only
    "labels 1.5 and 2.7": lambda c: Case(c.train(c.hs, c.lidar, labels=["--labels", str(c.w["labels_fraction"])]),
                                         c.model, "holds values that are not class codes (1.5, 2.7)"),
    "labels -1": lambda c: Case(c.train(c.hs, c.lidar, labels=["--labels", str(c.w["labels_negative"])]), c.model,
                                "holds values that are not class codes (-1)"),
    "labels 300": lambda c: Case(c.train(c.hs, c.lidar, labels=["--labels", str(c.w["labels_300"])]), c.model,
                                 "holds values that are not class codes (300)"),
    # broken rasters
    "VRT whose source is missing": lambda c: Case(c.classify(c.hs, c.layer("lidar", "vrt_missing")), c.map,
                                                  "Layer 'lidar'"),
    "truncated GeoTIFF": lambda c: Case(c.classify(c.hs, c.layer("lidar", "truncated_tif")), c.map, "Layer 'lidar'"),
    # damaged model metadata
    **{name: (lambda c, name=name: Case(c.classify(c.hs, c.lidar, model=name), c.map, "is damaged: "))
       for name in (f"damaged: {n}" for n in DAMAGED_METADATA) if name != "damaged: metadata not an object"},
    "damaged: metadata not an object": lambda c: Case(c.classify(c.hs, c.lidar, model="damaged: metadata not an object"),
                                                      c.map, "is not an LVPC model file"),
}


def run_cases(world: dict, cases: dict, context: type, run) -> dict:
    """Every case run once by `run(case)`, two at a time, each in its own folder holding a previous output file."""
    prepared = {}
    for i, (name, make) in enumerate(cases.items()):
        folder = world["folder"] / f"out{i}"
        folder.mkdir()
        case = make(context(world, folder))
        if case.error and not case.output.exists():
            case.output.write_bytes(PREVIOUS)
        prepared[name] = (case, folder, snapshot(folder))
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda item: run(item[0]), prepared.values()))
    return {name: (case, result, folder, before)
            for (name, (case, folder, before)), result in zip(prepared.items(), done)}


@pytest.fixture(scope="module")
def runs(world: dict) -> dict[str, tuple[Case, subprocess.CompletedProcess, Path, dict[str, bytes]]]:
    return run_cases(world, CASES, Ctx, lambda case: cli(case.args, env=case.env))


def test_messy_but_valid_rois_train(world: dict) -> None:
    """Points, a polygon smaller than a pixel, NULL/empty classes and a class of one pixel: trained, each logged."""
    log = world["trained"].stderr
    assert "skipped 2 feature(s) with an empty 'class'" in log
    assert "1 polygon(s) smaller than a pixel were burned as the pixel under their centre" in log
    assert "training pixels per class: built-up" in log and "lonely 1" in log
    from lvpcnet_core.model_file import read_metadata

    assert read_metadata(world["model"])["class_names"] == ["built-up", "forest", "lonely", "water"]


@pytest.mark.parametrize("name", list(CASES))
def test_cli(runs: dict, world: dict, name: str) -> None:
    case, run, folder, before = runs[name]
    if case.error is None:
        assert run.returncode == 0, run.stderr
        for line in case.log:
            assert line in run.stderr
        assert case.output.is_file()
        return
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert lines and lines[-1].startswith("error: ") and case.error in lines[-1], run.stderr
    assert sum(line.startswith("error: ") for line in lines) == 1, run.stderr
    assert snapshot(folder) == before
    assert not (world["folder"] / "BOMB_RAN").exists()
