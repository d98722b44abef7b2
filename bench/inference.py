"""Benchmark 1: whole-scene inference throughput and achieved FLOP/s versus this machine's matmul peak.

A default-architecture model is trained for 2 epochs on a small synthetic scene (144 HS bands, 1 LiDAR band,
optionally 2 SAR bands: speed does not depend on the weights), then `workflows.classify` (GDAL reads,
prefetch, block prediction, GeoTIFF writing) runs on a bigger synthetic scene, with every modality and with
one missing. FLOPs of one 256 x 256 block are counted with torch.utils.flop_counter.FlopCounterMode (matmuls,
convolutions and attention; element-wise work is not counted, so the fraction of peak is a lower bound).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time

from bench.common import best_of, engine_at, fit, machine, matmul_peak, run_engine, save, table

BANDS = {"hs": 144, "lidar": 1, "sar": 2}

# one timed `workflows.classify` in a fresh process, after one untimed run (imports, first allocations)
# the default network of one engine, trained (2 + 1 epochs) by that engine's own command line: the side-by-side
# compares each engine's default configuration, which its model files may not share
TRAIN_DEFAULT = """
import json, sys
from lvpcnet_core.cli import main
labels, out, *layers = sys.argv[1:]
main(["train", *[f"--modality={layer}" for layer in layers], "--labels", labels, "--out", out, "--text-encoder",
      "minilm", "--epochs-stage1", "2", "--epochs-stage2", "1", "--no-refit", "--device", "cpu"])
