"""The kernel benchmark's result files (the timing itself needs a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

from script_module import load


def _bench_module():
    return load("bench_kernels")


def test_results_are_written_row_by_row(tmp_path):
    bk = _bench_module()
    head = {"device": "dev", "date": "d", "torch": "t", "triton": "tr", "peers": ["fla"], "hbm_copy_GBps": 1000.0,
            "bf16_matmul_TFLOPs": 500.0}
    bench = bk.Bench(1e12, tmp_path, head)
    row = {"op": "SSD decode step", "shape": "B=1", "floor_us": 1.0, "ratio_vs_best_peer": 1.25,
           "impls": {"ours": {"status": "ok", "us": 2.0, "pct_floor": 50.0, "ours": True},
                     "peer": {"status": "FAILED check (rel err 1e-01 > 2e-02)", "ours": False}}}
    bench.rows.append(row)
    bench.save()
    saved = json.loads((tmp_path / "bench_kernels.json").read_text())
    assert saved["header"] == head and saved["rows"] == [row]
    md = (tmp_path / "bench_kernels.md").read_text()
    assert "| SSD decode step | B=1 | 1.0 | ours 2.00us (50%fl) / peer FAILED check" in md and "1.25x" in md
    assert not list(tmp_path.glob(".*.tmp"))


def test_case_runs_only_the_chosen_implementations_and_refuses_to_time_a_failed_check():
    bk = _bench_module()
    timed = []

    class Clock(bk.Bench):  # the CUDA timer replaced: each implementation "takes" its listed time
        def time(self, fn, graph):
            timed.append(fn())
            return fn() * 1e-6

    bench = Clock(1e12, None, impls=("BT=16", "fla"))
    entries = [("ours BT=16", lambda: 2.0, lambda: 1e-3, 1e-2, True),
               ("ours BT=64", lambda: 1.0, lambda: 1e-3, 1e-2, True),
               ("ours wrong", lambda: 0.5, lambda: 1e-3, 1e-2, True),
               ("fla chunk", lambda: 3.0, lambda: 1e-3, 1e-2, False),
               ("fla broken BT=16", lambda: 0.1, lambda: 0.5, 1e-2, False)]
    bench.case("op", "B=1", 1e6, entries)
    row = bench.rows[0]
    assert list(row["impls"]) == ["ours BT=16", "fla chunk", "fla broken BT=16"]
    assert row["impls"]["fla broken BT=16"]["status"].startswith("FAILED check") and 0.1 not in timed
    assert row["ratio_vs_best_peer"] == 1.5


def test_headline_keeps_what_users_run_and_the_peers():
    bk = _bench_module()

    def kept(name):
        return any(bk.impl_matches(f, name) for f in bk.HEADLINE_IMPLS)

    users = ["ours", "ours fused", "ours split read-out", "ours (Triton bwd)", "ours chunk_delta_rule (chunk 16)"]
    peers = ["fla chunk_rwkv7 (bounded gate, as fla's layer)", "fla", "mamba_ssm ssu", "mamba_ssm step", "torch",
             "fla fused_recurrent_gla + torch read-out"]
    variants = ["ours chunked BT=16 fused", "ours (size classes)", "ours (ref. bwd)", "ours fused-recurrent",
                "ours (no saved A)", "ours (Triton bwd) (size classes)", "ours chunked BT=64 fused, lean walk, skip group 8",
                "ours (chunk 64)", "ours (row-by-row diagonal)"]
    assert all(map(kept, users + peers)) and not any(map(kept, variants))


def test_rounds_time_each_implementation_in_turn_and_report_the_median():
    """The first timing follows each implementation's check; the further rounds take the row's implementations in
    turn. The row reports each one's median and spread; a failed check is never timed."""
    bk = _bench_module()
    order, clock = [], {"ours": iter([2.0, 1.0, 1.5]), "peer": iter([3.0, 3.3, 2.7]), "slow peer": iter([9.0, 9.0, 9.0])}

    class Clock(bk.Bench):
        def time(self, fn, graph):
            order.append(fn())
            return next(clock[fn()]) * 1e-6

    entries = [("ours", lambda: "ours", lambda: 1e-3, 1e-2, True), ("peer", lambda: "peer", lambda: 1e-3, 1e-2, False),
               ("broken", lambda: "broken", lambda: 1.0, 1e-2, False),
               ("slow peer", lambda: "slow peer", lambda: 1e-3, 1e-2, False)]
    bench = Clock(1e12, None, rounds=3)
    bench.case("decode step", "B=1", 1e6, entries, graph=True)
    assert order == ["ours", "peer", "slow peer"] * 3
    row = bench.rows[0]
    assert row["impls"]["ours"]["us"] == 1.5 and row["impls"]["peer"]["us"] == 3.0
    assert row["impls"]["ours"]["rounds_us"] == [2.0, 1.0, 1.5] and round(row["impls"]["peer"]["spread_pct"]) == 20
    assert row["ratio_vs_best_peer"] == 2.0 and row["impls"]["broken"]["status"].startswith("FAILED check")
    assert "ours 1.50us (67%fl, ±33%) / peer 3.00us (33%fl, ±10%)" in bk.fmt_row(row)
    assert bk.fmt_row(row).endswith("| 2.00x |")  # ours 1.0-2.0 µs, the peer 2.7-3.3: apart
    row["impls"]["peer"]["rounds_us"] = [2.0, 3.0, 2.7]
    assert bk.fmt_row(row).endswith("| 2.00x (rounds overlap) |")


