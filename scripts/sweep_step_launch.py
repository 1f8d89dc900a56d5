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
import re
import statistics
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
DEVICE = "cuda"  # the tests run the sweep's logic on the CPU (interpreted kernels)


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


# the kernel's launch variants that --variants times, and launch options: a cap on registers per thread, for more
# programs per SM (at [128, 32] on 2 warps the step takes 128 registers: 8 programs, 16 warps per SM; 112 would
# make room for 9, 96 for 10; ptxas spills what does not fit)
VARIANTS = gla_step.STEP_VARIANTS | {"maxnreg-112": {"maxnreg": 112}, "maxnreg-96": {"maxnreg": 96}}


def variant_constexprs(variant: str) -> dict:
    """The constexprs of a VARIANTS key, or of several joined by '+' (``masked+store-last``)."""
    out = {}
    for part in variant.split("+"):
        out |= VARIANTS[part]
    return out

class _Variant:
    """A launcher of :func:`gated_step_kernel` with some of its constexprs set (one of VARIANTS). Out of place, the
    new state goes to a tensor of the state's shape made at the launch (``last_out``); the state is left as it was.
    With a flat grid, the launch's two axes become one. With the state held as Sᵀ (STATE_VK), the launcher keeps
    a transposed copy of the state it was given, made the first time it sees that tensor (outside the timed graph:
    the benchmark's warm-up call) and stepped from then on; ``last_out`` is that copy seen as ``[K, V]``, and the
    state given is left as it was."""

    def __init__(self, kernel, constexprs: dict):
        self.kernel, self.constexprs, self.last_out = kernel, constexprs, None
        self._src = self._vk = None

    def _as_vk(self, state: torch.Tensor) -> torch.Tensor:
        if state is not self._src:  # a new state (the reference is kept, so its storage is not reused meanwhile)
            self._src, self._vk = state, state.transpose(-1, -2).contiguous()
        return self._vk

    def __getitem__(self, grid):
        if self.constexprs.get("FLAT_GRID"):  # one axis: V blocks × batch·heads
            grid = (grid[0] * grid[1],)
        run = self.kernel[grid]

        def launch(*args, **kw):
            extra = dict(self.constexprs)
            if extra.get("STATE_VK"):
                vk = self._as_vk(args[6])  # the kernel's 7th argument: the state
                args = (*args[:6], vk, *args[7:])
                self.last_out = vk.transpose(-1, -2)
            if extra.get("OUT_OF_PLACE"):
                self.last_out = extra["s_out"] = torch.empty_like(args[6])
                if extra.get("STATE_VK"):
                    self.last_out = self.last_out.transpose(-1, -2)
            return run(*args, **(kw | extra))  # a variant's constexprs override the launch's

        return launch


_STEP_MODULES = (ssd_step, gla_step, delta_step)


@contextlib.contextmanager
def launch(BV: int | None, warps: int | None, variant: str = ""):
    """Force the steps' (BV, num_warps); None keeps the shipped heuristic's choice. ``variant`` (a VARIANTS key)
    launches the step kernel with that variant's constexprs; the context is its launcher (None for the shipped
    kernel), whose ``last_out`` holds an out-of-place launch's new state."""
    saved = ssd_step.step_launch, gla_step.step_launch
    kernels_saved = [m.gated_step_kernel for m in _STEP_MODULES]

    def forced(BH, K, V, rank_one=False, state_vk=False):
        BK, bv, w = step_launch(BH, K, V, rank_one, state_vk)
        return BK, bv if BV is None else BV, w if warps is None else warps

    ssd_step.step_launch = gla_step.step_launch = forced
    launcher = _Variant(kernels_saved[0], variant_constexprs(variant)) if variant else None
    if launcher:
        for m in _STEP_MODULES:  # they all launch the one kernel
            m.gated_step_kernel = launcher
    try:
        yield launcher
    finally:
        ssd_step.step_launch, gla_step.step_launch = saved
        for m, k in zip(_STEP_MODULES, kernels_saved, strict=True):
            m.gated_step_kernel = k


