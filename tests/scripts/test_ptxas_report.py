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
STEP_VARIANT_NAMES = ("no-barrier", "store-last", "out-of-place", "masked", "row-loads", "rank-one-first", "flat-grid",
                     "evict-first", "store-first", "sums-first", "state-vk")

SNIPPET = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ptxas_report", "scripts/ptxas_report.py")
rep = importlib.util.module_from_spec(spec); spec.loader.exec_module(rep)
from kernels.delta_rule import triton_chunk_bwd as m
regs, spills, cubin = rep.compile_sm90(m._delta_rule_chunk_bwd_dg, {"T": "i32", "NT": "i32"}, dict(H=2, K=16, BT=16, BK=16), 4, 1)
total, loops = rep.sass_loops(rep.disassemble(cubin))
print(sum(total.values()), total["EXIT"], regs, spills)
"""


@pytest.mark.skipif(not PTXAS.exists(), reason=f"triton {triton.__version__} ships no ptxas here")
def test_registers_of_one_kernel():
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", SNIPPET], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    instructions, exits, regs, spills = map(int, out.stdout.split()[-4:])
    assert 8 <= regs <= 255 and spills == 0
    assert instructions > 20 and exits >= 1


def _report_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("ptxas_report", ROOT / "scripts" / "ptxas_report.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SASS = """
        /*0000*/                   LDC R1, c[0x0][0x28] ;
        /*0010*/               @P0 EXIT ;
.L_x_1:
        /*0020*/                   SHFL.BFLY PT, R3, R2, 0x1, 0x1f ;
.L_x_0:
        /*0030*/                   FFMA R4, R3, R3, R4 ;
        /*0040*/              @!P1 BRA `(.L_x_0) ;
        /*0050*/                   MUFU.EX2 R5, R4 ;
        /*0060*/               @P2 BRA `(.L_x_1) ;
        /*0070*/               @P3 BRA `(.L_x_2) ;
        /*0080*/                   EXIT ;
.L_x_2:
        /*0090*/                   BRA `(.L_x_2);
"""


def test_sass_loops_are_the_backward_branches():
    rep = _report_module()
    total, loops = rep.sass_loops(SASS)
    assert sum(total.values()) == 10 and total["EXIT"] == 2 and total["BRA"] == 4
    # the inner loop (0x30-0x40), the outer one around it (0x20-0x60); the forward branch and the trap are no loops
    assert [(a, b, sum(ops.values())) for a, b, ops in loops] == [(0x20, 0x60, 5), (0x30, 0x40, 2)]
    assert loops[0][2]["SHFL"] == 1 and loops[0][2]["MUFU"] == 1
    assert "loop 0x20-0x60: 5 (" in rep.fmt_sass(SASS)
    assert rep.fmt_sass(SASS).startswith("10 instructions (BAR 0, SHFL 1, HGMMA 0, ")


STRAIGHT = """
        /*0000*/                   LDG.E R0, desc[UR4][R2.64] ;
        /*0010*/                   LDG.E.128 R4, desc[UR4][R2.64+0x10] ;
        /*0020*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0030*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0040*/              @!P1 LDG.E.64 R8, desc[UR4][R2.64] ;
        /*0050*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;
        /*0060*/                   MUFU.EX2 R5, R4 ;
        /*0070*/                   LDG.E R9, desc[UR4][R2.64] ;
        /*0080*/                   STG.E [R2.64], R9 ;
        /*0090*/                   EXIT ;
