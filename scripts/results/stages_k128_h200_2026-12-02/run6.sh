# NOTES 63-65's configs at full shape through the correctness-gated bench: GLA and SSD fwd+bwd at B=8 with the peers
D=$W/6; mkdir -p $D
timeout 300 python scripts/bench_kernels.py --only gla_chunk_bwd,chunk_bwd --shape '8,2048,16,64' \
  --out $D 2>&1 | grep -v '^Autotuning kernel' | tee $D/bwd.log
