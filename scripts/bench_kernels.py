"""Correctness-gated benchmark of distill's Triton kernels against the peers (fla 0.6.0, mamba_ssm 2.3.2).

Every kernel — ours and the peers' — is first checked against distill's fp32 reference on fresh random
inputs; a kernel whose check fails is reported as FAILED and never timed. Times are medians of
``triton.testing.do_bench`` (sequence ops) or of CUDA-graph replays (decode steps, which the student
captures in a graph too). ``ratio`` = best peer time / our time (> 1: ours faster). ``%floor`` = the
HBM floor (fewest bytes / copy bandwidth measured in this run) over the measured time. ``--graph`` times every
implementation as CUDA-graph replays: the device's time alone, without the host's launches, which set the pace
of small sequence ops at batch 1 and move with the host's load (kernels/NOTES.md 62 saw 2× swings between processes).

Usage (GPU machine): ``python scripts/bench_kernels.py --out $OUT`` → prints the tables, writes
``bench_kernels.md`` and ``bench_kernels.json`` under ``--out``. ``--quick`` runs a few shapes.

A device fault (an illegal memory access) in one entry loses the process's CUDA context, and every later call would
fail with it: the entry is recorded as faulting, the rows so far are saved, and the process exits with
``POISONED_EXIT``. With ``--isolate`` or several ``--shape`` shapes (one process per section and shape) the shape
then goes on in a fresh process past the recorded entries (``--resume``), so one fault costs one entry.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernels._dispatch as dispatch  # noqa: E402
import kernels.ssd.triton_chunk as ssd_chunk  # noqa: E402
from kernels.causal_conv1d import naive_causal_conv1d  # noqa: E402
from kernels.causal_conv1d.triton_conv import triton_causal_conv1d  # noqa: E402
from kernels.delta_rule import auto_chunk_size, chunk_delta_rule, naive_chunk_delta_rule, naive_delta_rule_step  # noqa: E402
from kernels.delta_rule.triton_chunk import chunk_delta_rule_fwd, triton_chunk_delta_rule  # noqa: E402
from kernels.delta_rule.triton_recurrent import fused_recurrent_delta_rule_fwd, triton_fused_recurrent_delta_rule  # noqa: E402
from kernels.delta_rule.triton_step import triton_delta_rule_step  # noqa: E402
from kernels.gla import naive_chunk_gla, naive_gla_step  # noqa: E402
from kernels.gla import triton_chunk_bwd as gla_bwd  # noqa: E402
from kernels.gla.triton_chunk import chunk_gla_fwd, triton_chunk_gla  # noqa: E402
from kernels.gla.triton_step import triton_gla_step  # noqa: E402
from kernels.mamba2_step import naive_mamba2_step  # noqa: E402
from kernels.mamba2_step.triton_step import triton_mamba2_step  # noqa: E402
from kernels.ssd import naive_chunk_ssd, naive_ssd_step  # noqa: E402
from kernels.ssd.triton_chunk import chunk_ssd_fwd, fwd_chunk_size, fwd_state_splits, triton_chunk_ssd  # noqa: E402
from kernels.ssd.triton_step import triton_ssd_step  # noqa: E402

# bench_<name> below, in the order they run
SECTIONS = ("fused_step", "step", "gla_step", "rwkv_step", "chunk", "chunk_bwd", "conv", "rwkv_prefill", "gla_chunk",
            "gla_chunk_bwd", "rwkv_prefill_bwd")
BF16_TOL = 2e-2  # bf16 operands and outputs against an fp32 reference: ~3e-3 seen; 2e-2 flags real bugs only


def toggled(module, flag: str, run):
    """``run`` with the boolean ``module.flag`` flipped, restored afterwards: an A/B row beside the default.
    Held across the whole call, backward included (a flag read by a backward must still be flipped there)."""

    def go():
        was = getattr(module, flag)
        setattr(module, flag, not was)
        try:
            return run()
        finally:
            setattr(module, flag, was)

    return go


def rel_err(out, ref) -> float:
    out, ref = out.double(), ref.double()
    if not torch.isfinite(out).all():
        return float("inf")
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def peers():
    found = {}
    try:
        from fla.modules.causal_conv1d import causal_conv1d as fla_conv
        from fla.ops.gla import chunk_gla, fused_recurrent_gla
        from fla.ops.rwkv7 import chunk_rwkv7, fused_mul_recurrent_rwkv7, fused_recurrent_rwkv7
        from fla.ops.simple_gla import chunk_simple_gla, fused_recurrent_simple_gla

        found["fla"] = {"conv": fla_conv, "chunk": chunk_simple_gla, "recurrent": fused_recurrent_simple_gla,
                        "gla_chunk": chunk_gla, "gla_recurrent": fused_recurrent_gla, "rwkv7_chunk": chunk_rwkv7,
                        "rwkv7_recurrent": fused_recurrent_rwkv7, "rwkv7_mul_recurrent": fused_mul_recurrent_rwkv7}
    except Exception as e:  # noqa: BLE001 - report any import failure, keep benchmarking our kernels
        print(f"fla unavailable: {e!r}")
    try:
        sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
        from mamba_ssm.ops.triton.layernorm_gated import rmsnorm_fn
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

        found["mamba"] = {"chunk": mamba_chunk_scan_combined, "ssu": selective_state_update, "rmsnorm": rmsnorm_fn}
    except Exception as e:  # noqa: BLE001
        print(f"mamba_ssm unavailable: {e!r}")
    return found


def chunk_matmul_flops(B: int, T: int, H: int, K: int, V: int, backward: bool = False, C: int = 64) -> float:
    """Matrix-product FLOPs of the chunked scan (SSD, GLA) with chunks of ``C`` steps: the work a tensor-core
    kernel cannot avoid, for the "% of the matmul ceiling" column. Per chunk and head, forward: scores q kᵀ
    (2·C·C·K), scores × v (2·C·C·V), q × entering state and the state update (2·C·K·V each). Backward: the
    state recompute, the dh walk, and dq, dk, dv's products with h / dh (5 × 2·C·K·V), dA = do vᵀ (2·C·C·V),
    the score recompute and dA's products with k and q (3 × 2·C·C·K), Aᵀ do (2·C·C·V)."""
    per_chunk = 2 * C * (C * K + C * V + 2 * K * V)
    if backward:
        per_chunk += 2 * C * (5 * K * V + 3 * C * K + 2 * C * V)
    return B * H * -(-T // C) * per_chunk


# A child's exit code when a device fault (an illegal address, say) lost its CUDA context: every later call of that
# process fails with the same error, so run_isolated resumes the shape in a fresh process, past what was recorded.
POISONED_EXIT = 3
MAX_RESUMES = 8  # fresh processes per shape after such faults (each records at least the entry that faulted)


class ContextPoisoned(RuntimeError):
    """An implementation's call reported a device fault: the process's CUDA context is lost."""


def poisons_context(e: BaseException) -> bool:
    """Whether ``e`` is a device-side fault, after which every CUDA call of the process fails (torch raises
    AcceleratorError, Triton's launcher a RuntimeError naming the CUDA error)."""
    text = f"{type(e).__name__}: {e}"
    faults = ("illegal memory access", "illegal instruction", "misaligned address", "unspecified launch failure")
    return type(e).__name__ == "AcceleratorError" or any(f in text for f in faults)


# --headline: per op, the implementation its users run (the public entry point, or the op's one Triton path) and
# every peer; the variants kept for kernels/NOTES.md's experiments (fixed chunk lengths, size classes, walk and
# solve options) are left out, which makes a full run fit a few commands of the GPU machine
HEADLINE_IMPLS = ("ours$", "ours fused$", "ours split read-out$", "ours (Triton bwd)$", "ours chunk_delta_rule", "fla", "mamba", "torch$")


def impl_matches(fragment: str, name: str) -> bool:
    """``--impl``'s test: ``fragment`` occurs in ``name``, or, written with a trailing ``$``, ends it."""
    return name.endswith(fragment[:-1]) if fragment.endswith("$") else fragment in name


class Bench:
    def __init__(self, bw: float, out: Path | None = None, head: dict | None = None, flops: float | None = None,
                 impls: tuple[str, ...] = (), resume: list | None = None, graph_all: bool = False, rounds: int = 1,
                 until: float | None = None):
        self.bw = bw  # bytes / s
        # --budget: past this wall-clock time (time.time()) no further row starts; those rows are listed as not run
        self.until, self.not_run = until, []
        # each implementation timed this many times, after the first in turn with the row's others (--rounds); the
        # row reports the median: one timing of a launch-bound row moves by a few % from one moment to the next
        self.rounds = rounds
        self.graph_all = graph_all  # every case timed as CUDA-graph replays (--graph), not only the decode steps
        self.flops = flops  # bf16 matmul FLOP / s
        self.rows = []
        self.out, self.head = out, head
        self.impls = impls  # run only implementations whose name matches one of these (all when empty)
        # rows of an earlier process of the same run (--resume): their entries are kept, not run again
        self.resumed = {(r["op"], r["shape"]): r for r in resume or []}

    def runs(self, name: str) -> bool:
        """Whether an implementation of this name is timed (``--impl`` / ``--headline`` choose)."""
        return not self.impls or any(impl_matches(x, name) for x in self.impls)

    def save(self):
        """Write bench_kernels.json / .md now (after every row: a run stopped by its time limit keeps its rows)."""
        if self.out is not None:
            write_results(self.out, self.head | ({"not_run": self.not_run} if self.not_run else {}), self.rows)

    def time(self, fn, graph: bool) -> float:
        from triton.testing import do_bench, do_bench_cudagraph

        fn()
        torch.cuda.synchronize()
        if graph:
            return do_bench_cudagraph(fn, rep=50, return_mode="median") * 1e-3
        return do_bench(fn, warmup=25, rep=100, return_mode="median") * 1e-3

    def case(self, op: str, shape: str, floor_bytes: float, entries: list, graph: bool = False, flops: float | None = None):
        """entries: (name, run_fn, check_fn→err, tol, is_ours); a run_fn with a ``calls`` attribute makes that many
        calls of the op, and its time is divided by them. ``flops``: the op's unavoidable matrix-product
        work (:func:`chunk_matmul_flops`), for each implementation's fraction of the measured matmul ceiling."""
        if self.until is not None and time.time() > self.until:
            self.not_run.append(f"{op} {shape}")
            print(f"  {op} {shape}: not run (--budget spent)", flush=True)
            return self.save()
        row = {"op": op, "shape": shape, "floor_us": floor_bytes / self.bw * 1e6, "impls": {}}
        if flops and self.flops:
            row["matmul_floor_us"] = flops / self.flops * 1e6
        done = self.resumed.pop((op, shape), {"impls": {}})["impls"]
        timed = {}  # name → (run, [seconds per round])
        for name, run, check, tol, ours in entries:
            if not self.runs(name):
                continue
            if name in done:  # measured (or failed) in an earlier process of this run
                row["impls"][name] = done[name]
                continue
            t0 = time.perf_counter()
            try:
                err = check()
            except Exception as e:  # noqa: BLE001 - a peer that cannot run this shape is reported, not fatal
                row["impls"][name] = {"status": f"error: {type(e).__name__}: {str(e)[:120]}", "ours": ours}
                self._stop_if_poisoned(e, row, name)
                continue
            if not (err <= tol):
                row["impls"][name] = {"status": f"FAILED check (rel err {err:.2e} > {tol:.0e})", "ours": ours}
                continue
            try:
                t = self.time(run, graph or self.graph_all) / getattr(run, "calls", 1)
            except Exception as e:  # noqa: BLE001 - e.g. a peer that cannot be graph-captured
                row["impls"][name] = {"status": f"timing error: {type(e).__name__}: {str(e)[:100]}", "ours": ours}
                self._stop_if_poisoned(e, row, name)
                continue
            row["impls"][name] = {"status": "ok", "err": err, "ours": ours}
            self._set_time(row, name, [t], floor_bytes)
            timed[name] = (run, [t])
            # one line per implementation as it finishes: a run killed by its time limit keeps what it measured
            print(f"  {op} {shape}: {name} {t * 1e6:.1f} us (rel err {err:.1e}; check, compile, autotune and timing "
                  f"took {time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
        for _ in range(self.rounds - 1):
            for name, (run, ts) in list(timed.items()):
                try:
                    ts.append(self.time(run, graph or self.graph_all) / getattr(run, "calls", 1))
                except Exception as e:  # noqa: BLE001 - as the first timing's
                    row["impls"][name] = {"status": f"timing error: {type(e).__name__}: {str(e)[:100]}",
                                          "ours": row["impls"][name]["ours"]}
                    del timed[name]
                    self._stop_if_poisoned(e, row, name)
                    continue
                self._set_time(row, name, ts, floor_bytes)
        self._finish(row)

    def _set_time(self, row: dict, name: str, seconds: list[float], floor_bytes: float) -> None:
        """An implementation's time: the median of its rounds (with their spread when there are several)."""
        t = statistics.median(seconds)
        v = row["impls"][name]
        v.update(us=t * 1e6, pct_floor=100 * floor_bytes / self.bw / t)
        if len(seconds) > 1:
            v.update(rounds_us=[x * 1e6 for x in seconds], spread_pct=100 * (max(seconds) - min(seconds)) / t)
        if "matmul_floor_us" in row:
            v["pct_matmul"] = row["matmul_floor_us"] / (t * 1e6) * 100

    def _stop_if_poisoned(self, e: BaseException, row: dict, name: str) -> None:
        """After a device fault: keep the row so far (the faulting entry recorded as such) and stop the process's
        benchmarking (:class:`ContextPoisoned`); the entry named is the one whose call reported the fault."""
        if poisons_context(e):
            self._finish(row)
            raise ContextPoisoned(f"{row['op']} {row['shape']}: {name}") from e

    def _finish(self, row: dict) -> None:
        ours = [v["us"] for v in row["impls"].values() if v["ours"] and v["status"] == "ok"]
        theirs = [v["us"] for v in row["impls"].values() if not v["ours"] and v["status"] == "ok"]
        row["ratio_vs_best_peer"] = (min(theirs) / min(ours)) if ours and theirs else None
        self.rows.append(row)
        print(fmt_row(row), flush=True)
        self.save()


def fmt_row(row) -> str:
    parts = []
    for name, v in row["impls"].items():
        if v["status"] != "ok":
            parts.append(f"{name} {v['status']}")
            continue
        mm = f", {v['pct_matmul']:.0f}%mm" if "pct_matmul" in v else ""
        spread = f", ±{v['spread_pct'] / 2:.0f}%" if "spread_pct" in v else ""
        # two decimals below 10 µs: a decode step's 1.6 against 1.7 µs would hide a 1.63 against 1.66
        us = f"{v['us']:.2f}" if v["us"] < 10 else f"{v['us']:.1f}"
        parts.append(f"{name} {us}us ({v['pct_floor']:.0f}%fl{mm}{spread})")
    r = row["ratio_vs_best_peer"]
    ratio = "" if r is None else f"{r:.2f}x" + (" (rounds overlap)" if rounds_overlap(row) else "")
    return f"| {row['op']} | {row['shape']} | {row['floor_us']:.1f} | " + " / ".join(parts) + f" | {ratio} |"


def rounds_overlap(row: dict) -> bool:
    """Whether the fastest of ours and the fastest peer, both timed in rounds, have overlapping ranges of round
    times: their ratio is then within what the machine moved during the row, a tie rather than a lead."""
    best = {}
    for v in row["impls"].values():
        if v["status"] == "ok" and (v["ours"] not in best or v["us"] < best[v["ours"]]["us"]):
            best[v["ours"]] = v
    if len(best) < 2 or not all("rounds_us" in v for v in best.values()):
        return False
    a, b = best[True]["rounds_us"], best[False]["rounds_us"]
    return max(min(a), min(b)) <= min(max(a), max(b))


def _save_figure(fig, path: Path) -> None:
    """Write ``fig`` to ``path`` under a temporary name, then rename it into place, and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def plot_ratios(path: Path, head: dict, rows: list) -> bool:
    """A bar per row that has a peer: best peer's time / ours on a log axis (right of 1: ours faster), written to
    ``path`` (temporary name, then renamed). Rows without a ratio (no peer ran, or a check failed) are left out;
    returns False, writing nothing, when no row has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rated = [r for r in rows if r.get("ratio_vs_best_peer")]
    if not rated:
        return False
    ratios = [r["ratio_vs_best_peer"] for r in rated]
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(rated) + 1.4))
    y = range(len(rated))[::-1]  # first row at the top, as in the table
    # bars grow from 1 (parity): right where ours is faster, left where a peer is
    # a tie (the fastest of ours and of the peers overlap in their round times, rounds_overlap) in grey
    colors = ["tab:gray" if rounds_overlap(r) else "tab:green" if x >= 1 else "tab:red" for r, x in zip(rated, ratios, strict=True)]
    ax.barh(list(y), [x - 1 for x in ratios], left=1, color=colors)
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(list(y), [f"{r['op']}  {r['shape']}" for r in rated], fontsize=7)
    for yi, x in zip(y, ratios, strict=True):
        ax.text(x, yi, f" {x:.2f}× ", va="center", ha="left" if x >= 1 else "right", fontsize=7)
    lo, hi = min(0.5, min(ratios) / 1.3), max(2.0, max(ratios) * 1.6)
    ax.set_xlim(lo, hi)
    ticks = [t for t in (0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20) if lo <= t <= hi]
    ax.set_xticks(ticks, [f"{t:g}×" for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("best peer time / ours (> 1: ours faster; grey: a tie, the round times overlap)")
    ax.set_title(f"{head['device']}, {str(head['date'])[:10]}: peers {', '.join(head['peers']) or 'none'}", fontsize=9)
    _save_figure(fig, path)
    return True


def plot_saved(path: Path) -> None:
    """``--plot``: the ratio plot of a saved bench_kernels.json, written beside it with the suffix .png."""
    head, rows = _load_saved(path, "--plot")
    png = path.with_suffix(".png")
    if plot_ratios(png, head, rows):
        print(f"wrote {png}")
    else:
        print(f"{path}: no row has a peer ratio; nothing to plot")


def merge_saved(paths: list[Path], out: Path) -> None:
    """``--merge``: the rows of several saved runs of one table (e.g. its sections over several commands of a lent
    machine) as one bench_kernels.json / .md / .png under ``out``. The header is the first file's, with each
    file's date listed; a row (op and shape) in more than one file is refused, since which to keep is a choice."""
    head, rows, seen, dates, not_run = None, [], {}, [], []
    for path in paths:
        h, rs = _load_saved(path, "--merge")
        not_run += h.get("not_run", [])
        if head is None:
            head = {k: v for k, v in h.items() if k != "not_run"}
        elif h.get("device") != head.get("device"):
            raise SystemExit(f"--merge: {path} is from {h.get('device')}, {paths[0]} from {head.get('device')}; "
                             "merge runs of one device")
        dates.append(h.get("date"))
        for r in rs:
            key = (r["op"], r["shape"])
            if key in seen:
                raise SystemExit(f"--merge: {r['op']} {r['shape']} is in both {seen[key]} and {path}; leave one out "
                                 "(e.g. rerun that section alone)")
            seen[key] = path
            rows.append(r)
    head["date"] = ", ".join(dict.fromkeys(str(d) for d in dates))
    write_results(out, head | ({"not_run": not_run} if not_run else {}), rows)
    print(f"wrote {out / 'bench_kernels.md'}: {len(rows)} rows from {len(paths)} files")


def _load_saved(path: Path, flag: str) -> tuple[dict, list]:
    try:
        saved = json.loads(path.read_text())
        return saved["header"], saved["rows"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{flag}: {path} is not a bench_kernels.json ({type(e).__name__}: {e}); "
                         "pass the .json that bench_kernels.py wrote") from None


def plot_sweep(paths: list[Path], out: Path) -> bool:
    """``--plot-sweep``: one panel per op found in the saved runs ``paths`` (e.g. one ``--shape`` each), every
    implementation's median time against the shapes in the order given, on a log axis; ours solid, peers dashed,
    failed or skipped entries left out. Written to ``out`` (temporary name, then renamed); returns False, writing
    nothing, when no entry has a time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops: dict[str, list[tuple[str, dict]]] = {}
    heads = []
    for path in paths:
        head, rows = _load_saved(path, "--plot-sweep")
        heads.append(head)
        for r in rows:
            timed = {name: e for name, e in r["impls"].items() if e.get("status") == "ok" and e.get("us")}
            if timed:
                ops.setdefault(r["op"], []).append((r["shape"], timed))
    if not ops:
        return False
    fig, axes = plt.subplots(len(ops), 1, figsize=(11, 3.6 * len(ops)), squeeze=False)
    for ax, (op, shapes) in zip(axes[:, 0], ops.items(), strict=True):
        names = list(dict.fromkeys(name for _, timed in shapes for name in timed))
        for name in names:
            pts = [(i, timed[name]["us"]) for i, (_, timed) in enumerate(shapes) if name in timed]
            ours = any(timed[name].get("ours") for _, timed in shapes if name in timed)
            ax.plot(*zip(*pts, strict=True), marker="o", ms=4, lw=1.4 if ours else 1.0, ls="-" if ours else "--", label=name)
        ax.set_yscale("log")
        ax.set_xticks(range(len(shapes)), [shape for shape, _ in shapes], rotation=20, ha="right", fontsize=7)
        ax.set_ylabel("median time (µs)")
        ax.set_title(op, fontsize=9)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    devices = sorted({f"{h['device']}, {str(h['date'])[:10]}" for h in heads})
    fig.suptitle(f"{'; '.join(devices)} (ours solid, peers dashed)", fontsize=9)
    _save_figure(fig, out)
    return True


def write_results(out: Path, head: dict, rows: list) -> None:
    """bench_kernels.json and .md under ``out``, each written to a temporary name and renamed into place, and the
    ratios as bench_kernels.png (:func:`plot_ratios`) where matplotlib is installed."""
    out.mkdir(parents=True, exist_ok=True)
    md = [f"# Kernel benchmark — {head['device']}, {head['date']}", "",
          f"torch {head['torch']}, triton {head['triton']}; peers: {', '.join(head['peers']) or 'none'}; "
          f"measured HBM copy {head['hbm_copy_GBps']:.0f} GB/s, bf16 matmul {head['bf16_matmul_TFLOPs']:.0f} TFLOP/s. "
          f"Medians; {'every row' if head.get('timing') == 'cuda graph' else 'decode steps'} timed as CUDA-graph "
          "replays" + (f"; each implementation timed in {head['rounds']} rounds, the row's in turn (median; ± half the "
                       "range; 'rounds overlap': the fastest of ours and of the peers overlap, a tie)"
                       if head.get("rounds", 1) > 1 else "") + ". ratio = best peer / ours (> 1: ours faster). "
          "%fl = HBM floor / time; %mm (chunked scans) = unavoidable matmul FLOPs / measured bf16 matmul rate / time.", "",
          "| op | shape | HBM floor (us) | median time (% of floor) | best peer / ours |", "|---|---|---|---|---|"]
    md += [fmt_row(r) for r in rows]
    if head.get("not_run"):
        md += ["", f"Not run (the run's --budget was spent): {'; '.join(head['not_run'])}."]
    for name, text in (("bench_kernels.json", json.dumps({"header": head, "rows": rows}, indent=1, default=str)),
                       ("bench_kernels.md", "\n".join(md) + "\n")):
        tmp = out / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(out / name)
    try:
        plot_ratios(out / "bench_kernels.png", head, rows)
    except ImportError:  # the numbers are in the .md and .json; the plot can be made later with --plot
        pass


def parse_shapes(text: str) -> list[tuple[int, ...]]:
    """``--shape``: shapes separated by ``;``, each its numbers separated by ``,`` (``8,2048,16,64;16,2048,16,64``)."""
    shapes = []
    for part in (p.strip() for p in text.split(";")):
        try:
            shape = tuple(int(x) for x in part.split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise SystemExit(f"--shape: {part!r} is not a shape; give positive whole numbers separated by commas, shapes "
                             "separated by ';', e.g. --shape '8,2048,16,64;16,2048,16,64' (B,T,H,D)")
        shapes.append(shape)
    return shapes


def run_isolated(a, sections: list[str], shapes: list[tuple[int, ...]]) -> None:
    """Each section (and each of several ``--shape`` shapes) in its own process: an illegal memory access (or a hang
    cut by the caller's limit) in one poisons that process's CUDA context only, and each shape tunes its own tiles
    (autotune keys leave out batch and length). Rows are merged into ``--out``; with several shapes, each
    implementation's time across them is drawn as ``bench_sweep.png`` (:func:`plot_sweep`)."""
    import subprocess

    out, head, rows, not_run = Path(a.out), None, [], []
    for name in sections:
        for shape in shapes or [None]:
            tag = ",".join(map(str, shape)) if shape else ""
            if a.until is not None and time.time() > a.until:
                not_run.append(f"section {name}" + (f" shape {tag}" if tag else ""))
                print(f"section {name}{f' shape {tag}' if tag else ''}: not run (--budget spent)", flush=True)
                continue
            sub = out / (f"section_{name}" + (f"_{tag.replace(',', 'x')}" if len(shapes) > 1 else ""))
            cmd = [sys.executable, __file__, "--only", name, "--out", str(sub)] + (["--quick"] if a.quick else [])
            cmd += ["--shape", tag] if tag else []
            cmd += ["--impl", a.impl] if a.impl else []
            cmd += ["--headline"] if a.headline else []
            cmd += ["--graph"] if a.graph else []
            cmd += ["--rounds", str(a.rounds)]
            cmd += ["--until", repr(a.until)] if a.until is not None else []
            res = sub / "bench_kernels.json"
            rc = subprocess.run(cmd).returncode
            for attempt in range(MAX_RESUMES):  # a device fault lost the child's CUDA context: go on in a fresh one
                if rc != POISONED_EXIT or not res.exists():
                    break
                print(f"section {name}{f' shape {tag}' if tag else ''}: a device fault ended the process; resuming "
                      f"past the entries it recorded ({attempt + 1} of at most {MAX_RESUMES})", flush=True)
                rc = subprocess.run(cmd + ["--resume", str(res)]).returncode
            if res.exists():
                got = json.loads(res.read_text())
                head = head or {k: v for k, v in got["header"].items() if k != "not_run"}
                rows += got["rows"]
                not_run += got["header"].get("not_run", [])
            if head is not None:
                write_results(out, head | ({"not_run": not_run} if not_run else {}), rows)
            if rc:
                print(f"section {name}{f' shape {tag}' if tag else ''}: exit code {rc} (rows it finished are kept)", flush=True)
    if head is not None and not_run:  # sections the budget left out, listed beside the rows
        write_results(out, head | {"not_run": not_run}, rows)
    if len(shapes) > 1 and rows and plot_sweep([out / "bench_kernels.json"], out / "bench_sweep.png"):
        print(f"wrote {out / 'bench_sweep.png'}", flush=True)


def measure_ceilings():
    n = 1 << 28  # 1 GiB fp32 buffer, far beyond L2
    a = torch.randn(n, device="cuda")
    b = torch.empty_like(a)
    from triton.testing import do_bench

    t = do_bench(lambda: b.copy_(a), warmup=25, rep=200, return_mode="median") * 1e-3
    bw = 2 * a.numel() * 4 / t
    m = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    tm = do_bench(lambda: m @ m, warmup=25, rep=100, return_mode="median") * 1e-3
    return bw, 2 * 8192**3 / tm


def bench_conv(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, T, C = shape
    W = 4
    x = torch.randn(B, T, C, device="cuda", dtype=torch.bfloat16)
    w = (torch.randn(C, W, device="cuda") / W).to(torch.bfloat16)
    b = torch.randn(C, device="cuda").to(torch.bfloat16)
    ref = naive_causal_conv1d(x.float(), w.float(), b.float(), None, "silu", False)[0]
    floor = 2 * x.numel() * 2
    entries = [("ours", lambda x=x, w=w, b=b: triton_causal_conv1d(x, w, b, None, "silu", False),
                lambda x=x, w=w, b=b, ref=ref: rel_err(triton_causal_conv1d(x, w, b, None, "silu", False)[0], ref),
                BF16_TOL, True)]
    entries.append(("torch", lambda x=x, w=w, b=b: naive_causal_conv1d(x, w, b, None, "silu", False),
                    lambda x=x, w=w, b=b, ref=ref: rel_err(naive_causal_conv1d(x, w, b, None, "silu", False)[0], ref),
                    BF16_TOL, False))
    if "fla" in P:
        fc = P["fla"]["conv"]
        entries.append(("fla", lambda x=x, w=w, b=b: fc(x, w, b, activation="silu"),
                        lambda x=x, w=w, b=b, ref=ref: rel_err(fc(x, w, b, activation="silu")[0], ref), BF16_TOL, False))
    bench.case("conv1d fwd (silu, W=4)", f"B={B} T={T} C={C}", floor, entries)
    # forward + backward (x, weight, bias): reads x, dy; writes y, dx (weights negligible)
    dy = torch.randn_like(x)

    def fb(fn, x=x, w=w, b=b, dy=dy):
        xr, wr, br = x.detach().requires_grad_(), w.detach().requires_grad_(), b.detach().requires_grad_()
        y = fn(xr, wr, br)
        y.backward(dy)
        return y, xr.grad, wr.grad

    def ref_fb(x=x, w=w, b=b, dy=dy):
        xr, wr = x.detach().float().requires_grad_(), w.detach().float().requires_grad_()
        y = naive_causal_conv1d(xr, wr, b.float(), None, "silu", False)[0]
        y.backward(dy.float())
        return y, xr.grad, wr.grad

    r = ref_fb()

    def chk(fn, r=r):
        return max(rel_err(o, q) for o, q in zip(fb(fn), r, strict=True))

    ours_fn = lambda xr, wr, br: triton_causal_conv1d(xr, wr, br, None, "silu", False)[0]  # noqa: E731
    entries = [("ours", lambda: fb(ours_fn), lambda: chk(ours_fn), BF16_TOL, True)]
    if "fla" in P:
        fla_fn = lambda xr, wr, br: P["fla"]["conv"](xr, wr, br, activation="silu")[0]  # noqa: E731
        entries.append(("fla", lambda: fb(fla_fn), lambda: chk(fla_fn), BF16_TOL, False))
    bench.case("conv1d fwd+bwd", f"B={B} T={T} C={C}", 4 * x.numel() * 2, entries)


def size_class_row(run, check, name: str = "ours") -> list:
    """The row of ``run`` with the autotune size classes flipped (kernels/NOTES.md 49). Run after ``name`` in the
    same process, it tunes per size class where ``name`` reuses the tile of the first shape with the same head
    sizes."""
    name += " (size classes)" if not dispatch.SIZE_CLASSES else " (one tile for all sizes)"
    return [(name, toggled(dispatch, "SIZE_CLASSES", run), toggled(dispatch, "SIZE_CLASSES", check), BF16_TOL, True)]


def bench_chunk(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, T, H, D = shape
    dt = F.softplus(torch.randn(B, T, H, device="cuda") - 3.0)
    A = -torch.rand(H, device="cuda") * 4 - 1
    x = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
    Bm = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16) / D**0.5
    Cm = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
    v = (x.float() * dt[..., None]).to(torch.bfloat16)
    g = dt * A
    ref = naive_chunk_ssd(Cm.float(), Bm.float(), v.float(), g, 1.0, None, True)
    # q, k, v read once (bf16), g fp32, o written (bf16), final state fp32
    floor = (4 * B * T * H * D * 2) + B * T * H * 4 + B * H * D * D * 4

    def ours(Cm=Cm, Bm=Bm, v=v, g=g):
        return chunk_ssd_fwd(Cm, Bm, v, g, 1.0, None, True)

    def chk_ours(ours=ours, ref=ref):
        o, h = ours()
        return max(rel_err(o, ref[0]), rel_err(h, ref[1]))

    entries = [("ours", ours, chk_ours, BF16_TOL, True), *size_class_row(ours, chk_ours)]
    BT = fwd_chunk_size(B, T, H, torch.bfloat16)
    if fwd_state_splits(B, H, -(-T // BT)) > 1:  # the split state walk (kernels/NOTES.md 50) against one walk per head
        name = "ours (one walk per head)" if ssd_chunk.SPLIT_WALK else "ours (split walk)"
        entries.append((name, toggled(ssd_chunk, "SPLIT_WALK", ours), toggled(ssd_chunk, "SPLIT_WALK", chk_ours), BF16_TOL, True))
    # the other chunk length's A/B row: 128-step chunks shorten the walk (which the split walk shortens too) at the
    # output kernel's register cost; 64 is the default above 32 batch·heads (fwd_chunk_size)
    other = 64 if BT != 64 else 128

    def ours_other(Cm=Cm, Bm=Bm, v=v, g=g):
        return chunk_ssd_fwd(Cm, Bm, v, g, 1.0, None, True, chunk_size=other)

    def chk_other(ours_other=ours_other, ref=ref):
        o, h = ours_other()
        return max(rel_err(o, ref[0]), rel_err(h, ref[1]))

    entries.append((f"ours (chunk {other})", ours_other, chk_other, BF16_TOL, True))
    if "mamba" in P:
        mc = P["mamba"]["chunk"]

        def mamba(x=x, dt=dt, A=A, Bm=Bm, Cm=Cm):
            return mc(x, dt, A, Bm, Cm, chunk_size=256, return_final_states=True)

        def chk_mamba(mamba=mamba, ref=ref):
            o, h = mamba()  # mamba's state is [B, H, P, N] = our [B, H, K, V] transposed
            return max(rel_err(o, ref[0]), rel_err(h.transpose(-1, -2), ref[1]))

        entries.append(("mamba_ssm", mamba, chk_mamba, BF16_TOL, False))
    if "fla" in P:
        fc = P["fla"]["chunk"]

        def fla(Cm=Cm, Bm=Bm, v=v, g=g):
            return fc(Cm, Bm, v, g=g, scale=1.0, output_final_state=True)

        def chk_fla(fla=fla, ref=ref):
            o, h = fla()
            return max(rel_err(o, ref[0]), rel_err(h, ref[1]))

        entries.append(("fla simple_gla", fla, chk_fla, BF16_TOL, False))
    bench.case("SSD chunk fwd", f"B={B} T={T} H={H} K=V={D}", floor, entries, flops=chunk_matmul_flops(B, T, H, D, D))
    del ref


def bench_step(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, H, D = shape
    N = Pd = D
    q, k = torch.randn(B, H, N, device="cuda", dtype=torch.bfloat16), torch.randn(B, H, N, device="cuda", dtype=torch.bfloat16)
    x = torch.randn(B, H, Pd, device="cuda", dtype=torch.bfloat16)
    dt = F.softplus(torch.randn(B, H, device="cuda") - 3.0)
    A = -torch.rand(H, device="cuda") - 0.5
    v = (x.float() * dt[..., None]).to(torch.bfloat16)
    s0 = torch.randn(B, H, N, Pd, device="cuda")
    floor = 2 * s0.numel() * 4
    s_ours = s0.clone()
    s_ref = s0.clone()
    o_ref = naive_ssd_step(q.float(), k.float(), v.float(), dt * A, s_ref)

    def chk_ours():
        s = s0.clone()
        o = triton_ssd_step(q, k, v, dt * A, s)
        return max(rel_err(o, o_ref), rel_err(s, s_ref))

    g = dt * A
    entries = [("ours", lambda: triton_ssd_step(q, k, v, g, s_ours), chk_ours, BF16_TOL, True)]
    if "mamba" in P:
        ssu = P["mamba"]["ssu"]
        Am = A[:, None, None].expand(H, Pd, N)
        dtm = dt[..., None].expand(B, H, Pd)
        s_m = s0.transpose(-1, -2).contiguous()  # [B, H, P, N]
        # its tied-head (Mamba2) path needs a dt_bias, and its launcher a D; zeros leave the math unchanged
        dtb0 = torch.zeros(H, device="cuda")[:, None].expand(H, Pd)
        D0 = torch.zeros(H, device="cuda")[:, None].expand(H, Pd)

        def chk_m():
            s = s0.transpose(-1, -2).contiguous()
            o = ssu(s, x, dtm, Am, k, q, dt_bias=dtb0, D=D0)
            return max(rel_err(o, o_ref), rel_err(s.transpose(-1, -2), s_ref))

        entries.append(("mamba_ssm ssu", lambda: ssu(s_m, x, dtm, Am, k, q, dt_bias=dtb0, D=D0), chk_m, BF16_TOL, False))
    if "fla" in P:
        fr = P["fla"]["recurrent"]
        q1, k1, v1, g1 = q[:, None], k[:, None], v[:, None], g[:, None]

        def fla_step():
            return fr(q1, k1, v1, g=g1, scale=1.0, initial_state=s0, output_final_state=True)

        def chk_f():
            o, s = fla_step()
            return max(rel_err(o[:, 0], o_ref), rel_err(s, s_ref))

        entries.append(("fla fused_recurrent", fla_step, chk_f, BF16_TOL, False))
    bench.case("SSD decode step", f"B={B} H={H} K=V={D}", floor, entries, graph=True)


def gla_inputs(B, T, H, D):
    q = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
    k = (torch.randn(B, T, H, D, device="cuda") / D**0.5).to(torch.bfloat16)
    v = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
    # GLA's gate: logsigmoid(x) / 16 (per key channel, fp32)
    g = F.logsigmoid(torch.randn(B, T, H, D, device="cuda")) / 16
    return q, k, v, g


def bench_gla_chunk(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, T, H, D = shape
    q, k, v, g = gla_inputs(B, T, H, D)
    scale = D**-0.5
    ref = naive_chunk_gla(q.float(), k.float(), v.float(), g, scale, None, True)
    # q, k, v read and o written (bf16), g read (fp32, one per key channel), final state fp32
    floor = 4 * B * T * H * D * 2 + B * T * H * D * 4 + B * H * D * D * 4

    def ours():
        return chunk_gla_fwd(q, k, v, g, scale, None, True)

    def chk(fn):
        o, h = fn()
        return max(rel_err(o, ref[0]), rel_err(h, ref[1]))

    entries = [("ours", ours, lambda: chk(ours), BF16_TOL, True), *size_class_row(ours, lambda: chk(ours))]
    if "fla" in P:
        fc = P["fla"]["gla_chunk"]

        def fla():
            return fc(q, k, v, g, scale=scale, output_final_state=True)

        entries.append(("fla chunk_gla", fla, lambda: chk(fla), BF16_TOL, False))
    bench.case("GLA chunk fwd", f"B={B} T={T} H={H} K=V={D}", floor, entries, flops=chunk_matmul_flops(B, T, H, D, D))


def bench_gla_chunk_bwd(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, T, H, D = shape
    q, k, v, g = gla_inputs(B, T, H, D)
    scale = D**-0.5
    do = torch.randn_like(v)

    def fb(fn, cast=lambda t: t):
        leaves = [cast(t).detach().requires_grad_() for t in (q, k, v, g)]
        o, _ = fn(*leaves)
        o.backward(cast(do))
        return [o, *(t.grad for t in leaves)]

    ref = fb(lambda *a: naive_chunk_gla(*a, scale, None, False), cast=lambda t: t.float())

    def chk(fn):
        return max(rel_err(a, b) for a, b in zip(fb(fn), ref, strict=True))

    ours_fn = lambda *a: triton_chunk_gla(*a, scale, None, False)  # noqa: E731  (saves the scores: the default)
    ours_na = lambda *a: triton_chunk_gla(*a, scale, None, False, save_scores=False)  # noqa: E731

    # the dq/dk kernel's diagonal blocks the other way (kernels/NOTES.md 43)
    other = "ours (factored diagonal)" if not gla_bwd.FACTORED_DIAGONAL else "ours (row-by-row diagonal)"
    flip = lambda run: toggled(gla_bwd, "FACTORED_DIAGONAL", run)  # noqa: E731
    entries = [("ours", lambda: fb(ours_fn), lambda: chk(ours_fn), BF16_TOL, True),
               ("ours (no saved A)", lambda: fb(ours_na), lambda: chk(ours_na), BF16_TOL, True),
               (other, flip(lambda: fb(ours_fn)), flip(lambda: chk(ours_fn)), BF16_TOL, True),
               *size_class_row(lambda: fb(ours_fn), lambda: chk(ours_fn))]
    if "fla" in P:
        fla_fn = lambda *a: P["fla"]["gla_chunk"](*a, scale=scale)  # noqa: E731
        entries.append(("fla chunk_gla", lambda: fb(fla_fn), lambda: chk(fla_fn), BF16_TOL, False))
    # reads q, k, v, g, do (+ forward re-read), writes o, dq, dk, dv, dg: counted once each
    bench.case("GLA chunk fwd+bwd", f"B={B} T={T} H={H} K=V={D}", 9 * B * T * H * D * 2 + 2 * B * T * H * D * 4, entries,
               flops=chunk_matmul_flops(B, T, H, D, D, backward=True))


def ssd_grads_as_mamba(grads: list, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor) -> list:
    """Our SSD fwd+bwd results [o, dq, dk, dv, dg] (of o = SSD(q, k, v, g) with v = x·dt, g = dt·A) in mamba_ssm's
    parameterisation [o, dx, ddt, dA, dB, dC] (its C = q, B = k), by the chain rule: dx = dv·dt,
    ddt = Σ_p dv·x + dg·A, dA = Σ_(b,t) dg·dt. mamba's backward returns these, so its gradients are checked against
    the reference's mapped this way."""
    o, dq, dk, dv, dg = grads
    x, dt, A = x.float(), dt.float(), A.float()
    return [o, dv * dt[..., None], (dv * x).sum(-1) + dg * A, (dg * dt).sum((0, 1)), dk, dq]


def bench_chunk_bwd(bench: Bench, P: dict, shape: tuple[int, ...]):
    """SSD chunk forward + backward (q, k, v, g) against mamba_ssm's and fla's, all on the same values."""
    B, T, H, D = shape
    dt = F.softplus(torch.randn(B, T, H, device="cuda") - 3.0)
    A = -torch.rand(H, device="cuda") * 4 - 1
    x = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
    Bm = (torch.randn(B, T, H, D, device="cuda") / D**0.5).to(torch.bfloat16)
    Cm = torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16)
    v = (x.float() * dt[..., None]).to(torch.bfloat16)
    g = dt * A
    do = torch.randn_like(v)

    def fb(fn, cast=lambda t: t):
        leaves = [cast(t).detach().requires_grad_() for t in (Cm, Bm, v, g)]
        o = fn(*leaves)
        o.backward(cast(do))
        return [o, *(t.grad for t in leaves)]

    ref = fb(lambda *a: naive_chunk_ssd(*a, 1.0, None, False)[0], cast=lambda t: t.float())

    def chk(fn):
        return max(rel_err(a, b) for a, b in zip(fb(fn), ref, strict=True))

    ours_fn = lambda *a: triton_chunk_ssd(*a, 1.0, None, False, triton_backward=False)[0]  # noqa: E731
    ours_tb = lambda *a: triton_chunk_ssd(*a, 1.0, None, False)[0]  # noqa: E731
    entries = [
        ("ours (ref. bwd)", lambda: fb(ours_fn), lambda: chk(ours_fn), BF16_TOL, True),
        ("ours (Triton bwd)", lambda: fb(ours_tb), lambda: chk(ours_tb), BF16_TOL, True),
        *size_class_row(lambda: fb(ours_tb), lambda: chk(ours_tb), "ours (Triton bwd)"),
    ]
    if "mamba" in P:
        # a Mamba2 layer's scan as mamba_ssm runs it (chunk 256, its forward row's), its own inputs (x, dt, A, B, C)
        # as leaves: the same o, and gradients that are ours by the chain rule (ssd_grads_as_mamba)
        mc = P["mamba"]["chunk"]
        ref_mamba = ssd_grads_as_mamba(ref, x, dt, A)

        def mamba_fb():
            leaves = [t.detach().requires_grad_() for t in (x, dt, A, Bm, Cm)]
            o = mc(*leaves, chunk_size=256)
            o.backward(do)
            return [o, *(t.grad for t in leaves)]

        def chk_mamba():
            return max(rel_err(a, b) for a, b in zip(mamba_fb(), ref_mamba, strict=True))

        entries.append(("mamba_ssm", mamba_fb, chk_mamba, BF16_TOL, False))
    if "fla" in P:
        fla_fn = lambda q, k, vv, gg: P["fla"]["chunk"](q, k, vv, g=gg, scale=1.0)[0]  # noqa: E731
        entries.append(("fla simple_gla", lambda: fb(fla_fn), lambda: chk(fla_fn), BF16_TOL, False))
    bench.case("SSD chunk fwd+bwd", f"B={B} T={T} H={H} K=V={D}", 9 * B * T * H * D * 2 + 2 * B * T * H * 4, entries,
               flops=chunk_matmul_flops(B, T, H, D, D, backward=True))


# fla's RWKV7 layer calls chunk_rwkv7 with the log-decay's bound (RWKV-7's w = -exp(·) ≥ -e^-0.5), which licenses
# its tensor-core scores and chunks of 64 (fla 0.6, ops/generalized_delta_rule/dplr/chunk.py); rwkv_inputs keeps
# g in [-0.6, 0), inside it. The peer as its own model runs it, beside the default call.
FLA_RWKV7_BOUND = {"safe_gate": True, "lower_bound": -0.6065306597126334}
FLA_RWKV7_BOUND_ROW = "fla chunk_rwkv7 (bounded gate, as fla's layer)"


def rwkv_inputs(B, T, H, D):
    """RWKV-7-like delta-rule inputs: a = −κ̂, b = κ̂ ⊙ α (κ̂ unit-norm, α ∈ (0, 1)), log-decay in [−0.6, 0)."""
    q, k, v = (torch.randn(B, T, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    kk = F.normalize(torch.randn(B, T, H, D, device="cuda"), dim=-1)
    alpha = torch.rand(B, T, H, D, device="cuda")
    g = -0.6 * torch.rand(B, T, H, D, device="cuda")
    return q, (k.float() / D**0.5).to(torch.bfloat16), v, g, (-kk).to(torch.bfloat16), (kk * alpha).to(torch.bfloat16), kk, alpha


# Steps per timed call where a peer's step is chained (each call's state the one the call before wrote).
STEP_CHAIN = 4


FLA_FASTEST = "fla fused_mul_recurrent_rwkv7 at its fastest launch here"


def fastest_pinned_launch(fla_step, check, K: int, timer=None):
    """((BV, warps), run) of fla's RWKV-7 step held to the fastest of its own launches at this shape, or None.

    Its autotuner is keyed on K alone: a process tunes it at the first batch it meets and keeps that launch for
    every batch after, so the autotuned call is one draw of its launches (50.4 µs at B=64 K=V=128 one day, 37.8 the
    next; kernels/NOTES.md 67). The best peer is the best any of its launches gives here: each of its configs
    (``sweep_step_launch.FLA_RWKV7_CONFIGS``) is checked by ``check`` (a failed one is skipped), timed once by
    ``timer`` (CUDA-graph replays), and the fastest kept; the row then times that one in turn with the rest."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sweep_step_launch import FLA_RWKV7_CONFIGS, fla_rwkv7_tuner, pinned

    if timer is None:
        from triton.testing import do_bench_cudagraph

        timer = lambda fn: do_bench_cudagraph(fn, rep=20, return_mode="median")  # noqa: E731
    tuner, times = fla_rwkv7_tuner(), {}
    for config in (c for c in FLA_RWKV7_CONFIGS if c[0] <= K):
        run = pinned(tuner, config, fla_step)
        try:
            if check(run) > BF16_TOL:
                continue
            times[config] = timer(run)
        except Exception as e:  # noqa: BLE001 (a config past the GPU's resources is skipped, not timed)
            print(f"fla step BV={config[0]} warps={config[1]}: {type(e).__name__}", flush=True)
    if not times:
        return None
    best = min(times, key=times.get)
    return best, pinned(tuner, best, fla_step)


def bench_rwkv_step(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, H, D = shape
    q, k, v, g, a, b, kk, alpha = (t[:, 0] for t in rwkv_inputs(B, 1, H, D))
    s0 = torch.randn(B, H, D, D, device="cuda") / D
    floor = 2 * s0.numel() * 4
    s_ours, s_ref = s0.clone(), s0.clone()
    o_ref = naive_delta_rule_step(q.float(), k.float(), v.float(), g, a.float(), b.float(), s_ref)

    def chk_ours(vk: bool):
        s = s0.transpose(-1, -2).contiguous() if vk else s0.clone()
        o = triton_delta_rule_step(q, k, v, g, a, b, s, transposed_state=vk)
        return max(rel_err(o, o_ref), rel_err(s.transpose(-1, -2) if vk else s, s_ref))

    # ours: the step as the RWKV-7 student runs it, on its state held as Sᵀ ([B, H, V, K], transposed_state); the
    # same step on a [K, V] state beside it (fla's layout, and ours before kernels/NOTES.md 73)
    s_ours_vk = s0.transpose(-1, -2).contiguous()
    entries = [("ours", lambda: triton_delta_rule_step(q, k, v, g, a, b, s_ours_vk, transposed_state=True),
                lambda: chk_ours(True), BF16_TOL, True),
               ("ours, state as [K, V]", lambda: triton_delta_rule_step(q, k, v, g, a, b, s_ours),
                lambda: chk_ours(False), BF16_TOL, True)]
    if "fla" in P:
        fr, fm = P["fla"]["rwkv7_recurrent"], P["fla"]["rwkv7_mul_recurrent"]
        one = [t[:, None] for t in (q, k, v, g, a, b, kk.to(torch.bfloat16), alpha.to(torch.bfloat16))]

        def fla_dplr():
            return fr(one[0], one[3], one[1], one[2], one[4], one[5], scale=1.0, initial_state=s0, output_final_state=True)

        def fla_mul():
            return fm(one[0], one[3], one[1], one[2], one[6], one[7], scale=1.0, initial_state=s0, output_final_state=True)

        def chk(fn):
            o, s = fn()
            return max(rel_err(o[:, 0], o_ref), rel_err(s, s_ref))

        entries.append(("fla fused_recurrent_rwkv7", fla_dplr, lambda: chk(fla_dplr), BF16_TOL, False))
        entries.append(("fla fused_mul_recurrent_rwkv7", fla_mul, lambda: chk(fla_mul), BF16_TOL, False))
        fastest = fastest_pinned_launch(fla_mul, chk, D) if bench.runs(FLA_FASTEST) else None
        if fastest:
            (bv, warps), run = fastest
            entries.append((f"{FLA_FASTEST} (BV {bv}, {warps} warps)", run,
                            lambda: chk(run), BF16_TOL, False))

        # fla's step reads its state from one tensor and writes another: above, every call reads the same s0, which
        # stays partly in L2 from one call to the next at sizes near L2's. A decoder feeds each step the state the last
        # one wrote, as ours (in place) does: the same calls chained, time per step.
        s_chain = s0.clone()
        o_chain = [naive_delta_rule_step(q.float(), k.float(), v.float(), g, a.float(), b.float(), s_chain)
                   for _ in range(STEP_CHAIN)][-1]

        def fla_mul_chained():
            h = s0
            for _ in range(STEP_CHAIN):
                o, h = fm(one[0], one[3], one[1], one[2], one[6], one[7], scale=1.0, initial_state=h,
                          output_final_state=True)
            return o, h

        fla_mul_chained.calls = STEP_CHAIN

        def chk_chained():
            o, s = fla_mul_chained()
            return max(rel_err(o[:, 0], o_chain), rel_err(s, s_chain))

        entries.append(("fla fused_mul_recurrent_rwkv7 (chained)", fla_mul_chained, chk_chained, BF16_TOL, False))
    bench.case("RWKV-7 decode step", f"B={B} H={H} K=V={D}", floor, entries, graph=True)

    # The mixer's step after its projections: state update + bonus + per-head RMSNorm + sigmoid gate in one
    # launch (ours) against the step kernel followed by the same read-out in torch.
    rk = torch.randn(H, D, device="cuda") / D
    nw = torch.rand(H * D, device="cuda") + 0.5
    gz = torch.randn(B, H * D, device="cuda", dtype=torch.bfloat16)
    s_r = s0.clone()
    y_ref = naive_delta_rule_step(q.float(), k.float(), v.float(), g, a.float(), b.float(), s_r, 1.0, rk, nw, gz.float())

    def torch_read_out(o):
        of = o.float() + (q.float() * k.float() * rk).sum(-1, keepdim=True) * v.float()
        of = of * torch.rsqrt(of.pow(2).mean(-1, keepdim=True) + 1e-5) * nw.view(H, D)
        return (of * torch.sigmoid(gz.float().view(B, H, D))).to(o.dtype)

    def chk_read_out(fn):  # on the state held as Sᵀ, as the student's step runs
        s = s0.transpose(-1, -2).contiguous()
        return max(rel_err(fn(s), y_ref), rel_err(s.transpose(-1, -2), s_r))

    kw = dict(transposed_state=True)
    fused = lambda s: triton_delta_rule_step(q, k, v, g, a, b, s, 1.0, rk, nw, gz, split=False, **kw)  # noqa: E731
    two = lambda s: triton_delta_rule_step(q, k, v, g, a, b, s, 1.0, rk, nw, gz, split=True, **kw)  # noqa: E731
    split = lambda s: torch_read_out(triton_delta_rule_step(q, k, v, g, a, b, s, **kw))  # noqa: E731
    entries = [("ours fused", lambda: fused(s_ours_vk), lambda: chk_read_out(fused), BF16_TOL, True),
               ("ours split read-out", lambda: two(s_ours_vk), lambda: chk_read_out(two), BF16_TOL, True),
               ("ours step + torch read-out", lambda: split(s_ours_vk), lambda: chk_read_out(split), BF16_TOL, False)]
    bench.case("RWKV-7 step + read-out (bonus, norm, gate)", f"B={B} H={H} K=V={D}", floor, entries, graph=True)


def bench_rwkv_prefill(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, T, H, D = shape
    q, k, v, g, a, b, _, _ = rwkv_inputs(B, T, H, D)
    ref = naive_chunk_delta_rule(q.float(), k.float(), v.float(), g, a.float(), b.float(), 1.0, None, True)
    # q, k, v, a, b read and o written (bf16), g read (fp32), final state fp32
    floor = 6 * B * T * H * D * 2 + B * T * H * D * 4 + B * H * D * D * 4

    def ours():
        return fused_recurrent_delta_rule_fwd(q, k, v, g, a, b, 1.0, None, True)

    def chunked(bt, fuse=False, walk_dtype=None, block_inverse=False, group=1):
        return lambda: chunk_delta_rule_fwd(q, k, v, g, a, b, 1.0, None, True, bt, fuse_scores=fuse, walk_dtype=walk_dtype,
                                            block_inverse=block_inverse, scores_skip_group=group)

    def chk(fn):
        o, s = fn()
        return max(rel_err(o, ref[0]), rel_err(s, ref[1]))

    # the chunk lengths side by side: BT=16 is one sub-chunk (no solve across blocks), 64 the fewest walk steps
    entries = [(f"ours chunked BT={bt}", chunked(bt), lambda bt=bt: chk(chunked(bt)), BF16_TOL, True) for bt in (16, 32, 64)]
    # fuse_scores: the solve forms each chunk's scores itself (kernels/NOTES.md 38)
    entries += [(f"ours chunked BT={bt} fused", chunked(bt, True), lambda bt=bt: chk(chunked(bt, True)), BF16_TOL, True)
                for bt in (16, 32, 64)]
    for bt in (16, 32):
        entries += size_class_row(chunked(bt, True), lambda bt=bt: chk(chunked(bt, True)), f"ours chunked BT={bt} fused")
    # the walk's operands in bf16 (what chunk_delta_rule takes for 16-bit forward-only calls, kernels/NOTES.md 53, 54)
    bf = torch.bfloat16
    entries += [(f"ours chunked BT={bt} fused, lean walk", chunked(bt, True, bf), lambda bt=bt: chk(chunked(bt, True, bf)),
                 BF16_TOL, True) for bt in (16, 32, 64)]
    # the chunk-64 solve's inverse by 16 × 16 blocks (kernels/NOTES.md 54), fp32 and lean walk
    entries += [(f"ours chunked BT=64 fused, block inverse{name}", chunked(64, True, wd, True),
                 lambda wd=wd: chk(chunked(64, True, wd, True)), BF16_TOL, True) for name, wd in (("", None), (", lean walk", bf))]
    # the scores kernel testing eight chunks per program from one load (kernels/NOTES.md 57, the default since 58; the
    # rows above pass one chunk per program, as before it), lean walk
    entries += [(f"ours chunked BT={bt} fused, lean walk, skip group 8", chunked(bt, True, bf, False, 8),
                 lambda bt=bt: chk(chunked(bt, True, bf, False, 8)), BF16_TOL, True) for bt in (16, 64)]
    entries.append(("ours fused_recurrent", ours, lambda: chk(ours), BF16_TOL, True))

    def dispatched():  # what a student's no-grad prefill runs: the public op, chunk length left to it
        return chunk_delta_rule(q, k, v, g, a, b, 1.0, None, True, impl="triton")

    auto = f"ours chunk_delta_rule (chunk {auto_chunk_size(B * H, False, D)})"
    entries.append((auto, dispatched, lambda: chk(dispatched), BF16_TOL, True))
    if "fla" in P:
        fr, fc = P["fla"]["rwkv7_recurrent"], P["fla"]["rwkv7_chunk"]

        def fla_rec():
            return fr(q, g, k, v, a, b, scale=1.0, output_final_state=True)

        def fla_chunk():
            return fc(q, g, k, v, a, b, scale=1.0, output_final_state=True)

        def fla_chunk_bounded():
            return fc(q, g, k, v, a, b, scale=1.0, output_final_state=True, **FLA_RWKV7_BOUND)

        entries.append(("fla fused_recurrent_rwkv7", fla_rec, lambda: chk(fla_rec), BF16_TOL, False))
        entries.append(("fla chunk_rwkv7", fla_chunk, lambda: chk(fla_chunk), BF16_TOL, False))
        entries.append((FLA_RWKV7_BOUND_ROW, fla_chunk_bounded, lambda: chk(fla_chunk_bounded), BF16_TOL, False))
    bench.case("RWKV-7 prefill fwd", f"B={B} T={T} H={H} K=V={D}", floor, entries)


def bench_rwkv_prefill_bwd(bench: Bench, P: dict, shape: tuple[int, ...]):
    """Delta-rule (RWKV-7) forward + backward: our chunked pair (chunks of 16, 32 and 64, each also with
    ``fuse_scores``), our fused-recurrent pair, the public op as a training step calls it, and fla's chunk_rwkv7
    (its default call and the bounded one its RWKV7 layer makes), all on the same values."""
    B, T, H, D = shape
    q, k, v, g, a, b, _, _ = rwkv_inputs(B, T, H, D)
    do = torch.randn_like(v)

    def fb(fn, cast=lambda t: t):
        leaves = [cast(t).detach().requires_grad_() for t in (q, k, v, g, a, b)]
        o, _ = fn(*leaves)
        o.backward(cast(do))
        return [o, *(t.grad for t in leaves)]

    ref = fb(lambda *x: naive_chunk_delta_rule(*x, 1.0, None, False), cast=lambda t: t.float())

    def chk(fn):
        return max(rel_err(x, y) for x, y in zip(fb(fn), ref, strict=True))

    def chunked(bt, fuse=False):
        return lambda *x: triton_chunk_delta_rule(*x, 1.0, None, False, bt, fuse_scores=fuse)

    tri = lambda *x: triton_fused_recurrent_delta_rule(*x, 1.0, None, False)  # noqa: E731
    entries = [(f"ours chunked BT={bt}", lambda bt=bt: fb(chunked(bt)), lambda bt=bt: chk(chunked(bt)), BF16_TOL, True)
               for bt in (16, 32, 64)]
    entries += [(f"ours chunked BT={bt} fused", lambda bt=bt: fb(chunked(bt, True)), lambda bt=bt: chk(chunked(bt, True)),
                 BF16_TOL, True) for bt in (16, 32, 64)]
    for bt in (16, 32):
        entries += size_class_row(lambda bt=bt: fb(chunked(bt, True)), lambda bt=bt: chk(chunked(bt, True)),
                                  f"ours chunked BT={bt} fused")
    entries.append(("ours fused-recurrent", lambda: fb(tri), lambda: chk(tri), BF16_TOL, True))
    # what a student's training step runs: the public op, chunk length left to it (auto_chunk_size under autograd)
    dispatched = lambda *x: chunk_delta_rule(*x, 1.0, None, False, impl="triton")  # noqa: E731
    auto = f"ours chunk_delta_rule (chunk {auto_chunk_size(B * H, True, D)})"
    entries.append((auto, lambda: fb(dispatched), lambda: chk(dispatched), BF16_TOL, True))
    if "fla" in P:
        fc = P["fla"]["rwkv7_chunk"]
        fla_fn = lambda q, k, v, g, a, b: fc(q, g, k, v, a, b, scale=1.0)  # noqa: E731
        fla_bounded = lambda q, k, v, g, a, b: fc(q, g, k, v, a, b, scale=1.0, **FLA_RWKV7_BOUND)  # noqa: E731
        entries.append(("fla chunk_rwkv7", lambda: fb(fla_fn), lambda: chk(fla_fn), BF16_TOL, False))
        entries.append((FLA_RWKV7_BOUND_ROW, lambda: fb(fla_bounded), lambda: chk(fla_bounded), BF16_TOL, False))
    # reads q, k, v, a, b, do (bf16) and g (fp32) twice (forward, backward), writes o and six gradients
    bench.case("RWKV-7 prefill fwd+bwd", f"B={B} T={T} H={H} K=V={D}", 19 * B * T * H * D * 2 + 3 * B * T * H * D * 4, entries)


def bench_gla_step(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, H, D = shape
    q, k, v = (torch.randn(B, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    g = F.logsigmoid(torch.randn(B, H, D, device="cuda")) / 16
    s0 = torch.randn(B, H, D, D, device="cuda")
    floor = 2 * s0.numel() * 4
    s_ours, s_ref = s0.clone(), s0.clone()
    o_ref = naive_gla_step(q.float(), k.float(), v.float(), g, s_ref)

    def chk_ours():
        s = s0.clone()
        o = triton_gla_step(q, k, v, g, s)
        return max(rel_err(o, o_ref), rel_err(s, s_ref))

    entries = [("ours", lambda: triton_gla_step(q, k, v, g, s_ours), chk_ours, BF16_TOL, True)]
    if "fla" in P:
        fr = P["fla"]["gla_recurrent"]
        q1, k1, v1, g1 = q[:, None], k[:, None], v[:, None], g[:, None]

        def fla_step():
            return fr(q1, k1, v1, gk=g1, scale=1.0, initial_state=s0, output_final_state=True)

        def chk_f():
            o, s = fla_step()
            return max(rel_err(o[:, 0], o_ref), rel_err(s, s_ref))

        entries.append(("fla fused_recurrent_gla", fla_step, chk_f, BF16_TOL, False))
    bench.case("GLA decode step", f"B={B} H={H} K=V={D}", floor, entries, graph=True)

    # The mixer's whole step after its projections: state update + per-head RMSNorm + sigmoid gate, fused into
    # one launch (ours) against the step kernel followed by the same read-out in torch (ours, and fla's).
    nw = torch.rand(H * D, device="cuda") + 0.5
    gz = torch.randn(B, H * D, device="cuda", dtype=torch.bfloat16)
    s_r = s0.clone()
    y_ref = naive_gla_step(q.float(), k.float(), v.float(), g, s_r, 1.0, nw, gz.float())

    def torch_read_out(o):
        of = o.float()
        of = of * torch.rsqrt(of.pow(2).mean(-1, keepdim=True) + 1e-5) * nw.view(H, D)
        return (of * torch.sigmoid(gz.float().view(B, H, D))).to(o.dtype)

    def chk_read_out(fn):
        s = s0.clone()
        return max(rel_err(fn(s), y_ref), rel_err(s, s_r))

    fused = lambda s: triton_gla_step(q, k, v, g, s, 1.0, nw, gz, split=False)  # noqa: E731
    two = lambda s: triton_gla_step(q, k, v, g, s, 1.0, nw, gz, split=True)  # noqa: E731
    split = lambda s: torch_read_out(triton_gla_step(q, k, v, g, s))  # noqa: E731
    entries = [("ours fused", lambda: fused(s_ours), lambda: chk_read_out(fused), BF16_TOL, True),
               ("ours split read-out", lambda: two(s_ours), lambda: chk_read_out(two), BF16_TOL, True),
               ("ours step + torch read-out", lambda: split(s_ours), lambda: chk_read_out(split), BF16_TOL, False)]
    if "fla" in P:
        fr = P["fla"]["gla_recurrent"]
        fla_ro = lambda s: torch_read_out(fr(q[:, None], k[:, None], v[:, None], gk=g[:, None], scale=1.0,  # noqa: E731
                                             initial_state=s, output_final_state=False)[0][:, 0])
        entries.append(("fla fused_recurrent_gla + torch read-out", lambda: fla_ro(s0), lambda: rel_err(fla_ro(s0), y_ref),
                        BF16_TOL, False))
    bench.case("GLA step + read-out (norm, gate)", f"B={B} H={H} K=V={D}", floor, entries, graph=True)


def bench_fused_step(bench: Bench, P: dict, shape: tuple[int, ...]):
    B, H, D = shape
    Hkv, Pd, N, W = H, D, D, 4
    conv_dim = Hkv * Pd + Hkv * N + H * N
    dev, bf = "cuda", torch.bfloat16
    zxbcdt = torch.randn(B, H * Pd + conv_dim + H, device=dev, dtype=bf)
    ssm0 = torch.randn(B, H, N, Pd, device=dev)
    conv0 = torch.randn(B, conv_dim, W - 1, device=dev, dtype=bf)
    cw = (torch.randn(conv_dim, W, device=dev) / W).to(bf)
    cb = torch.randn(conv_dim, device=dev).to(bf)
    dt_bias = torch.randn(H, device=dev) - 3.0
    A_log = torch.rand(H, device=dev).log1p()
    Dp = torch.randn(H, device=dev)
    nw = (torch.rand(H * Pd, device=dev) + 0.5).to(bf)
    geo = dict(num_heads=H, num_kv_heads=Hkv, head_dim=Pd, d_state=N, norm_eps=1e-5)
    args = (cw, cb, dt_bias, A_log, Dp, nw)
    s_ref, c_ref = ssm0.clone(), conv0.clone()
    y_ref = naive_mamba2_step(zxbcdt, s_ref, c_ref, *args, **geo)
    floor = (2 * ssm0.numel() * 4 + 2 * conv0.numel() * 2 + zxbcdt.numel() * 2 + B * H * Pd * 2
             + cw.numel() * 2 + nw.numel() * 2)
    s_o, c_o = ssm0.clone(), conv0.clone()

    def chk_ours():
        s, c = ssm0.clone(), conv0.clone()
        y = triton_mamba2_step(zxbcdt, s, c, *args, **geo)
        return max(rel_err(y, y_ref), rel_err(s, s_ref), rel_err(c, c_ref))

    entries = [("ours fused", lambda: triton_mamba2_step(zxbcdt, s_o, c_o, *args, **geo), chk_ours, BF16_TOL, True)]
    if Pd * N >= 8192:  # the large state tile on 16 warps rather than 8 (kernels/NOTES.md 69)
        def chk_16():
            s, c = ssm0.clone(), conv0.clone()
            y = triton_mamba2_step(zxbcdt, s, c, *args, **geo, num_warps=16)
            return max(rel_err(y, y_ref), rel_err(s, s_ref), rel_err(c, c_ref))

        entries.append(("ours fused, 16 warps", lambda: triton_mamba2_step(zxbcdt, s_o, c_o, *args, **geo, num_warps=16),
                        chk_16, BF16_TOL, True))
    if "mamba" in P:
        ssu, rms = P["mamba"]["ssu"], P["mamba"]["rmsnorm"]
        Am = (-torch.exp(A_log))[:, None, None].expand(H, Pd, N)
        dtb = dt_bias[:, None].expand(H, Pd)
        Dm = Dp[:, None].expand(H, Pd)
        # mamba_ssm's Mamba2.step without the causal_conv1d CUDA package: torch roll conv, Triton
        # selective_state_update (softplus, D inside), Triton gated RMSNorm. Its conv state is [B, C, W].
        cw_m = cw

        def mamba_step(s, c):
            z, xbc, dt = zxbcdt.split([H * Pd, conv_dim, H], dim=-1)
            c.copy_(torch.roll(c, shifts=-1, dims=-1))
            c[:, :, -1] = xbc
            xbc = F.silu((c * cw_m).sum(-1) + cb).to(bf)
            xx, Bb, Cc = xbc.split([Hkv * Pd, Hkv * N, H * N], dim=-1)
            y = ssu(s, xx.view(B, H, Pd), dt[..., None].expand(B, H, Pd), Am, Bb.view(B, Hkv, N), Cc.view(B, H, N),
                    D=Dm, z=None, dt_bias=dtb, dt_softplus=True)
            return rms(y.view(B, H * Pd), nw, None, z=z, eps=1e-5, group_size=Pd, norm_before_gate=False)

        s_m = ssm0.transpose(-1, -2).contiguous()
        c_m = torch.cat([conv0[..., :1], conv0], dim=-1)

        def chk_m():
            s, c = ssm0.transpose(-1, -2).contiguous(), torch.cat([conv0[..., :1], conv0], dim=-1)
            y = mamba_step(s, c)
            return max(rel_err(y, y_ref), rel_err(s.transpose(-1, -2), s_ref), rel_err(c[..., 1:], c_ref))

        entries.append(("mamba_ssm step", lambda: mamba_step(s_m, c_m), chk_m, BF16_TOL, False))
    bench.case("Mamba2 decode step (fused)", f"B={B} H={H} P=N={D} conv={conv_dim}", floor, entries, graph=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=".", help="folder for bench_kernels.md / .json / .png")
    ap.add_argument("--plot", default="", metavar="JSON", help="only draw the ratio plot of a saved bench_kernels.json "
                    "(beside it, as .png; no GPU needed)")
    ap.add_argument("--quick", action="store_true", help="a few shapes only")
    ap.add_argument("--only", default="", help="comma-separated sections to run (default all): " + ", ".join(SECTIONS))
    ap.add_argument("--isolate", action="store_true", help="run each section in its own process (a crash stays local)")
    ap.add_argument("--shape", default="", help="this shape instead of each section's list, as its numbers: e.g. 8,2048,16,64 "
                    "(B,T,H,D; sections whose shapes have another count of numbers are skipped). Several, separated by ';', "
                    "run one process each and draw bench_sweep.png")
    ap.add_argument("--impl", default="", help="comma-separated name fragments: only the implementations whose name "
                    "contains one, e.g. 'BT=16,fla chunk' (default all); a fragment ending in '$' must end the name, "
                    "e.g. 'BT=16 fused$' leaves out 'BT=16 fused (size classes)'")
    ap.add_argument("--headline", action="store_true", help="per op only what its users run and the peers (with "
                    "--impl: those too): " + ", ".join(HEADLINE_IMPLS))
    ap.add_argument("--graph", action="store_true", help="time every implementation as CUDA-graph replays (the "
                    "device's time, without the host's launches; calls back to back, so L2 is not flushed between "
                    "them, unlike the eager timing); default: sequence ops eager, decode steps as graphs")
    ap.add_argument("--rounds", type=int, default=3, help="times each implementation is timed (default 3): the first "
                    "after its check, the others in turn with the row's other implementations; the row reports the "
                    "median and ± half the range")
    ap.add_argument("--plot-sweep", nargs="+", default=[], metavar="JSON", help="only draw each implementation's time "
                    "against the shapes of several saved runs (e.g. one --shape each, in the order given; no GPU needed)")
    ap.add_argument("--merge", nargs="+", default=[], metavar="JSON", help="only merge the rows of several saved "
                    "runs (e.g. sections run in separate commands) into --out's bench_kernels.json / .md / .png (no GPU "
                    "needed)")
    ap.add_argument("--sweep-out", default="sweep.png", help="where --plot-sweep writes its figure")
    ap.add_argument("--budget", type=float, default=0.0, metavar="SECONDS", help="wall-clock seconds for the run: "
                    "past them no further row (or --isolate section) starts, and the results list what was not run; "
                    "leave a row's time (up to a few minutes where a peer autotunes) below the command's own limit")
    ap.add_argument("--until", type=float, default=None, help=argparse.SUPPRESS)  # --budget's end, for --isolate's children
    ap.add_argument("--resume", default="", metavar="JSON", help="a bench_kernels.json of an earlier process of this run: "
                    "its entries are kept and not run again (how a run goes on after a device fault; exit code "
                    f"{POISONED_EXIT} says a process ended on one)")
    a = ap.parse_args()
    if a.plot:
        return plot_saved(Path(a.plot))
    if a.merge:
        return merge_saved([Path(p) for p in a.merge], Path(a.out))
    if a.plot_sweep:
        drawn = plot_sweep([Path(p) for p in a.plot_sweep], Path(a.sweep_out))
        return print(f"wrote {a.sweep_out}" if drawn else "--plot-sweep: no timed entry in those files; nothing drawn")
    only = [x for x in a.only.split(",") if x]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"--only: unknown sections {unknown}; choose from {list(SECTIONS)}")
    if a.rounds < 1:
        raise SystemExit(f"--rounds {a.rounds}: take at least 1 (the times each implementation is timed)")
    if a.budget < 0:
        raise SystemExit(f"--budget {a.budget}: give the run's seconds (0, the default, for no limit)")
    if a.until is None and a.budget:
        a.until = time.time() + a.budget
    shapes = parse_shapes(a.shape) if a.shape else []
    if a.isolate or len(shapes) > 1:  # several shapes: one process each, so that each tunes its own tiles
        return run_isolated(a, only or list(SECTIONS), shapes)
    if not torch.cuda.is_available():
        raise SystemExit("bench_kernels needs a CUDA device")
    torch.manual_seed(0)
    import triton

    P = peers()
    bw, flops = measure_ceilings()
    head = {
        "device": torch.cuda.get_device_name(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__, "triton": triton.__version__,
        "peers": sorted(P), "hbm_copy_GBps": bw / 1e9, "bf16_matmul_TFLOPs": flops / 1e12,
        "timing": "cuda graph" if a.graph else "eager (decode steps: cuda graph)", "rounds": a.rounds,
    }
    print(json.dumps(head), flush=True)
    resume = _load_saved(Path(a.resume), "--resume")[1] if a.resume else None
    impls = tuple(x for x in a.impl.split(",") if x) + (HEADLINE_IMPLS if a.headline else ())
    bench = Bench(bw, Path(a.out), head, flops, impls=impls, resume=resume,
                  graph_all=a.graph, rounds=a.rounds, until=a.until)
    print("| op | shape | HBM floor (us) | median time (% of floor) | best peer / ours |\n|---|---|---|---|---|")
    q = a.quick
    # most decisive first: a run cut short by its time limit still reports the decode steps and SSD rows
    sections = [
        (bench_fused_step, [(1, 16, 64), (8, 16, 128), (64, 16, 64), (64, 16, 128)], [(64, 16, 128)]),
        (bench_step, [(1, 16, 64), (1, 16, 128), (8, 16, 128), (64, 16, 64), (64, 16, 128)], [(64, 16, 128)]),
        (bench_gla_step, [(1, 16, 64), (1, 16, 128), (8, 16, 128), (64, 16, 64), (64, 16, 128)], [(64, 16, 128)]),
        (bench_rwkv_step, [(1, 16, 64), (1, 16, 128), (8, 16, 128), (64, 16, 64), (64, 16, 128)], [(64, 16, 128)]),
        (bench_chunk, [(1, 1, 16, 64), (1, 1024, 16, 64), (1, 4096, 16, 128), (1, 16384, 16, 64), (1, 16384, 16, 128),
                       (8, 4096, 16, 64), (8, 4096, 16, 128), (64, 1024, 16, 128)], [(4, 2048, 16, 128)]),
        (bench_chunk_bwd, [(1, 4096, 16, 128), (8, 2048, 16, 64), (8, 4096, 16, 128)], [(1, 2048, 16, 64)]),
        (bench_conv, [(1, 4096, 6144), (8, 4096, 6144), (64, 1024, 3072)], [(8, 2048, 6144)]),
        (bench_rwkv_prefill, [(1, 4096, 16, 64), (8, 2048, 16, 64), (16, 2048, 16, 64), (1, 4096, 16, 128),
                              (4, 2048, 16, 128)], [(1, 1024, 16, 64)]),
        (bench_gla_chunk, [(1, 1024, 16, 64), (1, 4096, 16, 128), (1, 16384, 16, 128), (8, 4096, 16, 64),
                           (8, 4096, 16, 128), (64, 1024, 16, 128)], [(4, 2048, 16, 128)]),
        (bench_gla_chunk_bwd, [(1, 4096, 16, 128), (8, 2048, 16, 64)], [(1, 2048, 16, 64)]),
        (bench_rwkv_prefill_bwd, [(1, 4096, 16, 64), (8, 2048, 16, 64), (4, 2048, 16, 128)], [(1, 1024, 16, 64)]),
    ]
    for fn, full, quick in sections:
        if only and fn.__name__.removeprefix("bench_") not in only:
            continue
        try:
            shapes = quick if q else full
            if a.shape:  # the one shape asked for, in the sections whose shapes have as many numbers
                shapes = [s for s in parse_shapes(a.shape) if len(s) == len(full[0])]
            for shape in shapes:
                fn(bench, P, shape)
        except ContextPoisoned as e:  # nothing more can run in this process
            bench.save()
            print(f"device fault at {e} ({e.__cause__}); the rows so far are saved. Exit {POISONED_EXIT}: go on with "
                  f"--resume {Path(a.out) / 'bench_kernels.json'} (run_isolated does)", flush=True)
            sys.exit(POISONED_EXIT)
        except Exception:  # noqa: BLE001 - one broken section must not hide the others' numbers
            import traceback

            traceback.print_exc()
        torch.cuda.empty_cache()
    bench.save()
    ratios = [r["ratio_vs_best_peer"] for r in bench.rows if r["ratio_vs_best_peer"]]
    if ratios:
        print(f"geomean ratio {math.exp(sum(map(math.log, ratios)) / len(ratios)):.2f}x over {len(ratios)} rows")


if __name__ == "__main__":
    main()
