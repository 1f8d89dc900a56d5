# NOTES 63-65 kernel by kernel: fwd+bwd profiles of delta-16, GLA and SSD, this tree and 2a038b2's in turn;
# the SSD step sweep again (run 1's files did not all come back). Few files come back: the logs go in one tgz.
for op in delta-16 gla ssd; do
  timeout 170 python scripts/profile_ab.py run --before .ab/2a038b2 --op $op --shape 8,2048,16,64 --backward \
    --rounds 2 --timeout 80 --out $W/2_$op > $W/2_$op.log 2>&1
  cat $W/2_$op/profile_ab.md; mv $W/2_$op.log $W/2_$op/
done
python scripts/sweep_step_launch.py --ops SSD --shapes '1,16,64;1,16,128' --bvs 4,8,16,32 --out $W 2>&1 | grep -v '^Autotun'
(cd $W && tar czf logs2.tgz 2_*/*.log && rm -f 2_*/*.log)
