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
``OUT/ncu_step_launches.txt`` (which launch is which: ncu names kernels, not our labels) and
``OUT/ncu_step_stalls.md``: per launch, where its warps' stall samples fall by reason, and the SASS instructions
that hold most of them. The clocks are left alone (``--clock-control none``), as timing on the lent machines is done.

``python3 scripts/ncu_step.py --summarize OUT/ncu_step_source.csv`` writes that summary again from a source page
(no GPU; the labels come from ``ncu_step_launches.txt`` beside it, where there is one).
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

SECTIONS = ("SpeedOfLight", "MemoryWorkloadAnalysis", "Occupancy", "LaunchStats", "SchedulerStats", "WarpStateStats",
            "SourceCounters")
KERNELS = "regex:gated_step_kernel|fused_recurrent_rwkv7_fwd_kernel"


def stall_summary(source_csv: str, labels: list[str] | None = None, top: int = 6) -> str:
    """Markdown of an ``ncu --page source --csv --print-source sass`` page: one table of stall reasons (share of each
    launch's warp samples; the reasons under 1 % everywhere left out) and, per launch, the ``top`` SASS instructions
    by samples with their leading reason. ``labels`` name the launches in order (else ncu's kernel names)."""
    blocks: list[tuple[str, list[dict]]] = []
    rows = list(csv.reader(io.StringIO(source_csv)))
    i = 0
    while i < len(rows):
        if rows[i][:1] == ["Kernel Name"] and i + 1 < len(rows):
            header, body, i = rows[i + 1], [], i + 2
            while i < len(rows) and rows[i][:1] != ["Kernel Name"]:
                if len(rows[i]) == len(header):
                    body.append(dict(zip(header, rows[i], strict=True)))
                i += 1
            blocks.append((rows[i - len(body) - 2][1], body))
        else:
            i += 1
    if not blocks:
        raise ValueError("no 'Kernel Name' blocks: not an ncu source page in CSV (--page source --csv)")

    def num(x: str) -> float:
        try:
            return float(x.replace(",", ""))
        except ValueError:
            return 0.0

    names = [labels[j] if labels and j < len(labels) else f"{j + 1}: {k}" for j, (k, _) in enumerate(blocks)]
    reasons = [c for c in blocks[0][1][0] if c.startswith("stall_") and not c.endswith("(Not Issued)")] if blocks[0][1] else []
    share = []
    for _, body in blocks:
        total = sum(num(r["Warp Stall Sampling (All Samples)"]) for r in body) or 1.0
        share.append({c: 100 * sum(num(r[c]) for r in body) / total for c in reasons} | {"samples": total})
    shown = [c for c in reasons if max(sh[c] for sh in share) >= 1.0]
    out = ["| launch | samples | " + " | ".join(c.removeprefix("stall_") for c in shown) + " |",
           "|---|---|" + "---|" * len(shown)]
    out += [f"| {n} | {sh['samples']:.0f} | " + " | ".join(f"{sh[c]:.1f}" for c in shown) + " |"
            for n, sh in zip(names, share, strict=True)]
    out.append("\n(percent of each launch's warp stall samples: long_sb waits on global memory, barrier at a CTA barrier, "
               "short_sb on shared memory, lg on the load/store queue)\n")
    for n, (_, body), sh in zip(names, blocks, share, strict=True):
        out += [f"### {n}", "", "| address | SASS | samples | % | leading reason |", "|---|---|---|---|---|"]
        for r in sorted(body, key=lambda r: -num(r["Warp Stall Sampling (All Samples)"]))[:top]:
            k = num(r["Warp Stall Sampling (All Samples)"])
            lead = max(reasons, key=lambda c: num(r[c])) if reasons else "-"
            out.append(f"| {r['Address'][-5:]} | `{r['Source'].strip()}` | {k:.0f} | {100 * k / sh['samples']:.1f} | "
                       f"{lead.removeprefix('stall_')} |")
        out.append("")
    return "\n".join(out)


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
    ap.add_argument("--summarize", metavar="CSV", help="only write the stall summary of a written source page "
                    "(ncu_step_source.csv) beside it, as ncu_step_stalls.md; no GPU needed")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the process ncu profiles
    args = ap.parse_args()
    if args.summarize:
        src = Path(args.summarize)
        if not src.is_file():
            raise SystemExit(f"--summarize {src}: no such file (give the ncu_step_source.csv a run wrote)")
        order = src.with_name("ncu_step_launches.txt")
        labels = [line.split(": ", 1)[1] for line in order.read_text().splitlines() if line.startswith("launch ")] \
            if order.is_file() else None
        try:
            text = stall_summary(src.read_text(), labels)
        except ValueError as e:
            raise SystemExit(f"--summarize {src}: {e}") from None
        src.with_name("ncu_step_stalls.md").write_text(text + "\n")
        print(text)
        return None
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
        if page == "source" and page_out.returncode == 0:
            labels = [line.split(": ", 1)[1] for line in order if line.startswith("launch ")]
            (out / "ncu_step_stalls.md").write_text(stall_summary(page_out.stdout, labels) + "\n")
            print(f"wrote {out / 'ncu_step_stalls.md'}")


if __name__ == "__main__":
    main()
