# profiles of delta-32 fwd+bwd at B=8 (this tree and the one before 59-60); fwd+bwd at B=1 T=4096; exp_ftz's GPU test
D=$W/2; mkdir -p $D
date -u | tee $D/device.txt
timeout 90 python scripts/profile_kernels.py --op delta-32 --shape 8,2048,16,64 --backward --out $D/prof_new 2>&1 | tee $D/prof_new.log | tail -25
timeout 90 python prev_1f7d2f9/scripts/profile_kernels.py --op delta-32 --shape 8,2048,16,64 --backward --out $D/prof_prev 2>&1 | tee $D/prof_prev.log | tail -25
timeout 40 python -m pytest -q -m gpu tests/kernels/test_triton_math.py -p no:cacheprovider 2>&1 | tee $D/math_tests.log | tail -3
timeout 250 python scripts/bench_kernels.py --isolate --only rwkv_prefill_bwd --shape 1,4096,16,64 --impl 'chunk_delta_rule,BT=16 fused$,bounded' --out $D/b1 2>&1 | tee $D/b1.log | grep "us (rel\|fault\|rror\|FAIL"
