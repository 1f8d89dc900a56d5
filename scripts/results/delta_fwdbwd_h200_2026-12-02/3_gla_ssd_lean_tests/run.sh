# NOTES 61: GLA chunk fwd, fwd+bwd and SSD chunk fwd, this tree vs the tree before exp_ftz; lean walk at chunks 32/64
D=$W/3; mkdir -p $D
date -u | tee $D/device.txt
S=8,2048,16,64
timeout 150 python scripts/bench_kernels.py --isolate --only gla_chunk,gla_chunk_bwd,chunk --shape $S --impl 'ours$,fla chunk_gla' --out $D/new 2>&1 | tee $D/new.log | grep "us (rel\|fault\|rror\|FAIL"
timeout 120 python prev_1f7d2f9/scripts/bench_kernels.py --isolate --only gla_chunk,gla_chunk_bwd,chunk --shape $S --impl 'ours$' --out $D/prev 2>&1 | tee $D/prev.log | grep "us (rel\|fault\|rror\|FAIL"
timeout 240 python -m pytest -v -m gpu tests/kernels/test_delta_rule_chunk.py -k "lean_walk_full_shape_gpu[32- or lean_walk_full_shape_gpu[64-" -p no:cacheprovider 2>&1 | grep -v "^Triton autotuning\|^with key\|^finished after\|^best config" | tee $D/lean_tests.log | grep "PASS\|FAIL\|passed\|failed\|rror"
