#!/usr/bin/env bash
# The kernel work of one GPU call: every kernel test file in its own process, the SSD chunk backward's bf16
# cases under compute-sanitizer (a guard: the Hopper fault it caught, kernels/NOTES.md 19 and 23, is worked
# around), then the benchmark with each section in its own process. Results are written as they come, so a call cut short keeps what finished.
# Usage (repo root, on a CUDA machine; wheels for packages the image lacks in .whl/, see README):
#   bash scripts/gpu_kernels.sh OUT_DIR [bench sections, comma-separated]
#   TEST_TIMEOUT (default 120) caps each test file and the memcheck, in seconds; SKIP_TESTS=1 benchmarks only;
#   TESTS="tests/kernels/test_gla_bwd.py ..." runs those test files instead of every one (and no memcheck).
#   PROFILE="gla gla-saved ssd delta" first writes a kernel-by-kernel profile of each op's fwd+bwd (scripts/profile_kernels.py);
#   SWEEP=1 first sweeps the decode-step launch (scripts/sweep_step_launch.py; SWEEP_ARGS="..." are passed to it,
#   e.g. --ops RWKV-7 --rounds 5 --variants out-of-place --peer).
#   HEADLINE=1 benchmarks per op only what its users run and the peers (bench_kernels.py --headline), not the
#   variants kept for kernels/NOTES.md's experiments: the whole table in a few commands of the lent machine.
#   BUDGET=S: the benchmark starts no row past S seconds of its own (bench_kernels.py --budget) and lists what it
#   left, so that a command limit does not cut it mid-row and the autotune cache is still saved after it: leave a
#   row's time (a few minutes where a peer autotunes) between S and the command's limit.
set -uo pipefail
out=${1:?usage: gpu_kernels.sh OUT_DIR [SECTIONS]}
sections=${2:-}
mkdir -p "$out"
# shellcheck source=scripts/gpu_env.sh
source scripts/gpu_env.sh
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
t=${TEST_TIMEOUT:-120}
for op in ${PROFILE:-}; do
  timeout "$t" python3 scripts/profile_kernels.py --op "$op" --backward --out "$out" 2>&1 | tail -30
done
if [ "${SWEEP:-0}" = 1 ]; then
  # shellcheck disable=SC2086  # SWEEP_ARGS is a list of arguments
  timeout 300 python3 scripts/sweep_step_launch.py --out "$out" ${SWEEP_ARGS:-} 2>&1 | grep "^|"
fi
for f in $([ "${SKIP_TESTS:-0}" = 1 ] || echo "${TESTS:-tests/kernels/test_*.py}"); do
  timeout "$t" python3 -m pytest -q -m gpu -rf "$f" 2>&1 | tee -a "$out/gpu_tests.log" | tail -3
  # A file cut off by its cap says so (a cold autotune cache can take test_ssd.py past 350 s): not a pass.
  if [ "${PIPESTATUS[0]}" = 124 ]; then
    echo "gpu_kernels.sh: $f stopped after ${t} s (TEST_TIMEOUT), results incomplete" | tee -a "$out/gpu_tests.log"
  fi
done
if [ "${SKIP_TESTS:-0}" = 1 ]; then
  :
elif [ -n "${TESTS:-}" ]; then
  :  # a chosen set of test files: no memcheck
elif command -v compute-sanitizer >/dev/null 2>&1; then
  timeout "$t" compute-sanitizer --tool memcheck python3 -m pytest -q -m gpu -x tests/kernels/test_ssd_bwd.py -k dtype1 \
    > "$out/ssd_bwd_memcheck.log" 2>&1
  tail -5 "$out/ssd_bwd_memcheck.log"
else
  echo "compute-sanitizer not on PATH: SSD backward memcheck skipped" | tee "$out/ssd_bwd_memcheck.log"
fi
python3 scripts/bench_kernels.py --isolate --out "$out" ${sections:+--only "$sections"} \
  $([ "${HEADLINE:-0}" = 1 ] && echo --headline) ${BUDGET:+--budget "$BUDGET"} 2>&1 | tee "$out/bench.log" \
  | grep -E "^\| |geomean|exit code|not run"
bash scripts/gpu_autotune_cache.sh save "$out"  # for the next machine: see that script
