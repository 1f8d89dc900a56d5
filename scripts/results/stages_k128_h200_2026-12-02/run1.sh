# SSD step launch at batch 1 (V blocks of 4 and 8 beside 16 and 32), the step rows with mamba_ssm, and fla's
# bounded RWKV-7 forward at K=V=128 alone (its autotune, cut or not, is saved for the next call)
D=$W/1; mkdir -p $D; nvidia-smi -L > $D/device.txt; date -u >> $D/device.txt
python scripts/sweep_step_launch.py --ops SSD --shapes '1,16,64;1,16,128' --bvs 4,8,16,32 --out $D 2>&1 | tee $D/sweep.log
timeout 150 python scripts/bench_kernels.py --only step --shape '1,16,64;1,16,128' --out $D 2>&1 | tee $D/step.log
timeout 300 python scripts/bench_kernels.py --only rwkv_prefill --shape '4,2048,16,128' --impl 'bounded' --out $W/1f 2>&1 | tee $D/fla128.log
