# fwd+bwd at B=8 T=2048 H=16 K=V=64: this tree (NOTES 59-60) with fla's bounded path, then the tree before 59-60
D=$W/1; mkdir -p $D
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $D/device.txt; date -u | tee -a $D/device.txt
S=8,2048,16,64
timeout 320 python scripts/bench_kernels.py --isolate --only rwkv_prefill_bwd --shape $S --impl 'chunk_delta_rule,BT=16 fused$,bounded' --out $D/new 2>&1 | tee $D/new.log | grep "us (rel\|fault\|rror\|FAIL"
timeout 170 python prev_1f7d2f9/scripts/bench_kernels.py --isolate --only rwkv_prefill_bwd --shape $S --impl 'chunk_delta_rule,BT=16 fused$' --out $D/prev 2>&1 | tee $D/prev.log | grep "us (rel\|fault\|rror\|FAIL"
