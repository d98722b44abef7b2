#!/bin/sh
# GPU path end to end in under 5 minutes: train a few epochs on a synthetic scene with --device cuda (bf16/fp16
# autocast, pinned batches), classify a 1024 x 1024 scene of 144 HS + 1 LiDAR bands, print pixels/s and the peak
# GPU memory (torch.cuda.max_memory_allocated). Exits 2 with a clear message when PyTorch sees no CUDA GPU.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
exec timeout 300 "$PYTHON" - <<'PY'
import sys
import tempfile
import time

import torch

if not torch.cuda.is_available():
    print(f"gpu_check: PyTorch sees no CUDA GPU (torch {torch.__version__}, CUDA build {torch.version.cuda}): "
          "run this on a machine with an NVIDIA GPU and a CUDA build of torch", file=sys.stderr)
    sys.exit(2)

from lvpcnet_core import synthetic
from lvpcnet_core.training import TrainSettings
from lvpcnet_core.workflows import LabelSource, classify, train

print(f"gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"bf16 {torch.cuda.is_bf16_supported()}")
bands = {"hs": 144, "lidar": 1}
with tempfile.TemporaryDirectory(prefix="lvpc-gpu-") as tmp:
    small = synthetic.make_scene(f"{tmp}/train", 96, 96, bands, n_classes=5, seed=1)
    started = time.perf_counter()
    report = train(small.paths, f"{tmp}/model.lvpc", LabelSource(raster=small.labels), text_encoder="minilm",
                   settings=TrainSettings(device="cuda", epochs_stage1=5, epochs_stage2=2, patience=0))
    print(f"train: {time.perf_counter() - started:.1f} s, device {report['device']}, "
          f"{report['n_train']} training pixels, stage-1 validation OA {report['stage1']['val_oa']:.1f} %")
    big = synthetic.make_scene(f"{tmp}/scene", 1024, 1024, bands, n_classes=5, seed=2)
    for layers in (bands, {"hs": 144}):
        torch.cuda.reset_peak_memory_stats()
        summary = classify(f"{tmp}/model.lvpc", {m: big.paths[m] for m in layers}, f"{tmp}/map.tif", device="cuda",
                           block_size=512)
        print(f"classify {'+'.join(layers)}: {summary['width']} x {summary['height']} px in {summary['seconds']:.1f} s, "
              f"{summary['pixels_per_second']:,.0f} pixels/s, peak GPU memory "
              f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB")
PY
