"""Static SASS counts per program of the fused delta-rule solve (kernels/NOTES.md 56), compiled on the CPU for sm_90a
with every pointer 16-byte aligned as a launch marks a torch tensor's. Outermost loops count cdiv(K, BK) times (every
loop of the solve is a loop over K blocks). ``--root`` compiles another checkout's kernel (e.g. a worktree of the
commit before), with this checkout's ptxas_report. Run from the repository root:
``python scripts/results/rwkv_solve_tiles_h200_2026-12-02/cpu/solve_static_counts.py [--root DIR]``."""

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
ap = argparse.ArgumentParser()
ap.add_argument("--root", default=str(ROOT), help="the checkout whose kernels/ to compile")
args = ap.parse_args()
sys.path[:0] = [args.root, str(ROOT / "scripts")]

# the kernel first: ptxas_report puts this checkout's root on the path
m = importlib.import_module("kernels.delta_rule.triton_chunk")
P = importlib.import_module("ptxas_report")

TYPES = {n: "*bf16" for n in ("q", "k", "a", "b", "Qe", "P", "Ae", "Bo", "Ke")} | {
    "scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}
# (K, BT, BK, warps, maxnreg): the autotuner's picks on the H200 (chunk 16: BK 32 at K = 64, BK 64 at K = 128; chunk 64:
# BK 16 at 4 warps), the chunk-16 tile it picked before (BK 16, 4 warps) and the chunk-16 tiles NOTES 57 offers
TILES = ((64, 16, 32, 4, None), (64, 16, 16, 4, None), (128, 16, 64, 4, None), (64, 32, 16, 4, None), (64, 64, 16, 4, None),
         (64, 64, 16, 8, None), (64, 16, 32, 2, None), (128, 16, 64, 2, None), (64, 16, 32, 1, None))
INT_OPS = ("IMAD", "IADD3", "LOP3", "SHF", "SEL", "LEA", "ISETP", "VIADD", "SGXT", "PRMT")


def per_program(total, loops, trips):
    """(barriers, instructions, MUFU) per program: outermost loops counted ``trips`` times."""
    outer = [lp for lp in loops if not any(o[0] <= lp[0] and lp[1] <= o[1] and o != lp for o in loops)]
    inner = [o for _, _, o in outer]
    return tuple(sum(total[x] for x in ops) + (trips - 1) * sum(sum(o[x] for x in ops) for o in inner)
                 for ops in (("BAR",), tuple(total), ("MUFU",)))


print("| K | BT | BK | warps | maxnreg | registers | spills (B) | static instructions (integer) | per program | MUFU per program "
      "| barriers per program | warp instructions per chunk |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for K, BT, BK, warps, cap in TILES:
    consts = dict(H=16, K=K, BT=BT, IS_FP32=False, BC=16, FUSED=True, SAVE_LM=False, BK=BK, BLOCK_INV=False)
    regs, spills, cubin = P.compile_sm90(m._delta_rule_chunk_solve, TYPES, consts, warps, 2, cap)
    total, loops = P.sass_loops(P.disassemble(cubin))
    bars, instrs, mufu = per_program(total, loops, -(-K // BK))
    n_int = sum(total[o] for o in INT_OPS)
    row = (K, BT, BK, warps, cap or "", regs, spills, f"{sum(total.values())} ({n_int})", instrs, mufu, bars, instrs * warps)
    print("| " + " | ".join(map(str, row)) + " |",
          flush=True)
