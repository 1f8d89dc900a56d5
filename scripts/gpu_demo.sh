#!/usr/bin/env bash
# On the GPU machine: decode benchmark + the full demo recipe for each student kind on the shipped teacher.
# Usage (repo root): bash scripts/gpu_demo.sh OUT_DIR [distill overrides...]
#   (wheels for packages the GPU image lacks in .whl/; STUDENTS and RUN_TIMEOUT select runs and cap each)
set -uo pipefail
out=${1:?usage: gpu_demo.sh OUT_DIR [overrides...]}
shift
mkdir -p "$out"
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
python3 scripts/bench_decode.py --out "$out" 2>&1 | tee "$out/bench_decode.log" | tail -9
runs=$(mktemp -d)
for s in ${STUDENTS:-mamba2 gla rwkv7 hybrid}; do
  extra=()
  [ "$s" = hybrid ] && extra=("student.attn_layers=[3,7]")
  timeout "${RUN_TIMEOUT:-150}" python3 -m distill +experiment=demo_gpu student="$s" "${extra[@]}" name="demo_gpu_$s" "$@" \
    hydra.run.dir="$runs/$s" 2>&1 | grep -E "distill\]|Error|error" | tee -a "$out/demo_gpu.log"
  cp "$runs/$s/metrics.json" "$out/metrics_$s.json" 2>/dev/null || echo "$s: no metrics.json" | tee -a "$out/demo_gpu.log"
done
cp "$runs/mamba2/curves.png" "$out/curves_mamba2.png" 2>/dev/null || true
