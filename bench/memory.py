"""Benchmark 2: peak resident memory of `python -m lvpcnet_core classify`, `train` and `evaluate` on 1, 4 and 16
megapixel scenes.

Scenes of 144 HS bands (Int16, reflectance x 10000, tiled, pixel-interleaved) + 1 LiDAR band (Float32) are
written block by block with GDAL, so generating them needs no scene-sized array, with two label rasters of
SPARSE_PIXELS labelled pixels each in separate squares spread over the scene (training and reference). The model
that classifies and evaluates is trained for 2 epochs on a 64 x 64 scene of the same kind; `train` runs one epoch
per stage on the scene itself. Each job runs as a child process; its peak RSS is the maximum resident set size
GNU time (/usr/bin/time) reports. Scenes are deleted afterwards.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import ROOT, fit, machine, save, table

HS_BANDS, TILE = 144, 256
SPARSE_PIXELS, SQUARE = 2000, 10   # labelled pixels per label raster, in squares of this side
JOBS = ("classify", "train", "evaluate")
# Architectures: the default one, and a light one that makes the 16 MP run take minutes instead of an hour
# (block arrays and token maps, not the weights, decide the memory).
MODELS = {"default": {}, "light": {"patch_size": 5, "token_grid": 1, "width": 16, "depth": 1}}


def write_scene(folder: Path, size: int, n_classes: int = 5, seed: int = 0) -> tuple[dict[str, str], str]:
    """(modality -> GeoTIFF, label GeoTIFF) of a size x size scene, written tile by tile."""
    from osgeo import gdal, osr

    from lvpcnet_core.synthetic import EPSG_32633

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    spectra = rng.integers(500, 5000, size=(n_classes + 1, HS_BANDS)).astype(np.int16)
    heights = rng.uniform(0, 30, size=n_classes + 1).astype(np.float32)
    noise = rng.normal(scale=300, size=(TILE, TILE, HS_BANDS)).astype(np.int16)
    srs = osr.SpatialReference(wkt=EPSG_32633)
    options = ["TILED=YES", f"BLOCKXSIZE={TILE}", f"BLOCKYSIZE={TILE}", "BIGTIFF=IF_SAFER"]
    paths = {"hs": str(folder / "hs.tif"), "lidar": str(folder / "lidar.tif")}
    label_path = str(folder / "labels.tif")
    driver = gdal.GetDriverByName("GTiff")
    files = {"hs": driver.Create(paths["hs"], size, size, HS_BANDS, gdal.GDT_Int16, options + ["INTERLEAVE=PIXEL"]),
             "lidar": driver.Create(paths["lidar"], size, size, 1, gdal.GDT_Float32, options),
             "labels": driver.Create(label_path, size, size, 1, gdal.GDT_Byte, options)}
    for ds in files.values():
        ds.SetGeoTransform((500000.0, 1.0, 0.0, 5100000.0, 0.0, -1.0))
        ds.SetProjection(srs.ExportToWkt())
    for yoff in range(0, size, TILE):
        for xoff in range(0, size, TILE):
            h, w = min(TILE, size - yoff), min(TILE, size - xoff)
            yy, xx = np.mgrid[yoff:yoff + h, xoff:xoff + w]
            classes = 1 + ((yy // 16) * 7 + (xx // 16) * 3) % n_classes
            hs = spectra[classes] + np.roll(noise, xoff + 3 * yoff, axis=0)[:h, :w]
            files["hs"].WriteRaster(xoff, yoff, w, h, np.ascontiguousarray(hs).tobytes(), band_list=list(range(1, HS_BANDS + 1)),
                                    buf_pixel_space=2 * HS_BANDS, buf_line_space=2 * HS_BANDS * w, buf_band_space=2)
            files["lidar"].GetRasterBand(1).WriteArray(heights[classes] + noise[:h, :w, 0] / 100.0, xoff, yoff)
            files["labels"].GetRasterBand(1).WriteArray(classes.astype(np.uint8), xoff, yoff)
    for ds in files.values():
        ds.FlushCache()
    files.clear()
    return paths, label_path


def write_sparse_labels(path: Path, size: int, shift: int, n_classes: int = 5) -> str:
    """A label raster of `size` with SPARSE_PIXELS labelled pixels in SQUARE-side squares on an even grid over the
    scene (`shift` squares along the grid, so two such rasters do not overlap), classes in turn, 0 elsewhere."""
    from osgeo import gdal

    from lvpcnet_core.synthetic import EPSG_32633

    squares = SPARSE_PIXELS // SQUARE**2
    per_side = int(np.ceil(squares**0.5))
    step = size // per_side
    ds = gdal.GetDriverByName("GTiff").Create(str(path), size, size, 1, gdal.GDT_Byte, ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((500000.0, 1.0, 0.0, 5100000.0, 0.0, -1.0))
    ds.SetProjection(EPSG_32633)
    band = ds.GetRasterBand(1)
    for k in range(squares):
        i, j = divmod(k, per_side)
        y, x = i * step + shift * SQUARE * 2, j * step + step // 2
        band.WriteArray(np.full((SQUARE, SQUARE), 1 + k % n_classes, np.uint8), x, y)
    ds.FlushCache()
    return str(path)


def train_model(folder: Path, architecture: dict) -> str:
    from lvpcnet_core import raster_io
    from lvpcnet_core.model_file import ModelInfo, save_model
    from lvpcnet_core.training import TrainSettings

    paths, label_path = write_scene(folder, 64)
    with raster_io.AlignedStack(paths, log=lambda _: None) as stack:
        arrays, grid = stack.read_all(), stack.grid
    labels = raster_io.read_labels(label_path, grid, log=lambda _: None)
    values, names = [1, 2, 3, 4, 5], ["water", "forest", "meadow", "road", "building"]
    model, report = fit(arrays, labels, values, names,
                        TrainSettings(epochs_stage1=2, epochs_stage2=1, patience=0, **architecture))
    path = str(folder / "model.lvpc")
    save_model(path, model, ModelInfo(values, names, raster_io.default_colors(5), {}, "minilm", report))
    return path


def peak_rss(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one child process, as GNU time reports it.

    GNU time, a small process, starts the child: a child forked from this Python would count this process's
    resident pages in its ru_maxrss (Linux keeps the high-water mark across exec)."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "peak-rss-kb=%M", *command], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed: {done.stderr[-2000:]}")
    kilobytes = int(done.stderr.rsplit("peak-rss-kb=", 1)[1].split()[0])
    return kilobytes / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megapixels", type=float, nargs="+", default=[0.25, 1, 4, 16])
    parser.add_argument("--models", nargs="+", default=["default:0.25", "light:0.25,1,4,16"],
                        help="ARCH:MP,MP... which architecture classifies which scene sizes")
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS),
                        help="which commands to measure; classify follows --models, train and evaluate use the "
                             "default architecture")
    parser.add_argument("--gdal-cachemax", help="GDAL_CACHEMAX for classify (e.g. 128 = MB); default GDAL's, 5 %% of RAM")
    parser.add_argument("--out", default="memory", help="name of the JSON file under bench/results")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="folder for the generated scenes")
    args = parser.parse_args()

    plan = {arch: [float(v) for v in sizes.split(",")] for arch, sizes in (m.split(":") for m in args.models)}
    rows = []
    work = Path(tempfile.mkdtemp(prefix="lvpc-memory-", dir=args.tmp))
    try:
        needed = (set(plan) if "classify" in args.jobs else set()) | ({"default"} if "evaluate" in args.jobs else set())
        models = {arch: train_model(work / f"train-{arch}", MODELS[arch]) for arch in needed}
        for mp in args.megapixels:
            needed = mp * 2**20 * (2 * HS_BANDS + 4 + 1 + 1 + 4) * 1.1
            free = shutil.disk_usage(work).free
            if free < needed + 2**30:
                raise SystemExit(f"{work}: {free / 2**30:.1f} GiB free, the {mp} MP scene needs {needed / 2**30:.1f} GiB")
            size = int(round((mp * 2**20) ** 0.5))
            tag = f"{mp:g}"
            started = time.perf_counter()
            paths, _ = write_scene(work / f"scene{tag}", size)
            print(f"{tag} MP scene written in {time.perf_counter() - started:.0f} s "
                  f"({sum(os.path.getsize(p) for p in paths.values()) / 2**30:.2f} GiB)", flush=True)
            layers = ["-m", f"hs={paths['hs']}", "-m", f"lidar={paths['lidar']}"]
            runs = [("classify", arch, ["classify", "--model", models[arch], *layers, "--out", str(work / f"scene{tag}" / f"map-{arch}.tif"),
                                        "--confidence", str(work / f"scene{tag}" / f"map-{arch}.conf.tif")])
                    for arch, sizes in plan.items() if mp in sizes and "classify" in args.jobs]
            if "train" in args.jobs:
                labels = write_sparse_labels(work / f"scene{tag}" / "train.tif", size, 0)
                runs.append(("train", "default", ["train", *layers, "--labels", labels, "--epochs-stage1", "1",
                                                  "--epochs-stage2", "1", "--patience", "0", "--no-refit",
                                                  "--text-encoder", "minilm", "--out", str(work / f"scene{tag}" / "m.lvpc")]))
            if "evaluate" in args.jobs:
                reference = write_sparse_labels(work / f"scene{tag}" / "test.tif", size, 1)
                runs.append(("evaluate", "default", ["evaluate", "--model", models["default"], *layers,
                                                     "--labels", reference, "--json", str(work / f"scene{tag}" / "acc.json")]))
            for job, arch, command in runs:
                threads = [] if job == "evaluate" else ["--threads", "1"]  # evaluate has no --threads: OMP_NUM_THREADS
                env = {"OMP_NUM_THREADS": "1", **({"GDAL_CACHEMAX": args.gdal_cachemax} if args.gdal_cachemax else {})}
                rss, seconds = peak_rss([sys.executable, "-m", "lvpcnet_core", *command, "--device", "cpu", *threads], env)
                rows.append({"job": job, "scene": f"{size} x {size} ({tag} MP)", "model": arch,
                             "GDAL_CACHEMAX": args.gdal_cachemax or "default", "peak RSS MiB": rss,
                             "seconds": seconds, "pixels/s": size * size / seconds if job == "classify" else None,
                             "load": round(os.getloadavg()[0], 1)})
                print(rows[-1], flush=True)
                save(args.out, {"machine": machine(), "models": MODELS, "rows": rows})
            shutil.rmtree(work / f"scene{tag}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    table(rows, ["job", "scene", "model", "GDAL_CACHEMAX", "peak RSS MiB", "seconds", "pixels/s", "load"],
          f"Peak RSS of `python -m lvpcnet_core <job> --threads 1` (144 HS bands Int16 + 1 LiDAR band; train and "
          f"evaluate on {SPARSE_PIXELS} labelled pixels), models {MODELS}")


if __name__ == "__main__":
    main()
