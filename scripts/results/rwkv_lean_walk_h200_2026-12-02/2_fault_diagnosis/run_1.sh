export CUDA_LAUNCH_BLOCKING=1
which compute-sanitizer; ls /usr/local/cuda*/bin 2>/dev/null | grep -i sanit
for args in "1,128,1,64" "1,256,1,64" "2,2048,16,64" "2,2048,16,64 walk:32:8" "2,2048,16,64 walk:64:8" "2,2048,16,64 walk:16:4" "2,2048,16,64 walk:32:4" "2,2048,16,64 solve:16:8;walk:32:8" "2,2048,16,64 _ split" "1,256,1,128" "1,256,1,32"; do
  timeout 60 python diag_lean.py $args 2>&1 | grep -v "^Autotun\|best config\|finished\|with key" | tail -4
done
CS=$(which compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
[ -n "$CS" ] && timeout 150 $CS --print-limit 5 python diag_lean.py 1,128,1,64 "walk:32:8" 2>&1 | tail -40
