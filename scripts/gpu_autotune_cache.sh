#!/usr/bin/env bash
# Carry Triton's autotune results from one GPU machine to the next (the lent machines start bare; fla's chunk
# kernels take 75-270 s to tune per shape, kernels/NOTES.md 39).
#   bash scripts/gpu_autotune_cache.sh save OUT    # on the GPU machine, after the runs: OUT/autotune-cache.tgz
#   bash scripts/gpu_autotune_cache.sh load TGZ    # here: unpack into .autotune-cache/ (git-ignored), merged
# scripts/gpu_env.sh copies .autotune-cache/ into TRITON_CACHE_DIR before a run; carry it with the command.
set -euo pipefail
cmd=${1:?usage: gpu_autotune_cache.sh save OUT | load TGZ}
case "$cmd" in
  save)
    out=${2:?usage: gpu_autotune_cache.sh save OUT}
    cache=${TRITON_CACHE_DIR:-$HOME/.triton/cache}
    mkdir -p "$out"
    # only the small JSON timings, not the compiled kernels beside them
    (cd "$cache" && find . -name '*.autotune.json' -print0 | tar czf - --null -T -) > "$out/autotune-cache.tgz"
    echo "autotune-cache: $(tar tzf "$out/autotune-cache.tgz" | grep -c autotune.json) results -> $out/autotune-cache.tgz"
    ;;
  load)
    tgz=${2:?usage: gpu_autotune_cache.sh load TGZ}
    mkdir -p .autotune-cache
    tar xzf "$tgz" -C .autotune-cache
    echo "autotune-cache: $(find .autotune-cache -name '*.autotune.json' | wc -l) results in .autotune-cache/"
    ;;
  *)
    echo "gpu_autotune_cache.sh: unknown command '$cmd' (save OUT | load TGZ)" >&2
    exit 2
    ;;
esac