def cases(B: int, H: int, D: int):
    """(op name, step(state) → o, reference o, reference new state) per op, on bf16 activations."""
    dev = DEVICE
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
    # the step as the RWKV-7 student runs it, on its state held as Sᵀ: the state it is given (s0) is Sᵀ, so the
    # reference steps s0ᵀ, and the new state is checked against the reference's transpose
    s = s0.transpose(-1, -2).contiguous()
    ref = naive_delta_rule_step(*f[:3], g_k, f[3], f[4], s)
    out.append(("RWKV-7-vk", lambda st: delta_step.triton_delta_rule_step(q, k, v, g_k, a, b, st, transposed_state=True),
                ref, s.transpose(-1, -2).contiguous()))
    return s0, out


def mamba_ssu_case(B: int, H: int, D: int):
    """(call, rel. err) of mamba_ssm's ``selective_state_update`` on an SSD step of its own inputs (its state
    ``[B, H, P, N]``, tied heads: A and dt per head), checked against the fp32 reference; None when mamba_ssm is
    not importable. Its CUDA scan extension is not needed for this Triton kernel: a stub stands in for it."""
    try:
        import types

        sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update as ssu
    except Exception as e:  # noqa: BLE001
        print(f"mamba_ssm unavailable: {e!r}")
        return None
    dev = DEVICE
    q, k, x = (torch.randn(B, H, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
    dt = F.softplus(torch.randn(B, H, device=dev) - 3.0)
    A = -torch.rand(H, device=dev) - 0.5
    s0 = torch.randn(B, H, D, D, device=dev)  # [B, H, N, P]: ours
    s_ref = s0.clone()
    o_ref = naive_ssd_step(q.float(), k.float(), (x.float() * dt[..., None]), dt * A, s_ref)
    args = dict(dt=dt[..., None].expand(B, H, D), A=A[:, None, None].expand(H, D, D), B=k, C=q,
                dt_bias=torch.zeros(H, device=dev)[:, None].expand(H, D), D=torch.zeros(H, device=dev)[:, None].expand(H, D))
    st = s0.transpose(-1, -2).contiguous()
    err = max(rel_err(ssu(st, x, **args), o_ref), rel_err(st.transpose(-1, -2), s_ref))
    st = s0.transpose(-1, -2).contiguous()
    return (lambda: ssu(st, x, **args)), err


# fla's RWKV-7 step autotunes (V block, warps, stages) keyed on K alone: the launch it tunes at the first batch it
# meets serves every batch after (its pick at K = 128 took 50.4 µs at B = 64 one day and 37.8 µs the next,
# kernels/NOTES.md 67). The sweep times its autotuned call and each of its configs pinned (stages left at 2: the
# step has no loop to pipeline), so the fastest peer at a shape is the best any of its launches gives there.
FLA_RWKV7_CONFIGS = [(bv, w) for bv in (16, 32, 64) for w in (2, 4, 8, 16)]


def fla_rwkv7_tuner():
    """The autotuner of fla's RWKV-7 step kernel (``fused_recurrent_rwkv7_fwd_kernel``, under its heuristics)."""
    from fla.ops.rwkv7.fused_recurrent import fused_recurrent_rwkv7_fwd_kernel as tuner
    from triton.runtime.autotuner import Autotuner

    while not isinstance(tuner, Autotuner):  # heuristics wrap its autotuner
        tuner = tuner.fn
    return tuner


def pinned(tuner, config: tuple[int, int] | None, fn):
    """``fn`` run with the autotuner ``tuner`` held to one (BV, num_warps) config (stages 2: the step has no loop to
    pipeline), its own configs put back after; None leaves it to tune. One config, the autotuner launches it
    without timing any."""
    import triton

    def run():
        saved = tuner.configs
        if config is not None:
            tuner.configs = [triton.Config({"BV": config[0]}, num_warps=config[1], num_stages=2)]
        try:
            return fn()
        finally:
            tuner.configs = saved
    return run


def fla_rwkv7_cases(B: int, H: int, D: int) -> dict:
    """{name: (call, rel. err)} of fla's ``fused_mul_recurrent_rwkv7`` on one RWKV-7 step (its inputs: w the
    log-decay, kk and its a, which are our a = −kk and b = kk ⊙ its a; its state ``[B, H, K, V]`` read from one
    tensor and written to another), autotuned and pinned to each of FLA_RWKV7_CONFIGS, each checked against the fp32 reference; {}
    when fla is not importable."""
    try:
        from fla.ops.rwkv7 import fused_mul_recurrent_rwkv7 as fm

        tuner = fla_rwkv7_tuner()
    except Exception as e:  # noqa: BLE001
        print(f"fla unavailable: {e!r}")
        return {}
    dev = DEVICE
    q, k, v = (torch.randn(B, 1, H, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
    k = (k.float() / D**0.5).to(torch.bfloat16)
    w = F.logsigmoid(torch.randn(B, 1, H, D, device=dev)) / 16
    kk = F.normalize(torch.randn(B, 1, H, D, device=dev), dim=-1).to(torch.bfloat16)
    alpha = torch.rand(B, 1, H, D, device=dev).to(torch.bfloat16)
    s0 = torch.randn(B, H, D, D, device=dev) / D
    s_ref = s0.clone()
    o_ref = naive_delta_rule_step(q[:, 0].float(), k[:, 0].float(), v[:, 0].float(), w[:, 0], -kk[:, 0].float(),
                                  kk[:, 0].float() * alpha[:, 0].float(), s_ref)

    def step():
        return fm(q, w, k, v, kk, alpha, scale=1.0, initial_state=s0, output_final_state=True)

    out = {}
    for name, config in [("fla fused_mul_recurrent_rwkv7", None)] + [
            (f"fla fused_mul_recurrent_rwkv7 BV={bv} warps={nw}", (bv, nw)) for bv, nw in FLA_RWKV7_CONFIGS if bv <= D]:
        run = pinned(tuner, config, step)
        try:
            o, st = run()
        except Exception as e:  # noqa: BLE001 (a config past the GPU's resources is reported, not timed)
            print(f"{name}: {e!r}")
            continue
        out[name] = run, max(rel_err(o[:, 0], o_ref), rel_err(st, s_ref))
    return out


def plot(panels: list[dict], path: Path) -> bool:
    """One panel per op and shape: each launch's median time (a point) with its range over the rounds (the heuristic's own
    launch orange, the fastest green), and the peer's median as a dashed line, its range shaded. Written under a
    temporary name, then renamed; False (nothing written) without matplotlib or panels."""
    try:
        import matplotlib
    except ImportError:
        return False
    if not panels:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 0.25 * sum(len(p["bars"]) for p in panels) + 1.2 * len(panels)),
                             squeeze=False)
    for ax, p in zip(axes[:, 0], panels, strict=True):
        labels, med, lo, hi = zip(*p["bars"], strict=True)
        y = list(range(len(labels)))[::-1]
        best = min(range(len(med)), key=med.__getitem__)
        colors = ["tab:orange" if lab.startswith("shipped") and lab.endswith(")") else "tab:green" if i == best else "tab:gray"
                  for i, lab in enumerate(labels)]
        err = [[m - a for m, a in zip(med, lo, strict=True)], [b - m for m, b in zip(med, hi, strict=True)]]
        # points, not bars: the axis starts near the fastest time, where bar lengths would exaggerate a few %
        for yi, m, e0, e1, c in zip(y, med, *err, colors, strict=True):
            ax.errorbar(m, yi, xerr=[[e0], [e1]], fmt="o", color=c, capsize=2, ms=5)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(y, labels, fontsize=7)
        if p.get("peer"):
            m, a, b = p["peer"]
            ax.axvline(m, color="black", ls="--", lw=1, label=f"{p['peer_name']} {m:.2f} µs")
            ax.axvspan(a, b, color="black", alpha=0.1)
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlim(0.9 * min(lo + ((p["peer"][1],) if p.get("peer") else ())), None)
        ax.set_title(p["title"], fontsize=9)
        ax.set_xlabel("µs per step (CUDA-graph replays; median and range over the rounds)", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return True


def _tag(variant: str) -> str:
    return f" {variant}" if variant else ""


_LINE = re.compile(r"^(\S+) B=(\d+) H=(\d+) D=(\d+) (?:BV=(\w+) warps=(\w+)( [\w-]+)?|(mamba_ssm ssu|fla [^:]+)): ([\d.]+) us"
                   r"(?: \(rounds ([\d.]+)-([\d.]+)\))?")


def panels_from_md(text: str) -> list[dict]:
    """The panels of :func:`plot` from a written sweep_step_launch.md (its "every configuration" lines and the
    table's shipped launch), so that a sweep's figure can be drawn again where it was not (no GPU needed)."""
    shipped = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) >= 3 and cells[1].startswith("B="):
            shipped[(cells[0], cells[1])] = cells[2]
    panels = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        name, B, H, D, bv, w, var, peer, med, lo, hi = m.groups()
        key = (name, f"B={B} H={H} K=V={D}")
        p = panels.setdefault(key, {"title": f"{name} step, {key[1]}", "bars": [], "peer_name": "", "peer": None})
        t = (float(med), float(lo or med), float(hi or med))
        if peer:  # the fastest peer
            if p["peer"] is None or t[0] < p["peer"][0]:
                p["peer"], p["peer_name"] = t, peer
        else:
            label = f"shipped {shipped.get(key, '')}".strip() if bv == "None" else f"BV {bv}, {w} warps"
            label += var or ""
            p["bars"].append((label, *t))
    return list(panels.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".", help="folder for sweep_step_launch.md")
    ap.add_argument("--shapes", default="1,16,64;1,16,128;64,16,128", help="B,H,K=V triples, ';'-separated")
    ap.add_argument("--ops", default="SSD,GLA,RWKV-7,RWKV-7-vk", help="which steps to sweep, comma-separated "
                    "(RWKV-7-vk: the delta rule's step on its state held as Sᵀ, as the RWKV-7 student runs it)")
    ap.add_argument("--rounds", type=int, default=1, help="time every configuration this many times, in turn (median)")
    ap.add_argument("--peer", action="store_true", help="time the peers beside our steps: mamba_ssm's "
                    "selective_state_update beside SSD's, fla's fused_mul_recurrent_rwkv7 (autotuned, and each of its "
                    "configs pinned) beside RWKV-7's")
    ap.add_argument("--replot", default="", metavar="MD", help="only draw the figure of a written "
                    "sweep_step_launch.md, beside it as .png (no GPU needed)")
    ap.add_argument("--variants", default="", help="comma-separated kernel variants to time beside each launch, "
                    f"each checked against the reference like the rest: {', '.join(VARIANTS)}; '+' joins several (masked+store-last)")
    ap.add_argument("--bvs", default="16,32,64,128",
                    help="V blocks to try, comma-separated powers of two (8 and 4 give batch 1 more, smaller programs)")
    a = ap.parse_args()
    if a.replot:
        md = Path(a.replot)
        drawn = plot(panels_from_md(md.read_text()), md.with_suffix(".png"))
        return print(f"wrote {md.with_suffix('.png')}" if drawn else f"{md}: no sweep lines to draw")
    variants = [v for v in a.variants.split(",") if v]
    if unknown := {p for v in variants for p in v.split("+")} - set(VARIANTS):
        raise SystemExit(f"--variants {a.variants}: unknown {', '.join(sorted(unknown))} (choose from {', '.join(VARIANTS)})")
    if a.rounds < 1:
        raise SystemExit(f"--rounds {a.rounds}: take at least 1 (the times each launch is timed)")
    if not torch.cuda.is_available():
        raise SystemExit("sweep_step_launch needs a CUDA device")
    from triton.testing import do_bench_cudagraph

    torch.manual_seed(0)
    lines = [f"# Decode-step launch sweep, {torch.cuda.get_device_name()}", "",
             "| op | shape | shipped (BV, warps) | shipped µs | best (BV, warps) | best µs | shipped / best | fastest peer | its µs |",
             "|---|---|---|---|---|---|---|---|---|"]
    grid, panels = [], []
    for shape in a.shapes.split(";"):
        B, H, D = map(int, shape.split(","))
        s0, ops = cases(B, H, D)
        for name, step, o_ref, s_ref in ops:
            if name not in a.ops.split(","):
                continue
            # at most 128 state elements per thread (more spills registers)
            configs = [(None, None)] + [(bv, w) for bv in map(int, a.bvs.split(",")) if bv <= D for w in (1, 2, 4, 8)
                                        if D * bv <= 128 * 32 * w]
            # (the state-vk variant transposes a [K, V] step's state: the -vk op's is transposed already)
            configs = [(bv, w, var) for var in ["", *variants] for bv, w in configs
                       if not (name.endswith("-vk") and "state-vk" in var.split("+"))]
            checked = []
            for bv, w, var in configs:
                with launch(bv, w, var) as launcher:
                    # several tries: a race between threads holding the same element need not show every time
                    err = 0.0
                    for _ in range(20 if "no-barrier" in var.split("+") else 1):
                        st = s0.clone()
                        o = step(st)
                        new = launcher.last_out if {"out-of-place", "state-vk"} & set(var.split("+")) else st
                        err = max(err, rel_err(o, o_ref), rel_err(new, s_ref))
                if err > TOL:
                    grid.append(f"{name} B={B} H={H} D={D} BV={bv} warps={w}{_tag(var)}: FAILED err {err:.1e}")
                    continue
                checked.append(((bv, w, var), err))
            peers = {}
            if a.peer and name == "SSD":
                peers = {"mamba_ssm ssu": case} if (case := mamba_ssu_case(B, H, D)) else {}
            elif a.peer and name.startswith("RWKV-7"):
                peers = fla_rwkv7_cases(B, H, D)
            for pname, (_, err) in list(peers.items()):
                if err > TOL:
                    grid.append(f"{name} B={B} H={H} D={D} {pname}: FAILED err {err:.1e}")
                    del peers[pname]
            # every configuration (and peer) once per round, the rounds back to back: a drift of the machine
            # over the sweep then spreads each one's samples rather than favouring whichever ran at a quiet moment
            samples = {c: [] for c, _ in checked} | {("peer", pname): [] for pname in peers}
            for _ in range(a.rounds):
                for c, _ in checked:
                    with launch(*c):
                        st = s0.clone()
                        samples[c].append(do_bench_cudagraph(lambda st=st, step=step: step(st), rep=50,
                                                             return_mode="median") * 1e3)
                for pname, (run, _) in peers.items():
                    samples[("peer", pname)].append(do_bench_cudagraph(run, rep=50, return_mode="median") * 1e3)
            times = {c: statistics.median(ts) for c, ts in samples.items()}
            for (bv, w, var), err in checked:
                ts = samples[(bv, w, var)]
                grid.append(f"{name} B={B} H={H} D={D} BV={bv} warps={w}{_tag(var)}: {times[(bv, w, var)]:.2f} us"
                            + (f" (rounds {min(ts):.2f}-{max(ts):.2f})" if len(ts) > 1 else "") + f" err {err:.1e}")
                print(grid[-1], flush=True)
            for pname, (_, err) in peers.items():
                ts = samples[("peer", pname)]
                grid.append(f"{name} B={B} H={H} D={D} {pname}: {times[('peer', pname)]:.2f} us"
                            + (f" (rounds {min(ts):.2f}-{max(ts):.2f})" if len(ts) > 1 else "") + f" err {err:.1e}")
                print(grid[-1], flush=True)
            shipped = step_launch(B * H, D, D, name.startswith("RWKV-7"), name == "RWKV-7-vk")[1:]
            bars = [((f"shipped {shipped}" if bv is None else f"BV {bv}, {w} warps") + _tag(var), times[c],
                     min(samples[c]), max(samples[c])) for c, _ in checked for bv, w, var in [c]]
            fastest_peer = min((c for c in times if c[0] == "peer"), key=times.get, default=None)
            panels.append({"title": f"{name} step, B={B} H={H} K=V={D}", "bars": bars,
                           "peer_name": fastest_peer[1] if fastest_peer else "",
                           "peer": (times[fastest_peer], min(samples[fastest_peer]), max(samples[fastest_peer]))
                           if fastest_peer else None})
            best = min((c for c in times if c[0] not in (None, "peer")), key=times.get)
            t0 = times.get((None, None, ""), float("nan"))
            peer_cells = f"{fastest_peer[1]} | {times[fastest_peer]:.2f}" if fastest_peer else " | "
            lines.append(f"| {name} | B={B} H={H} K=V={D} | {shipped} | {t0:.2f} | {best[:2]}{_tag(best[2])} | {times[best]:.2f} | "
                         f"{t0 / times[best]:.2f} | {peer_cells} |")
            print(lines[-1], flush=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".sweep_step_launch.md.tmp"
    tmp.write_text("\n".join(lines + ["", "## every configuration", "", *grid]) + "\n")
    tmp.replace(out / "sweep_step_launch.md")
    if plot(panels, out / "sweep_step_launch.png"):
        print(f"wrote {out / 'sweep_step_launch.png'}")


if __name__ == "__main__":
    main()
