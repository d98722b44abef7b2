"""Kernel choices of the encoders, measured: attention of the short token sequences (fused kernel vs two matmuls
around torch's softmax, and at inference `encoders.attention`'s softmax written out in place), for inference
(no grad, 1,024 pixels per chunk) and training (forward + backward, batch 128).

`encoders.attention` uses the fastest in each mode; this script is the evidence, rerun it on a new CPU.
"""
from __future__ import annotations

import argparse
import time

from bench.common import machine, save, table


def _time(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    started = time.process_time()
    for _ in range(repeats):
        fn()
    return (time.process_time() - started) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    from lvpcnet_core.encoders import attention

    torch.set_num_threads(1)

    def fused(q, k, v):
        return F.scaled_dot_product_attention(q, k, v)

    def matmuls(q, k, v):
        return torch.softmax((q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1), dim=-1) @ v

    rows = []
    for mode, batch in (("inference", 1024), ("training", 128)):
        for tokens in (10, 14):   # 3 x 3 tokens + CLS; + 4 prompts in a compensated case
            q, k, v = (torch.randn(batch, 4, tokens, 16, requires_grad=mode == "training") for _ in range(3))
            row = {"mode": mode, "batch": batch, "tokens": tokens}
            for name, kernel in (("fused ms", fused), ("matmuls ms", matmuls)):
                if mode == "training":
                    row[name] = 1000 * _time(lambda: kernel(q, k, v).sum().backward(), args.repeats)
                else:
                    with torch.no_grad():
                        row[name] = 1000 * _time(lambda: kernel(q, k, v), args.repeats)
            row["matmuls / fused"] = row["matmuls ms"] / row["fused ms"]
            if mode == "inference":
                with torch.no_grad():
                    row["engine ms"] = 1000 * _time(lambda: attention(q, k, v), args.repeats)
                row["engine / fused"] = row["engine ms"] / row["fused ms"]
            rows.append(row)
    table(rows, list(rows[0]), "attention, CPU time of one thread per call")
    save("kernels", {"machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
