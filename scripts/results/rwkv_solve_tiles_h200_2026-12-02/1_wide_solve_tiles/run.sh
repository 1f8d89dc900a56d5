D=$W/1; mkdir -p $D
timeout 110 python -m pytest -q -m gpu tests/kernels/test_delta_rule_chunk.py -k "lean_walk_full_shape_gpu" 2>&1 | grep -v "^Triton autotuning\|^best config" | tee $D/tests.log | tail -4
timeout 370 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64;4,2048,16,64;8,2048,16,128;4,2048,16,128' --impl 'lean walk,block inverse,chunk_delta_rule,bounded' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|fault\|rror\|FAIL" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
timeout 60 python scripts/profile_kernels.py --op delta-16-lean --shape 16,2048,16,64 --out $D 2>&1 | tee $D/profile16.log | tail -10
