#!/usr/bin/env bash
# The GPU figures, as one prepared script for a machine with a CUDA GPU (run from the repo root):
#   bash bench/gpu.sh [OUT_DIR]
# Installs the pinned requirements into a fresh venv (the CUDA build of torch 2.13.0 comes from the index there),
# then prints JSON lines for the ML-25M-shaped epoch benchmark (dot product with biases and the net, each beside
# the reference ways) and for MovieLens 100k. Results go to OUT_DIR (default bench/results).
set -euo pipefail
out=${1:-bench/results}
mkdir -p "$out"
python3 -m venv /tmp/gpu-venv
/tmp/gpu-venv/bin/pip install -q -r requirements.txt
py=/tmp/gpu-venv/bin/python
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu-device.txt"
$py bench/bench_epoch.py --data ml25m --device cuda --epochs 10 --dl-batches 3000 | tee "$out/epoch-ml25m-gpu.jsonl"
$py bench/bench_epoch.py --data ml25m --device cuda --model nn --epochs 5 | tee -a "$out/epoch-ml25m-gpu.jsonl"
$py bench/bench_ml100k.py --repeat 3 | tee "$out/ml100k-gpu.jsonl"
