"""Block-prediction speed of the default network with and without its convolutional stem, side by side in one run.

    python -m bench.stem_speed

Random weights (speed does not depend on them), one 256 x 256 block of 144 HS + 1 LiDAR bands with its halo,
`ScenePredictor.predict_block` with every modality and with the HS missing (prompts). CPU time of one torch thread,
so that the other processes on a shared machine change the figure little; the rounds alternate the two networks.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from bench.common import machine, save, table

BANDS = {"hs": 144, "lidar": 1}


def main(rounds: int = 3, block: int = 256) -> None:
    from lvpcnet_core.encoders import ModelConfig
    from lvpcnet_core.network import LVPCNet
    from lvpcnet_core.predict import ScenePredictor

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    r = ModelConfig.patch_size // 2
    raw = {m: rng.normal(size=(b, block + 2 * r, block + 2 * r)).astype(np.float32) for m, b in BANDS.items()}
    best: dict[tuple[int, str], float] = {}
    for _ in range(rounds):
        for stem in (0, ModelConfig.stem_depth):
            torch.manual_seed(0)
            model = LVPCNet(ModelConfig(list(BANDS), dict(BANDS), n_classes=6, text_dim=384, stem_depth=stem)).eval()
            model.add_case(("lidar",))
            predictor = ScenePredictor(model, [1, 2, 3, 4, 5, 6])
            for case in (raw, {"lidar": raw["lidar"]}):
                started = time.process_time()
                predictor.predict_block(case)
                key = (stem, "+".join(case))
                best[key] = max(best.get(key, 0.0), block * block / (time.process_time() - started))
    rows = [{"stem layers": stem, "layers given": case, "px/CPU-s, 1 thread": speed} for (stem, case), speed in best.items()]
    table(rows, ["stem layers", "layers given", "px/CPU-s, 1 thread"],
          f"Block prediction, {block} x {block} px, hs 144 + lidar 1 bands, best of {rounds} rounds")
    save("stem_speed", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
