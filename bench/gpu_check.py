"""The GPU path end to end, in under 5 minutes on one NVIDIA GPU (run it as `sh bench/gpu_check.sh`):

1. training on about 10,000 labelled pixels of a synthetic 144 HS + 1 LiDAR band scene, bf16 autocast and fp32
   (LVPC_CUDA_PRECISION=fp32), same seed and split: seconds, validation OA of each, peak GPU memory;
2. classification of a 1024 x 1024 scene of the same 145 bands with the bf16 model: pixels/s end to end (GeoTIFF in
   and out) and model only (`ScenePredictor.predict_block` on a block already in memory), peak GPU memory;
3. with two GPUs visible, `torchrun --nproc-per-node 2` training and sharded classification against one process
   (command-line wall times, start-up included), and whether the two maps are byte-identical.

`--dry-run` runs every step on the CPU at toy sizes: it checks this script, and its figures mean nothing.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def peak_mib(device: str) -> str:
    return f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} MiB" if device == "cuda" else "n/a (CPU)"


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def cli_seconds(args: list[str], processes: int) -> float:
    """Wall time of `python -m lvpcnet_core ARGS` (torchrun with `processes` > 1), start-up included."""
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(processes)]
              if processes > 1 else [sys.executable])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([*launch, "-m", "lvpcnet_core", *args], capture_output=True, text=True, env=env)
    if done.returncode:
        raise SystemExit(f"gpu_check: {' '.join(args[:2])} with {processes} process(es) failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU, toy sizes: check the script, not the GPU")
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print(f"gpu_check: PyTorch sees no CUDA GPU (torch {torch.__version__}, CUDA build {torch.version.cuda}): run "
              "this on a machine with an NVIDIA GPU and a CUDA build of torch", file=sys.stderr)
        sys.exit(2)

    from lvpcnet_core import raster_io, synthetic
    from lvpcnet_core.model_file import load_model
    from lvpcnet_core.predict import ScenePredictor
    from lvpcnet_core.training import TrainSettings
    from lvpcnet_core.workflows import LabelSource, classify, train

    side, scene_side, epochs = (24, 64, 2) if args.dry_run else (200, 1024, 10)
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if device == "cuda":
        print(f"gpu_check: {gpus} GPU(s), {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA "
              f"{torch.version.cuda}, bf16 {torch.cuda.is_bf16_supported()}")
    else:
        print("gpu_check --dry-run: CPU, toy sizes; these figures check the script and mean nothing")
    bands = {"hs": 144, "lidar": 1}
    with tempfile.TemporaryDirectory(prefix="lvpc-gpu-") as tmp:
        small = synthetic.make_scene(f"{tmp}/train", side, side, bands, n_classes=5, label_fraction=0.25, seed=1)
        settings = dict(device=device, epochs_stage1=epochs, epochs_stage2=2, patience=0, refit=False)
        for precision in ("bf16", "fp32"):
            os.environ["LVPC_CUDA_PRECISION"] = precision
            reset_peak(device)
            started = time.perf_counter()
            report = train(small.paths, f"{tmp}/{precision}.lvpc", LabelSource(raster=small.labels),
                           text_encoder="minilm", settings=TrainSettings(**settings))
            print(f"train {precision}: {time.perf_counter() - started:.1f} s, {report['n_train']} training and "
                  f"{report['n_val']} validation pixels, {epochs} + 2 epochs, validation OA "
                  f"{report['validation']['hs+lidar|prompts']:.1f} % (lidar only "
                  f"{report['validation']['lidar|prompts']:.1f} %), peak GPU memory {peak_mib(device)}")
        os.environ.pop("LVPC_CUDA_PRECISION")

        big = synthetic.make_scene(f"{tmp}/scene", scene_side, scene_side, bands, n_classes=5, seed=2)
        model_path = f"{tmp}/bf16.lvpc"
        reset_peak(device)
        summary = classify(model_path, big.paths, f"{tmp}/map.tif", device=device, block_size=512)
        print(f"classify end to end: {scene_side} x {scene_side} px of 144 + 1 bands in {summary['seconds']:.1f} s, "
              f"{summary['pixels_per_second']:,.0f} pixels/s, peak GPU memory {peak_mib(device)}")
        model, info = load_model(model_path, torch.device(device))
        predictor = ScenePredictor(model, info.class_values)
        block, r = min(512, scene_side), predictor.radius
        with raster_io.AlignedStack(big.paths, log=lambda _: None) as stack:
            raw = {m: stack.read(m, -r, -r, block + 2 * r, block + 2 * r) for m in bands}
        predictor.predict_block(raw)   # warm-up: kernels chosen, memory pooled
        reset_peak(device)
        started = time.perf_counter()
        for _ in range(3):
            predictor.predict_block(raw)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / 3
        print(f"classify model only: {block} x {block} block in memory, {block * block / seconds:,.0f} pixels/s, "
              f"peak GPU memory {peak_mib(device)}")

        if gpus >= 2 or args.dry_run:
            layers = [f"--modality={m}={p}" for m, p in small.paths.items()]
            fit = ["train", *layers, "--labels", small.labels, "--text-encoder", "minilm", "--device", device,
                   "--epochs-stage1", str(epochs), "--epochs-stage2", "2", "--patience", "0", "--no-refit"]
            scene = ["classify", "--model", model_path, *[f"--modality={m}={p}" for m, p in big.paths.items()],
                     "--device", device, "--block-size", "512"]
            times = {n: (cli_seconds([*fit, "--out", f"{tmp}/ddp{n}.lvpc"], n),
                         cli_seconds([*scene, "--out", f"{tmp}/map{n}.tif"], n)) for n in (1, 2)}
            same = Path(f"{tmp}/map1.tif").read_bytes() == Path(f"{tmp}/map2.tif").read_bytes()
            for n, (fit_s, map_s) in times.items():
                print(f"command line, {n} process{'es' if n > 1 else ''}{' (2 GPUs)' if n > 1 and gpus else ''}: "
                      f"train {fit_s:.1f} s, classify {map_s:.1f} s (start-up included)")
            print(f"2-process map byte-identical to the 1-process map: {same}")
        else:
            print(f"2-GPU DDP: skipped, {gpus} GPU visible")


if __name__ == "__main__":
    main()
