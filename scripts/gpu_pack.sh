#!/usr/bin/env bash
# End a GPU command with this: the device tool returns at most 8 files from $OUT (and nothing nested deeper than two
# folders), so a run that writes more (a sweep, the bench's sections, ncu pages) loses all but the first 8 by name
# (a sweep table went that way, kernels/NOTES.md 72). This packs the autotune results (gpu_autotune_cache.sh save)
# and everything else under OUT into OUT/results.tgz, and leaves only those two files.
#   bash scripts/gpu_pack.sh OUT        # on the GPU machine, last in the command
#   tar xzf <files_at>/results.tgz -C DIR; bash scripts/gpu_autotune_cache.sh load <files_at>/autotune-cache.tgz
set -euo pipefail
out=${1:?usage: gpu_pack.sh OUT}
[ -d "$out" ] || { echo "gpu_pack.sh: $out is not a folder (give the command's \$OUT)" >&2; exit 2; }
bash "$(dirname "$0")/gpu_autotune_cache.sh" save "$out"
cd "$out"
tmp=.results.tgz.tmp
trap 'rm -f "$tmp"' EXIT
find . -mindepth 1 -maxdepth 1 ! -name autotune-cache.tgz ! -name results.tgz ! -name "$tmp" -printf '%P\0' \
  | LC_ALL=C sort -z | tar --null -czf "$tmp" -T -
mv "$tmp" results.tgz
find . -mindepth 1 -maxdepth 1 ! -name autotune-cache.tgz ! -name results.tgz -exec rm -rf {} +
echo "gpu_pack: $(tar tzf results.tgz | grep -vc '/$') files in $out/results.tgz, beside autotune-cache.tgz"
