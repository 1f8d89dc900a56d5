# Sourced by the scripts/gpu_*.sh scripts (repo root, on the GPU machine): installs the wheels the GPU image
# lacks (.whl/, filled by the tool README's gpu-wheels step) into /tmp/site and sets the environment every
# GPU run uses. NVLink multicast stays off: the GPU hosts are shared, and it can take them out of service.
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1 TRITON_INTERPRET=0 HF_HUB_OFFLINE=1 WANDB_MODE=offline
# Autotuning: print the config each kernel picks (so a note can say which tile won, e.g. kernels/NOTES.md 39, 45),
# and keep the timings on disk, keyed by kernel source and key arguments, so that a second call on a warm machine
# does not re-tune (fla's chunk kernels took 75-180 s to autotune per shape and outran command limits).
export TRITON_PRINT_AUTOTUNING=1 TRITON_CACHE_AUTOTUNING=1
# Autotune results from earlier machines: `.autotune-cache/` (git-ignored, carried like .whl/) holds the
# <hash>/<kernel>.autotune.json files that `bash scripts/gpu_autotune_cache.sh save OUT` packed on an earlier call.
# Triton's hash covers its own build, the GPU target, the kernel's source, the key and the configs, so a changed
# kernel or another GPU kind simply re-tunes; an unchanged peer (fla) skips its minutes of tuning.
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$HOME/.triton/cache}
if [ -d .autotune-cache ]; then
  mkdir -p "$TRITON_CACHE_DIR" && cp -r .autotune-cache/. "$TRITON_CACHE_DIR"/
elif [ -f scripts/results/autotune-cache.tgz ]; then  # a fresh checkout: the committed copy (gpu_autotune_cache.sh load)
  mkdir -p "$TRITON_CACHE_DIR" && tar xzf scripts/results/autotune-cache.tgz -C "$TRITON_CACHE_DIR"
fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
