"""Where the time of one chunked op goes, kernel by kernel (torch.profiler on a GPU).

The benchmark (``scripts/bench_kernels.py``) says how long an op takes against its peers; this says which of
its launches (our Triton kernels, torch's glue) the time is spent in, so an optimisation starts from a
measurement. bf16 inputs as in the benchmark; a few warm-up calls (autotuning, compilation) are not profiled.

Usage (GPU machine, repo root):
    python scripts/profile_kernels.py --op gla --shape 1,4096,16,128 [--backward] [--out DIR]
Ops: ``gla`` (chunk_gla, the default path), ``gla-saved`` / ``gla-plain`` (``save_scores`` True / False: the
backward from the forward's saved scores, or from the inputs alone), ``gla-rowwise`` (``gla-saved`` with the
dq/dk kernel's diagonal blocks row by row, as before kernels/NOTES.md 43), ``fla-gla`` (fla's
chunk_gla, the peer), ``ssd`` (chunk_ssd), ``delta`` (chunk_delta_rule, the chunk left to it), ``delta-16`` / ``delta-32`` /
``delta-64`` (its chunked forward at that chunk, scores fused into the solve), ``delta-16-lean`` / ``delta-64-lean``
(the same, forward only, the walk on bf16 operands), ``delta-64-blockinv`` (chunk 64 lean, inverse by 16 × 16 blocks),
``delta-16-lean-skip1`` (chunk 16 lean, the scores kernel testing one chunk per program instead of the default
eight), ``delta-walk`` (its
fused-recurrent forward), ``fla-rwkv7`` (fla's chunk_rwkv7, the peer), ``fla-rwkv7-bounded`` (the same with the log-decay's bound,
as fla's RWKV7 layer calls it: tensor-core scores, chunks of 64). ``--shape`` is B,T,H,D (K = V = D).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels.delta_rule import chunk_delta_rule  # noqa: E402
from kernels.delta_rule.triton_chunk import chunk_delta_rule_fwd, triton_chunk_delta_rule  # noqa: E402
from kernels.delta_rule.triton_recurrent import triton_fused_recurrent_delta_rule  # noqa: E402
from kernels.gla import chunk_gla  # noqa: E402
from kernels.gla.triton_chunk import triton_chunk_gla  # noqa: E402
from kernels.ssd import chunk_ssd  # noqa: E402

DELTA_OPS = ("delta", "delta-16", "delta-32", "delta-64", "delta-16-lean", "delta-64-lean", "delta-64-blockinv",
             "delta-16-lean-skip1", "delta-walk", "fla-rwkv7", "fla-rwkv7-bounded")


def make_call(op: str, B: int, T: int, H: int, D: int, backward: bool):
    """A zero-argument callable running the op once (and its backward when asked)."""
    dev, bf = "cuda", torch.bfloat16
    q, v = (torch.randn(B, T, H, D, device=dev, dtype=bf) for _ in range(2))
    k = (torch.randn(B, T, H, D, device=dev) / D**0.5).to(bf)
    if op in ("gla", "gla-saved", "gla-plain", "gla-rowwise"):
        g = F.logsigmoid(torch.randn(B, T, H, D, device=dev)) / 16
        if op == "gla":
            leaves, fn = [q, k, v, g], lambda q, k, v, g: chunk_gla(q, k, v, g, D**-0.5, None, False)[0]
        else:
            saved = op != "gla-plain"
            if op == "gla-rowwise":
                import kernels.gla.triton_chunk_bwd as gla_bwd

                gla_bwd.FACTORED_DIAGONAL = False
            leaves, fn = [q, k, v, g], lambda q, k, v, g: triton_chunk_gla(q, k, v, g, D**-0.5, None, False, save_scores=saved)[0]
    elif op == "fla-gla":  # the peer, for a kernel-by-kernel comparison (fla 0.6's chunk_gla)
        from fla.ops.gla import chunk_gla as fla_chunk_gla

        g = F.logsigmoid(torch.randn(B, T, H, D, device=dev)) / 16
        leaves, fn = [q, k, v, g], lambda q, k, v, g: fla_chunk_gla(q, k, v, g, scale=D**-0.5)[0]
    elif op == "ssd":
        g = -F.softplus(torch.randn(B, T, H, device=dev) - 3.0)
        leaves, fn = [q, k, v, g], lambda q, k, v, g: chunk_ssd(q, k, v, g, D**-0.5, None, False)[0]
    elif op in DELTA_OPS:
        g = -0.6 * torch.rand(B, T, H, D, device=dev)
        kk = F.normalize(torch.randn(B, T, H, D, device=dev), dim=-1)
        a, b = (-kk).to(bf), (kk * torch.rand_like(kk)).to(bf)
        leaves = [q, k, v, g, a, b]
        if op == "delta":
            fn = lambda q, k, v, g, a, b: chunk_delta_rule(q, k, v, g, a, b, 1.0, None, False)[0]  # noqa: E731
        elif op == "delta-walk":
            fn = lambda *x: triton_fused_recurrent_delta_rule(*x, 1.0, None, False)[0]  # noqa: E731
        elif op.startswith("fla-rwkv7"):  # the peer (fla 0.6's chunk_rwkv7: its argument order is q, w, k, v, a, b)
            from fla.ops.rwkv7 import chunk_rwkv7

            bound = {"safe_gate": True, "lower_bound": -0.6065306597126334} if op.endswith("bounded") else {}
            fn = lambda q, k, v, g, a, b: chunk_rwkv7(q, g, k, v, a, b, scale=1.0, **bound)[0]  # noqa: E731
        elif op == "delta-64-blockinv":  # the chunk-64 inverse by 16 × 16 blocks, lean walk (kernels/NOTES.md 54)
            fn = lambda *x: chunk_delta_rule_fwd(*x, 1.0, None, False, 64, fuse_scores=True, walk_dtype=bf,  # noqa: E731
                                                 block_inverse=True)[0]
        elif op == "delta-16-lean-skip1":  # the scores kernel testing one chunk per program (before kernels/NOTES.md 58)
            fn = lambda *x: chunk_delta_rule_fwd(*x, 1.0, None, False, 16, fuse_scores=True, walk_dtype=bf,  # noqa: E731
                                                 scores_skip_group=1)[0]
        elif op.endswith("-lean"):  # the walk on bf16 operands (forward only, kernels/NOTES.md 53)
            bt = int(op.split("-")[1])
            fn = lambda *x: chunk_delta_rule_fwd(*x, 1.0, None, False, bt, fuse_scores=True, walk_dtype=bf)[0]  # noqa: E731
        else:
            bt = int(op.rsplit("-", 1)[1])
            fn = lambda *x: triton_chunk_delta_rule(*x, 1.0, None, False, bt, fuse_scores=True)[0]  # noqa: E731
    else:
        raise SystemExit(f"--op: unknown op {op!r}; choose gla, gla-saved, gla-plain, gla-rowwise, fla-gla, ssd or one of "
                         + ", ".join(DELTA_OPS))
    do = torch.randn(B, T, H, D, device=dev, dtype=bf)
    if backward:
        leaves = [t.detach().requires_grad_() for t in leaves]

    def call():
        o = fn(*leaves)
        if backward:
            for t in leaves:  # fresh gradients: no accumulation kernels in the profile
                t.grad = None
            o.backward(do)

    return call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--op", required=True)
    ap.add_argument("--shape", default="1,4096,16,128", help="B,T,H,D")
    ap.add_argument("--backward", action="store_true", help="profile forward + backward")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--out", default="", help="folder for profile_<op>.txt (printed only when empty)")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("profile_kernels needs a CUDA device")
    B, T, H, D = map(int, a.shape.split(","))
    call = make_call(a.op, B, T, H, D, a.backward)
    for _ in range(3):
        call()
    torch.cuda.synchronize()
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(a.iters):
            call()
        torch.cuda.synchronize()
    head = (f"{a.op} {'fwd+bwd' if a.backward else 'fwd'} B={B} T={T} H={H} K=V={D} bf16, "
            f"{torch.cuda.get_device_name()}, {a.iters} calls (times summed over them)")
    table = prof.key_averages().table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=60)
    text = head + "\n" + table
    print(text, flush=True)
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"profile_{a.op}{'_bwd' if a.backward else ''}.txt").write_text(text)


if __name__ == "__main__":
    main()
