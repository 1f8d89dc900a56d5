D=$W/5; mkdir -p $D
timeout 150 python -m pytest -q tests/kernels/test_delta_rule_chunk.py -k "lean_walk or dispatch" 2>&1 | tee $D/tests.log | tail -3
timeout 330 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64;4,2048,16,64;2,2048,16,64;1,4096,16,64;4,2048,16,128' --impl 'BT=16 fused,BT=32 fused,BT=64 fused,chunk_delta_rule,ours fused_recurrent,bounded' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|fault" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
