# RWKV-7 forward at K=V=128 (ours beside fla's bounded path, tuned by run 1), then the chunk choice under
# autograd at 32 and 64 batch·heads (K=V=64)
D=$W/3; mkdir -p $D
timeout 240 python scripts/bench_kernels.py --only rwkv_prefill --shape '4,2048,16,128' \
  --impl 'lean walk$,skip group 8,chunk_delta_rule,bounded' --out $D 2>&1 | tee $D/fwd128.log
timeout 240 python scripts/bench_kernels.py --isolate --only rwkv_prefill_bwd --shape '2,2048,16,64;4,2048,16,64' \
  --impl 'BT=16 fused$,BT=32 fused$,chunk_delta_rule' --out $W/3b 2>&1 | tee $D/bwd_bh.log
