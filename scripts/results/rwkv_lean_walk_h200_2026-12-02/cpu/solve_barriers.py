"""CTA barriers per program of the fused delta-rule solve (kernels/NOTES.md 55), from ptxas and nvdisasm on the CPU:
the static count with each outermost loop counted cdiv(K, BK) times (every loop of the solve is a loop over K
blocks). Run from the repository root: ``python scripts/results/rwkv_lean_walk_h200_2026-12-02/cpu/solve_barriers.py``."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import ptxas_report as P  # noqa: E402

from kernels.delta_rule import triton_chunk as m  # noqa: E402

TYPES = {n: "*bf16" for n in ("q", "k", "a", "b", "Qe", "P")} | {"scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}
TILES = ((16, 4, 128), (16, 4, None), (16, 8, None), (32, 8, None), (32, 4, None), (64, 4, None), (64, 8, None))


def per_program(total, loops, trips):
    """(barriers, instructions) per program: outermost loops counted ``trips`` times."""
    outer = [lp for lp in loops if not any(o[0] <= lp[0] and lp[1] <= o[1] and o != lp for o in loops)]
    in_loops = [(o["BAR"], sum(o.values())) for _, _, o in outer]
    bars = total["BAR"] + (trips - 1) * sum(b for b, _ in in_loops)
    return bars, sum(total.values()) + (trips - 1) * sum(n for _, n in in_loops)


print("| K | BT | BK | warps | maxnreg | registers | spills (B) | programs per SM | barriers per program | instructions per program |")
print("|---|---|---|---|---|---|---|---|---|---|")
for K in (64, 128):
    for BT in (16, 32):
        for BK, warps, cap in TILES:
            consts = dict(H=16, K=K, BT=BT, IS_FP32=False, BC=16, FUSED=True, SAVE_LM=False, BK=BK)
            regs, spills, cubin = P.compile_sm90(m._delta_rule_chunk_solve, TYPES, consts, warps, 2, cap)
            total, loops = P.sass_loops(P.disassemble(cubin))
            bars, instrs = per_program(total, loops, -(-K // BK))
            ctas = min(65536 // (regs * 32 * warps), 32)
            print(f"| {K} | {BT} | {BK} | {warps} | {cap or ''} | {regs} | {spills} | {ctas} | {bars} | {instrs} |", flush=True)