print(json.dumps({"model": out}))
"""

CLASSIFY_ONCE = """
import json, sys, time
from lvpcnet_core.workflows import classify
model, out, threads, *layers = sys.argv[1:]
layers = dict(layer.split("=", 1) for layer in layers)
classify(model, layers, out, device="cpu", threads=int(threads))
wall, cpu = time.perf_counter(), time.process_time()
classify(model, layers, out, device="cpu", threads=int(threads))
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))
"""


def flops_per_pixel(model, values, stack, block: int = 256) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from lvpcnet_core.predict import ScenePredictor

    predictor = ScenePredictor(model, values)
    r = predictor.radius
    raw = {m: stack.read(m, -r, -r, block + 2 * r, block + 2 * r) for m in stack.bands}
    with FlopCounterMode(display=False) as counter:
        _, _, counts = predictor.predict_block(raw)
    return counter.get_total_flops() / sum(counts.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=256, help="side of the classified scene in pixels")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--against", metavar="REVISION",
                        help="side by side: the engine of this git revision and its default network against this checkout's, in alternating "
                             "fresh processes on the same model files and scenes, with their ratio and map agreement")
    args = parser.parse_args()

    import torch

    from lvpcnet_core import raster_io, synthetic
    from lvpcnet_core.model_file import ModelInfo, save_model
    from lvpcnet_core.training import TrainSettings
    from lvpcnet_core.workflows import classify

    threads = torch.get_num_threads()
    rows = []
    with tempfile.TemporaryDirectory(prefix="lvpc-bench-") as tmp:
        before = engine_at(args.against, f"{tmp}/before") if args.against else None
        for n_mod in (2, 3):
            bands = dict(list(BANDS.items())[:n_mod])
            small = synthetic.make_scene(f"{tmp}/train{n_mod}", 64, 64, bands, n_classes=5, seed=1)
            big = synthetic.make_scene(f"{tmp}/scene{n_mod}", args.size, args.size, bands, n_classes=5, seed=2)
            if before is not None:
                small_layers = [f"{m}={small.paths[m]}" for m in bands]
                models = {name: run_engine(tree, TRAIN_DEFAULT, small.labels, f"{tmp}/{name}{n_mod}.lvpc",
                                           *small_layers)["model"] for name, tree in (("before", before), ("now", None))}
            else:
                with raster_io.AlignedStack(small.paths, log=lambda _: None) as stack:
                    arrays = stack.read_all()
                labels = raster_io.read_labels(small.labels, small.grid, log=lambda _: None)
                values, names = [1, 2, 3, 4, 5], ["water", "forest", "meadow", "road", "building"]
                model, report = fit(arrays, labels, values, names,
                                    TrainSettings(epochs_stage1=2, epochs_stage2=1, patience=0))
                model_path = f"{tmp}/model{n_mod}.lvpc"
                save_model(model_path, model, ModelInfo(values, names, [(0, 0, 0)] * 5, {}, "minilm", report))
            for case in (tuple(bands), tuple(list(bands)[:-1])):
                layers = {m: big.paths[m] for m in case}
                if before is not None:
                    rows.append(side_by_side(before, models, layers, tmp, threads, args.repeats))
                    rows[-1].update({"model": "+".join(bands), "layers given": "+".join(case), "px": args.size**2})
                    print(rows[-1], flush=True)
                    continue
                wall = best_of(lambda: classify(model_path, layers, f"{tmp}/map.tif", device="cpu", threads=threads),
                               args.repeats)
                cpu = best_of(lambda: classify(model_path, layers, f"{tmp}/map.tif", device="cpu", threads=1),
                              1, clock=time.process_time)
                with raster_io.AlignedStack(layers, log=lambda _: None) as stack:
                    per_pixel = flops_per_pixel(model, values, stack)
                peak1 = matmul_peak(clock=time.process_time)
                torch.set_num_threads(threads)
                peak = matmul_peak()
                speed, speed1 = args.size**2 / wall, args.size**2 / cpu
                rows.append({"model": "+".join(bands), "layers given": "+".join(case), "MFLOP/px": per_pixel / 1e6,
                             f"px/s {threads} threads": speed, "GFLOP/s": per_pixel * speed / 1e9,
                             "peak GFLOP/s": peak / 1e9, "% of peak": 100 * per_pixel * speed / peak,
                             "px/CPU-s 1 thread": speed1, "GFLOP/CPU-s": per_pixel * speed1 / 1e9,
                             "peak 1 thread": peak1 / 1e9, "% of peak 1 thread": 100 * per_pixel * speed1 / peak1,
                             "load": round(os.getloadavg()[0], 1)})
                print(rows[-1], flush=True)
    if before is not None:
        table(rows, ["model", "layers given", "network before", "network now", f"before px/s {threads} threads",
                     f"now px/s {threads} threads", "ratio wall", "before px/CPU-s 1 thread", "now px/CPU-s 1 thread",
                     "ratio 1 thread", "same class % (before model, both engines)", "load"],
              f"Side by side: engine of {args.against} and its default network (before) vs this checkout's (now), "
              f"{args.size} x {args.size} px, `workflows.classify` in alternating fresh processes, best of "
              f"{args.repeats} rounds")
        save("inference_side_by_side", {"machine": machine(), "against": args.against, "scene": args.size, "rows": rows})
        return
    table(rows, ["model", "layers given", "MFLOP/px", f"px/s {threads} threads", "GFLOP/s", "peak GFLOP/s", "% of peak",
                 "px/CPU-s 1 thread", "GFLOP/CPU-s", "peak 1 thread", "% of peak 1 thread", "load"],
          f"Inference (`workflows.classify`, GeoTIFF in and out), {args.size} x {args.size} px, wall best of {args.repeats}, CPU time of one run; "
          "peak = fp32 1024^3 torch.mm measured right after each row, wall clock with the thread count, "
          "process CPU time with 1 thread")
    save("inference", {"machine": machine(), "scene": args.size, "rows": rows})


def side_by_side(before, models: dict[str, str], layers: dict[str, str], tmp: str, threads: int, repeats: int) -> dict:
    """Best wall (all threads) and CPU time (1 thread) of each engine on its own default model, alternating rounds,
    and the code path's agreement: the share of pixels of the same class when this checkout classifies the BEFORE
    model (its files still load) against the before engine's map of it."""
    import numpy as np
    from osgeo import gdal

    from lvpcnet_core.model_file import read_metadata

    args = [f"{m}={p}" for m, p in layers.items()]
    best: dict[tuple[str, str], float] = {}
    for _ in range(repeats):
        for name, tree in (("before", before), ("now", None)):
            for key, n in (("wall", threads), ("cpu", 1)):
                took = run_engine(tree, CLASSIFY_ONCE, models[name], f"{tmp}/{name}.tif", str(n), *args, threads=n)[key]
                best[name, key] = min(best.get((name, key), float("inf")), took)
    run_engine(None, CLASSIFY_ONCE, models["before"], f"{tmp}/before_now.tif", "1", *args, threads=1)
    maps = {name: gdal.Open(f"{tmp}/{name}.tif").ReadAsArray() for name in ("before", "before_now")}
    px = maps["before"].size
    return {"network before": _network(read_metadata(models["before"])["config"]),
            "network now": _network(read_metadata(models["now"])["config"]),
            f"before px/s {threads} threads": px / best["before", "wall"], f"now px/s {threads} threads": px / best["now", "wall"],
            "ratio wall": best["before", "wall"] / best["now", "wall"],
            "before px/CPU-s 1 thread": px / best["before", "cpu"], "now px/CPU-s 1 thread": px / best["now", "cpu"],
            "ratio 1 thread": best["before", "cpu"] / best["now", "cpu"],
            "same class % (before model, both engines)": 100 * float(np.mean(maps["before"] == maps["before_now"])),
            "load": round(os.getloadavg()[0], 1)}


def _network(config: dict) -> str:
    """What of a model's configuration sets its speed (a model before issue 15 has no stem width: its width)."""
    return (f"depth {config['depth']}, width {config['width']}, stem width {config.get('stem_width') or config['width']}"
            f", band reduction {config.get('band_reduction', 0)}")


if __name__ == "__main__":
    main()
