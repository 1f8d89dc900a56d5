"""What each Triton op's Python wrapper costs on the host, with the launches themselves stubbed out (no GPU needed).

At batch 1 and a few thousand tokens the chunked ops are paced by the CPU, not the GPU (kernels/NOTES.md 43):
GLA fwd+bwd needed ~0.79 ms of GPU time but ~1.27 ms of host time on the H200. That host time is the wrappers'
Python (checks, buffers, block and grid choices, autograd) plus Triton's launch path. This script measures the
first part on any machine: every ``kernel[grid](...)`` is replaced by a stub that only evaluates the grid, so
what is left is our code and the torch calls it makes, on tiny CPU tensors. Triton's own launch cost needs a GPU
(``torch.profiler`` there: ``scripts/profile_kernels.py``).

    python scripts/host_overhead.py [--ops gla,ssd,delta,ssd_step,gla_step,delta_step] [--calls 300]

``ssd_fwd`` / ``ssd_fwd_split``: the SSD forward alone, with one state walk per head and with the walk split into
two segments (kernels/NOTES.md 50: a third launch and five more buffers). ``delta_fwd``: the delta-rule forward
alone, as a no-grad RWKV-7 prefill runs it (78-138 µs in three runs and 4 launches on a 2-core CI-class
machine, 2026-12-02: below the ~460 µs its kernels take at B=1 T=4096 on the H200, so not what paces that
prefill).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["TRITON_INTERPRET"] = "0"  # the wrappers pick the GPU's blocks; the stubbed launches run nothing
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from triton.runtime.autotuner import Autotuner  # noqa: E402
from triton.runtime.jit import JITFunction  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAUNCHES: list[str] = []


def _stub_launch(self, *args, grid=None, **kwargs):
    """A launch that runs nothing: it records the kernel and evaluates the grid, as Triton would."""
    LAUNCHES.append(getattr(getattr(self, "fn", self), "__name__", "?"))
    if callable(grid):  # an autotuned kernel's grid reads its config's block sizes: the first config's here
        configs = getattr(self, "configs", None)
        grid({**kwargs, **(configs[0].kwargs if configs else {})})


def _ops(B: int, T: int, H: int, D: int) -> dict:
    """Per op, a zero-argument callable making one call (forward and backward for the chunked ops)."""
    from kernels.delta_rule.triton_chunk import chunk_delta_rule_fwd, triton_chunk_delta_rule
    from kernels.delta_rule.triton_step import triton_delta_rule_step
    from kernels.gla.triton_chunk import triton_chunk_gla
    from kernels.gla.triton_step import triton_gla_step
    from kernels.ssd.triton_chunk import chunk_ssd_fwd, triton_chunk_ssd
    from kernels.ssd.triton_step import triton_ssd_step

    def seq(*shape):
        return torch.randn(B, T, H, *shape)

    q, k, v, do = seq(D), seq(D), seq(D), seq(D)
    g_vec, g_scalar = F.logsigmoid(seq(D)), -F.softplus(torch.randn(B, T, H))
    a, b = -F.normalize(seq(D), dim=-1), F.normalize(seq(D), dim=-1) * 0.5

    def fwd_bwd(fn, *inputs):
        def call():
            leaves = [t.detach().requires_grad_() for t in inputs]
            o, _ = fn(*leaves)
            o.backward(do)

        return call

    def step(fn, *extra):
        q1, k1, v1 = (torch.randn(B, H, D) for _ in range(3))
        state = torch.zeros(B, H, D, D)
        return lambda: fn(q1, k1, v1, *extra, state)

    return {
        "gla": fwd_bwd(lambda *x: triton_chunk_gla(*x, D**-0.5, None, False), q, k, v, g_vec),
        "ssd": fwd_bwd(lambda *x: triton_chunk_ssd(*x, D**-0.5, None, False), q, k, v, g_scalar),
        "delta": fwd_bwd(lambda *x: triton_chunk_delta_rule(*x, 1.0, None, False, fuse_scores=True), q, k, v, -g_vec.abs(), a, b),
        # forward only, as a no-grad RWKV-7 prefill runs it (scores fused into the solve)
        "delta_fwd": lambda: chunk_delta_rule_fwd(q, k, v, -g_vec.abs(), a, b, 1.0, None, True, 32, fuse_scores=True),
        "ssd_fwd": lambda: chunk_ssd_fwd(q, k, v, g_scalar, D**-0.5, None, True, chunk_size=64, splits=1),
        "ssd_fwd_split": lambda: chunk_ssd_fwd(q, k, v, g_scalar, D**-0.5, None, True, chunk_size=64, splits=2),
        "ssd_step": step(triton_ssd_step, -torch.rand(B, H)),
        "gla_step": step(triton_gla_step, -torch.rand(B, H, D)),
        "delta_step": step(lambda q1, k1, v1, g1, s: triton_delta_rule_step(q1, k1, v1, g1, a[:, 0], b[:, 0], s), -torch.rand(B, H, D)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ops", default="gla,ssd,delta,ssd_step,gla_step,delta_step")
    ap.add_argument("--calls", type=int, default=300, help="timed calls per op (after 20 warm-up calls)")
    ap.add_argument("--shape", default="1,128,2,32", help="B,T,H,D of the (tiny, CPU) inputs")
    a = ap.parse_args()
    B, T, H, D = (int(x) for x in a.shape.split(","))
    JITFunction.run = _stub_launch
    Autotuner.run = _stub_launch
    ops = _ops(B, T, H, D)
    unknown = [o for o in a.ops.split(",") if o not in ops]
    if unknown:
        raise SystemExit(f"--ops: unknown {unknown}; choose from {sorted(ops)}")
    print(f"host cost per call, launches stubbed (torch {torch.__version__}, {os.cpu_count()} CPUs), inputs B,T,H,D={a.shape}")
    print("| op | µs per call (median of 5 rounds) | launches per call |\n|---|---|---|")
    for name in a.ops.split(","):
        call = ops[name]
        for _ in range(20):
            call()
        rounds = []
        for _ in range(5):
            LAUNCHES.clear()
            t0 = time.perf_counter()
            for _ in range(a.calls):
                call()
            rounds.append((time.perf_counter() - t0) / a.calls)
        print(f"| {name} | {statistics.median(rounds) * 1e6:.0f} | {len(LAUNCHES) // a.calls} |", flush=True)


if __name__ == "__main__":
    main()
