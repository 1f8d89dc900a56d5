"""Per-kernel GPU time per call, from the logs of scripts/profile_kernels.py runs of two trees taken in turn.

    python profile_table.py 6_gla_ssd_profiles 7_delta_profiles

Each folder holds new.log (this tree) and prev.log (the tree before, built as README.md says); each log holds
one or more profiles, each headed by the line profile_kernels prints ("<op> <pass> <shape> bf16, <device>, N calls
(times summed over them)"). A kernel's time is its "Self CUDA" column over N, averaged over the log's profiles of
that op; only our Triton kernels (names starting with "_") are summed, not the profiler's own rows.
"""

from __future__ import annotations

import re
import sys
from collections import defaultdict
from pathlib import Path

HEAD = re.compile(r"^(\S+ fwd(?:\+bwd)?) (.*) bf16, .*, (\d+) calls \(times summed over them\)")
UNIT = {"us": 1.0, "ms": 1e3, "s": 1e6}


def per_call(log: Path) -> dict[str, dict[str, list[float]]]:
    """{op: {kernel: [µs per call, one per profile]}}."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    op, calls = None, 1
    for line in log.read_text().splitlines():
        if m := HEAD.match(line):
            op, calls = f"{m[1]} {m[2]}", int(m[3])
            continue
        fields = line.split()
        if op and fields and fields[0].startswith("_") and len(fields) == 11:
            t = re.fullmatch(r"([\d.]+)(us|ms|s)", fields[6])
            out[op][fields[0]].append(float(t[1]) * UNIT[t[2]] / calls)
    return out


def table(folder: Path) -> str:
    new, prev = per_call(folder / "new.log"), per_call(folder / "prev.log")
    lines = []
    for op in new:
        lines += [f"\n{op} ({folder.name}; µs per call, mean of {len(next(iter(new[op].values())))} profiles)\n",
                  "| kernel | before | now | change |", "|---|---|---|---|"]
        mean = {name: {k: sum(v) / len(v) for k, v in side[op].items()} for name, side in (("new", new), ("prev", prev))}
        for k in sorted(mean["new"], key=lambda k: -mean["new"][k]):
            b, a = mean["prev"].get(k, float("nan")), mean["new"][k]
            lines.append(f"| {k} | {b:.1f} | {a:.1f} | {(a / b - 1) * 100:+.1f} % |")
        b, a = sum(mean["prev"].values()), sum(mean["new"].values())
        lines.append(f"| **all kernels** | {b:.1f} | {a:.1f} | {(a / b - 1) * 100:+.1f} % |")
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(table(Path(arg)))
