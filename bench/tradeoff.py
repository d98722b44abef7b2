"""Accuracy/speed trade-off of model configurations (window, token grid, width, depth) on the real scenes.

Spatially disjoint split: training labels from the left half of the scene (capped per class), test labels
from the right half. Every configuration gets the same reduced schedule, so the comparison is fair; the
default schedule is timed in training_time.py. Speed: FLOPs per pixel of whole-scene prediction counted with
FlopCounterMode (independent of machine load) and pixels per CPU-second (1 thread) of `classify_scene` on a 128 x 128 crop.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.common import fit, load_split, machine, save, scene_throughput, table

# (patch, token grid, width, depth); the first one is the default of TrainSettings.
CONFIGS = [(11, 3, 48, 4), (7, 3, 48, 4), (15, 3, 48, 4), (11, 3, 48, 2), (11, 3, 32, 2), (11, 3, 64, 4),
           (11, 1, 48, 4)]


def flops_per_pixel(model, values, arrays, size: int = 64) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    from bench.common import ArraySource
    from lvpcnet_core.predict import ScenePredictor

    predictor = ScenePredictor(model, values)
    r = predictor.radius
    source = ArraySource(arrays)
    raw = {m: source.read(m, -r, -r, size + 2 * r, size + 2 * r) for m in arrays}
    with FlopCounterMode(display=False) as counter:
        _, _, counts = predictor.predict_block(raw)
    return counter.get_total_flops() / sum(counts.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", nargs="+", default=["slovenia", "brandenburg"])
    parser.add_argument("--cap", type=int, nargs="+", default=[300, 150], help="training pixels per class, per dataset")
    parser.add_argument("--epochs", type=int, nargs=2, default=[40, 15], help="stage 1 and stage 2 epochs")
    parser.add_argument("--out", default="tradeoff", help="name of the JSON file under bench/results")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is load-independent)")
    parser.add_argument("--only", type=int, nargs="+", default=list(range(len(CONFIGS))),
                        help="indices into CONFIGS to run (default all)")
    args = parser.parse_args()

    from lvpcnet_core.training import TrainSettings
    from lvpcnet_core.workflows import evaluate_arrays

    rows = []
    for dataset, cap in zip(args.datasets, args.cap):
        data = load_split(dataset, 2, train_cap=cap)
        crop = {m: np.ascontiguousarray(a[:, :128, :128]) for m, a in data["arrays"].items()}
        for patch, grid, width, depth in (CONFIGS[i] for i in args.only):
            settings = TrainSettings(patch_size=patch, token_grid=grid, width=width, depth=depth,
                                     epochs_stage1=args.epochs[0], epochs_stage2=args.epochs[1],
                                     threads=args.threads)
            started, cpu = time.perf_counter(), time.process_time()
            model, report = fit(data["arrays"], data["train"], data["values"], data["names"], settings)
            train_s, train_cpu = time.perf_counter() - started, time.process_time() - cpu
            full = evaluate_arrays(model, data["values"], data["names"], data["arrays"], data["test"])
            missing = evaluate_arrays(model, data["values"], data["names"], {"hs": data["arrays"]["hs"]}, data["test"])
            rows.append({"dataset": dataset, "window": patch, "grid": grid, "width": width, "depth": depth,
                         "train px": report["n_train"] + report["n_val"], "OA": full["oa"], "kappa": full["kappa"],
                         "OA hs only": missing["oa"],
                         "MFLOP/px": flops_per_pixel(model, data["values"], data["arrays"]) / 1e6,
                         "px/CPU-s": scene_throughput(model, data["values"], crop, 1, clock=time.process_time),
                         "train s": train_s, "train cpu s": train_cpu, "threads": args.threads, "load": round(os.getloadavg()[0], 1)})
            print(rows[-1], flush=True)
            save(args.out, {"machine": machine(), "epochs": args.epochs, "caps": dict(zip(args.datasets, args.cap)),
                              "rows": rows})
    table(rows, ["dataset", "window", "grid", "width", "depth", "train px", "OA", "kappa", "OA hs only", "MFLOP/px",
                 "px/CPU-s", "train cpu s", "load"],
          f"Trade-off: left-half training, right-half test, {args.epochs[0]}/{args.epochs[1]} epochs, 1 seed")


if __name__ == "__main__":
    main()
