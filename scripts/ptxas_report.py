"""Registers and spills of Triton kernels for sm_90, compiled on any machine (no GPU needed).

Compiles each GPU config of the chosen kernels through Triton's CUDA backend to PTX, runs the ``ptxas`` Triton
ships with ``-v`` and prints registers per thread and spill-store bytes. A config at 255 registers with spills
trades occupancy and local-memory traffic for its tile size; this is how kernels/NOTES.md's register counts are
taken. Kernel groups: ``delta_chunk_fwd`` (the chunked delta-rule forward: scores, solve, states, output) and
``delta_chunk_bwd`` (its backward: dstates, bwd_v, bwd_k).

    python scripts/ptxas_report.py delta_chunk_bwd [--stages 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from triton.runtime.jit import JITFunction

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET = GPUTarget("cuda", 90, 32)
PTXAS = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")


def ptxas_usage(kernel, types: dict, constexprs: dict, num_warps: int, num_stages: int) -> tuple[int, int]:
    """(registers per thread, spill-store bytes) of ``kernel`` (a ``triton.jit`` function) for sm_90a."""
    fn = kernel
    while not isinstance(fn, JITFunction):  # an autotuner (or heuristics) wraps the jit function
        fn = fn.fn
    signature = {n: "constexpr" if n in constexprs else types.get(n, "*fp32") for n in fn.arg_names}
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs), target=TARGET,
                              options={"num_warps": num_warps, "num_stages": num_stages})
    with tempfile.TemporaryDirectory() as d:
        ptx = Path(d, "k.ptx")
        ptx.write_text(compiled.asm["ptx"])
        log = subprocess.run([PTXAS, "-arch=sm_90a", "-v", str(ptx), "-o", str(Path(d, "k.cubin"))],
                             capture_output=True, text=True, check=True).stderr
    regs = int(re.search(r"Used (\d+) registers", log).group(1))
    spills = re.search(r"(\d+) bytes spill stores", log)
    return regs, int(spills.group(1)) if spills else 0


def delta_chunk_bwd(stages: int):
    from kernels.delta_rule import triton_chunk_bwd as m

    bf = "*bf16"
    scalars = {"scale": "fp32", "T": "i32", "NT": "i32", "BH_BUCKET": "i32"}
    for K in (64, 128):
        for BT in (16, 32, 64):
            common = dict(H=16, K=K, V=K, BT=BT, IS_FP32=False)
            cases = [
                ("dstates", m._delta_rule_chunk_dstates, {"do": bf, "Qe": bf},
                 dict(common, BK=triton.next_power_of_2(K), HAS_DHT=True, STORE_DH0=True)),
                ("bwd_v", m._delta_rule_chunk_bwd_v, {n: bf for n in ("v", "do", "P", "h", "dv")}, common),
                ("bwd_k", m._delta_rule_chunk_bwd_k, {n: bf for n in ("q", "k", "v", "a", "b", "do", "h", "dq", "dk", "da", "db")},
                 dict(common, BC=16)),
            ]
            for name, kernel, types, consts in cases:
                for meta, warps in m._TILES[name][0]:
                    regs, spills = ptxas_usage(kernel, types | scalars, consts | meta, warps, stages)
                    yield f"| {name} | {K} | {BT} | {meta} | {warps} | {regs} | {spills} |"


def delta_chunk_fwd(stages: int):
    from kernels.delta_rule import triton_chunk as m

    bf = "*bf16"
    scalars = {"scale": "fp32", "T": "i32", "NT": "i32", "BH_BUCKET": "i32"}
    for K in (64, 128):
        for BT in (16, 32, 64):
            common = dict(H=16, K=K, BT=BT, IS_FP32=False)
            cases = [
                ("scores", m._delta_rule_chunk_scores, {n: bf for n in ("q", "k", "a", "b")}, dict(common, BC=16, BKD=16)),
                ("solve", m._delta_rule_chunk_solve, {n: bf for n in ("q", "k", "a", "b", "Qe", "P")}, dict(common, BC=16)),
                ("states", m._delta_rule_chunk_states, {"v": bf, "h": bf},
                 dict(common, V=K, BK=triton.next_power_of_2(K), HAS_H0=True, STORE_FINAL=True)),
                ("output", m._delta_rule_chunk_output, {n: bf for n in ("v", "Qe", "P", "h", "o")}, dict(common, V=K)),
            ]
            for name, kernel, types, consts in cases:
                for meta, warps in m._TILES[name][0]:
                    regs, spills = ptxas_usage(kernel, types | scalars, consts | meta, warps, stages)
                    yield f"| {name} | {K} | {BT} | {meta} | {warps} | {regs} | {spills} |"


GROUPS = {"delta_chunk_bwd": delta_chunk_bwd, "delta_chunk_fwd": delta_chunk_fwd}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kernels", choices=sorted(GROUPS))
    ap.add_argument("--stages", type=int, default=2, help="num_stages (the 16-bit configs use 2)")
    ap.add_argument("--out", default="", help="also write the table here")
    args = ap.parse_args()
    lines = [f"ptxas (triton {triton.__version__}) sm_90a, bf16 inputs, num_stages={args.stages}", "",
             "| kernel | K = V | BT | tile | warps | registers | spill stores (bytes) |", "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for row in GROUPS[args.kernels](args.stages):
        print(row, flush=True)
        lines.append(row)
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
