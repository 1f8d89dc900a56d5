D=$W/6; mkdir -p $D
timeout 170 python scripts/bench_kernels.py --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64;4,2048,16,64;4,2048,16,128' --impl 'fused, lean walk' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|FAILED" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