def test_graph_all_times_every_case_as_graph_replays():
    bk = _bench_module()
    seen = []

    class Clock(bk.Bench):
        def time(self, fn, graph):
            seen.append(graph)
            return 1e-6

    entries = [("ours", lambda: None, lambda: 1e-3, 1e-2, True)]
    for graph_all in (False, True):
        bench = Clock(1e12, None, graph_all=graph_all)
        bench.case("chunk op", "B=1", 1e6, entries)
        bench.case("decode step", "B=1", 1e6, entries, graph=True)
    assert seen == [False, True, True, True]


def test_a_fragment_ending_in_dollar_must_end_the_name():
    bk = _bench_module()
    assert bk.impl_matches("BT=16 fused$", "ours chunked BT=16 fused")
    assert not bk.impl_matches("BT=16 fused$", "ours chunked BT=16 fused (size classes)")
    assert bk.impl_matches("BT=16 fused", "ours chunked BT=16 fused (size classes)")
    assert not bk.impl_matches("BT=32", "ours chunked BT=16 fused")


def test_a_device_fault_ends_the_process_and_a_resumed_one_goes_on_past_it(tmp_path):
    """An entry whose call reports a device fault is recorded as such, the row so far is saved and the process stops
    (ContextPoisoned); a process resumed from the saved rows keeps their entries without running them again and runs
    the rest. Other errors (a peer that cannot run a shape) only mark their entry."""
    import pytest

    bk = _bench_module()
    ran = []

    class AcceleratorError(RuntimeError):  # torch's class name for a CUDA error
        pass

    def fault():
        raise AcceleratorError("CUDA error: an illegal memory access was encountered")

    def unsupported():
        raise ValueError("this shape is not supported")

    class Clock(bk.Bench):
        def time(self, fn, graph):
            ran.append(fn())
            return fn() * 1e-6

    def entries():
        return [("ours a", lambda: 2.0, lambda: 1e-3, 1e-2, True), ("peer x", lambda: 3.0, unsupported, 1e-2, False),
                ("ours b", lambda: 1.0, fault, 1e-2, True), ("peer y", lambda: 4.0, lambda: 1e-3, 1e-2, False)]

    head = {"device": "dev", "date": "d", "torch": "t", "triton": "tr", "peers": [], "hbm_copy_GBps": 1.0,
            "bf16_matmul_TFLOPs": 1.0}
    first = Clock(1e12, tmp_path, head)
    with pytest.raises(bk.ContextPoisoned, match="op B=1: ours b"):
        first.case("op", "B=1", 1e6, entries())
    saved = json.loads((tmp_path / "bench_kernels.json").read_text())["rows"]
    assert list(saved[0]["impls"]) == ["ours a", "peer x", "ours b"] and ran == [2.0]
    assert "illegal memory access" in saved[0]["impls"]["ours b"]["status"]
    assert saved[0]["impls"]["peer x"]["status"].startswith("error: ValueError")
    second = Clock(1e12, tmp_path, head, resume=saved)
    second.case("op", "B=1", 1e6, entries())
    row = second.rows[0]
    assert ran == [2.0, 4.0] and list(row["impls"]) == ["ours a", "peer x", "ours b", "peer y"]
    assert row["impls"]["ours a"]["us"] == 2.0 and row["ratio_vs_best_peer"] == 2.0
    assert bk.poisons_context(RuntimeError("Triton Error [CUDA]: an illegal memory access was encountered"))
    assert not bk.poisons_context(RuntimeError("out of resources: shared memory"))


