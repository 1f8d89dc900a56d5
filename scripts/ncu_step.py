"""Nsight Compute's view of the RWKV-7 decode step: ours (shipped and in launch variants) beside fla's.

SASS counts (``ptxas_report.py decode_step --dump``) say what each kernel issues, not where its warps wait. This runs
each step once under ``ncu`` (after warm-up, inside a profiler window, so compiles and autotuning stay out of it)
and writes, per launch, the sections that say where the time goes: throughput against the HBM peak, achieved
occupancy, and the warp stall reasons (long scoreboard: waiting on global memory; barrier; short scoreboard:
shared memory), plus the per-instruction stall samples of the SASS where ncu can print them.

Usage (GPU machine, repo root, after ``source scripts/gpu_env.sh``)::

    python3 scripts/ncu_step.py --out OUT [--shape 64,16,128] [--variants rank-one-first,flat-grid+out-of-place]

writes ``OUT/ncu_step.ncu-rep`` (open it in the Nsight Compute GUI), ``OUT/ncu_step_details.txt`` (every
section of every launch), ``OUT/ncu_step_source.csv`` (stall samples per SASS instruction) and
``OUT/ncu_step_launches.txt`` (which launch is which: ncu names kernels, not our labels). The clocks are left
alone (``--clock-control none``), as timing on the lent machines is done.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

SECTIONS = ("SpeedOfLight", "MemoryWorkloadAnalysis", "Occupancy", "LaunchStats", "SchedulerStats", "WarpStateStats",
            "SourceCounters")
KERNELS = "regex:gated_step_kernel|fused_recurrent_rwkv7_fwd_kernel"


def ncu_command(ncu: str, report: Path, child: list[str]) -> list[str]:
    """The ``ncu`` call that profiles the child's profiler window: only the step kernels, every section above."""
    cmd = [ncu, "--clock-control", "none", "--profile-from-start", "off", "--kernel-name", KERNELS, "--force-overwrite",
           "--export", str(report)]
    for s in SECTIONS:
        cmd += ["--section", s]
    return cmd + child


def launches(B: int, H: int, D: int, variants: list[str]) -> list[tuple[str, object]]:
    """(label, call) of each launch to profile: our shipped step, each variant, fla's step autotuned and held to the
    fastest of its launches at this shape (chosen by timing, as ``bench_kernels.fastest_pinned_launch``); each checked
    against the fp32 reference first (a failed one is reported and left out)."""
    import sweep_step_launch as sw

    s0, ops = sw.cases(B, H, D)
    _, step, o_ref, s_ref = next(op for op in ops if op[0] == "RWKV-7")
    out = []
    for var in ["", *variants]:
        def run(var=var):
            with sw.launch(None, None, var) as launcher:
                st = s0.clone()
                o = step(st)
            return o, (launcher.last_out if launcher is not None and launcher.last_out is not None else st)

        o, st = run()
        err = max(sw.rel_err(o, o_ref), sw.rel_err(st, s_ref))
        label = f"ours {var or 'shipped'}"
        if err > sw.TOL:
            print(f"{label}: FAILED err {err:.1e}, not profiled", flush=True)
            continue
        out.append((label, run))
    peers = sw.fla_rwkv7_cases(B, H, D) if sw.DEVICE == "cuda" else {}
    checked = {name: run for name, (run, err) in peers.items() if err <= sw.TOL}
    if checked:
        from triton.testing import do_bench_cudagraph

        pinned = {name: do_bench_cudagraph(run, rep=20, return_mode="median") for name, run in checked.items() if "BV=" in name}
        if "fla fused_mul_recurrent_rwkv7" in checked:
            out.append(("fla autotuned", checked["fla fused_mul_recurrent_rwkv7"]))
        if pinned:
            best = min(pinned, key=pinned.get)
            out.append((f"fla at its fastest launch ({best.split('rwkv7 ')[-1]})", checked[best]))
    return out


def child(args) -> None:
    """Warm every launch up (compiles, autotuning), then run each once inside the profiler window, in order."""
    calls = launches(*args.shape, [v for v in args.variants.split(",") if v])
    for _, call in calls:
        call()
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.cudart().cudaProfilerStart()
    for i, (label, call) in enumerate(calls, 1):
        call()
        if on_gpu:
            torch.cuda.synchronize()
        print(f"launch {i}: {label}", flush=True)
    if on_gpu:
        torch.cuda.cudart().cudaProfilerStop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".", help="folder for the report and its text pages")
    ap.add_argument("--shape", default="64,16,128", type=lambda s: tuple(map(int, s.split(","))), help="B,H,K=V")
    ap.add_argument("--variants", default="", help="comma-separated launch variants of our step to profile beside "
                    "the shipped one (sweep_step_launch's; '+' joins several)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the process ncu profiles
    args = ap.parse_args()
    if len(args.shape) != 3:
        raise SystemExit(f"--shape {args.shape}: give B,H,K=V (three numbers, e.g. 64,16,128)")
    import sweep_step_launch as sw

    if unknown := {p for v in args.variants.split(",") if v for p in v.split("+")} - set(sw.VARIANTS):
        raise SystemExit(f"--variants {args.variants}: unknown {', '.join(sorted(unknown))} (choose from {', '.join(sw.VARIANTS)})")
    if args.child:
        return child(args)
    ncu = shutil.which("ncu")
    if ncu is None:
        raise SystemExit("ncu (Nsight Compute) is not on PATH: run this on the GPU machine")
    if not torch.cuda.is_available():
        raise SystemExit("ncu_step needs a CUDA device")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = out / "ncu_step"
    me = [sys.executable, str(Path(__file__).resolve()), "--child", "--shape", ",".join(map(str, args.shape)),
          "--variants", args.variants]
    run = subprocess.run(ncu_command(ncu, report, me), capture_output=True, text=True)
    order = [line for line in run.stdout.splitlines() if line.startswith(("launch ", "ours ", "fla "))]
    (out / "ncu_step_launches.txt").write_text("\n".join(order) + "\n")
    print(run.stdout[-4000:], run.stderr[-4000:], sep="\n")
    if run.returncode != 0:
        raise SystemExit(f"ncu exited {run.returncode}")
    rep = f"{report}.ncu-rep"
    for page, name, extra in (("details", "ncu_step_details.txt", []),
                              ("source", "ncu_step_source.csv", ["--csv", "--print-source", "sass"])):
        page_out = subprocess.run([ncu, "--import", rep, "--page", page, *extra], capture_output=True, text=True)
        (out / name).write_text(page_out.stdout if page_out.returncode == 0 else
                                f"ncu --page {page} exited {page_out.returncode}:\n{page_out.stderr}")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
