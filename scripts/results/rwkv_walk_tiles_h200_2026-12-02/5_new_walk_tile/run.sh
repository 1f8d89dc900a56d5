D=$W/7; mkdir -p $D
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $D/device.txt; date -u | tee -a $D/device.txt
timeout 90 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64' --impl 'chunk_delta_rule,bounded' --out $D/big 2>&1 | tee $D/fwd_big.log | grep "us (rel\|fault\|rror\|FAIL" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
timeout 170 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '4,2048,16,64;2,2048,16,64;1,4096,16,64' --impl 'chunk_delta_rule,bounded' --out $D/small 2>&1 | tee $D/fwd_small.log | grep "us (rel\|fault\|rror\|FAIL" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
timeout 80 python -m pytest -q -m gpu tests/kernels/test_delta_rule_chunk.py -k "lean_walk_full_shape_gpu" -p no:cacheprovider 2>&1 | grep -v "^Triton autotuning\|^with key\|^finished after\|^best config" | tee $D/tests.log | tail -3
