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


def _source_page(kernels: list[tuple[str, list[tuple[str, int, int, int]]]]) -> str:
    """An ncu source page in CSV as ``--page source --csv --print-source sass`` writes it: per kernel its name line,
    the header, then (SASS, all samples, long_sb samples, barrier samples) rows."""
    head = ['"Address"', '"Source"', '"Warp Stall Sampling (All Samples)"', '"stall_barrier"', '"stall_long_sb"',
            '"stall_long_sb (Not Issued)"']
    lines = []
    for name, rows in kernels:
        lines += [f'"Kernel Name","{name}",', ",".join(head)]
        lines += [f'"0x7f00{i:04x}","      {sass}","{n}","{bar}","{lsb}","{lsb}"' for i, (sass, n, lsb, bar) in enumerate(rows)]
    return "\n".join(lines) + "\n"


def test_stall_summary_shares_reasons_per_launch_and_ranks_instructions(tmp_path, monkeypatch, capsys):
    mod = load("ncu_step")
    page = _source_page([("gated_step_kernel", [("LDG.E.128 R4, [R2]", 10, 0, 10), ("STSM.16.MT88 [R9], R7", 30, 30, 0)]),
                         ("fused_recurrent_rwkv7_fwd_kernel", [("BAR.SYNC 0x0", 5, 0, 5), ("FFMA R1, R2, R3, R1", 15, 15, 0)])])
    text = mod.stall_summary(page, ["ours shipped", "fla"])
    assert "| ours shipped | 40 | 25.0 | 75.0 |" in text and "| fla | 20 | 25.0 | 75.0 |" in text
    ours = text.split("### ours shipped")[1].split("###")[0]
    # ranked by samples, each with its share of the launch and its leading reason
    assert ours.index("STSM.16.MT88") < ours.index("LDG.E.128")
    assert "| `STSM.16.MT88 [R9], R7` | 30 | 75.0 | long_sb |" in ours and "| 10 | 25.0 | barrier |" in ours
    # the command-line form labels the launches from ncu_step_launches.txt beside the page
    (tmp_path / "ncu_step_source.csv").write_text(page)
    (tmp_path / "ncu_step_launches.txt").write_text("launch 1: ours shipped\nlaunch 2: fla at its fastest launch\n")
    monkeypatch.setattr(sys, "argv", ["ncu_step.py", "--summarize", str(tmp_path / "ncu_step_source.csv")])
    mod.main()
    assert "| fla at its fastest launch | 20 |" in (tmp_path / "ncu_step_stalls.md").read_text()


def test_summarize_refuses_a_missing_or_foreign_file(tmp_path, monkeypatch):
    mod = load("ncu_step")
    monkeypatch.setattr(sys, "argv", ["ncu_step.py", "--summarize", str(tmp_path / "none.csv")])
    with pytest.raises(SystemExit, match="no such file"):
        mod.main()
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    monkeypatch.setattr(sys, "argv", ["ncu_step.py", "--summarize", str(tmp_path / "x.csv")])
    with pytest.raises(SystemExit, match="not an ncu source page"):
        mod.main()
