"""Triton backward of the chunked SSD scan against autograd of the fp32 step-by-step reference."""

from __future__ import annotations

import pytest
import torch
import triton
from _kernel_util import assert_close, bands_intact, grads, guarded, ssd_inputs

from kernels.ssd import naive_chunk_ssd, naive_recurrent_ssd
from kernels.ssd import triton_chunk_bwd as bwd
from kernels.ssd.triton_chunk import CHUNK, _block_k, chunk_ssd_states, triton_chunk_ssd
from kernels.ssd.triton_chunk_bwd import ChunkSSDFunction, triton_chunk_ssd_bwd

# fp32 inputs use IEEE fp32 products in the kernels; chunked and step forms only reorder sums (seen ≤ 2e-6).
FP32_TOL = 1e-5




def _run(fn, q, k, v, g, h0, scale, do, dhT):
    """(o, final state, then every input gradient) of ``sum(o·do) + sum(hT·dhT)`` through ``fn``."""
    o, hT = fn(q, k, v, g, scale, h0, dhT is not None)
    loss = (o.float() * do).sum()
    if dhT is not None:
        loss = loss + (hT * dhT).sum()
    loss.backward()
    return [o.detach(), *([hT.detach()] if dhT is not None else []), *grads(q, k, v, g, h0)]


def _names(with_final: bool, s0: bool) -> list[str]:
    return ["o", *(["final"] if with_final else []), "dq", "dk", "dv", "dg", *(["dh0"] if s0 else [])]


@pytest.mark.parametrize("T", [1, 7, CHUNK, CHUNK + 1, 2 * CHUNK + 3])
@pytest.mark.parametrize("s0", [False, True])
@pytest.mark.parametrize("with_final", [False, True])
def test_function_matches_reference(T, s0, with_final, device):
    B, H, K, V = 2, 2, 12, 20  # K, V not powers of two: masked tiles
    q, k, v, g, h0 = ssd_inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    dhT = torch.randn(B, H, K, V, device=device) if with_final else None
    tri = _run(ChunkSSDFunction.apply, q, k, v, g, h0, 0.7, do, dhT)
    ref = _run(naive_recurrent_ssd, q, k, v, g, h0, 0.7, do, dhT)
    for name, a, b in zip(_names(with_final, s0), tri, ref, strict=True):
        assert_close(name, a, b, FP32_TOL)


@pytest.mark.parametrize("chunk_size", [16, CHUNK])
def test_bwd_several_blocks(chunk_size, device):
    """K > 64 and V > 32 split into several K blocks (dg partials summed) and V blocks; any backward chunk
    length gives the same gradients."""
    B, T, H, K, V = 1, 37, 1, 72, 40
    q, k, v, g, h0 = ssd_inputs(B, T, H, K, V, True, device)
    do = torch.randn(B, T, H, V, device=device)
    dhT = torch.randn(B, H, K, V, device=device)
    ref = _run(naive_recurrent_ssd, q, k, v, g, h0, 0.3, do, dhT)[2:]
    got = triton_chunk_ssd_bwd(q.detach(), k.detach(), v.detach(), g.detach(), do, dhT, 0.3, h0.detach(), chunk_size=chunk_size)
    for name, a, b in zip(["dq", "dk", "dv", "dg", "dh0"], got, ref, strict=True):
        assert_close(name, a, b, FP32_TOL)


def test_initial_state_without_grad(device):
    """A given initial state that does not require grad gets no gradient; the others still match."""
    B, T, H, K, V = 1, 19, 2, 16, 8
    q, k, v, g, h0 = ssd_inputs(B, T, H, K, V, True, device)
    h0.requires_grad_(False)
    do = torch.randn(B, T, H, V, device=device)
    tri = _run(ChunkSSDFunction.apply, q, k, v, g, h0, 1.0, do, None)
    assert h0.grad is None
    ref = _run(naive_recurrent_ssd, q, k, v, g, h0, 1.0, do, None)
    for name, a, b in zip(_names(False, False), tri, ref, strict=True):
        assert_close(name, a, b, FP32_TOL)


def test_only_some_inputs_need_grad(device):
    B, T, H, K, V = 1, 9, 1, 12, 20
    q, k, v, g, _ = (t.detach() if t is not None else None for t in ssd_inputs(B, T, H, K, V, False, device))
    v.requires_grad_()
    o, _ = ChunkSSDFunction.apply(q, k, v, g, 1.0, None, False)
    o.sum().backward()
    v_ref = v.detach().clone().requires_grad_()
    naive_recurrent_ssd(q, k, v_ref, g, 1.0, None, False)[0].sum().backward()
    assert_close("dv", v.grad, v_ref.grad, FP32_TOL)


def test_backward_choice(device):
    """``triton_chunk_ssd`` differentiates through :class:`ChunkSSDFunction` by default and through the
    reference recompute with ``triton_backward=False``; both give the reference gradients."""
    q, k, v, g, h0 = ssd_inputs(1, 5, 1, 16, 16, True, device)
    do = torch.randn(1, 5, 1, 16, device=device)
    got = {}
    for flag in (True, False):
        o, _ = triton_chunk_ssd(q, k, v, g, 1.0, h0, triton_backward=flag)
        assert ("ChunkSSDFunction" in type(o.grad_fn).__name__) == flag, type(o.grad_fn).__name__
        (o * do).sum().backward()
        got[flag] = grads(q, k, v, g, h0)
    o, _ = triton_chunk_ssd(q, k, v, g, 1.0, h0)
    assert "ChunkSSDFunction" in type(o.grad_fn).__name__
    for name, a, b in zip(["dq", "dk", "dv", "dg", "dh0"], got[True], got[False], strict=True):
        assert_close(name, a, b, FP32_TOL)


