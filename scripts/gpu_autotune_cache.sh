#!/usr/bin/env bash
# Carry Triton's autotune results from one GPU machine to the next (the lent machines start bare; fla's chunk
# kernels take 75-270 s to tune per shape, kernels/NOTES.md 39).
#   bash scripts/gpu_autotune_cache.sh save OUT    # on the GPU machine, after the runs: OUT/autotune-cache.tgz
#   bash scripts/gpu_autotune_cache.sh load TGZ    # here: unpack into .autotune-cache/ (git-ignored), merged, and
#                                                  # repack all of it as scripts/results/autotune-cache.tgz (tracked)
# scripts/gpu_env.sh copies .autotune-cache/ into TRITON_CACHE_DIR before a run; carry it with the command. A fresh
# checkout has no .autotune-cache/ (ignored files do not travel): commit scripts/results/autotune-cache.tgz after a
# load, and gpu_env.sh unpacks it where .autotune-cache/ is missing (a session lost 371 tunes that way, NOTES 70).
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
    # the same bytes for the same files (sorted, no times or owners), so an unchanged cache is no change to commit
    tmp=scripts/results/.autotune-cache.tgz.tmp
    trap 'rm -f "$tmp"' EXIT  # a failed pack leaves no half-written file
    (cd .autotune-cache && find . -name '*.autotune.json' -print0 | LC_ALL=C sort -z \
       | tar --null --no-recursion --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - -T -) | gzip -n > "$tmp"
    mv "$tmp" scripts/results/autotune-cache.tgz
    echo "autotune-cache: packed as scripts/results/autotune-cache.tgz (commit it: a fresh checkout unpacks it)"
    ;;
  *)
    echo "gpu_autotune_cache.sh: unknown command '$cmd' (save OUT | load TGZ)" >&2
    exit 2
    ;;
esac
