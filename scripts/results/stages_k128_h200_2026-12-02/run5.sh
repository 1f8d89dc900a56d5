# The chunk choice under autograd at 32 and 64 batch·heads by the profiler's kernel sum (run 3's bench rows of one
# call moved 25 % between two rows of the same kernels), then the K=V=128 forward at batch 1 beside fla's bounded path
D=$W/5; mkdir -p $D
for i in 1 2; do for s in 2,2048,16,64 4,2048,16,64; do for op in delta-16 delta-32; do
  timeout 60 python scripts/profile_kernels.py --op $op --shape $s --backward --iters 10 > $D/one.log 2>&1
  cat $D/one.log >> $D/prof.log
  grep "Self CUDA time" $D/one.log | awk -v t="$i $s $op" '{print t, $0}' | tee -a $D/sums.txt
done; done; done; rm -f $D/one.log
timeout 200 python scripts/bench_kernels.py --only rwkv_prefill --shape '1,4096,16,128' --impl 'chunk_delta_rule,bounded' \
  --out $D 2>&1 | grep -v '^Autotuning kernel' | tee $D/fwd128_b1.log
