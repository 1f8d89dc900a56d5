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


def test_chunked_forwards_with_size_classes_on_match_the_references(device, monkeypatch):
    """The size class is an autotune key only: with it on (a non-zero runtime argument) the SSD and GLA chunked
    forwards still match their references."""
    import torch
    import torch.nn.functional as F

    import kernels._dispatch as dispatch
    from kernels.gla import naive_chunk_gla
    from kernels.gla.triton_chunk import chunk_gla_fwd
    from kernels.ssd import naive_chunk_ssd
    from kernels.ssd.triton_chunk import chunk_ssd_fwd

    monkeypatch.setattr(dispatch, "SIZE_CLASSES", True)
    B, T, H, K = 2, 77, 3, 20
    q, k, v = (torch.randn(B, T, H, K, device=device) for _ in range(3))
    g_scalar, g_vec = -torch.rand(B, T, H, device=device) * 0.5, F.logsigmoid(torch.randn(B, T, H, K, device=device))
    for got, ref in ((chunk_ssd_fwd(q, k, v, g_scalar, 0.5, None, True), naive_chunk_ssd(q, k, v, g_scalar, 0.5, None, True)),
                     (chunk_gla_fwd(q, k, v, g_vec, 0.5, None, True), naive_chunk_gla(q, k, v, g_vec, 0.5, None, True))):
        for a, b in zip(got, ref, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
