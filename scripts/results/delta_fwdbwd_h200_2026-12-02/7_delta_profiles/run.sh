# NOTES 59-60, kernel by kernel: delta-32 and delta-16 fwd+bwd at B=8, the two trees in turn, twice
D=$W/7; mkdir -p $D; date -u > $D/device.txt
for i in 1 2; do for op in delta-32 delta-16; do for t in new prev; do
  p=scripts/profile_kernels.py; [ $t = prev ] && p=prev_1f7d2f9/$p
  timeout 30 python $p --op $op --shape 8,2048,16,64 --backward --iters 10 > $D/one.log 2>&1; cat $D/one.log >> $D/$t.log
  grep "^ *_delta\|^ *_chunk\|Self CUDA time" $D/one.log | awk -v t=$t$i-$op '{print t, $1, $(NF-1), $NF}'
done; done; done; rm -f $D/one.log
