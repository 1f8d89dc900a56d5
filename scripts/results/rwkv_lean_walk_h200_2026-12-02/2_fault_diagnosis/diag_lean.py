"""Which launch of a lean chunk-64 walk faults, and under which configs (kernels/NOTES.md 54). Run from the repo
root on a GPU: ``python diag_lean.py B,T,H,D [walk:BV:warps;solve:BK:warps] [split]``, env ``REPS`` (calls),
``MODE`` (``cfg2``: two walk tiles under the autotuner; ``pad``: 64 K elements behind Ã, b̄, k_eff)."""
import os
import sys
import traceback

import torch
import torch.nn.functional as F
import triton

import kernels.delta_rule.triton_chunk as C

B, T, H, D = map(int, sys.argv[1].split(","))
pin = sys.argv[2] if len(sys.argv) > 2 else ""
dev, bf = "cuda", torch.bfloat16
torch.manual_seed(0)
q, v = (torch.randn(B, T, H, D, device=dev, dtype=bf) for _ in range(2))
k = (torch.randn(B, T, H, D, device=dev) / D**0.5).to(bf)
g = -0.6 * torch.rand(B, T, H, D, device=dev)
kk = F.normalize(torch.randn(B, T, H, D, device=dev), dim=-1)
a, b = (-kk).to(bf), (kk * torch.rand_like(kk)).to(bf)
for part in [p for p in pin.split(";") if ":" in p]:
    name, meta, w = part.split(":")
    kern = {"walk": C._delta_rule_chunk_states, "solve": C._delta_rule_chunk_solve}[name]
    key = "BV" if name == "walk" else "BK"
    kern.configs = [triton.Config({key: int(meta)}, num_warps=int(w), num_stages=2)]
fuse = "split" not in sys.argv
mode = os.environ.get("MODE", "")
if mode.startswith("cfg"):  # several explicit configs: autotuning on, no prune
    st = int(mode[3:])
    C._delta_rule_chunk_states.configs = [triton.Config({"BV": bv}, num_warps=8, num_stages=st) for bv in (32, 64)]
if mode == "pad":  # room for one chunk past the end of Ae, Bo, Ke
    class _T:
        def __getattr__(self, n):
            return getattr(torch, n)
        def empty(self, *shape, **kw):
            if len(shape) == 4 and shape[0] == 3 and kw.get("dtype") == bf:
                n = shape[0] * shape[1] * shape[2] * shape[3]
                return torch.empty(n + 64 * 1024, **kw)[:n].view(*shape)
            return torch.empty(*shape, **kw)
    C.torch = _T()
try:
    for _ in range(int(os.environ.get("REPS", "1"))):
        o, s = C.chunk_delta_rule_fwd(q, k, v, g, a, b, 1.0, None, True, 64, fuse_scores=fuse, walk_dtype=bf)
    torch.cuda.synchronize()
    o2, s2 = C.chunk_delta_rule_fwd(q, k, v, g, a, b, 1.0, None, True, 64, fuse_scores=fuse)
    print("OK", sys.argv[1:], "max|o-o_fp32walk|", (o.float() - o2.float()).abs().max().item(), flush=True)
except Exception as e:
    print("FAULT", sys.argv[1:], repr(e)[:200])
    traceback.print_exc()
