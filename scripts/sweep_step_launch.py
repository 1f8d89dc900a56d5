"""Sweep the decode-step launch (V block, warps) on a GPU.

The SSD, GLA and RWKV-7 steps share one kernel (:func:`kernels.gla.triton_step.gated_step_kernel`) whose
launch comes from :func:`kernels._dispatch.step_launch`. This script times every (BV, num_warps) at a few
shapes, each configuration first checked against the fp32 reference (a failed one is reported, not timed),
and prints which one the shipped heuristic picks next to the fastest, so a heuristic change rests on
measurements. Times are medians of CUDA-graph replays, as in ``scripts/bench_kernels.py``.

Usage (GPU machine, repo root): ``python scripts/sweep_step_launch.py --out DIR`` → ``DIR/sweep_step_launch.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernels.delta_rule.triton_step as delta_step  # noqa: E402
import kernels.gla.triton_step as gla_step  # noqa: E402
import kernels.ssd.triton_step as ssd_step  # noqa: E402
from kernels._dispatch import step_launch  # noqa: E402
from kernels.delta_rule import naive_delta_rule_step  # noqa: E402
from kernels.gla import naive_gla_step  # noqa: E402
from kernels.ssd import naive_ssd_step  # noqa: E402

TOL = 2e-2  # bf16 inputs against the fp32 reference, as the benchmark's gate


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


@contextlib.contextmanager
def launch(BV: int | None, warps: int | None):
    """Force the steps' (BV, num_warps); None keeps the shipped heuristic's choice."""
    saved = ssd_step.step_launch, gla_step.step_launch

    def forced(BH, K, V, rank_one=False):
        BK, bv, w = step_launch(BH, K, V, rank_one)
        return BK, bv if BV is None else BV, w if warps is None else warps

    ssd_step.step_launch = gla_step.step_launch = forced
    try:
        yield
    finally:
        ssd_step.step_launch, gla_step.step_launch = saved


def cases(B: int, H: int, D: int):
    """(op name, step(state) → o, reference o, reference new state) per op, on bf16 activations."""
    dev = "cuda"
    q, k, v = (torch.randn(B, H, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
    k = (k.float() / D**0.5).to(torch.bfloat16)
    s0 = torch.randn(B, H, D, D, device=dev) / D
    g_h = -F.softplus(torch.randn(B, H, device=dev))
    g_k = F.logsigmoid(torch.randn(B, H, D, device=dev)) / 16
    kk = F.normalize(torch.randn(B, H, D, device=dev), dim=-1)
    a, b = (-kk).to(torch.bfloat16), (kk * torch.rand(B, H, D, device=dev)).to(torch.bfloat16)
    f = [t.float() for t in (q, k, v, a, b)]
    out = []
    s = s0.clone()
    out.append(("SSD", lambda st: ssd_step.triton_ssd_step(q, k, v, g_h, st, D**-0.5), naive_ssd_step(*f[:3], g_h, s, D**-0.5), s))
    s = s0.clone()
    out.append(("GLA", lambda st: gla_step.triton_gla_step(q, k, v, g_k, st, D**-0.5), naive_gla_step(*f[:3], g_k, s, D**-0.5), s))
    s = s0.clone()
    ref = naive_delta_rule_step(*f[:3], g_k, f[3], f[4], s)
    out.append(("RWKV-7", lambda st: delta_step.triton_delta_rule_step(q, k, v, g_k, a, b, st), ref, s))
    return s0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".", help="folder for sweep_step_launch.md")
    ap.add_argument("--shapes", default="1,16,64;1,16,128;64,16,128", help="B,H,K=V triples, ';'-separated")
    a = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("sweep_step_launch needs a CUDA device")
    from triton.testing import do_bench_cudagraph

    torch.manual_seed(0)
    lines = [f"# Decode-step launch sweep, {torch.cuda.get_device_name()}", "",
             "| op | shape | shipped (BV, warps) | shipped µs | best (BV, warps) | best µs | shipped / best |",
             "|---|---|---|---|---|---|---|"]
    grid = []
    for shape in a.shapes.split(";"):
        B, H, D = map(int, shape.split(","))
        s0, ops = cases(B, H, D)
        for name, step, o_ref, s_ref in ops:
            # at most 128 state elements per thread (more spills registers)
            configs = [(None, None)] + [(bv, w) for bv in (16, 32, 64, 128) if bv <= D for w in (1, 2, 4, 8)
                                        if D * bv <= 128 * 32 * w]
            times = {}
            for bv, w in configs:
                with launch(bv, w):
                    st = s0.clone()
                    err = max(rel_err(step(st), o_ref), rel_err(st, s_ref))
                    if err > TOL:
                        grid.append(f"{name} B={B} H={H} D={D} BV={bv} warps={w}: FAILED err {err:.1e}")
                        continue
                    st = s0.clone()
                    t = do_bench_cudagraph(lambda st=st, step=step: step(st), rep=50, return_mode="median") * 1e3
                times[(bv, w)] = t
                grid.append(f"{name} B={B} H={H} D={D} BV={bv} warps={w}: {t:.2f} us err {err:.1e}")
                print(grid[-1], flush=True)
            shipped = step_launch(B * H, D, D, name == "RWKV-7")[1:]
            best = min((c for c in times if c[0] is not None), key=times.get)
            t0 = times.get((None, None), float("nan"))
            lines.append(f"| {name} | B={B} H={H} K=V={D} | {shipped} | {t0:.2f} | {best} | {times[best]:.2f} | "
                         f"{t0 / times[best]:.2f} |")
            print(lines[-1], flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep_step_launch.md").write_text("\n".join(lines + ["", "## every configuration", "", *grid]) + "\n")


if __name__ == "__main__":
    main()
