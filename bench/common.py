"""Shared helpers of the speed benchmarks (run from the repository root: `python -m bench.inference`): timing, machine peak, datasets with a spatially disjoint split, tables.

The benchmarks measure, they do not assert: each prints a table and writes `bench/results/<name>.json`.
"""
from __future__ import annotations

import json
import os
import time
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from bench import scenes
from lvpcnet_core.files import json_value

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DATA = Path(os.environ.get("LVPC_DATA", ROOT.parent / "shared" / "data"))


def machine() -> dict:
    """What the figures were measured on, including how busy the machine was."""
    import torch

    from lvpcnet_core.training import cpu_model

    return {"cpu": cpu_model(), "isa": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "load_average": os.getloadavg(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}


def best_of(fn: Callable[[], object], repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Fastest of `repeats` runs in seconds of `clock`: the other developers' load only ever slows a run down.

    With one torch thread, `time.process_time` gives the time the run needs on one idle core, whatever the load."""
    times = []
    for _ in range(repeats):
        started = clock()
        fn()
        times.append(clock() - started)
    return min(times)


def matmul_peak(size: int = 1024, repeats: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
    """Achieved fp32 FLOP/s of a square torch matmul with the current thread count (the practical peak)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    return 2 * size**3 / best_of(lambda: torch.mm(a, b), repeats, clock)


def engine_at(revision: str, into: str) -> Path:
    """The `lvpcnet_core` of a git revision, extracted under `into`: put it first on PYTHONPATH to run that code."""
    import subprocess
    import tarfile
    from io import BytesIO

    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "lvpcnet_core"], check=True,
                             capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into)   # git archive of our own repository: trusted paths
    return Path(into)


def run_engine(tree: Path | None, code: str, *args: str, threads: int = 1) -> dict:
    """Runs `code` (which prints one JSON object last) in a fresh Python on the engine in `tree` (None: this
    checkout), with `threads` OpenMP threads; alternating such runs puts two code paths under the same load."""
    import subprocess
    import sys

    path = os.pathsep.join(str(p) for p in (tree, ROOT) if p is not None)
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": str(threads)}
    # `python -c` puts its working directory first on sys.path, ahead of PYTHONPATH: run it in the engine's folder
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=str(tree or ROOT), capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def save(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=json_value))
    print(f"\nwritten {path.relative_to(ROOT)}")
    return path


def table(rows: list[dict], columns: list[str], title: str) -> None:
    """Markdown table (pasted into docs/performance.md as is)."""
    def cell(v):
        return f"{v:,.1f}" if isinstance(v, float) else str(v)

    print(f"\n{title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |")


# Real scenes of ../shared/data, two or three modalities each (names are only slots: any work), and scenes made from
# it (bench/scenes.py): "make" writes the files into a temporary folder.
BRANDENBURG_NAMES = {1: "forest", 2: "meadow", 3: "farm", 4: "residential", 5: "scrub", 6: "grass", 7: "water",
                     8: "wetland"}
DATASETS = {
    "slovenia": {"files": {"hs": "slovenia/s2_l1c_20150711.tif", "lidar": "slovenia/dem.tif",
                           "sar": "slovenia/ndvi_series.tif"},
                 "labels": "slovenia/labels.tif",
                 "names": {1: "cultivated land", 2: "forest", 3: "grassland", 4: "shrubland", 8: "artificial surface"}},
    "brandenburg": {"files": {"hs": "brandenburg/s2_10m_B02_B03_B04_B08.tif",
                              "lidar": "brandenburg/s2_20m_B05_B06_B07_B8A_B11_B12.tif",
                              "sar": "brandenburg/s2_60m_B01_B09_B10.tif"},
                    "labels": "brandenburg/labels_osm_10m.tif",
                    "names": BRANDENBURG_NAMES},
    # 218 bands from measured spectra ('hs') + a DSM ('lidar'): the 200+ band row of issue 15
    "hyperspectral": {"make": partial(scenes.hyperspectral, library=DATA / "spectral_libraries" / "muufl_gulfport_asd"),
                      "names": {v: name.lower() for v, name in scenes.HS_CLASSES.items()}},
    # Sentinel-2 as four sensors (10 m, 20 m red edge, 20 m SWIR, 60 m): the 14 absence cases of issue 15
    "brandenburg4": {"make": partial(scenes.brandenburg4, source=DATA / "brandenburg"), "names": BRANDENBURG_NAMES},
}


