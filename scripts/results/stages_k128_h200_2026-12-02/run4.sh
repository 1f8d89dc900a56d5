# --graph on one GLA chunk row (its first GPU run), then RWKV-7 fwd+bwd at K=V=128 with fla's bounded path
# (its backward's first autotune at K=128; cut by the time limit if it runs long, the cache is saved after)
D=$W/4; mkdir -p $D
timeout 90 python scripts/bench_kernels.py --graph --only gla_chunk --shape '1,4096,16,64' --impl 'ours,fla chunk' \
  --out $W/4g 2>&1 | grep -v '^Autotuning kernel' | tee $D/graph.log
timeout 420 python scripts/bench_kernels.py --only rwkv_prefill_bwd --shape '4,2048,16,128' \
  --impl 'BT=16 fused$,BT=32 fused$,chunk_delta_rule,bounded' --out $D 2>&1 | grep -v '^Autotuning kernel' | tee $D/fwdbwd128.log
