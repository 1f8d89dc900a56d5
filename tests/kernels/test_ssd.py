"""Triton SSD chunk scan and decode step against the fp32 step-by-step reference."""

from __future__ import annotations

import pytest
import torch
from _kernel_util import assert_close, grads, ssd_inputs

from kernels.ssd import chunk_ssd, naive_recurrent_ssd, naive_ssd_step, ssd_step
from kernels.ssd.triton_chunk import CHUNK, LONG_CHUNK, chunk_ssd_fwd, chunk_ssd_split_states, fwd_chunk_size, fwd_state_splits

# fp32 inputs use IEEE fp32 products in the kernels; the chunked and step forms only reorder sums.
FP32_TOL = 1e-5




@pytest.mark.parametrize("T", [1, 7, CHUNK, CHUNK + 1, 2 * CHUNK + 3])
@pytest.mark.parametrize("s0", [False, True])
def test_chunk_forward_backward(T, s0, device):
    B, H, K, V = 1, 2, 12, 20  # K, V not powers of two: masked tiles
    q, k, v, g, h0 = ssd_inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    dhT = torch.randn(B, H, K, V, device=device)

    o, hT = chunk_ssd(q, k, v, g, 0.7, h0, output_final_state=True, impl="triton")
    ((o * do).sum() + (hT * dhT).sum()).backward()
    tri = [o.detach(), hT.detach(), *grads(q, k, v, g, h0)]

    o, hT = naive_recurrent_ssd(q, k, v, g, 0.7, h0, output_final_state=True)
    ((o * do).sum() + (hT * dhT).sum()).backward()
    ref = [o.detach(), hT.detach(), *grads(q, k, v, g, h0)]

    names = ["o", "final", "dq", "dk", "dv", "dg"] + (["dinitial_state"] if s0 else [])
    for name, a, b in zip(names, tri, ref, strict=True):
        assert_close(name, a, b, FP32_TOL)


@pytest.mark.parametrize("chunk_size", [CHUNK, LONG_CHUNK])
@pytest.mark.parametrize("s0", [False, True])
def test_forward_chunk_sizes(chunk_size, s0, device):
    """Both forward chunk lengths (64, and 128 for long sequences with few batch·heads) give the step-by-step
    result, with and without an initial state and a final state."""
    q, k, v, g, h0 = (t.detach() if t is not None else None for t in ssd_inputs(1, 2 * LONG_CHUNK + 5, 2, 12, 20, s0, device))
    o, hT = chunk_ssd_fwd(q, k, v, g, 0.7, h0, True, chunk_size=chunk_size)
    o_ref, h_ref = naive_recurrent_ssd(q, k, v, g, 0.7, h0)
    assert_close("o", o, o_ref, FP32_TOL)
    assert_close("final", hT, h_ref, FP32_TOL)
    o2, none = chunk_ssd_fwd(q, k, v, g, 0.7, h0, False, chunk_size=chunk_size)
    assert none is None
    assert_close("o without final state", o2, o_ref, FP32_TOL)


