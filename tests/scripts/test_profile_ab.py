"""profile_ab: the per-kernel table from profile_kernels' output, and the copy of an earlier commit."""

from __future__ import annotations

import subprocess

import pytest
from script_module import load


def _module():
    return load("profile_ab")


def _profile(op: str, calls: int, kernels: dict[str, str]) -> str:
    """profile_kernels' printout: its head line, then torch.profiler's table (11 columns)."""
    rows = [f"{op} B=8 T=2048 H=16 K=V=64 bf16, NVIDIA H200, {calls} calls (times summed over them)",
            "-" * 60, "Name    Self CPU %      Self CPU   CPU total %     CPU total  CPU time avg     Self CUDA   "
            "Self CUDA %    CUDA total  CUDA time avg    # of Calls", "-" * 60,
            "ChunkGLAFunction        20.65%       5.739ms        35.29%       9.808ms     980.774us      8.969ms"
            "        38.07%       9.866ms     986.558us            10",
            "Activity Buffer Request        15.69%       4.362ms        15.69%       4.362ms       2.181ms     896.319us"
            "         3.80%     896.319us     448.159us             2"]
    for name, self_cuda in kernels.items():
        rows.append(f"{name}  0.00%  0.000us  0.00%  0.000us  0.000us  {self_cuda}  33.28%  {self_cuda}  1.0us  {calls}")
    rows += ["-" * 60, "Self CUDA time total: 23.562ms", ""]
    return "\n".join(rows)


def test_kernel_times_per_call_leave_out_torch_and_profiler_rows():
    ab = _module()
    text = _profile("gla fwd+bwd", 10, {"_gla_out": "1.000ms", "_gla_states": "500.000us"})
    text += _profile("gla fwd+bwd", 10, {"_gla_out": "1.200ms", "_gla_states": "500.000us"})
    got = ab.parse(text)
    assert list(got) == ["gla fwd+bwd B=8 T=2048 H=16 K=V=64"]
    assert got["gla fwd+bwd B=8 T=2048 H=16 K=V=64"] == {"_gla_out": [100.0, 120.0], "_gla_states": [50.0, 50.0]}


def test_table_gives_change_spread_and_sum():
    ab = _module()
    op = "ssd fwd B=8"
    now = {op: {"_out": [52.0, 52.0], "_states": [30.0, 34.0], "_new_kernel": [5.0]}}
    before = {op: {"_out": [40.0, 40.0], "_states": [32.0, 32.0]}}
    md = ab.table(now, before)
    assert "| _out | 40.0 | 52.0 | +30.0 % | 0.0 % |" in md
    assert "| _states | 32.0 | 32.0 | +0.0 % | 12.5 % |" in md  # (34 - 30) / 32
    assert "| _new_kernel | - | 5.0 | | |" in md
    assert "| **all kernels** | 72.0 | 89.0 | +23.6 % | |" in md
    assert md.index("_out") < md.index("_states")  # slowest first


def test_table_of_a_folder_without_a_shared_op_says_so(tmp_path):
    ab = _module()
    (tmp_path / "now.log").write_text(_profile("ssd fwd", 20, {"_out": "1.0ms"}))
    (tmp_path / "before.log").write_text(_profile("gla fwd", 20, {"_out": "1.0ms"}))
    with pytest.raises(SystemExit, match="no op profiled in both"):
        ab.table_of(tmp_path)
    (tmp_path / "before.log").write_text(_profile("ssd fwd", 20, {"_out": "800.0us"}))
    assert "+25.0 %" in ab.table_of(tmp_path) and (tmp_path / "profile_ab.md").exists()


def test_prepare_copies_an_earlier_commit_and_refuses_an_unknown_one(tmp_path):
    ab = _module()
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "kernels").mkdir()
    (tmp_path / "scripts").mkdir()
    (tmp_path / "kernels" / "k.py").write_text("OLD = 1\n")
    (tmp_path / "scripts" / "profile_kernels.py").write_text("")
    subprocess.run(git + ["add", "."], check=True)
    subprocess.run(git + ["commit", "-qm", "one"], check=True)
    first = subprocess.run(git + ["rev-parse", "--short=7", "HEAD"], capture_output=True, text=True).stdout.strip()
    (tmp_path / "kernels" / "k.py").write_text("OLD = 2\n")
    subprocess.run(git + ["commit", "-qam", "two"], check=True)
    dest = ab.prepare("HEAD~1", root=tmp_path)
    assert dest == tmp_path / ".ab" / first and (dest / "kernels" / "k.py").read_text() == "OLD = 1\n"
    with pytest.raises(SystemExit, match="not a commit"):
        ab.prepare("no-such-commit", root=tmp_path)


def test_run_names_the_fix_when_the_earlier_tree_is_missing(tmp_path):
    import argparse

    ab = _module()
    a = argparse.Namespace(before=str(tmp_path / "missing"), out=str(tmp_path / "out"))
    with pytest.raises(SystemExit, match="profile_ab.py prepare COMMIT"):
        ab.run(a)


def test_run_takes_the_trees_in_turn_and_writes_logs_and_table(tmp_path, monkeypatch):
    import argparse
    import types

    ab = _module()
    before = tmp_path / "old"
    (before / "scripts").mkdir(parents=True)
    (before / "scripts" / "profile_kernels.py").write_text("")
    order = []

    def fake_run(cmd, **kw):
        tree = "before" if str(before) in cmd[1] else "now"
        order.append(tree)
        assert cmd[2:] == ["--op", "ssd", "--shape", "8,2048,16,64", "--iters", "20"]
        took = {"now": "1.100ms", "before": "1.000ms"}[tree]
        return types.SimpleNamespace(returncode=0, stdout=_profile("ssd fwd", 20, {"_ssd_out": took}), stderr="")

    monkeypatch.setattr(ab.subprocess, "run", fake_run)
    a = argparse.Namespace(before=str(before), out=str(tmp_path / "out"), op="ssd", shape="8,2048,16,64", iters=20,
                           backward=False, rounds=2, timeout=60)
    md = ab.run(a)
    assert order == ["now", "before", "now", "before"]
    assert "| _ssd_out | 50.0 | 55.0 | +10.0 % | 0.0 % |" in md
    assert (tmp_path / "out" / "now.log").read_text().count("calls (times summed") == 2
    assert (tmp_path / "out" / "profile_ab.md").read_text().startswith("ssd fwd")
