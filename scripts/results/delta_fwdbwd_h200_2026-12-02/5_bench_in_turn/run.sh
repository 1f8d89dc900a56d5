# NOTES 61 re-checked: the GLA fwd+bwd and SSD fwd rows, this tree and the one before exp_ftz taken in turn, then profiles
D=$W/5; mkdir -p $D
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $D/device.txt; date -u | tee -a $D/device.txt
for i in 1 2; do
  for t in new prev; do
    p=scripts/bench_kernels.py; [ $t = prev ] && p=prev_1f7d2f9/$p
    timeout 60 python $p --only gla_chunk_bwd,chunk --shape 8,2048,16,64 --impl 'ours$' --out $D/${t}$i 2>&1 | tee $D/${t}$i.log | grep "us (rel\|fault\|rror\|FAIL" | sed "s/^/$t$i /"
  done
done
for t in new prev; do
  p=scripts/profile_kernels.py; [ $t = prev ] && p=prev_1f7d2f9/$p
  timeout 45 python $p --op gla --shape 8,2048,16,64 --backward 2>&1 | tee $D/prof_gla_$t.log | grep "_gla\|Self CUDA"
  timeout 45 python $p --op ssd --shape 8,2048,16,64 2>&1 | tee $D/prof_ssd_$t.log | grep "_ssd\|Self CUDA"
done
