"""ONNX Runtime against torch on one block: is the exported graph (lvpcnet_core/onnx_export.py) a faster way to
classify on this CPU?

A model of the default architecture (ModelConfig's defaults, random weights) for 144 HS bands + 1 LiDAR band; one
block of random bands per size; each run a fresh process at ONE thread (torch.set_num_threads(1), ONNX Runtime
intra_op_num_threads=1), CPU time (time.process_time) of one block after a small warm-up block, torch and ORT
alternating, best of `--repeats`. torch runs `ScenePredictor.predict_probabilities` as classify does (LVPC_BF16
decides its arithmetic: fp32 on CPUs without bf16), ORT the exported graph of the same model and case.

    nice -n 10 .venv/bin/python -m bench.onnx_speed
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, run_engine, save, table

BANDS = {"hs": 144, "lidar": 1}
CHILD = "import sys; from bench.onnx_speed import child; child(*sys.argv[1:])"


def child(runtime: str, model_path: str, onnx_path: str, block_path: str, out_path: str) -> None:
    """One timed block in this process; prints one JSON line (CPU seconds, peak RSS)."""
    import resource

    import torch

    from lvpcnet_core.model_file import load_model

    torch.set_num_threads(1)
    raw = np.load(block_path)
    model, info = load_model(model_path)
    r = model.cfg.patch_size // 2
    split = np.cumsum([BANDS[m] for m in BANDS])[:-1]
    if runtime == "torch":
        from lvpcnet_core.predict import RUNTIME_VARIABLE, ScenePredictor

        os.environ[RUNTIME_VARIABLE] = "torch"
        predictor = ScenePredictor(model, info.class_values)

        def run(block: np.ndarray) -> np.ndarray:
            padded = np.pad(block, ((0, 0), (r, r), (r, r)), constant_values=np.nan)
            return predictor.predict_probabilities(dict(zip(BANDS, np.split(padded, split))))[0]
    else:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])

        def run(block: np.ndarray) -> np.ndarray:
            return session.run(None, {"bands": block[None]})[0][0]

    run(raw[:, :32, :32])
    started = time.process_time()
    probabilities = run(raw)
    seconds = time.process_time() - started
    np.save(out_path, probabilities)
    print(json.dumps({"cpu_s": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "bf16": bool(runtime == "torch" and predictor.bf16)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    from lvpcnet_core import onnx_export
    from lvpcnet_core.encoders import ModelConfig
    from lvpcnet_core.model_file import ModelInfo, save_model
    from lvpcnet_core.network import build_network
    from lvpcnet_core.raster_io import default_colors

    torch.manual_seed(0)
    classes = 8
    model = build_network(ModelConfig(modalities=list(BANDS), bands=BANDS, n_classes=classes, text_dim=384)).eval()
    info = ModelInfo(list(range(1, classes + 1)), [f"class {i}" for i in range(1, classes + 1)],
                     default_colors(classes), {}, "minilm")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        model_path, onnx_path = os.path.join(folder, "m.lvpc"), os.path.join(folder, "m.onnx")
        save_model(model_path, model, info)
        started = time.perf_counter()
        onnx_export.export(model, tuple(BANDS), onnx_path, info)
        export_s = time.perf_counter() - started
        rng = np.random.default_rng(0)
        for size in args.sizes:
            block = os.path.join(folder, f"block{size}.npy")
            np.save(block, rng.normal(size=(sum(BANDS.values()), size, size)).astype(np.float32))
            runs: dict[str, list[dict]] = {"torch": [], "ort": []}
            for _ in range(args.repeats):
                for runtime in runs:
                    out = os.path.join(folder, f"{runtime}{size}.npy")
                    runs[runtime].append(run_engine(None, CHILD, runtime, model_path, onnx_path, block, out))
            torch_p, ort_p = (np.load(os.path.join(folder, f"{k}{size}.npy")) for k in runs)
            best = {k: min(r["cpu_s"] for r in v) for k, v in runs.items()}
            pixels = size * size
            rows.append({"block": f"{size} x {size}", "px/CPU-s torch": pixels / best["torch"],
                         "px/CPU-s ORT": pixels / best["ort"], "ORT / torch": f"{best['torch'] / best['ort']:.2f}",
                         "same class %": 100.0 * float((torch_p.argmax(0) == ort_p.argmax(0)).mean()),
                         "max abs diff": f"{float(np.abs(torch_p - ort_p).max()):.1e}",
                         "peak RSS MB torch": max(r["peak_rss_mb"] for r in runs["torch"]),
                         "peak RSS MB ORT": max(r["peak_rss_mb"] for r in runs["ort"]),
                         "torch bf16": runs["torch"][0]["bf16"], "load (1 min)": os.getloadavg()[0]})
    columns = list(rows[0])
    table(rows, columns, f"one thread, CPU time, best of {args.repeats} fresh processes each "
                         f"(export took {export_s:.0f} s)")
    save("onnx_speed", {"machine": machine(), "export_seconds": export_s, "rows": rows})


if __name__ == "__main__":
    main()
