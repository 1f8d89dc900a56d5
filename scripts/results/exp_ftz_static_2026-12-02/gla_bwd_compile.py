"""The GLA backward kernels that scripts/ptxas_report.py does not cover (dh, dv, dv_scores), compiled for sm_90a on
the CPU after the exp_ftz change: registers, spills, and whether the SASS holds MUFU.EX2 (kernels/NOTES.md 61).
Run from the repository root: ``python scripts/results/exp_ftz_static_2026-12-02/gla_bwd_compile.py``."""

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]
b = importlib.import_module("kernels.gla.triton_chunk_bwd")
P = importlib.import_module("ptxas_report")

BF, SC = "*bf16", {"scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}
for K in (64, 128):
    common = dict(H=16, K=K, V=K, BT=64, BK=64, IS_FP32=False)
    cases = [
        ("dh", b._gla_bwd_dh, {n: BF for n in ("q", "do")}, dict(common, BV=32, HAS_DHT=True, STORE_DH0=True)),
        ("dv", b._gla_bwd_dv, {n: BF for n in ("q", "k", "do", "dh", "dv")}, dict(common, BC=16, BV=64)),
        ("dv_scores", b._gla_bwd_dv_scores, {n: BF for n in ("k", "do", "dh", "dv")}, dict(common, BV=64)),
    ]
    for name, kernel, types, consts in cases:
        regs, spills, cubin = P.compile_sm90(kernel, types | SC, consts, 4, 2)
        print(name, K, "regs", regs, "spills", spills, "MUFU.EX2" in P.disassemble(cubin), flush=True)
