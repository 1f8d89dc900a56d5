D=$W/1; mkdir -p $D
timeout 380 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64;4,2048,16,64;2,2048,16,64' --impl 'lean walk,BT=16 fused,BT=64 fused,chunk_delta_rule,fla chunk_rwkv7' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|^|\|fault\|rror"
for op in delta-64-lean delta-16-lean; do timeout 70 python scripts/profile_kernels.py --op $op --shape 16,2048,16,64 --out $D 2>&1 | tail -12; done
