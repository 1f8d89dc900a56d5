"""The host-side block and grid arithmetic (``kernels._dispatch.cdiv`` / ``next_power_of_2``) agrees with
Triton's own functions, which it replaces in the launch wrappers because those cost ~5 µs a call on the host."""

from __future__ import annotations

import triton

from kernels._dispatch import cdiv, next_power_of_2


def test_cdiv_and_next_power_of_2_match_triton():
    values = [*range(0, 300), 1023, 1024, 1025, 4095, 4096, 4097, 65535, 65536, 1 << 20, (1 << 31) - 1]
    for n in values:
        assert next_power_of_2(n) == triton.next_power_of_2(n), n
        for d in (1, 2, 3, 16, 64, 100, 128):
            assert cdiv(n, d) == triton.cdiv(n, d), (n, d)


def test_size_class_is_one_class_per_factor_of_4_and_0_while_off(monkeypatch):
    import kernels._dispatch as dispatch

    monkeypatch.setattr(dispatch, "SIZE_CLASSES", False)
    assert {dispatch.size_class(n) for n in (1, 16, 1024, 1 << 20)} == {0}
    monkeypatch.setattr(dispatch, "SIZE_CLASSES", True)
    classes = [dispatch.size_class(n) for n in (16, 63, 64, 255, 256, 1024, 4096, 16384, 1 << 40)]
    assert classes == [2, 3, 3, 4, 4, 5, 6, 7, 12]
    assert dispatch.size_class(0) == dispatch.size_class(1) == 0


def test_size_classes_change_no_result_of_the_chunked_ops(device, monkeypatch):
    """The size class is an autotune key only: with it on (a non-zero runtime argument to the SSD, GLA and
    delta-rule chunked kernels, forward and backward) every output and gradient is what it is with it off."""
    import torch
    import torch.nn.functional as F

    import kernels._dispatch as dispatch
    from kernels.delta_rule.triton_chunk import triton_chunk_delta_rule
    from kernels.gla.triton_chunk import triton_chunk_gla
    from kernels.ssd.triton_chunk import triton_chunk_ssd

    B, T, H, K = 2, 45, 2, 20
    q, k, v = (torch.randn(B, T, H, K, device=device) for _ in range(3))
    g_scalar, g_vec = -torch.rand(B, T, H, device=device) * 0.5, F.logsigmoid(torch.randn(B, T, H, K, device=device))
    kk = F.normalize(torch.randn(B, T, H, K, device=device), dim=-1)
    a, b = -kk, kk * torch.rand_like(kk)
    cases = {
        "ssd": (lambda *x: triton_chunk_ssd(*x, 0.5, None, True), (q, k, v, g_scalar)),
        "gla": (lambda *x: triton_chunk_gla(*x, 0.5, None, True), (q, k, v, g_vec)),
        "delta": (lambda *x: triton_chunk_delta_rule(*x, 1.0, None, True, 16, fuse_scores=True), (q, k, v, -0.3 * g_vec.abs(), a, b)),
    }

    def run(fn, inputs):
        leaves = [t.clone().requires_grad_() for t in inputs]
        o, hT = fn(*leaves)
        (o.square().sum() + hT.sum()).backward()
        return [o, hT, *(t.grad for t in leaves)]

    for name, (fn, inputs) in cases.items():
        monkeypatch.setattr(dispatch, "SIZE_CLASSES", False)
        off = run(fn, inputs)
        monkeypatch.setattr(dispatch, "SIZE_CLASSES", True)
        on = run(fn, inputs)
        for x, y in zip(off, on, strict=True):
            assert torch.equal(x, y), name


def test_bh_bucket_rounds_batch_heads_up_to_a_power_of_2_up_to_4096():
    from kernels._dispatch import bh_bucket

    assert [bh_bucket(n) for n in (1, 3, 16, 17, 128, 4096, 5000)] == [1, 4, 16, 32, 128, 4096, 4096]
