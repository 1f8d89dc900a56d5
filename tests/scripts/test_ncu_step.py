"""ncu_step: the ncu call it makes, and its child's launches (run here on the CPU, interpreted, without fla)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from script_module import ROOT, load


def test_ncu_profiles_only_the_step_kernels_in_the_window_with_the_stall_sections():
    mod = load("ncu_step")
    cmd = mod.ncu_command("ncu", Path("out/ncu_step"), ["python3", "scripts/ncu_step.py", "--child"])
    assert cmd[:5] == ["ncu", "--clock-control", "none", "--profile-from-start", "off"]
    assert cmd[cmd.index("--kernel-name") + 1] == mod.KERNELS and cmd[cmd.index("--export") + 1] == "out/ncu_step"
    sections = {cmd[i + 1] for i, x in enumerate(cmd) if x == "--section"}
    assert {"WarpStateStats", "SourceCounters", "MemoryWorkloadAnalysis"} <= sections
    assert cmd[-3:] == ["python3", "scripts/ncu_step.py", "--child"]


def test_child_checks_and_runs_each_launch_once_in_order(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    sw = pytest.importorskip("sweep_step_launch")
    monkeypatch.setattr(sw, "DEVICE", "cpu")
    mod = load("ncu_step")
    monkeypatch.setattr(sys, "argv", ["ncu_step.py", "--child", "--shape", "2,3,16",
                                      "--variants", "rank-one-first,flat-grid+out-of-place"])
    mod.main()
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("launch ")]
    assert lines == ["launch 1: ours shipped", "launch 2: ours rank-one-first", "launch 3: ours flat-grid+out-of-place"]


def test_bad_arguments_and_a_missing_ncu_are_refused(monkeypatch):
    mod = load("ncu_step")
    monkeypatch.setattr(sys, "argv", ["ncu_step.py", "--variants", "fast"])
    with pytest.raises(SystemExit, match="unknown fast"):
        mod.main()
    monkeypatch.setattr(sys, "argv", ["ncu_step.py", "--shape", "64,16"])
    with pytest.raises(SystemExit, match="three numbers"):
        mod.main()
    monkeypatch.setattr(mod.shutil, "which", lambda name: None)
    monkeypatch.setattr(sys, "argv", ["ncu_step.py"])
    with pytest.raises(SystemExit, match="ncu .Nsight Compute. is not on PATH"):
        mod.main()
