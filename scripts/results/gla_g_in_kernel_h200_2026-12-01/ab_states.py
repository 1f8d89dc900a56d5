"""A/B of the GLA chunk forward's decay sums (H200 run of 2026-12-01; repo root: python <this file>).

A: chunk_gla_fwd as committed: the state walk and the output kernel each sum g per chunk in registers
   (tl.cumsum), and no G tensor is written.
B: the state walk reads G from the torch pass (chunk_local_cumsum, padded, fp32) as before; the output
   kernel as in A. Same results up to the summation order.
Each is timed with triton.testing.do_bench (median) after a correctness check against the fp32 reference.
"""

import torch
import triton

from kernels.gla.naive import naive_chunk_gla
from kernels.gla.triton_chunk import (
    CHUNK,
    SUB_CHUNK,
    WHOLE_MAX_K,
    _gla_chunk_output,
    chunk_gla_fwd,
    chunk_gla_states,
    chunk_local_cumsum,
)


def variant_b(q, k, v, g, scale):
    B, T, H, K = q.shape
    V = v.shape[-1]
    NT = triton.cdiv(T, CHUNK)
    h, hT = chunk_gla_states(k, v, chunk_local_cumsum(g), None, True, cumsum=False)
    G = torch.empty(B, NT * CHUNK, H, K, device=q.device, dtype=torch.float32)
    o = torch.empty_like(v)
    BK = max(16, triton.next_power_of_2(K))
    _gla_chunk_output[lambda meta: (triton.cdiv(V, meta["BV"]), NT, B * H)](
        q, k, v, g, G, h, o, None, float(scale), T, NT, H=H, K=K, V=V, BT=CHUNK, BC=SUB_CHUNK, BK=BK,
        IS_FP32=False, STORE_A=False, WHOLE=BK <= WHOLE_MAX_K)
    return o, hT


def bench(fn):
    return triton.testing.do_bench(fn, return_mode="median") * 1e3


def row(B, T, H, D):
    torch.manual_seed(0)
    q, k, v = (torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    g = torch.nn.functional.logsigmoid(torch.randn(B, T, H, D, device="cuda")) / 16
    scale = D**-0.5
    ref = naive_chunk_gla(q.float(), k.float(), v.float(), g, scale, None, True)
    a = lambda: chunk_gla_fwd(q, k, v, g, scale, None, True)  # noqa: E731
    b = lambda: variant_b(q, k, v, g, scale)  # noqa: E731
    for name, fn in (("A", a), ("B", b)):
        o, hT = fn()
        err = max(((o.float() - ref[0]).norm() / ref[0].norm()).item(), ((hT - ref[1]).norm() / ref[1].norm()).item())
        assert err < 1e-2, f"{name} at {(B, T, H, D)}: rel err {err:.2e}"
    sa = bench(lambda: chunk_gla_states(k, v, g, None, True))
    sb = bench(lambda: chunk_gla_states(k, v, chunk_local_cumsum(g), None, True, cumsum=False))
    return bench(a), bench(b), sa, sb


def main():
    print(torch.cuda.get_device_name(), torch.__version__, triton.__version__)
    print("| shape | A: G in registers (us) | B: G from torch (us) | states A (us) | states B incl. cumsum (us) |")
    print("|---|---|---|---|---|")
    for B, T, H, D in [(1, 1024, 16, 64), (1, 4096, 16, 128), (1, 16384, 16, 128), (8, 4096, 16, 64),
                       (8, 4096, 16, 128), (64, 1024, 16, 128)]:
        ta, tb, sa, sb = row(B, T, H, D)
        print(f"| B={B} T={T} H={H} K=V={D} | {ta:.1f} | {tb:.1f} | {sa:.1f} | {sb:.1f} |", flush=True)


if __name__ == "__main__":
    main()
