#!/usr/bin/env bash
# On a 2-GPU machine: the shipped teacher's recipe (demo_gpu) on 1 GPU, DDP and FSDP on 2, with
# training throughput and held-out metrics side by side (scripts/multi_gpu_report.py writes the table).
# Usage (repo root): bash scripts/gpu_multi.sh OUT_DIR [distill overrides...]
#   STEPS (default 300) steps per run; RUN_TIMEOUT (default 300) seconds cap per run;
#   RUNS (default all four) picks runs by name.
# Runs: gpu1_b32 (1 GPU, batch 32) is the reference; ddp2_b16 and fsdp2_b16 keep its global batch
# (metrics must match it); ddp2_b32 keeps its per-GPU batch (throughput scaling).
set -uo pipefail
out=${1:?usage: gpu_multi.sh OUT_DIR [overrides...]}
shift
mkdir -p "$out"
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
steps=${STEPS:-300}
runs=$(mktemp -d)
common=(+experiment=demo_gpu "trainer.max_steps=$steps" "trainer.val_check_interval=$((steps / 2))" trainer.enable_progress_bar=false)
one() {
  local name=$1
  shift
  case " ${RUNS:-gpu1_b32 ddp2_b16 ddp2_b32 fsdp2_b16} " in *" $name "*) ;; *) return ;; esac
  echo "== $name: $*" | tee -a "$out/gpu_multi.log"
  timeout "${RUN_TIMEOUT:-300}" python3 -m distill "${common[@]}" "$@" name="$name" hydra.run.dir="$runs/$name" 2>&1 |
    tee "$out/$name.log" | grep -E "distill\]|throughput|Error|error" | tee -a "$out/gpu_multi.log"
  cp "$runs/$name/metrics.json" "$out/metrics_$name.json" 2>/dev/null || echo "$name: no metrics.json" | tee -a "$out/gpu_multi.log"
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/devices.txt"
CUDA_VISIBLE_DEVICES=0 one gpu1_b32 trainer=gpu trainer.devices=1 data.batch_size=32 "$@"
one ddp2_b16 trainer=ddp trainer.devices=2 data.batch_size=16 "$@"
one ddp2_b32 trainer=ddp trainer.devices=2 data.batch_size=32 "$@"
one fsdp2_b16 trainer=fsdp trainer.devices=2 data.batch_size=16 "$@"
python3 scripts/multi_gpu_report.py "$out" | tee "$out/multi_gpu.md"
