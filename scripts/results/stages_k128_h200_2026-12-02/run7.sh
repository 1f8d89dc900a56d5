# SSD and GLA decode steps at batch 1: V blocks of 8 and 16 at every warp count and mamba_ssm's step, each timed
# once per round, ten rounds in turn (run 1's single timings moved by up to 0.04 µs between sweeps)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/device.txt; date -u >> $OUT/device.txt
timeout 130 python scripts/sweep_step_launch.py --ops SSD,GLA --shapes '1,16,64;1,16,128' --bvs 8,16 --rounds 10 --peer \
  --out $OUT 2>&1 | grep -v '^Autotun' | tee $OUT/sweep.log
