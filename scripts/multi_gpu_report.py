"""Table of the runs scripts/gpu_multi.sh made: throughput scaling and metric agreement with 1 GPU.

Usage: python scripts/multi_gpu_report.py OUT_DIR   (reads OUT_DIR/metrics_<run>.json and devices.txt)
The reference is ``gpu1_b32``; "scaling" is tokens/s over the reference's; ΔKL is the held-out KL
difference to the reference (runs with the reference's global batch should agree to bf16 noise).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REFERENCE = "gpu1_b32"


def main(out: Path) -> int:
    runs = {p.stem.removeprefix("metrics_"): json.loads(p.read_text())["metrics"] for p in sorted(out.glob("metrics_*.json"))}
    if REFERENCE not in runs:
        print(f"no {REFERENCE} run in {out}; nothing to compare against", file=sys.stderr)
        return 1
    ref = runs[REFERENCE]
    device = (out / "devices.txt").read_text().splitlines()[0] if (out / "devices.txt").exists() else "unknown device"
    print(f"{device}; {ref['train/steps']} steps per run; tokens/s after warm-up, validation excluded\n")
    print("| run | GPUs | tokens/s | scaling vs 1 GPU | held-out KL | top-1 | ΔKL vs 1 GPU | stream parity |")
    print("|---|---|---|---|---|---|---|---|")
    for name, m in runs.items():
        tps = m.get("train/tokens_per_s", float("nan"))
        parity = m.get("stream/parity_max_abs", float("nan"))
        print(
            f"| {name} | {m.get('train/world_size', '?')} | {tps:,.0f} | {tps / ref['train/tokens_per_s']:.2f}× | "
            f"{m['val/kl']:.4f} | {m['val/top1']:.3f} | {m['val/kl'] - ref['val/kl']:+.4f} | {parity:.1e} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1])))
