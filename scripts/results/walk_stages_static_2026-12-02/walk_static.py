"""GLA's state walks (forward states, backward dh) and SSD's backward dh at each autotuner config: registers,
spills, shared memory and the main loop's instruction count, sm_90a, compiled on the CPU (kernels/NOTES.md 63).

    python scripts/results/walk_stages_static_2026-12-02/walk_static.py   # from the repository root
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import ptxas_report as pr  # noqa: E402

from kernels.gla import triton_chunk as fwd  # noqa: E402
from kernels.gla import triton_chunk_bwd as bwd  # noqa: E402
from kernels.ssd import triton_chunk_bwd as ssd_bwd  # noqa: E402

BF, SC = "*bf16", {"scale": "fp32", "T": "i32", "NT": "i32", "SIZE_CLASS": "i32"}
print("| walk | K = V | BK | BV | warps | stages | registers | spills (B) | shared (KB) | main loop (SASS instructions) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for name, kernel, types, flags in (
    ("states", fwd._gla_chunk_states, {"k": BF, "v": BF, "h": BF} | SC, dict(HAS_H0=True, STORE_FINAL=True)),
    ("dh", bwd._gla_bwd_dh, {"q": BF, "do": BF, "dh": BF} | SC, dict(HAS_DHT=True, STORE_DH0=True)),
    ("ssd dh", ssd_bwd._ssd_chunk_bwd_dh, {"q": BF, "do": BF, "dh": BF} | SC, dict(HAS_DHT=True, STORE_DH0=True)),
):
    for K in (64, 128):
        cx = dict(H=16, K=K, V=K, BT=fwd.CHUNK, IS_FP32=False, **flags)
        if "BK" not in kernel.configs[0].kwargs:  # GLA's walks take K in blocks of at most 64
            cx["BK"] = min(64, K)
        for cfg in kernel.configs:
            c = dict(cx, **cfg.kwargs)
            regs, spills, cubin = pr.compile_sm90(kernel, types, c, cfg.num_warps, cfg.num_stages)
            smem = pr.shared_bytes_sm90(kernel, types, c, cfg.num_warps, cfg.num_stages)
            _, loops = pr.sass_loops(pr.disassemble(cubin))
            main = max((sum(n.values()) for _, _, n in loops), default=0)
            print(f"| {name} | {K} | {c['BK']} | {cfg.kwargs['BV']} | {cfg.num_warps} | {cfg.num_stages} | {regs} | {spills} "
                  f"| {smem / 1024:.0f} | {main} |", flush=True)
