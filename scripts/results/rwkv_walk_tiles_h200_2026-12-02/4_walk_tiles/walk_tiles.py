"""Lean-walk tile sweep (kernels/NOTES.md 58): each tile's forward (chunk_delta_rule_fwd, fused scores, lean walk,
H=16 K=V=64) is checked against the reference before it is timed, with the tile patched in for lean_walk_tile.
    python walk_tiles.py CHUNK BV/WARPS/STAGES,... B,T [B,T ...]
sweep1.log ran an earlier form of it (stages 2, chunk 16, B=8 and 16 at T=2048); sweep2.log and sweep3.log ran
    python walk_tiles.py 16 64/4/2,64/4/3,64/2/2,32/2/3,16/2/3 8,2048 16,2048   (and so on, the tiles as logged)."""
import functools
import sys

import torch
from triton.testing import do_bench

import kernels.delta_rule.triton_chunk as tc
from kernels.delta_rule.naive import naive_chunk_delta_rule
from scripts.bench_kernels import rel_err, rwkv_inputs

bt = int(sys.argv[1])
tiles = [tuple(map(int, x.split("/"))) for x in sys.argv[2].split(",")]
print(torch.cuda.get_device_name(), "chunk", bt, flush=True)
for bs in sys.argv[3:]:
    B, T = map(int, bs.split(","))
    H, D = 16, 64
    q, k, v, g, a, b, _, _ = rwkv_inputs(B, T, H, D)
    ref = naive_chunk_delta_rule(q.float(), k.float(), v.float(), g, a.float(), b.float(), 1.0, None, True)
    for bv, nw, ns in tiles:
        tc.lean_walk_tile = lambda bh, K, BT, bv=bv, nw=nw, ns=ns: {"BV": bv, "num_warps": nw, "num_stages": ns}
        fn = functools.partial(tc.chunk_delta_rule_fwd, q, k, v, g, a, b, 1.0, None, True, bt, fuse_scores=True,
                               walk_dtype=torch.bfloat16)

        o, s = fn()
        err = max(rel_err(o, ref[0]), rel_err(s, ref[1]))
        if not err < 1e-2:
            print(f"B={B} T={T} BV={bv} warps={nw} stages={ns}: rel err {err:.1e}, not timed", flush=True)
            continue
        t = do_bench(fn, warmup=50, rep=300) * 1e3
        print(f"B={B} T={T} BV={bv} warps={nw} stages={ns}: fwd {t:.1f} us rel err {err:.1e}", flush=True)