def test_run_isolated_resumes_a_shape_after_a_device_fault(tmp_path, monkeypatch):
    import subprocess
    import types

    bk = _bench_module()
    calls = []
    ok = {"status": "ok", "us": 1.0, "pct_floor": 1.0, "ours": True}
    head = {"device": "dev", "date": "2026-12-02T00:00:00", "torch": "t", "triton": "tr", "peers": [],
            "hbm_copy_GBps": 1.0, "bf16_matmul_TFLOPs": 1.0}

    def fake_run(cmd):  # the first process faults after one entry; the resumed one finishes the row
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        if "--resume" not in cmd:
            impls = {"a": ok, "b": {"status": "error: AcceleratorError: illegal memory access", "ours": True}}
            rc = bk.POISONED_EXIT
        else:
            assert cmd[cmd.index("--resume") + 1] == str(out / "bench_kernels.json")
            impls, rc = {"a": ok, "b": {"status": "error: AcceleratorError", "ours": True}, "c": ok}, 0
        row = {"op": "op", "shape": "B=1", "floor_us": 1.0, "ratio_vs_best_peer": None, "impls": impls}
        bk.write_results(out, head, [row])
        return types.SimpleNamespace(returncode=rc)

    monkeypatch.setattr(subprocess, "run", fake_run)
    a = types.SimpleNamespace(out=str(tmp_path), quick=False, impl="", shape="", graph=False, rounds=3, headline=False,
                              until=None)
    bk.run_isolated(a, ["rwkv_prefill"], [])
    assert len(calls) == 2 and "--resume" in calls[1]
    merged = json.loads((tmp_path / "bench_kernels.json").read_text())["rows"]
    assert list(merged[0]["impls"]) == ["a", "b", "c"]


def _rows():
    ok = {"status": "ok", "us": 2.0, "pct_floor": 50.0, "ours": True}
    return [{"op": "SSD decode step", "shape": "B=1", "floor_us": 1.0, "ratio_vs_best_peer": 0.8, "impls": {"ours": ok}},
            {"op": "GLA chunk fwd", "shape": "B=8", "floor_us": 1.0, "ratio_vs_best_peer": 1.7, "impls": {"ours": ok}},
            {"op": "conv", "shape": "B=1", "floor_us": 1.0, "ratio_vs_best_peer": None, "impls": {"ours": ok}}]


def test_ratio_plot_beside_the_results_and_from_a_saved_file(tmp_path, capsys):
    import matplotlib.image

    bk = _bench_module()
    head = {"device": "dev", "date": "2026-12-01T00:00:00", "torch": "t", "triton": "tr", "peers": ["fla"],
            "hbm_copy_GBps": 1000.0, "bf16_matmul_TFLOPs": 500.0}
    bk.write_results(tmp_path, head, _rows())
    png = tmp_path / "bench_kernels.png"
    assert matplotlib.image.imread(png).shape[0] > 100 and not list(tmp_path.glob(".*tmp*"))
    # --plot redraws it from the saved JSON, beside that file
    png.unlink()
    bk.plot_saved(tmp_path / "bench_kernels.json")
    assert png.exists() and "wrote" in capsys.readouterr().out
    # no row with a peer ratio: nothing is drawn
    assert not bk.plot_ratios(tmp_path / "none.png", head, _rows()[2:]) and not (tmp_path / "none.png").exists()


