#!/usr/bin/env bash
# The GPU machine's check, in one call: GPU tests, decode-latency benchmark, a bf16 distillation run.
# Usage (repo root, on a CUDA machine; wheels for packages the image lacks in .whl/, see README):
#   bash scripts/gpu_check.sh OUT_DIR
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
mkdir -p "$out"
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
# Each kernel test file in its own process: an illegal memory access poisons the CUDA context, and every later
# test of the same process would error instead of telling its own result.
for f in tests/kernels/test_*.py; do
  python3 -m pytest -q -m gpu -rf "$f" 2>&1 | tee -a "$out/gpu_tests.log" | tail -3
done
python3 -m pytest -q -m gpu -rf tests --ignore=tests/kernels 2>&1 | tee -a "$out/gpu_tests.log" | tail -5
python3 scripts/bench_decode.py --out "$out" 2>&1 | tee "$out/bench_decode.log" | tail -14
python3 -m distill +experiment=smoke trainer=gpu trainer.max_steps=300 trainer.val_check_interval=100 \
  hydra.run.dir="$out/gpu_smoke" 2>&1 | grep -E "distill\]|Error|error" | tee "$out/gpu_smoke.log"
