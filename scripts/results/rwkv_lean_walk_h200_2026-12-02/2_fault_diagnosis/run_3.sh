export CUDA_LAUNCH_BLOCKING=1
f() { timeout 60 python diag_lean.py "$@" 2>&1 | grep -v CUDAEvent | grep "FAULT\|OK" | sed "s/^/MODE=$MODE: /"; }
for shp in 1,256,1,64 2,2048,16,64; do
MODE= f $shp; MODE=cfg2 f $shp; MODE=cfg1 f $shp; MODE=pad f $shp
done
unset CUDA_LAUNCH_BLOCKING; MODE= f 2,2048,16,64
