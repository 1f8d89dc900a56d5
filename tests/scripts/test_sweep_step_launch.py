"""sweep_step_launch: every launch is checked against the reference, timed once per round, and the table names
the fastest (its kernels interpreted on the CPU, CUDA-graph timing replaced by a clock that knows the launch)."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import triton.testing
from script_module import load


def _sweep(tmp_path, monkeypatch, *args: str) -> tuple[str, list[tuple]]:
    mod = load("sweep_step_launch")
    monkeypatch.setattr(mod, "DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "test CPU")
    timed = []

    def clock(fn, rep, return_mode):
        fn()
        _, bv, warps = mod.ssd_step.step_launch(16, 8, 8)  # the launch in force (launch() patches this name)
        timed.append((bv, warps))
        # BV 8 at 2 warps the fastest; every round a little slower, so the median is the middle round's
        return (1.0 + abs(bv - 8) / 8 + abs(warps - 2) / 10 + 0.01 * timed.count((bv, warps))) / 1e3  # ms

    monkeypatch.setattr(triton.testing, "do_bench_cudagraph", clock)
    monkeypatch.setattr(sys, "argv", ["sweep_step_launch.py", "--out", str(tmp_path), "--shapes", "1,2,8", "--ops", "SSD",
                                      "--bvs", "4,8", "--rounds", "3", *args])
    mod.main()
    return (tmp_path / "sweep_step_launch.md").read_text(), timed


def test_sweep_checks_times_each_launch_per_round_and_names_the_fastest(tmp_path, monkeypatch):
    text, timed = _sweep(tmp_path, monkeypatch)
    # the shipped launch and BV 4 / 8 at 1, 2, 4, 8 warps, each timed once in each of three rounds, in turn
    assert len(timed) == 9 * 3 and timed[:9] == timed[9:18] == timed[18:]
    row = next(line for line in text.splitlines() if line.startswith("| SSD |"))
    assert "| (8, 2) | 1.02 |" in row
    assert "SSD B=1 H=2 D=8 BV=8 warps=2: 1.02 us (rounds 1.01-1.03) err" in text
    assert "FAILED" not in text
    import matplotlib.image

    assert matplotlib.image.imread(tmp_path / "sweep_step_launch.png").shape[0] > 100
    # the figure drawn again from the written table alone (--replot)
    mod = load("sweep_step_launch")
    (panel,) = mod.panels_from_md(text)
    assert panel["title"] == "SSD step, B=1 H=2 K=V=8" and panel["peer"] is None
    assert panel["bars"][0][0].startswith("shipped (") and ("BV 8, 2 warps", 1.02, 1.01, 1.03) in panel["bars"]
    assert len(panel["bars"]) == 9


def test_sweep_times_mamba_beside_the_ssd_step(tmp_path, monkeypatch):
    # mamba_ssm imports its CUDA scan extension at the top; the sweep stubs it, as the benchmark does
    monkeypatch.setitem(sys.modules, "selective_scan_cuda", types.ModuleType("selective_scan_cuda"))
    ssu = pytest.importorskip("mamba_ssm.ops.triton.selective_state_update")
    # its Triton launcher needs a CUDA device; its plain-PyTorch reference (same arguments) checks the sweep's
    # mapping of an SSD step onto mamba's (x = v / dt, B = k, C = q, state transposed)
    monkeypatch.setattr(ssu, "selective_state_update", ssu.selective_state_update_ref)
    text, _ = _sweep(tmp_path, monkeypatch, "--peer")
    # (the test's clock gives the peer the time of the launch in force outside the sweep's: the shipped one)
    assert "SSD B=1 H=2 D=8 mamba_ssm ssu: 2.24 us (rounds 2.22-2.26) err" in text and "FAILED" not in text
    row = next(line for line in text.splitlines() if line.startswith("| SSD |"))
    assert row.endswith("| 2.24 |")


def test_rounds_below_one_are_refused(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="--rounds 0: take at least 1"):
        _sweep(tmp_path, monkeypatch, "--rounds", "0")


def test_variants_are_checked_and_timed_beside_every_launch(tmp_path, monkeypatch):
    text, timed = _sweep(tmp_path, monkeypatch, "--variants", "no-barrier,store-last,out-of-place")
    assert len(timed) == 36 * 3
    assert "SSD B=1 H=2 D=8 BV=8 warps=2 no-barrier: " in text and "FAILED" not in text
    assert "SSD B=1 H=2 D=8 BV=4 warps=8 store-last: " in text
    mod = load("sweep_step_launch")
    assert mod.gla_step.gated_step_kernel is mod.ssd_step.gated_step_kernel  # the launcher put back after each launch
    (panel,) = mod.panels_from_md(text)
    labels = [bar[0] for bar in panel["bars"]]
    assert len(labels) == 36 and "BV 8, 2 warps no-barrier" in labels and "BV 8, 2 warps" in labels
    assert "BV 4, 8 warps store-last" in labels and "BV 8, 1 warps out-of-place" in labels


def test_unknown_variants_are_refused_with_the_choices(tmp_path, monkeypatch):
    with pytest.raises(SystemExit, match="unknown fast .choose from no-barrier, store-last, out-of-place, masked, row-loads, "):
        _sweep(tmp_path, monkeypatch, "--variants", "fast")
    with pytest.raises(SystemExit, match="unknown fast "):  # each part of a joined variant is checked
        _sweep(tmp_path, monkeypatch, "--variants", "masked+fast")


def test_fla_rwkv7_peer_maps_our_step_onto_fla_and_pins_each_config(monkeypatch):
    pytest.importorskip("fla.ops.rwkv7")
    from fla.ops.rwkv7.fused_recurrent import fused_recurrent_rwkv7_fwd_kernel
    from triton.runtime.autotuner import Autotuner

    tuner = fused_recurrent_rwkv7_fwd_kernel
    while not isinstance(tuner, Autotuner):
        tuner = tuner.fn
    configs = list(tuner.configs)
    mod = load("sweep_step_launch")
    monkeypatch.setattr(mod, "DEVICE", "cpu")
    cases = mod.fla_rwkv7_cases(1, 2, 16)
    # (its autotuned call needs a GPU to time configs: reported, not kept, on the CPU); each pinned V block of 16
    # runs interpreted and matches the fp32 reference of our step: the inputs map onto fla's (w, kk, a) correctly
    pinned = {name: err for name, (_, err) in cases.items() if "BV=16" in name}
    assert len(pinned) == 4 and max(pinned.values()) < 1e-2, pinned
    assert tuner.configs == configs  # the autotuner's own configs put back after each call


@pytest.mark.parametrize("D", [16, 12])  # 12: the tile is 16, so every variant runs with its bounds masks
def test_every_variant_of_every_step_matches_the_reference(monkeypatch, D):
    mod = load("sweep_step_launch")
    monkeypatch.setattr(mod, "DEVICE", "cpu")
    s0, ops = mod.cases(2, 3, D)
    for name, step, o_ref, s_ref in ops:
        for var in [*mod.VARIANTS, "masked+out-of-place", "store-last+no-barrier", "row-loads+rank-one-first",
                    "flat-grid+rank-one-first+store-last+out-of-place", "state-vk+out-of-place", "state-vk+store-last"]:
            if name.endswith("-vk") and "state-vk" in var:  # its state is Sᵀ already: the sweep leaves these out
                continue
            with mod.launch(None, None, var) as launcher:
                st = s0.clone()
                o = step(st)
            if "out-of-place" in var or "state-vk" in var:  # the new state in a second tensor, the first as it was
                assert torch.equal(st, s0)
                st = launcher.last_out
                if "state-vk" in var and "out-of-place" not in var:  # stepped in place: the launcher's Sᵀ copy
                    assert st.transpose(-1, -2).is_contiguous()
            assert max(mod.rel_err(o, o_ref), mod.rel_err(st, s_ref)) < 1e-2, (name, var)
