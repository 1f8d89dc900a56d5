D=$W/4; mkdir -p $D
timeout 60 python scripts/profile_kernels.py --op delta-16-lean --shape 16,2048,16,64 --out $D 2>&1 | tee $D/profile16.log | grep "_delta_rule\|cumsum"
timeout 170 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64' --impl 'chunk_delta_rule,bounded' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|fault\|rror\|FAIL" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
