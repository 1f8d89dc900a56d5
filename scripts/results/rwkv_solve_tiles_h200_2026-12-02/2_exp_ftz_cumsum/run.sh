D=$W/2; mkdir -p $D
timeout 100 python -m pytest -q -m gpu tests/kernels/test_chunk_cumsum.py tests/kernels/test_delta_rule_chunk.py -k "full_shape_gpu and not lean_walk" 2>&1 | grep -v "^Triton autotuning\|^with key\|^finished after\|^best config" | tee $D/tests.log | tail -3
timeout 320 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64;4,2048,16,64;8,2048,16,128' --impl 'lean walk,chunk_delta_rule,bounded' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|fault\|rror\|FAIL" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
timeout 45 python scripts/bench_kernels.py --only gla_chunk --shape '8,2048,16,64' --impl 'ours' --out $D/gla 2>&1 | tee $D/gla.log | grep "us (rel\|rror\|FAIL"
timeout 45 python scripts/profile_kernels.py --op delta-16-lean --shape 16,2048,16,64 --out $D 2>&1 | tee $D/profile16.log | grep "_delta_rule\|cumsum"
