"""Kernel by kernel, this tree against an earlier commit: profiles of one op, the two trees taken in turn.

A bench row of a small op can move by 2× from one process to the next with the host's load, while the GPU time of
each kernel under the profiler holds within 1 % (kernels/NOTES.md 62). So a change to a kernel is judged here:
``scripts/profile_kernels.py`` runs in this tree and in a copy of an earlier commit, one process each, in turn,
and the table gives each Triton kernel's time per call, before → now, with the spread over the rounds.

    python scripts/profile_ab.py prepare 1f7d2f9          # here: .ab/1f7d2f9/ (git-ignored; carry it to the GPU)
    python scripts/profile_ab.py run --before .ab/1f7d2f9 --op gla --shape 8,2048,16,64 --backward --out DIR
    python scripts/profile_ab.py table DIR                # the table again, from DIR/now.log and DIR/before.log

``prepare`` copies the commit's ``kernels/`` and ``scripts/`` (``git archive``); the copy runs its own
``profile_kernels.py``, so an op it does not know fails there and says so. ``run`` needs a CUDA device.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAD = re.compile(r"^(\S+ fwd(?:\+bwd)?) (.*) bf16, .*, (\d+) calls \(times summed over them\)")
UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6}


def parse(text: str) -> dict[str, dict[str, list[float]]]:
    """{op and shape: {kernel: [µs per call, one per profile]}} from profile_kernels' output: each Triton kernel's
    (name starting with ``_``) "Self CUDA" column over the profile's call count; torch's and the profiler's own
    rows are left out."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    op, calls = None, 1
    for line in text.splitlines():
        if m := HEAD.match(line):
            op, calls = f"{m[1]} {m[2]}", int(m[3])
            continue
        fields = line.split()
        if op and len(fields) == 11 and fields[0].startswith("_"):
            t = re.fullmatch(r"([\d.]+)(us|ms|s)", fields[6])
            if t:
                out[op][fields[0]].append(float(t[1]) * UNIT[t[2]] / calls)
    return out


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _spread(xs: list[float]) -> float:
    return (max(xs) - min(xs)) / _mean(xs) * 100 if len(xs) > 1 else 0.0


def table(now: dict, before: dict) -> str:
    """Markdown, one table per op found in both: kernel | before | now | change | spread (max − min over the
    rounds, % of the mean, the larger of the two sides), slowest kernel first, then the sum of the kernels."""
    lines = []
    for op in [op for op in now if op in before]:
        rounds = len(next(iter(now[op].values())))
        lines += [f"\n{op}: µs per call, mean of {rounds} profile(s) per tree\n",
                  "| kernel | before | now | change | spread |", "|---|---|---|---|---|"]
        kernels = sorted(set(now[op]) | set(before[op]), key=lambda k: -_mean(now[op].get(k, before[op].get(k))))
        for k in kernels:
            a, b = now[op].get(k), before[op].get(k)
            if a is None or b is None:  # a kernel only one tree launches
                lines.append(f"| {k} | {'-' if b is None else f'{_mean(b):.1f}'} | {'-' if a is None else f'{_mean(a):.1f}'} | | |")
                continue
            lines.append(f"| {k} | {_mean(b):.1f} | {_mean(a):.1f} | {(_mean(a) / _mean(b) - 1) * 100:+.1f} % "
                         f"| {max(_spread(a), _spread(b)):.1f} % |")
        sa, sb = (sum(_mean(v) for v in side[op].values()) for side in (now, before))
        lines.append(f"| **all kernels** | {sb:.1f} | {sa:.1f} | {(sa / sb - 1) * 100:+.1f} % | |")
    return "\n".join(lines)


def prepare(commit: str, root: Path = ROOT) -> Path:
    """``<root>/.ab/<short hash>/``: the commit's kernels/ and scripts/, unpacked in a temporary folder and renamed
    into place (an existing copy is kept)."""
    rev = subprocess.run(["git", "-C", str(root), "rev-parse", "--short=7", f"{commit}^{{commit}}"],
                         capture_output=True, text=True)
    if rev.returncode:
        raise SystemExit(f"prepare: '{commit}' is not a commit of this repository ({rev.stderr.strip()})")
    dest = root / ".ab" / rev.stdout.strip()
    if dest.exists():
        return dest
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(root), "archive", dest.name, "kernels", "scripts"], capture_output=True)
    if archive.returncode:
        raise SystemExit(f"prepare: git archive {dest.name} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
    tmp.rename(dest)
    return dest


def run(a: argparse.Namespace) -> str:
    before = Path(a.before)
    if not (before / "scripts" / "profile_kernels.py").exists():
        raise SystemExit(f"--before {before}: no scripts/profile_kernels.py there (make it with "
                         "'python scripts/profile_ab.py prepare COMMIT')")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    args = ["--op", a.op, "--shape", a.shape, "--iters", str(a.iters)] + (["--backward"] if a.backward else [])
    for name in ("now", "before"):
        (out / f"{name}.log").write_text("")
    for r in range(a.rounds):
        for name, tree in (("now", ROOT), ("before", before)):
            p = subprocess.run([sys.executable, str(tree / "scripts" / "profile_kernels.py"), *args],
                               capture_output=True, text=True, timeout=a.timeout)
            with open(out / f"{name}.log", "a") as f:
                f.write(p.stdout + p.stderr)
            if p.returncode:
                raise SystemExit(f"round {r + 1}, {name} ({tree}): profile_kernels exited {p.returncode}; see "
                                 f"{out / f'{name}.log'}")
            print(f"round {r + 1}/{a.rounds}: {name} profiled", file=sys.stderr, flush=True)
    return table_of(out)


def table_of(folder: Path, now: str = "now.log", before: str = "before.log") -> str:
    text = table(parse((folder / now).read_text()), parse((folder / before).read_text()))
    if not text:
        raise SystemExit(f"{folder}: no op profiled in both {now} and {before}")
    tmp = folder / ".profile_ab.md.tmp"
    tmp.write_text(text.lstrip() + "\n")
    tmp.replace(folder / "profile_ab.md")
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="copy an earlier commit's kernels/ and scripts/ to .ab/COMMIT")
    p.add_argument("commit")
    p = sub.add_parser("run", help="profile one op in both trees, in turn (GPU)")
    p.add_argument("--before", required=True, help="a folder made by 'prepare'")
    p.add_argument("--op", required=True, help="an op of scripts/profile_kernels.py (gla, ssd, delta-32, ...)")
    p.add_argument("--shape", default="8,2048,16,64", help="B,T,H,D")
    p.add_argument("--backward", action="store_true", help="forward + backward")
    p.add_argument("--iters", type=int, default=10, help="calls per profile")
    p.add_argument("--rounds", type=int, default=3, help="profiles per tree, taken in turn")
    p.add_argument("--timeout", type=float, default=300, help="seconds per profile process (autotuning included)")
    p.add_argument("--out", required=True, help="folder for now.log, before.log and profile_ab.md")
    p = sub.add_parser("table", help="the table again from a run's folder")
    p.add_argument("folder")
    p.add_argument("--now", default="now.log")
    p.add_argument("--before", default="before.log")
    a = ap.parse_args()
    if a.cmd == "prepare":
        print(f"{prepare(a.commit).relative_to(ROOT)}/ (git-ignored: name it in the GPU command's carry)")
    elif a.cmd == "run":
        print(run(a))
    else:
        print(table_of(Path(a.folder), a.now, a.before))


if __name__ == "__main__":
    main()
