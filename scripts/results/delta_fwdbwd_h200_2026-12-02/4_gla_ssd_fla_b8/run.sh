# run 3's new-tree GLA fwd+bwd and SSD rows (cut by its limit) and fla's bounded fwd+bwd at B=8 (cut in run 1)
D=$W/4; mkdir -p $D; date -u | tee $D/device.txt
timeout 120 python scripts/bench_kernels.py --isolate --only gla_chunk_bwd,chunk --shape 8,2048,16,64 --impl 'ours$' --out $D/new 2>&1 | tee $D/new.log | grep "us (rel\|fault\|rror\|FAIL"
timeout 200 python scripts/bench_kernels.py --isolate --only rwkv_prefill_bwd --shape 8,2048,16,64 --impl 'bounded,chunk_delta_rule' --out $D/b8 2>&1 | tee $D/b8.log | grep "us (rel\|fault\|rror\|FAIL\|imeout\|Killed"
