"""Static SASS counts of the delta-rule backward's bwd_k kernel (kernels/NOTES.md 60), compiled on the CPU for
sm_90a with every pointer 16-byte aligned as a launch marks a torch tensor's: registers, spills, instructions in
all and in integer arithmetic, MUFU (exps), and each loop's body. ``--root`` compiles another checkout's kernel
(e.g. a worktree of the commit before), with this checkout's ptxas_report. Run from the repository root:
``python scripts/results/delta_bwd_static_2026-12-02/bwd_k_static_counts.py [--root DIR]``."""

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ap = argparse.ArgumentParser()
ap.add_argument("--root", default=str(ROOT), help="the checkout whose kernels/ to compile")
args = ap.parse_args()
sys.path[:0] = [args.root, str(ROOT / "scripts")]

m = importlib.import_module("kernels.delta_rule.triton_chunk_bwd")  # the kernel first: ptxas_report adds ROOT
P = importlib.import_module("ptxas_report")

BF = ("q", "k", "v", "a", "b", "do", "h", "dq", "dk", "da", "db")
TYPES = {n: "*bf16" for n in BF} | {"scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}
INT_OPS = ("IMAD", "IADD3", "LOP3", "SHF", "SEL", "LEA", "ISETP", "VIADD", "SGXT", "PRMT", "IABS", "IMNMX")
# (K, BT, BK, BV, warps): bwd_k's 16-bit tiles at the training chunk (32) and at 16
TILES = [(64, bt, bk, bv, w) for bt in (32, 16) for (bk, bv, w) in ((32, 32, 4), (64, 32, 4), (64, 64, 8))]

print("| K | BT | BK | BV | warps | registers | spills (B) | instructions (integer) | MUFU | loops: instructions (integer) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for K, BT, BK, BV, warps in TILES:
    consts = dict(H=16, K=K, V=K, BT=BT, BC=16, BK=BK, BV=BV, IS_FP32=False)
    regs, spills, cubin = P.compile_sm90(m._delta_rule_chunk_bwd_k, TYPES, consts, warps, 2)
    total, loops = P.sass_loops(P.disassemble(cubin))
    n_int = sum(total[o] for o in INT_OPS)
    body = "; ".join(f"{sum(c.values())} ({sum(c[o] for o in INT_OPS)})" for _, _, c in loops)
    print(f"| {K} | {BT} | {BK} | {BV} | {warps} | {regs} | {spills} | {sum(total.values())} ({n_int}) | {total['MUFU']} | {body} |",
          flush=True)
