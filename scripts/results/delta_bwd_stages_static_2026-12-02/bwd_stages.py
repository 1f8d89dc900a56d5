"""The delta rule's bwd_v and bwd_k at the tiles the H200's autotuner picks (NOTES 62), at 2 and 3 stages:
registers, spills, shared memory and each loop's SASS instruction count, sm_90a, compiled on the CPU (NOTES 64).

    python scripts/results/delta_bwd_stages_static_2026-12-02/bwd_stages.py   # from the repository root
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import ptxas_report as pr  # noqa: E402

from kernels.delta_rule import triton_chunk_bwd as m  # noqa: E402

BF = "*bf16"
SCALARS = {"scale": "fp32", "T": "i32", "NT": "i32", "BH_BUCKET": "i32", "SIZE_CLASS": "i32"}
print("| kernel | K = V | chunk | tile, 4 warps | stages | registers | spills (B) | shared (KB) | loops (SASS instructions) |")
print("|---|---|---|---|---|---|---|---|---|")
for K in (64, 128):
    for BT in (16, 32, 64):
        common = dict(H=16, K=K, V=K, BT=BT, IS_FP32=False)
        for name, kernel, types, consts, tile in (
            ("bwd_v", m._delta_rule_chunk_bwd_v, {n: BF for n in ("v", "do", "P", "h", "dv")}, common, {"BK": 32, "BV": 32}),
            ("bwd_k", m._delta_rule_chunk_bwd_k, {n: BF for n in ("q", "k", "v", "a", "b", "do", "h", "dq", "dk", "da", "db")},
             dict(common, BC=16), {"BK": 64, "BV": 32}),
        ):
            for stages in (2, 3):
                c = dict(consts, **tile)
                regs, spills, cubin = pr.compile_sm90(kernel, types | SCALARS, c, 4, stages)
                smem = pr.shared_bytes_sm90(kernel, types | SCALARS, c, 4, stages)
                _, loops = pr.sass_loops(pr.disassemble(cubin))
                print(f"| {name} | {K} | {BT} | {tile} | {stages} | {regs} | {spills} | {smem / 1024:.0f} "
                      f"| {', '.join(str(sum(n.values())) for _, _, n in loops)} |", flush=True)