@pytest.mark.parametrize("splits", [2, 3, 5, 50])  # 6 chunks: segments of 3, 2, 2 (the last one short) and 1
@pytest.mark.parametrize("s0", [False, True])
@pytest.mark.parametrize("with_final", [False, True])
def test_split_walk(splits, s0, with_final, device):
    """The forward with its state walk cut into segments (a segment-local walk, a carry over the segments, the
    carried part added back in the output kernel) gives the step-by-step result; h0 enters only segment 0."""
    q, k, v, g, h0 = (t.detach() if t is not None else None for t in ssd_inputs(2, 5 * CHUNK + 7, 2, 12, 20, s0, device))
    o, hT = chunk_ssd_fwd(q, k, v, g, 0.7, h0, with_final, chunk_size=CHUNK, splits=splits)
    o_ref, h_ref = naive_recurrent_ssd(q, k, v, g, 0.7, h0)
    assert_close("o", o, o_ref, FP32_TOL)
    if with_final:
        assert_close("final", hT, h_ref, FP32_TOL)
    else:
        assert hT is None
    parts = chunk_ssd_split_states(k, v, g, h0, False, CHUNK, splits)
    assert parts.seg_len == -(-6 // min(splits, 6)) and parts.hin.shape[2] == -(-6 // parts.seg_len)


def test_split_walk_choice():
    """Segments only where fewer than 32 batch·heads walk at least 64 chunks, 16 chunks or more each, up to 128
    walks in all."""
    assert fwd_state_splits(1, 16, 128) == 8  # B=1 T=16k, chunks of 128
    assert fwd_state_splits(1, 16, 64) == 4  # B=1 T=8192
    assert fwd_state_splits(1, 4, 141) == 8  # segments of at least 16 chunks (141 // 16) ...
    assert fwd_state_splits(1, 2, 4096) == 64  # ... or 128 walks
    assert fwd_state_splits(1, 16, 32) == 1  # B=1 T=4096: bound by the CPU's launches
    assert fwd_state_splits(2, 16, 128) == 1  # 32 walks: the walk is no longer the bottleneck


def test_chunk_without_final_state(device):
    q, k, v, g = (t.detach() for t in ssd_inputs(2, 9, 1, 16, 16, False, device)[:4])
    o, hT = chunk_ssd(q, k, v, g, 1.0, None, output_final_state=False, impl="triton")
    assert hT is None
    assert_close("o", o, naive_recurrent_ssd(q, k, v, g, 1.0)[0], FP32_TOL)


@pytest.mark.parametrize("s0", [False, True])
def test_step_matches_reference_and_chunk(s0, device):
    B, T, H, K, V = 2, 5, 3, 12, 20
    q, k, v, g, h0 = (t.detach() if t is not None else None for t in ssd_inputs(B, T, H, K, V, s0, device))
    start = h0 if h0 is not None else torch.zeros(B, H, K, V, device=device)
    s_tri, s_ref = start.clone(), start.clone()
    outs = []
    for t in range(T):
        o = ssd_step(q[:, t], k[:, t], v[:, t], g[:, t], s_tri, scale=0.7, impl="triton")
        r = naive_ssd_step(q[:, t], k[:, t], v[:, t], g[:, t], s_ref, scale=0.7)
        assert_close(f"o[{t}]", o, r, FP32_TOL)
        assert_close(f"state[{t}]", s_tri, s_ref, FP32_TOL)
        outs.append(o)
    o_chunk, h_chunk = chunk_ssd(q, k, v, g, 0.7, h0, impl="triton")
    assert_close("step loop vs chunk", torch.stack(outs, 1), o_chunk, FP32_TOL)
    assert_close("step state vs chunk", s_tri, h_chunk, FP32_TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128)])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])  # bf16 operands: ~3e-3
@pytest.mark.parametrize("B,T", [(2, 1000), (1, 5000)])  # (1, 5000) in bf16: 128-step chunks
def test_chunk_full_shape_gpu(K, V, dtype, tol, B, T):
    dev = torch.device("cuda")
    H = 4
    q, k, v, g, h0 = (t.detach() for t in ssd_inputs(B, T, H, K, V, True, dev, dtype))
    o, hT = chunk_ssd(q, k, v, g, K**-0.5, h0, impl="triton")
    o_ref, h_ref = chunk_ssd(q.float(), k.float(), v.float(), g, K**-0.5, h0, impl="naive")
    assert_close("o", o, o_ref, tol)
    assert_close("final", hT, h_ref, tol)


@pytest.mark.gpu
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128)])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_split_walk_full_shape_gpu(K, V, dtype, tol):
    """The default forward at a length where it splits the state walk (4 segments of 128-step chunks in bf16,
    8 of 64-step chunks in fp32), with an initial state."""
    dev = torch.device("cuda")
    B, T, H = 1, 9000, 4
    chunk = fwd_chunk_size(B, T, H, dtype)
    assert fwd_state_splits(B, H, -(-T // chunk)) > 1
    q, k, v, g, h0 = (t.detach() for t in ssd_inputs(B, T, H, K, V, True, dev, dtype))
    o, hT = chunk_ssd(q, k, v, g, K**-0.5, h0, impl="triton")
    o_ref, h_ref = chunk_ssd(q.float(), k.float(), v.float(), g, K**-0.5, h0, impl="naive")
    assert_close("o", o, o_ref, tol)
    assert_close("final", hT, h_ref, tol)


@pytest.mark.gpu
@pytest.mark.parametrize("B", [1, 64])  # batch 1 at K = 64: V blocks of 8 (step_launch, kernels/NOTES.md 66)
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128)])
def test_step_full_shape_gpu(B, K, V):
    dev = torch.device("cuda")
    H = 16
    q, k, v, g = (torch.randn(B, H, K, device=dev), torch.randn(B, H, K, device=dev), torch.randn(B, H, V, device=dev),
                  -torch.rand(B, H, device=dev))
    s = torch.randn(B, H, K, V, device=dev)
    s_ref = s.clone()
    o = ssd_step(q, k, v, g, s, impl="triton")
    r = naive_ssd_step(q, k, v, g, s_ref)
    assert_close("o", o, r, FP32_TOL)
    assert_close("state", s, s_ref, FP32_TOL)
