"""Wall time of `python -m lvpcnet_core train|classify` against `torchrun --nproc-per-node N` of the same command
(docs/scaling.md): a synthetic scene, one torch thread per process, processes started fresh each time; also the
time of the work alone (the report's `fit_seconds`, classify's `seconds`: rank 0's, without start-up and reading).

    .venv/bin/python -m bench.scaling [--processes 2] [--size 512] [--epochs 8]

Also checks that the N-process map is byte-identical to the one-process map (it must be).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, machine, save, table
from lvpcnet_core.model_file import read_metadata
from lvpcnet_core.synthetic import make_scene


def timed(args: list[str]) -> tuple[float, dict]:
    """Wall seconds of the command (start-up included) and the JSON result rank 0 printed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:6])} ... failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--size", type=int, default=512, help="side of the classified scene in pixels")
    parser.add_argument("--epochs", type=int, default=8, help="stage-1 epochs (stage 2: a quarter)")
    args = parser.parse_args()
    one = [sys.executable, "-m", "lvpcnet_core"]
    many = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.processes),
            "-m", "lvpcnet_core"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="lvpc-scaling-") as tmp:
        small = make_scene(f"{tmp}/train", 64, 64, {"hs": 32, "lidar": 1}, n_classes=5, seed=1)
        big = make_scene(f"{tmp}/scene", args.size, args.size, {"hs": 32, "lidar": 1}, n_classes=5, seed=2)
        layers = [f"--modality={m}={p}" for m, p in small.paths.items()]
        train = ["train", *layers, "--labels", small.labels, "--text-encoder", "minilm", "--threads", "1",
                 "--epochs-stage1", str(args.epochs), "--epochs-stage2", str(max(1, args.epochs // 4)),
                 "--patience", "0", "--no-refit"]
        for label, command in (("1 process", one), (f"{args.processes} processes", many)):
            wall, _ = timed([*command, *train, "--out", f"{tmp}/m.lvpc"])
            work = read_metadata(f"{tmp}/m.lvpc")["report"]["fit_seconds"]
            rows.append({"job": "train", "run": label, "seconds": wall, "work seconds": work})
        layers = [f"--modality={m}={p}" for m, p in big.paths.items()]
        classify = ["classify", "--model", f"{tmp}/m.lvpc", *layers, "--threads", "1"]
        for label, command, out in (("1 process", one, "one.tif"), (f"{args.processes} processes", many, "many.tif")):
            wall, result = timed([*command, *classify, "--out", f"{tmp}/{out}"])
            rows.append({"job": f"classify {args.size} x {args.size}", "run": label, "seconds": wall,
                         "work seconds": result["seconds"]})
        identical = Path(f"{tmp}/one.tif").read_bytes() == Path(f"{tmp}/many.tif").read_bytes()
    for row in rows:
        first = next(r for r in rows if r["job"] == row["job"])
        row["speed-up"] = first["seconds"] / row["seconds"]
        row["work speed-up"] = first["work seconds"] / row["work seconds"]
    table(rows, ["job", "run", "seconds", "speed-up", "work seconds", "work speed-up"],
          f"1 vs {args.processes} processes, CPU, 1 torch thread each; 'work': the fit or the classification alone")
    print(f"maps byte-identical: {identical}")
    print(f"machine: {machine()}")
    save("scaling", {"rows": rows, "identical": identical, "machine": machine(), "options": vars(args)})


if __name__ == "__main__":
    main()