def test_sweep_plot_of_several_saved_runs(tmp_path, capsys):
    import json

    import matplotlib.image
    import pytest

    bk = _bench_module()
    head = {"device": "dev", "date": "2026-12-01T00:00:00", "peers": ["fla"]}
    runs = []
    for i, B in enumerate((1, 8)):
        impls = {"ours": {"status": "ok", "us": 10.0 * (i + 1), "ours": True}, "fla": {"status": "ok", "us": 12.0, "ours": False},
                 "broken": {"status": "check failed", "us": None, "ours": True}}
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps({"header": head, "rows": [{"op": "RWKV-7 prefill fwd", "shape": f"B={B}", "impls": impls}]}))
        runs.append(path)
    out = tmp_path / "sweep.png"
    assert bk.plot_sweep(runs, out)
    assert matplotlib.image.imread(out).shape[0] > 100 and not list(tmp_path.glob(".*tmp*"))
    # nothing timed: nothing drawn; a file that is not a saved run: a clear error naming the flag
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"header": head, "rows": []}))
    assert not bk.plot_sweep([empty], tmp_path / "none.png") and not (tmp_path / "none.png").exists()
    (tmp_path / "notes.json").write_text('{"rows": []}')
    with pytest.raises(SystemExit, match="--plot-sweep: .* is not a bench_kernels.json"):
        bk.plot_sweep([tmp_path / "notes.json"], out)


def test_shapes_parse_or_say_what_is_wrong():
    import pytest

    bk = _bench_module()
    assert bk.parse_shapes("8,2048,16,64") == [(8, 2048, 16, 64)]
    assert bk.parse_shapes("1,4096,16,64; 16,2048,16,64") == [(1, 4096, 16, 64), (16, 2048, 16, 64)]
    for bad in ("8,x,16", "8,,16", "0,16,64", "1,16,64;"):
        with pytest.raises(SystemExit, match="--shape: .* is not a shape"):
            bk.parse_shapes(bad)