def test_every_gpu_config_in_bounds():
    """Every config the GPU autotuner may pick, for each backward kernel, run in the interpreter (fp32: its bf16
    ``tl.dot`` is not exact) at a shape where every tile is partial (T = 2·64 + 3, K = 72 and V = 80 against
    blocks of 32 and 64): no program reads or writes outside its buffers (guard bands unchanged, outputs
    are finite), and every config gives the reference gradients. The autotuner benchmarks each config on the
    same buffers, so a kernel that accumulated into its outputs would also show here."""
    dev = torch.device("cpu")
    B, T, H, K, V = 1, 2 * CHUNK + 3, 2, 72, 80
    scale, BT, NT, BK = 0.3, CHUNK, triton.cdiv(2 * CHUNK + 3, CHUNK), _block_k(K)
    NK = triton.cdiv(K, BK)
    q, k, v, g, h0 = ssd_inputs(B, T, H, K, V, True, dev)
    do = torch.randn(B, T, H, V)
    dhT = torch.randn(B, H, K, V)
    ref = dict(zip(["dq", "dk", "dv", "dg", "dh0"], _run(naive_recurrent_ssd, q, k, v, g, h0, scale, do, dhT)[2:], strict=True))
    q, k, v, g, h0, do, dhT = (guarded(t.detach()) for t in (q, k, v, g, h0, do, dhT))
    h = guarded(chunk_ssd_states(k, v, g, h0, False, BT)[0])
    inputs = (q, k, v, g, h0, do, dhT, h)

    def nan(*shape):
        return guarded(torch.full(shape, float("nan")))

    dh_ref = None
    for cfg in bwd._dh_configs(interpreted=False):
        dh, dh0 = nan(B, H, NT, K, V), nan(B, H, K, V)
        bk, bv = cfg.kwargs["BK"], cfg.kwargs["BV"]
        bwd._ssd_chunk_bwd_dh.fn[(triton.cdiv(K, bk), triton.cdiv(V, bv), B * H)](
            q, do, g, dh, dhT, dh0, scale, T, NT, H=H, K=K, V=V, BT=BT, BK=bk, BV=bv, HAS_DHT=True, STORE_DH0=True, IS_FP32=True,
        )
        assert all(map(bands_intact, (*inputs, dh, dh0))) and dh.isfinite().all(), f"dh kernel, {cfg}"
        assert_close(f"dh0 {cfg}", dh0, ref["dh0"], FP32_TOL)
        dh_ref = dh if dh_ref is None else dh_ref
        assert_close(f"dh {cfg}", dh, dh_ref, FP32_TOL)
    dh = dh_ref
    for cfg in bwd._chunk_configs(interpreted=False):
        bv = cfg.kwargs["BV"]
        dv = nan(B, T, H, V)
        bwd._ssd_chunk_bwd_dv.fn[(triton.cdiv(V, bv), NT, B * H)](
            q, k, g, do, dh, dv, scale, T, NT, H=H, K=K, V=V, BT=BT, BK=BK, BV=bv, IS_FP32=True,
        )
        assert all(map(bands_intact, (*inputs, dh, dv))), f"dv kernel, {cfg}"
        assert_close(f"dv {cfg}", dv, ref["dv"], FP32_TOL)
        dq, dk, dg = nan(B, T, H, K), nan(B, T, H, K), nan(NK, B, T, H)
        bwd._ssd_chunk_bwd_dqkg.fn[(NK, NT, B * H)](
            q, k, v, g, h, do, dh, dq, dk, dg, scale, T, NT, B, H=H, K=K, V=V, BT=BT, BK=BK, BV=bv, IS_FP32=True,
        )
        assert all(map(bands_intact, (*inputs, dh, dq, dk, dg))), f"dq/dk/dg kernel, {cfg}"
        for name, got in (("dq", dq), ("dk", dk), ("dg", dg.sum(0))):
            assert_close(f"{name} {cfg}", got, ref[name], FP32_TOL)


def test_gpu_configs_by_precision():
    """fp32 keeps its one FMA config; bf16 (tensor cores) only tiles of BV = 64 (see ``_TC_BV``)."""
    configs = bwd._chunk_configs(interpreted=False)
    fp32 = bwd._by_precision(configs, {}, IS_FP32=True)
    assert [(c.kwargs["BV"], c.num_warps) for c in fp32] == [(32, 8)]
    tc = bwd._by_precision(configs, {}, IS_FP32=False)
    assert tc and all(c.kwargs["BV"] == 64 for c in tc)


@pytest.mark.gpu
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128)])
@pytest.mark.parametrize("s0", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])  # bf16 operands and h/dh
def test_backward_full_shape_gpu(K, V, s0, dtype, tol):
    dev = torch.device("cuda")
    B, T, H = 2, 1000, 4
    q, k, v, g, h0 = ssd_inputs(B, T, H, K, V, s0, dev, dtype)
    do = torch.randn(B, T, H, V, device=dev)
    dhT = torch.randn(B, H, K, V, device=dev)
    tri = _run(ChunkSSDFunction.apply, q, k, v, g, h0, K**-0.5, do, dhT)
    # The fp32 reference sees the same (possibly bf16-rounded) input values.
    qf, kf, vf = (t.detach().float().requires_grad_() for t in (q, k, v))

    def reference(q, k, v, g, scale, h0, out_final):
        return naive_chunk_ssd(q, k, v, g, scale, h0, out_final, CHUNK)

    ref = _run(reference, qf, kf, vf, g, h0, K**-0.5, do, dhT)
    for name, a, b in zip(_names(True, s0), tri, ref, strict=True):
        assert_close(name, a, b, tol)