"""


def test_load_rounds_count_the_loads_between_barriers_of_a_loop_free_kernel():
    rep = _report_module()
    assert rep.load_rounds(STRAIGHT) == [2, 1, 1]  # an empty stretch between two barriers is no round
    text = rep.fmt_sass(STRAIGHT)
    assert text.endswith("MUFU 1); loads between barriers 2·1·1")
    assert "loads between" not in rep.fmt_sass(SASS)  # a kernel with loops: its loops, not rounds


def test_dump_names_say_which_row_and_launch():
    rep = _report_module()
    row = "| delta masked | 128 | - | {'BK': 128, 'BV': 32} | 2 | 127 | 0 | 744 instructions |"
    assert rep.dump_name(3, row) == "003_delta_masked_K128_BK128_BV32_w2.sass"
    assert rep.dump_name(12, "| fla rwkv7 step | 64 | - | {'BK': 64, 'BV': 16} | 8 | 32 | 0 |") == \
        "012_fla_rwkv7_step_K64_BK64_BV16_w8.sass"


@pytest.mark.skipif(not PTXAS.exists(), reason=f"triton {triton.__version__} ships no ptxas here")
@pytest.mark.parametrize("group,kernels", [("delta_chunk_fwd", ["scores", "solve", "solve+fused", "states", "output"]),
                                          ("delta_chunk_bwd", ["dstates", "bwd_v", "bwd_k"]),
                                          ("ssd_chunk_fwd", ["states", "output", "states split", "output split"] * 2 + ["carry"]),
                                          ("gla_chunk_fwd", ["states", "output"]),
                                          ("gla_chunk_bwd", ["dqk_da", "dqk_da pairwise", "dqk"]),
                                          ("decode_step", [f"{op}{v}" for op in ("ssd", "gla", "delta")
                                                           for v in ("", *(f" {name}" for name in STEP_VARIANT_NAMES))]
                                           + ["read-out"]),
                                          ("mamba2_step", ["step"])])
def test_every_chunk_kernel_compiles_for_sm90(group, kernels):
    """The interpreter runs a kernel as Python, so code only the GPU compiler rejects (a name defined in one branch
    of a constexpr if, a tensor op Triton cannot lower) passes every CPU test. This compiles one config of each
    chunked kernel the report knows (delta rule forward and backward, SSD forward, GLA forward and dq/dk) through Triton's CUDA
    backend and ptxas, as the GPU would."""
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "scripts/ptxas_report.py", group, "--quick"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("|")[1].strip() for line in out.stdout.splitlines() if line.startswith("| ") and "kernel" not in line]
    assert rows == kernels


VECTOR_SNIPPET = """
import importlib.util, re
spec = importlib.util.spec_from_file_location("ptxas_report", "scripts/ptxas_report.py")
rep = importlib.util.module_from_spec(spec); spec.loader.exec_module(rep)
from kernels.gla import triton_cumsum as m
types = {"g": "*fp32", "G": "*fp32", "T": "i32", "NT": "i32"}
_, _, cubin = rep.compile_sm90(m._chunk_local_cumsum, types, dict(H=4, K=64, BT=16, R=64, BK=64), 4, 1)
print(" ".join(sorted(set(re.findall(r"(?:LDG|STG)\\.E[.\\w]*", rep.disassemble(cubin))))))
"""


@pytest.mark.skipif(not PTXAS.exists(), reason=f"triton {triton.__version__} ships no ptxas here")
def test_pointers_aligned_as_a_launch_marks_them():
    """The report compiles with pointer arguments marked 16-byte aligned, as a launch marks a torch tensor's: rows
    of 64 fp32 then load and store as 128-bit vectors (unmarked, every access was one element; kernels/NOTES.md 56)."""
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", VECTOR_SNIPPET], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    accesses = out.stdout.split()
    assert "LDG.E.128" in accesses and "STG.E.128" in accesses, accesses


LEAN_WALK_SNIPPET = """
import importlib.util, triton
spec = importlib.util.spec_from_file_location("ptxas_report", "scripts/ptxas_report.py")
rep = importlib.util.module_from_spec(spec); spec.loader.exec_module(rep)
from kernels.delta_rule import triton_chunk as m
bf = "*bf16"
types = {n: bf for n in ("v", "h", "Ae", "Bo", "Ke")} | {"T": "i32", "NT": "i32", "BH_BUCKET": "i32"}
for K in (64, 128, 256):
    for BT in m.CHUNKS:
        tile = m.lean_walk_tile(256, K, BT)
        consts = dict(H=16, K=K, V=64, BT=BT, BK=triton.next_power_of_2(K), BV=tile["BV"], HAS_H0=True,
                      STORE_FINAL=True, IS_FP32=False)
        shared = rep.shared_bytes_sm90(m._delta_rule_chunk_states, types, consts, tile["num_warps"], tile["num_stages"])
        print(K, BT, shared, rep.SM90_MAX_SHARED)
"""


def test_lean_walk_tiles_fit_in_shared_memory():
    """The lean walk launches a fixed tile past the autotuner (kernels/NOTES.md 54, 58), so a tile that asks for more
    shared memory than a Hopper block may have fails the launch instead of being skipped: compiled for sm_90 here,
    every chunk length's tile at K = 64, 128 and 256 (3 stages of BV = 16 at K = 256, chunk 64, would take 248 KB)."""
    env = dict(os.environ, TRITON_INTERPRET="0", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", LEAN_WALK_SNIPPET], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [tuple(map(int, line.split())) for line in out.stdout.splitlines()]
    assert len(rows) == 9, out.stdout
    over = [(K, BT, shared) for K, BT, shared, cap in rows if shared > cap]
    assert not over, f"lean walk tiles past the shared-memory cap ({rows[0][3]} bytes): {over}"
