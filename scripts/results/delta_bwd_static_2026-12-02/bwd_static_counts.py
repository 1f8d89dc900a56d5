"""Static SASS counts of the delta-rule backward's bwd_k and bwd_v kernels (kernels/NOTES.md 60), compiled on the CPU for
sm_90a with every pointer 16-byte aligned as a launch marks a torch tensor's: registers, spills, instructions in
all and in integer arithmetic, MUFU (exps), and each loop's body. ``--root`` compiles another checkout's kernel
(e.g. a worktree of the commit before), with this checkout's ptxas_report. Run from the repository root:
``python scripts/results/delta_bwd_static_2026-12-02/bwd_static_counts.py [--kernel bwd_v] [--root DIR]``."""

import argparse
import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ap = argparse.ArgumentParser()
ap.add_argument("--root", default=str(ROOT), help="the checkout whose kernels/ to compile")
ap.add_argument("--kernel", default="bwd_k", choices=("bwd_k", "bwd_v"))
args = ap.parse_args()
sys.path[:0] = [args.root, str(ROOT / "scripts")]

m = importlib.import_module("kernels.delta_rule.triton_chunk_bwd")  # the kernel first: ptxas_report adds ROOT
P = importlib.import_module("ptxas_report")

BF = {"bwd_k": ("q", "k", "v", "a", "b", "do", "h", "dq", "dk", "da", "db"), "bwd_v": ("v", "do", "P", "h", "dv")}[args.kernel]
TYPES = {n: "*bf16" for n in BF} | {"scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}
KERNEL = getattr(m, f"_delta_rule_chunk_{args.kernel}")
INT_OPS = ("IMAD", "IADD3", "LOP3", "SHF", "SEL", "LEA", "ISETP", "VIADD", "SGXT", "PRMT", "IABS", "IMNMX")
# (K, BT, BK, BV, warps): the kernel's 16-bit tiles at the training chunk (32) and at 16
TILES = [(64, bt, *tile[0].values(), tile[1]) for bt in (32, 16) for tile in m._TILES[args.kernel][0]]

print("| K | BT | BK | BV | warps | registers | spills (B) | instructions (integer) | MUFU | loops: instructions (integer) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for K, BT, BK, BV, warps in TILES:
    consts = dict(H=16, K=K, V=K, BT=BT, BK=BK, BV=BV, IS_FP32=False) | ({"BC": 16} if args.kernel == "bwd_k" else {})
    regs, spills, cubin = P.compile_sm90(KERNEL, TYPES, consts, warps, 2)
    total, loops = P.sass_loops(P.disassemble(cubin))
    n_int = sum(total[o] for o in INT_OPS)
    body = "; ".join(f"{sum(c.values())} ({sum(c[o] for o in INT_OPS)})" for _, _, c in loops)
    print(f"| {K} | {BT} | {BK} | {BV} | {warps} | {regs} | {spills} | {sum(total.values())} ({n_int}) | {total['MUFU']} | {body} |",
          flush=True)
