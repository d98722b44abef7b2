"""bf16 autocast against fp32 for classification on this CPU: block prediction (`ScenePredictor.predict_block`)
of default networks with random weights (speed does not depend on the weights), alternating the two precisions,
best of 3, and the share of pixels with the same class. The evidence for `predict.ScenePredictor._bf16_faster`,
which makes the same comparison (`ScenePredictor.time_precisions`) on the user's model before classifying (LVPC_BF16=auto).

    python -m bench.bf16_speed --threads 1
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from bench.common import machine, save, table

NETWORKS = ({"hs": 144, "lidar": 1}, {"hs": 13, "lidar": 1}, {"hs": 144, "lidar": 1, "sar": 2})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=1, help="with 1, CPU time; with more, wall time")
    parser.add_argument("--size", type=int, default=128, help="side of the block in pixels")
    args = parser.parse_args()

    import torch

    from lvpcnet_core.encoders import ModelConfig
    from lvpcnet_core.network import build_network
    from lvpcnet_core.predict import ScenePredictor

    os.environ["LVPC_BF16"] = "0"   # each predictor's precision is set by hand below; no timing at construction
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.threads == 1 else time.perf_counter
    rows = []
    for bands in NETWORKS:
        torch.manual_seed(0)
        model = build_network(ModelConfig(modalities=list(bands), bands=bands, n_classes=6, text_dim=384)).eval()
        predictor = ScenePredictor(model, list(range(1, 7)))
        side = args.size + 2 * predictor.radius
        rng = np.random.default_rng(0)
        raw = {m: rng.normal(size=(b, side, side)).astype(np.float32) for m, b in bands.items()}
        best, probabilities = predictor.time_precisions(raw, rounds=3, warmup=False, clock=clock)
        maps = {flag: predictor.decide(p)[0] for flag, p in probabilities.items()}
        rows.append({"network": " + ".join(f"{m} {b}" for m, b in bands.items()), "threads": args.threads,
                     "fp32 px/s": args.size**2 / best[False], "bf16 px/s": args.size**2 / best[True],
                     "bf16 / fp32": best[False] / best[True],
                     "same class %": 100 * float((maps[False] == maps[True]).mean())})
        print(rows[-1], flush=True)
    table(rows, ["network", "threads", "fp32 px/s", "bf16 px/s", "bf16 / fp32", "same class %"],
          f"bf16 autocast vs fp32, {args.size} x {args.size} block, random weights, best of 3 alternating")
    save(f"bf16_speed_{args.threads}", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
