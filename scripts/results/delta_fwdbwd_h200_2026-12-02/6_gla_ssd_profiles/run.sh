# NOTES 61, kernel by kernel: profiles of the SSD forward and the GLA forward + backward, the two trees in turn, three times
D=$W/6; mkdir -p $D
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $D/device.txt; date -u | tee -a $D/device.txt
for i in 1 2 3; do
  for t in new prev; do
    p=scripts/profile_kernels.py; [ $t = prev ] && p=prev_1f7d2f9/$p
    timeout 40 python $p --op ssd --shape 8,2048,16,64 --iters 20 > $D/one.log 2>&1; cat $D/one.log >> $D/$t.log
    grep "^ *_ssd" $D/one.log | awk -v t=$t$i '{print t, $1, $(NF-1), $NF}'
    timeout 50 python $p --op gla --shape 8,2048,16,64 --backward --iters 10 > $D/one.log 2>&1; cat $D/one.log >> $D/$t.log
    grep "^ *_gla\|Self CUDA time" $D/one.log | awk -v t=$t$i '{print t, $1, $(NF-1), $NF}'
  done
done
rm -f $D/one.log