def cap_labels(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """A copy keeping at most `per_class` random pixels of every class (0 elsewhere)."""
    out = np.zeros_like(labels)
    rng = np.random.default_rng(seed)
    for value in np.unique(labels[labels > 0]):
        idx = np.flatnonzero(labels == value)
        if per_class is not None and len(idx) > per_class:
            idx = rng.choice(idx, per_class, replace=False)
        out.flat[idx] = value
    return out


def load_split(name: str, modalities: int = 2, train_cap: int | None = 300, test_cap: int | None = 2000,
               seed: int = 0, scene: dict | None = None) -> dict:
    """Arrays on one grid, training labels from the LEFT half and test labels from the RIGHT half
    (spatially disjoint), each capped per class; classes without training pixels are left out.

    `scene`: options of a made scene's maker (e.g. rows, cols, seed of "hyperspectral"), for small test scenes."""
    import tempfile

    from lvpcnet_core import raster_io

    spec = DATASETS[name]
    with tempfile.TemporaryDirectory(prefix=f"lvpc-{name}-") as folder:
        if "make" in spec:
            files, label_path = spec["make"](folder, **(scene or {}))
        else:
            files, label_path = {m: str(DATA / f) for m, f in spec["files"].items()}, str(DATA / spec["labels"])
        if not 1 <= modalities <= len(files):
            from lvpcnet_core.errors import LvpcError

            raise LvpcError(f"--modalities {modalities}: {name} has {len(files)} ({', '.join(files)}); choose 1 to "
                            f"{len(files)}")
        with raster_io.AlignedStack(dict(list(files.items())[:modalities]), log=lambda _: None) as stack:
            arrays = stack.read_all()
            grid = stack.grid
        labels = raster_io.read_labels(label_path, grid, log=lambda _: None)
    half = grid.width // 2
    left, right = labels.copy(), labels.copy()
    left[:, half:] = 0
    right[:, :half] = 0
    train = cap_labels(left, train_cap, seed)
    values = [int(v) for v in np.unique(train) if v]
    test = cap_labels(np.where(np.isin(right, values), right, 0), test_cap, seed + 1)
    return {"arrays": arrays, "train": train, "test": test, "values": values,
            "names": [spec["names"].get(v, f"class {v}") for v in values], "grid": grid}


def fit(arrays: dict[str, np.ndarray], labels: np.ndarray, values: list[int], names: list[str], settings):
    """`workflows.fit_arrays` with built-in descriptions and the offline MiniLM text encoder (same for every run)."""
    from lvpcnet_core import language, text_encoders
    from lvpcnet_core.progress import SilentProgress
    from lvpcnet_core.workflows import fit_arrays

    table = language.build_descriptions(names, list(arrays))
    encoder = text_encoders.load_text_encoder("minilm", log=lambda _: None)
    return fit_arrays(arrays, labels, values, names, table, encoder, settings, SilentProgress())


class ArraySource:
    """In-memory `BlockSource`: halo reads from arrays (NaN outside), so throughput excludes disk and warping."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.bands = {m: a.shape[0] for m, a in arrays.items()}

    def read(self, name: str, xoff: int, yoff: int, xsize: int, ysize: int) -> np.ndarray:
        a = self.arrays[name]
        out = np.full((a.shape[0], ysize, xsize), np.nan, dtype=np.float32)
        x0, y0 = max(xoff, 0), max(yoff, 0)
        x1, y1 = min(xoff + xsize, a.shape[2]), min(yoff + ysize, a.shape[1])
        if x1 > x0 and y1 > y0:
            out[:, y0 - yoff:y1 - yoff, x0 - xoff:x1 - xoff] = a[:, y0:y1, x0:x1]
        return out


def scene_throughput(model, values: list[int], arrays: dict[str, np.ndarray], repeats: int = 3,
                     block_size: int = 256, clock: Callable[[], float] = time.perf_counter) -> float:
    """Pixels per second of `clock` of `predict.classify_scene` over in-memory arrays (best of `repeats`)."""
    from lvpcnet_core.predict import ScenePredictor, classify_scene
    from lvpcnet_core.progress import SilentProgress

    source = ArraySource(arrays)
    _, height, width = next(iter(arrays.values())).shape
    predictor = ScenePredictor(model, values)
    seconds = best_of(lambda: classify_scene(predictor, source, width, height, lambda _: None, SilentProgress(),
                                             block_size), repeats, clock)
    return width * height / seconds
