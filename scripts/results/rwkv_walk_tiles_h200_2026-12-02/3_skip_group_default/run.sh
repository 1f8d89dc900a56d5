D=$W/3; mkdir -p $D
timeout 100 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64' --impl 'BT=16 fused, lean walk,chunk_delta_rule' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|fault\|rror\|FAIL" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
timeout 45 python scripts/profile_kernels.py --op delta-16-lean --shape 8,2048,16,64 --out $D 2>&1 | tee $D/profile8.log | grep "_delta_rule\|cumsum"
timeout 280 python -m pytest -q -m gpu tests/kernels/test_delta_rule_chunk.py -k "full_shape_gpu" -p no:cacheprovider 2>&1 | grep -v "^Triton autotuning\|^with key\|^finished after\|^best config" | tee $D/tests.log | tail -3
