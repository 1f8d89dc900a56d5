"""GLA's dq/dk kernel from the saved scores (dqk_da, both launches: factored diagonal and pairwise) at the tile the
H200 picks (BV 32, 4 warps; NOTES 62), at 2 and 3 stages: registers, spills, shared memory and each loop's SASS
instruction count, sm_90a, compiled on the CPU (kernels/NOTES.md 65).

    python scripts/results/gla_dqk_stages_static_2026-12-02/dqk_stages.py   # from the repository root
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import ptxas_report as pr  # noqa: E402

from kernels.gla import triton_chunk as m  # noqa: E402
from kernels.gla import triton_chunk_bwd as b  # noqa: E402

BF, SC = "*bf16", {"scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}
TYPES = {n: BF for n in ("q", "k", "v", "h", "do", "dh", "dq", "dk")} | SC
print("| K = V | launch | stages | registers | spills (B) | shared (KB) | loops (SASS instructions) |")
print("|---|---|---|---|---|---|---|")
for K in (64, 128):
    for factored in (True, False):
        c = dict(H=16, K=K, V=K, BT=m.CHUNK, BC=m.SUB_CHUNK, IS_FP32=False, BK=min(64, K), HAS_DA=True, FACTORED=factored,
                 BV=32)
        for stages in (2, 3):
            regs, spills, cubin = pr.compile_sm90(b._gla_bwd_dqk_da, TYPES, c, 4, stages)
            smem = pr.shared_bytes_sm90(b._gla_bwd_dqk_da, TYPES, c, 4, stages)
            _, loops = pr.sass_loops(pr.disassemble(cubin))
            print(f"| {K} | {'factored' if factored else 'pairwise'} | {stages} | {regs} | {spills} | {smem / 1024:.0f} "
                  f"| {', '.join(str(sum(n.values())) for _, _, n in loops)} |", flush=True)
