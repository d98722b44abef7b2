"""Benchmark 3: wall time of the DEFAULT two-stage schedule (stage 1 + every stage-2 case), two and three
modalities, with RandomForest (benchmark 4) on exactly the same pixels, side by side.

Data: Brandenburg Sentinel-2, 10 m group as HS, 20 m group as LiDAR, 60 m group as SAR (any names work);
125 labelled pixels per class (8 classes = 1,000 pixels) from the left half of the scene, test pixels from
the right half. LVPC uses 15 % of its 1,000 pixels for validation (early stopping); RF trains on all 1,000.
The rows of issue 15 (bench/scenes.py): `--dataset hyperspectral --modalities 2 --per-class 500` (218 bands made
from measured spectra + a DSM, 4,000 pixels) and `--dataset brandenburg4 --modalities 4 --per-class 73` (four
Sentinel-2 sensors, 14 absence cases, 584 pixels).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.common import DATASETS, engine_at, fit, load_split, machine, run_engine, save, scene_throughput, table
from bench.random_forest import forest_rows

# a fixed schedule (no early stop, no refit) of the default network, timed in a fresh process on one engine
TRAIN_FIXED = """
import json, sys, time
from bench.common import fit, load_split
from lvpcnet_core.training import TrainSettings
dataset, per_class, n_mod, epochs1, epochs2 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
data = load_split(dataset, n_mod, train_cap=per_class)
settings = TrainSettings(threads=1, epochs_stage1=epochs1, epochs_stage2=epochs2, patience=0, refit=False)
cpu = time.process_time()
fit(data["arrays"], data["train"], data["values"], data["names"], settings)
print(json.dumps({"cpu": time.process_time() - cpu}))
"""

# the DEFAULT schedule of one engine (its own TrainSettings(): network, epochs, early stopping, refit), timed, and the
# model's OA on the right-half test pixels: what a user of that engine waits for and gets
TRAIN_DEFAULT = """
import json, sys, time
from bench.common import fit, load_split
from lvpcnet_core.training import TrainSettings
from lvpcnet_core.workflows import evaluate_arrays
dataset, per_class, n_mod = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = load_split(dataset, n_mod, train_cap=per_class)
cpu = time.process_time()
model, _ = fit(data["arrays"], data["train"], data["values"], data["names"], TrainSettings(threads=1))
cpu = time.process_time() - cpu
oa = evaluate_arrays(model, data["values"], data["names"], data["arrays"], data["test"])["oa"]
print(json.dumps({"cpu": cpu, "oa": oa}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", default="brandenburg", choices=list(DATASETS))
    parser.add_argument("--per-class", type=int, default=125)
    parser.add_argument("--modalities", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; with 1, CPU time = wall time on one idle core, whatever the load")
    parser.add_argument("--against", metavar="REVISION",
                        help="side by side: a fixed short schedule (--epochs) on the engine of this git revision and "
                             "on this checkout's, alternating fresh processes, CPU time of one thread and the ratio")
    parser.add_argument("--epochs", type=int, nargs=2, default=[10, 4], metavar=("STAGE1", "STAGE2"))
    parser.add_argument("--default-schedule", action="store_true",
                        help="with --against: each engine's whole default schedule instead of --epochs (and its OA)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.against:
        side_by_side(args)
        return

    from lvpcnet_core.training import TrainSettings
    from lvpcnet_core.workflows import evaluate_arrays

    rows = []
    # every split first: a --modalities the dataset does not have fails before any training
    splits = {n_mod: load_split(args.dataset, n_mod, train_cap=args.per_class) for n_mod in args.modalities}
    for data in splits.values():
        crop = {m: np.ascontiguousarray(a[:, :256, :256]) for m, a in data["arrays"].items()}
        started, cpu = time.perf_counter(), time.process_time()
        model, report = fit(data["arrays"], data["train"], data["values"], data["names"], TrainSettings(threads=args.threads))
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
        scores = evaluate_arrays(model, data["values"], data["names"], data["arrays"], data["test"])
        stage2 = report["stage2"]
        rows.append({"modalities": "+".join(data["arrays"]), "method": "LVPC default", "train px": int((data["train"] > 0).sum()),
                     "OA": scores["oa"], "kappa": scores["kappa"], "train s": seconds, "train cpu s": cpu_s, "threads": args.threads,
                     "stage 1 s": report["stage1"]["seconds"], "stage 1 epochs": len(report["stage1"]["history"]),
                     "stage 2 cases": len(stage2),
                     "stage 2 epochs": sum(len(c["history"]) for c in stage2.values()),
                     "pixels/s": scene_throughput(model, data["values"], crop, 1, clock=time.process_time),
                     "load": round(os.getloadavg()[0], 1)})
        print(rows[-1], flush=True)
        n_train = rows[-1]["train px"]
        for row in forest_rows(data, crop):
            rows.append({"modalities": "+".join(data["arrays"]), **row, "train px": n_train,
                         "load": round(os.getloadavg()[0], 1)})
            print(rows[-1], flush=True)
        save(results_name("training_time", args.dataset),
             {"machine": machine(), "dataset": args.dataset, "rows": rows})
    table(rows, ["modalities", "method", "train px", "OA", "kappa", "train s", "train cpu s", "stage 1 epochs", "stage 2 cases",
                 "stage 2 epochs", "pixels/s", "load"],
          f"Default schedule on {args.dataset} ({args.per_class} px/class, left half) vs RandomForest, right-half test")


def results_name(name: str, dataset: str) -> str:
    """`name` for the default dataset, `name_<dataset>` for the others: each dataset's run keeps its results."""
    return name if dataset == "brandenburg" else f"{name}_{dataset}"


def side_by_side(args: argparse.Namespace) -> None:
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory(prefix="lvpc-bench-") as tmp:
        before = engine_at(args.against, f"{tmp}/before")
        for n_mod in args.modalities:
            best: dict[str, float] = {}
            oa: dict[str, list[float]] = {"before": [], "now": []}
            code, schedule = ((TRAIN_DEFAULT, []) if args.default_schedule else (TRAIN_FIXED, list(map(str, args.epochs))))
            for _ in range(args.repeats):
                for name, tree in (("before", before), ("now", None)):
                    result = run_engine(tree, code, args.dataset, str(args.per_class), str(n_mod), *schedule)
                    best[name] = min(best.get(name, float("inf")), result["cpu"])
                    oa[name] += [result["oa"]] if "oa" in result else []
            rows.append({"modalities": n_mod, "schedule": "default" if args.default_schedule else "+".join(schedule),
                         "before CPU s": best["before"], "now CPU s": best["now"],
                         "ratio": best["before"] / best["now"], "load": round(os.getloadavg()[0], 1),
                         **({f"{name} OA": sum(v) / len(v) for name, v in oa.items()} if args.default_schedule else {})})
            print(rows[-1], flush=True)
    table(rows, list(rows[0]), f"Side by side: training on {args.dataset} ({args.per_class} px/class), engine of "
          f"{args.against} (before) vs this checkout (now), fixed schedule, 1 thread, best of {args.repeats}")
    save(results_name("training_side_by_side", args.dataset),
         {"machine": machine(), "against": args.against, "rows": rows})


if __name__ == "__main__":
    main()
