"""The ptxas report compiles a real kernel for sm_90 on the CPU (no GPU) and reads ptxas's register count.

It runs in a subprocess: the test session imports the kernels under the Triton interpreter, which only GPU-compiled
``triton.jit`` functions can leave.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import triton

ROOT = Path(__file__).resolve().parents[2]
PTXAS = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"

SNIPPET = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ptxas_report", "scripts/ptxas_report.py")
rep = importlib.util.module_from_spec(spec); spec.loader.exec_module(rep)
from kernels.delta_rule import triton_chunk_bwd as m
regs, spills = rep.ptxas_usage(m._delta_rule_chunk_bwd_dg, {"T": "i32", "NT": "i32"}, dict(H=2, K=16, BT=16, BK=16), 4, 1)
print(regs, spills)
"""


@pytest.mark.skipif(not PTXAS.exists(), reason=f"triton {triton.__version__} ships no ptxas here")
def test_registers_of_one_kernel():
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SNIPPET], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    regs, spills = map(int, out.stdout.split()[-2:])
    assert 8 <= regs <= 255 and spills == 0
