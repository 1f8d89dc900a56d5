export CUDA_LAUNCH_BLOCKING=1
timeout 80 python diag_lean.py 1,256,1,64 2>&1 | grep -v CUDAEvent | grep "FAULT\|OK\|triton_chunk.py\|Error" 
REPS=300 timeout 60 python diag_lean.py 2,2048,16,64 "walk:32:8" 2>&1 | grep -v CUDAEvent | grep "FAULT\|OK\|triton_chunk.py\|Error"
REPS=300 timeout 60 python diag_lean.py 2,2048,16,64 "walk:64:8;solve:16:8" 2>&1 | grep -v CUDAEvent | grep "FAULT\|OK\|triton_chunk.py\|Error"
timeout 200 compute-sanitizer --print-limit 4 python diag_lean.py 1,256,1,64 2>&1 | grep -v CUDAEvent | grep -v "^=========     Host Frame" | head -60
