"""scripts/host_overhead.py runs on a CPU and counts each op's launches (in a subprocess: it stubs Triton's launch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_host_overhead_times_each_op_and_counts_its_launches():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    ops = "ssd_step,gla,delta,delta_fwd,ssd_fwd,ssd_fwd_split"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "host_overhead.py"), "--calls", "3", "--ops", ops],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in run.stdout.splitlines() if line.startswith("| ")}
    # one launch per decode step; GLA fwd+bwd: states and output, then in the backward the states again, dh, dv,
    # dA, two dq/dk launches (the factored diagonal, kernels/NOTES.md 43) and dg
    assert rows["ssd_step"] == "1" and rows["gla"] == "9" and int(rows["delta"]) >= 6
    # the SSD forward: walk and output, and with the split walk the carry between them (kernels/NOTES.md 50)
    assert rows["ssd_fwd"] == "2" and rows["ssd_fwd_split"] == "3"
    # the delta-rule forward alone: scores (which return at once for chunks the solve forms), solve, walk, output
    assert rows["delta_fwd"] == "4"


def test_host_overhead_names_an_unknown_op():
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "host_overhead.py"), "--ops", "nope"],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert run.returncode != 0 and "unknown ['nope']" in run.stderr