def test_several_shapes_run_one_process_each_and_are_drawn(tmp_path, monkeypatch):
    import subprocess
    import types

    import matplotlib.image

    bk = _bench_module()
    calls = []

    def fake_run(cmd):  # each child "benchmarks" its one shape: a row whose time grows with B
        calls.append(cmd)
        out, shape = Path(cmd[cmd.index("--out") + 1]), cmd[cmd.index("--shape") + 1]
        B = int(shape.split(",")[0])
        head = {"device": "dev", "date": "2026-12-01T00:00:00", "torch": "t", "triton": "tr", "peers": ["fla"],
                "hbm_copy_GBps": 1.0, "bf16_matmul_TFLOPs": 1.0}
        row = {"op": "RWKV-7 prefill fwd", "shape": f"B={B}", "floor_us": 1.0, "ratio_vs_best_peer": 1.0,
               "impls": {"ours": {"status": "ok", "us": 100.0 * B, "pct_floor": 1.0, "ours": True}}}
        bk.write_results(out, head, [row])
        return types.SimpleNamespace(returncode=0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    a = types.SimpleNamespace(out=str(tmp_path), quick=False, impl="BT=16", shape="", graph=True, rounds=3, headline=True,
                              until=None)
    bk.run_isolated(a, ["rwkv_prefill"], bk.parse_shapes("1,4096,16,64;8,2048,16,64"))
    assert [c[c.index("--shape") + 1] for c in calls] == ["1,4096,16,64", "8,2048,16,64"]
    assert all("BT=16" in c and "--graph" in c for c in calls) and (tmp_path / "section_rwkv_prefill_8x2048x16x64").is_dir()
    assert all(c[c.index("--rounds") + 1] == "3" and "--headline" in c for c in calls)
    merged = json.loads((tmp_path / "bench_kernels.json").read_text())["rows"]
    assert [r["shape"] for r in merged] == ["B=1", "B=8"]
    assert matplotlib.image.imread(tmp_path / "bench_sweep.png").shape[0] > 100


def test_plot_of_a_file_that_is_not_a_saved_benchmark_says_so(tmp_path):
    import pytest

    bk = _bench_module()
    bad = tmp_path / "notes.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(SystemExit, match="is not a bench_kernels.json"):
        bk.plot_saved(bad)


def test_toggled_flips_a_flag_for_the_whole_call_and_restores_it():
    import types

    import pytest

    bk = _bench_module()
    mod = types.SimpleNamespace(FLAG=False)
    seen = []
    assert bk.toggled(mod, "FLAG", lambda: seen.append(mod.FLAG) or 7)() == 7 and seen == [True] and mod.FLAG is False

    def boom():
        raise RuntimeError("inside")

    with pytest.raises(RuntimeError):
        bk.toggled(mod, "FLAG", boom)()
    assert mod.FLAG is False
    # the benchmark's A/B rows: the size-class row is named for the side the flag is not on
    assert bk.size_class_row(None, None)[0][0] == "ours (size classes)"


def test_merge_joins_the_rows_of_several_runs_and_refuses_a_row_twice(tmp_path):
    import pytest

    bk = _bench_module()

    def saved(name, date, shapes, device="dev"):
        head = {"device": device, "date": date, "torch": "t", "triton": "tr", "peers": ["fla"], "hbm_copy_GBps": 1.0,
                "bf16_matmul_TFLOPs": 1.0}
        rows = [{"op": "SSD decode step", "shape": s, "floor_us": 1.0, "ratio_vs_best_peer": 1.1,
                 "impls": {"ours": {"status": "ok", "us": 2.0, "pct_floor": 50.0, "ours": True}}} for s in shapes]
        bk.write_results(tmp_path / name, head, rows)
        return tmp_path / name / "bench_kernels.json"

    a, b = saved("a", "d1", ["B=1", "B=8"]), saved("b", "d2", ["B=64"])
    bk.merge_saved([a, b], tmp_path / "all")
    merged = json.loads((tmp_path / "all" / "bench_kernels.json").read_text())
    assert [r["shape"] for r in merged["rows"]] == ["B=1", "B=8", "B=64"] and merged["header"]["date"] == "d1, d2"
    assert "| SSD decode step | B=64 |" in (tmp_path / "all" / "bench_kernels.md").read_text()
    with pytest.raises(SystemExit, match="B=8 is in both"):
        bk.merge_saved([a, saved("c", "d3", ["B=8"])], tmp_path / "x")
    with pytest.raises(SystemExit, match="merge runs of one device"):
        bk.merge_saved([a, saved("d", "d4", ["B=2"], device="other")], tmp_path / "y")


def test_our_ssd_gradients_map_onto_mamba_ssm_parameterisation():
    """The SSD fwd+bwd row checks mamba_ssm's gradients (of x, dt, A, B, C) against our reference's (of q, k, v, g)
    mapped by the chain rule; mamba's own plain-PyTorch SSD, differentiated by autograd, must agree with that map."""
    import sys
    import types

    import pytest
    import torch

    sys.modules.setdefault("selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    ref_mod = pytest.importorskip("mamba_ssm.ops.triton.ssd_combined")
    from kernels.ssd import naive_chunk_ssd

    bk = _bench_module()
    torch.manual_seed(0)
    B, T, H, D = 2, 24, 3, 8
    x, Bm, Cm = (torch.randn(B, T, H, D, dtype=torch.float64) for _ in range(3))
    dt = torch.nn.functional.softplus(torch.randn(B, T, H, dtype=torch.float64) - 1)
    A = -torch.rand(H, dtype=torch.float64) - 0.5
    do = torch.randn(B, T, H, D, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (Cm, Bm, x * dt[..., None], dt * A)]
    o = naive_chunk_ssd(*leaves, 1.0, None, False)[0]
    o.backward(do)
    ours = bk.ssd_grads_as_mamba([o.detach(), *(t.grad for t in leaves)], x, dt, A)
    m_leaves = [t.clone().requires_grad_() for t in (x, dt, A, Bm, Cm)]
    m_o = ref_mod.ssd_chunk_scan_combined_ref(*m_leaves, chunk_size=8)
    m_o.backward(do)
    theirs = [m_o.detach(), *(t.grad for t in m_leaves)]
    for name, a, b in zip(["o", "dx", "ddt", "dA", "dB", "dC"], ours, theirs, strict=True):
        assert a.shape == b.shape, name
        err = ((a.double() - b.double()).norm() / b.double().norm()).item()
        assert err < 1e-6, (name, err)  # (mamba's reference takes dt to fp32: they agree to ~2e-7)


def test_past_its_budget_a_run_starts_no_row_and_lists_what_it_left(tmp_path):
    import time

    bk = _bench_module()
    head = {"device": "dev", "date": "d", "torch": "t", "triton": "tr", "peers": [], "hbm_copy_GBps": 1.0,
            "bf16_matmul_TFLOPs": 1.0}

    class Clock(bk.Bench):
        def time(self, fn, graph):
            return fn() * 1e-6

    ran = []
    entries = [("ours", lambda: ran.append(1) or 1.0, lambda: 1e-3, 1e-2, True)]
    bench = Clock(1e12, tmp_path, head, until=time.time() + 3600)
    bench.case("op", "B=1", 1e6, entries)
    runs = len(ran)
    bench.until = time.time() - 1  # the budget spent during the first row
    bench.case("op", "B=8", 1e6, entries)
    assert [r["shape"] for r in bench.rows] == ["B=1"] and runs >= 1 and len(ran) == runs
    saved = json.loads((tmp_path / "bench_kernels.json").read_text())
    assert saved["header"]["not_run"] == ["op B=8"] and len(saved["rows"]) == 1
    assert "Not run (the run's --budget was spent): op B=8." in (tmp_path / "bench_kernels.md").read_text()


def test_run_isolated_starts_no_section_past_the_budget_and_merge_keeps_the_list(tmp_path, monkeypatch):
    import subprocess
    import time
    import types

    bk = _bench_module()
    head = {"device": "dev", "date": "d", "torch": "t", "triton": "tr", "peers": [], "hbm_copy_GBps": 1.0,
            "bf16_matmul_TFLOPs": 1.0}
    a = types.SimpleNamespace(out=str(tmp_path / "run"), quick=False, impl="", shape="", graph=False, rounds=1,
                              headline=False, until=time.time() + 3600)
    calls = []

    def fake_run(cmd):  # the first section spends the budget: its last row is left, and no section after it starts
        calls.append(cmd)
        assert float(cmd[cmd.index("--until") + 1]) == a.until
        row = {"op": "op", "shape": "B=1", "floor_us": 1.0, "ratio_vs_best_peer": None,
               "impls": {"ours": {"status": "ok", "us": 1.0, "pct_floor": 1.0, "ours": True}}}
        bk.write_results(Path(cmd[cmd.index("--out") + 1]), head | {"not_run": ["op B=8"]}, [row])
        a.until = time.time() - 1
        return types.SimpleNamespace(returncode=0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    bk.run_isolated(a, ["step", "chunk"], [])
    assert len(calls) == 1
    saved = json.loads((tmp_path / "run" / "bench_kernels.json").read_text())
    assert saved["header"]["not_run"] == ["op B=8", "section chunk"] and len(saved["rows"]) == 1
    bk.merge_saved([tmp_path / "run" / "bench_kernels.json"], tmp_path / "merged")
    merged = json.loads((tmp_path / "merged" / "bench_kernels.json").read_text())
    assert merged["header"]["not_run"] == ["op B=8", "section chunk"]


def test_a_run_of_several_calls_is_timed_per_call():
    bk = _bench_module()

    class Clock(bk.Bench):
        def time(self, fn, graph):
            return fn() * 1e-6

    def chained():  # four chained steps "take" 8 us: 2 us a step
        return 8.0

    chained.calls = 4
    bench = Clock(1e12, None, rounds=2)
    bench.case("op", "B=1", 1e6, [("ours", lambda: 3.0, lambda: 1e-3, 1e-2, True),
                                  ("peer (chained)", chained, lambda: 1e-3, 1e-2, False)])
    row = bench.rows[0]
    assert row["impls"]["peer (chained)"]["us"] == 2.0 and row["ratio_vs_best_peer"] == 2.0 / 3.0


def test_fla_step_at_its_fastest_launch_is_checked_timed_and_pinned():
    """The RWKV-7 step row's best peer: fla's step held to each of its own launches, a launch whose check fails
    skipped, the fastest kept, and the autotuner's configs put back after every call."""
    import pytest

    pytest.importorskip("fla")
    bk = _bench_module()
    tuner = load("sweep_step_launch").fla_rwkv7_tuner()
    configs, active = list(tuner.configs), []

    def fla_step():  # what fla would launch: the one config the autotuner holds
        (config,) = tuner.configs
        active.append((config.kwargs["BV"], config.num_warps))
        return active[-1]

    def check(run):  # BV 16 on 2 warps gives a wrong answer; the rest are right
        return 1.0 if run() == (16, 2) else 1e-3

    def timer(run):  # BV 32 on 4 warps the fastest
        bv, warps = run()
        return abs(bv - 32) + abs(warps - 4) + 1.0

    (best, run) = bk.fastest_pinned_launch(fla_step, check, K=32, timer=timer)
    assert best == (32, 4) and run() == (32, 4)
    # every launch with BV ≤ K checked; the failed one never timed; BV 64 > K not tried
    assert {c for c in active if c[0] == 64} == set() and active.count((16, 2)) == 1
    assert tuner.configs == configs
    assert bk.fastest_pinned_launch(fla_step, lambda run: 1.0, K=32, timer=timer) is None
