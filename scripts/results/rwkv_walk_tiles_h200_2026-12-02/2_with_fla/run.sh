D=$W/2; mkdir -p $D
timeout 150 python -m pytest -q -m gpu tests/kernels/test_chunk_cumsum.py tests/kernels/test_delta_rule_chunk.py -k "full_shape_gpu" 2>&1 | grep -v "^Triton autotuning\|^with key\|^finished after\|^best config" | tee $D/tests.log | tail -3
timeout 420 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64' --impl 'BT=16 fused, lean walk,chunk_delta_rule,bounded' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|fault\|rror\|FAIL" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
