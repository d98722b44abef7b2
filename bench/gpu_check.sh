#!/bin/sh
# The one script to run on a machine with NVIDIA GPUs, in under 5 minutes (bench/gpu_check.py says what it does):
# training on ~10,000 px in bf16 and fp32 (validation OA of each), classification of a 1 MP scene of 144 + 1 bands
# (pixels/s end to end and model only, peak GPU memory), and with two GPUs visible the 2-process DDP training and
# sharded classification. Exits 2 with a clear message when PyTorch sees no CUDA GPU.
# `sh bench/gpu_check.sh --dry-run` runs the same steps on the CPU at toy sizes, to check the script itself.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
exec timeout 300 "$PYTHON" -m bench.gpu_check "$@"
