D=$W/1; mkdir -p $D
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $D/device.txt; date -u | tee -a $D/device.txt
timeout 300 python scripts/bench_kernels.py --isolate --only rwkv_prefill --shape '16,2048,16,64;8,2048,16,64' --impl 'BT=16 fused, lean walk,BT=64 fused, lean walk,chunk_delta_rule' --out $D 2>&1 | tee $D/fwd.log | grep "us (rel\|fault\|rror\|FAIL" | sed 's/RWKV-7 prefill fwd //; s/ (rel err \(.......\).*/ \1/'
timeout 50 python scripts/profile_kernels.py --op delta-16-lean --shape 16,2048,16,64 --out $D 2>&1 | tee $D/profile16.log | grep "_delta_rule\|cumsum"
timeout 50 python scripts/profile_kernels.py --op delta-16-lean-skip8 --shape 16,2048,16,64 --out $D 2>&1 | tee $D/profile16skip.log | grep "_delta_rule\|cumsum"
