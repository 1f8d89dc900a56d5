"""Triton GLA chunk scan and decode step against the fp32 step-by-step reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _kernel_util import assert_close, grads, mixer_read_out

from kernels.gla import chunk_gla, gla_step, naive_gla_step, naive_recurrent_gla
from kernels.gla.triton_chunk import CHUNK

# fp32 inputs use IEEE fp32 products in the kernels; the chunked and step forms only reorder sums.
FP32_TOL = 1e-5


def _inputs(B, T, H, K, V, s0, device, dtype=torch.float32, decay_scale=1.0):
    q = torch.randn(B, T, H, K, device=device, dtype=dtype, requires_grad=True)
    k = (torch.randn(B, T, H, K, device=device) / K**0.5).to(dtype).requires_grad_()
    v = torch.randn(B, T, H, V, device=device, dtype=dtype, requires_grad=True)
    # per-channel log-decays, mostly in [-0.7, -0.02] (GLA's logsigmoid gate): channels mix short and long memory
    g = (F.logsigmoid(torch.randn(B, T, H, K, device=device) + 2.0) * decay_scale).requires_grad_()
    h0 = torch.randn(B, H, K, V, device=device, requires_grad=True) if s0 else None
    return q, k, v, g, h0


@pytest.mark.parametrize("T", [1, 7, CHUNK, CHUNK + 1, 2 * CHUNK + 3])
@pytest.mark.parametrize("s0", [False, True])
def test_chunk_forward_backward(T, s0, device):
    B, H, K, V = 1, 2, 12, 20  # K, V not powers of two: masked tiles
    q, k, v, g, h0 = _inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    dhT = torch.randn(B, H, K, V, device=device)

    o, hT = chunk_gla(q, k, v, g, 0.7, h0, output_final_state=True, impl="triton")
    ((o * do).sum() + (hT * dhT).sum()).backward()
    tri = [o.detach(), hT.detach(), *grads(q, k, v, g, h0)]

    o, hT = naive_recurrent_gla(q, k, v, g, 0.7, h0, output_final_state=True)
    ((o * do).sum() + (hT * dhT).sum()).backward()
    ref = [o.detach(), hT.detach(), *grads(q, k, v, g, h0)]

    names = ["o", "final", "dq", "dk", "dv", "dg"] + (["dinitial_state"] if s0 else [])
    for name, a, b in zip(names, tri, ref, strict=True):
        if b.abs().max() == 0:
            # dg at T=1 without an initial state is exactly zero in the recurrence; the chunked form
            # gets it as a difference of equal terms (rounding ~1e-7), so compare absolutely.
            assert a.abs().max() <= 1e-5, f"{name}: {a.abs().max():.2e} where the reference is exactly 0"
            continue
        assert_close(name, a, b, FP32_TOL)


def test_chunk_without_final_state_and_strong_decay(device):
    # log-decays down to ~-300 per step: any exp of a positive cumulative sum would overflow.
    q, k, v, g = (t.detach() for t in _inputs(2, 37, 1, 16, 16, False, device, decay_scale=100.0)[:4])
    o, hT = chunk_gla(q, k, v, g, 1.0, None, output_final_state=False, impl="triton")
    assert hT is None
    assert_close("o", o, naive_recurrent_gla(q, k, v, g, 1.0)[0], FP32_TOL)


def _alternating_decays(B, T, H, K, device):
    """Weak log-decays, except that every other chunk has one key channel decaying at just past
    ``FACTORED_RANGE`` over the chunk (the 16-row sub-chunk path) and the rest just within it (whole-chunk
    products): both of the output kernel's paths in one call, next to each other."""
    g = F.logsigmoid(torch.randn(B, T, H, K, device=device) + 4.0)
    chunk = torch.arange(T, device=device) // CHUNK
    per_step = torch.where(chunk % 2 == 1, 41.0, 39.0) / CHUNK  # the channel's range over a whole chunk
    g[..., 0] = -per_step[None, :, None]
    return g


def test_chunk_whole_and_subchunk_paths(device):
    B, T, H, K, V = 2, 3 * CHUNK + 5, 2, 16, 24
    q, k, v, _, h0 = _inputs(B, T, H, K, V, True, device)
    g = _alternating_decays(B, T, H, K, device).requires_grad_()
    do, dhT = torch.randn(B, T, H, V, device=device), torch.randn(B, H, K, V, device=device)
    runs = []
    for fn in (lambda *a: chunk_gla(*a, impl="triton"), naive_recurrent_gla):
        o, hT = fn(q, k, v, g, 0.5, h0, True)
        ((o * do).sum() + (hT * dhT).sum()).backward()
        runs.append([o.detach(), hT.detach(), *grads(q, k, v, g, h0)])
    for name, a, b in zip(["o", "final", "dq", "dk", "dv", "dg", "dh0"], *runs, strict=True):
        assert_close(name, a, b, FP32_TOL)


def test_chunk_scores_out_is_the_lower_triangle(device):
    """The forward's saved scores ``scale · A``: every s ≤ t of t's chunk on either path, nothing above the
    diagonal written (the buffer starts as NaN)."""
    from kernels.gla.triton_chunk import chunk_gla_fwd

    B, T, H, K, V = 1, 2 * CHUNK + 9, 2, 16, 8
    q, k, v, _, _ = (t.detach() if t is not None else None for t in _inputs(B, T, H, K, V, False, device))
    g = _alternating_decays(B, T, H, K, device)
    A = torch.full((B, T, H, CHUNK), float("nan"), device=device)
    chunk_gla_fwd(q, k, v, g, 0.5, None, False, scores_out=A)
    t = torch.arange(T, device=device)
    col = t % CHUNK
    start = t - col  # first step of t's chunk
    G = torch.zeros_like(g)
    for c0 in range(0, T, CHUNK):
        G[:, c0 : c0 + CHUNK] = g[:, c0 : c0 + CHUNK].cumsum(1)
    s = start[:, None] + torch.arange(CHUNK, device=device)[None, :]  # [T, CHUNK]: the columns' steps
    lower = torch.arange(CHUNK, device=device)[None, :] <= col[:, None]
    s = torch.where(lower, s, start[:, None]).clamp(max=T - 1)
    ref = 0.5 * torch.einsum("thk,tshk->tsh", q[0], k[0][s] * torch.exp(G[0][:, None] - G[0][s]))
    got = A[0].permute(0, 2, 1)  # [T, CHUNK, H]
    assert torch.isnan(got[~lower]).all(), "scores above the diagonal were written"
    assert_close("scale·A", got[lower], ref[lower], FP32_TOL)


@pytest.mark.parametrize("s0", [False, True])
def test_step_matches_reference_and_chunk(s0, device):
    B, T, H, K, V = 2, 5, 3, 12, 20
    q, k, v, g, h0 = (t.detach() if t is not None else None for t in _inputs(B, T, H, K, V, s0, device))
    start = h0 if h0 is not None else torch.zeros(B, H, K, V, device=device)
    s_tri, s_ref = start.clone(), start.clone()
    outs = []
    for t in range(T):
        o = gla_step(q[:, t], k[:, t], v[:, t], g[:, t], s_tri, scale=0.7, impl="triton")
        r = naive_gla_step(q[:, t], k[:, t], v[:, t], g[:, t], s_ref, scale=0.7)
        assert_close(f"o[{t}]", o, r, FP32_TOL)
        assert_close(f"state[{t}]", s_tri, s_ref, FP32_TOL)
        outs.append(o)
    o_chunk, h_chunk = chunk_gla(q, k, v, g, 0.7, h0, impl="triton")
    assert_close("step loop vs chunk", torch.stack(outs, 1), o_chunk, FP32_TOL)
    assert_close("step state vs chunk", s_tri, h_chunk, FP32_TOL)


def test_step_rejects_bad_state(device):
    q, k, v, g = (torch.randn(1, 2, 8, device=device) for _ in range(4))
    with pytest.raises(ValueError, match="state"):
        gla_step(q, k, v[..., :4], g, torch.zeros(1, 2, 8, 4, device=device, dtype=torch.float64), impl="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128)])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])  # bf16 operands: ~3e-3
def test_chunk_full_shape_gpu(K, V, dtype, tol):
    dev = torch.device("cuda")
    B, T, H = 2, 1000, 4
    q, k, v, g, h0 = (t.detach() for t in _inputs(B, T, H, K, V, True, dev, dtype))
    o, hT = chunk_gla(q, k, v, g, K**-0.5, h0, impl="triton")
    o_ref, h_ref = chunk_gla(q.float(), k.float(), v.float(), g, K**-0.5, h0, impl="naive")
    assert_close("o", o, o_ref, tol)
    assert_close("final", hT, h_ref, tol)


@pytest.mark.gpu
def test_chunk_backward_gpu():
    dev = torch.device("cuda")
    q, k, v, g, h0 = _inputs(1, 300, 2, 64, 64, True, dev)
    do, dhT = torch.randn(1, 300, 2, 64, device=dev), torch.randn(1, 2, 64, 64, device=dev)
    outs = []
    for impl in ("triton", "naive"):
        o, hT = chunk_gla(q, k, v, g, 0.125, h0, impl=impl)
        ((o * do).sum() + (hT * dhT).sum()).backward()
        outs.append([o.detach(), hT.detach(), *grads(q, k, v, g, h0)])
    for name, a, b in zip(["o", "final", "dq", "dk", "dv", "dg", "dh0"], *outs, strict=True):
        assert_close(name, a, b, FP32_TOL)


@pytest.mark.gpu
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128)])
@pytest.mark.parametrize("read_out", [False, True])  # True: per-head norm and gate fused into the step
@pytest.mark.parametrize("B", [1, 64])
def test_step_full_shape_gpu(K, V, read_out, B):
    dev = torch.device("cuda")
    H = 16
    q, k, v = torch.randn(B, H, K, device=dev), torch.randn(B, H, K, device=dev), torch.randn(B, H, V, device=dev)
    g = F.logsigmoid(torch.randn(B, H, K, device=dev))
    s = torch.randn(B, H, K, V, device=dev)
    s_ref = s.clone()
    nw, gz = (torch.rand(H * V, device=dev) + 0.5, torch.randn(B, H * V, device=dev)) if read_out else (None, None)
    o = gla_step(q, k, v, g, s, impl="triton", norm_weight=nw, gate=gz)
    r = naive_gla_step(q, k, v, g, s_ref, 1.0, nw, gz)
    assert_close("o", o, r, FP32_TOL)
    assert_close("state", s, s_ref, FP32_TOL)


@pytest.mark.parametrize("norm,gate", [(True, True), (True, False), (False, True)])
def test_step_with_fused_read_out(norm, gate, device):
    """The step kernel with the mixer's read-out fused (per-head RMSNorm × weight, × sigmoid(gate)) equals the
    reference step followed by that read-out written out in torch; V = 20 leaves masked lanes in the norm."""
    B, H, K, V = 2, 3, 12, 20
    q, k, g = torch.randn(B, H, K, device=device), torch.randn(B, H, K, device=device), -torch.rand(B, H, K, device=device)
    v = torch.randn(B, H, V, device=device)
    nw = torch.rand(H * V, device=device) + 0.5 if norm else None
    gz = torch.randn(B, H * V, device=device) if gate else None
    s0 = torch.randn(B, H, K, V, device=device)
    s_tri, s_ref = s0.clone(), s0.clone()
    o = gla_step(q, k, v, g, s_tri, 0.7, impl="triton", norm_weight=nw, gate=gz, eps=1e-5)
    y = mixer_read_out(naive_gla_step(q, k, v, g, s_ref, 0.7), nw, gz)
    assert_close("o", o, y, FP32_TOL)
    assert_close("state", s_tri, s_ref, FP32_TOL)
    assert_close("naive fused", naive_gla_step(q, k, v, g, s0.clone(), 0.7, nw, gz, 1e-5), y, FP32_TOL)
    # the read-out in its own launch after the step (split): the same o and state
    from kernels.gla.triton_step import triton_gla_step

    s_split = s0.clone()
    assert_close("o split", triton_gla_step(q, k, v, g, s_split, 0.7, nw, gz, 1e-5, split=True), y, FP32_TOL)
    assert_close("state split", s_split, s_ref, FP32_TOL)
    with pytest.raises(ValueError, match="out"):
        triton_gla_step(q, k, v, g, s0.clone(), out=torch.empty(B, H, V + 1, device=device))


@pytest.mark.parametrize("K,split", [(64, False), (128, True)])
def test_step_read_out_split_by_default_at_k128(K, split, device, monkeypatch):
    """Left to choose (split=None), the GLA and delta-rule steps launch their read-out apart at K = 128 and fused
    below (kernels/NOTES.md 70); either way o and the state match the reference."""
    import kernels.delta_rule.triton_step as delta_mod
    import kernels.gla.triton_step as gla_mod
    from kernels.delta_rule import naive_delta_rule_step

    calls = []
    real = gla_mod.split_read_out
    spy = lambda *args, **kw: calls.append(1) or real(*args, **kw)  # noqa: E731
    monkeypatch.setattr(gla_mod, "split_read_out", spy)
    monkeypatch.setattr(delta_mod, "split_read_out", spy)
    B, H, V = 1, 2, 16
    q, k = torch.randn(B, H, K, device=device), torch.randn(B, H, K, device=device) / K**0.5
    g, v = -torch.rand(B, H, K, device=device) / 8, torch.randn(B, H, V, device=device)
    kk = F.normalize(torch.randn(B, H, K, device=device), dim=-1)
    nw, gz = torch.rand(H * V, device=device) + 0.5, torch.randn(B, H * V, device=device)
    s0 = torch.randn(B, H, K, V, device=device) / K
    s, s_ref = s0.clone(), s0.clone()
    assert_close("gla o", gla_mod.triton_gla_step(q, k, v, g, s, 0.7, nw, gz),
                 mixer_read_out(naive_gla_step(q, k, v, g, s_ref, 0.7), nw, gz), FP32_TOL)
    assert_close("gla state", s, s_ref, FP32_TOL)
    s, s_ref = s0.clone(), s0.clone()
    assert_close("delta o", delta_mod.triton_delta_rule_step(q, k, v, g, -kk, kk / 2, s, 0.7, None, nw, gz),
                 mixer_read_out(naive_delta_rule_step(q, k, v, g, -kk, kk / 2, s_ref, 0.7), nw, gz), FP32_TOL)
    assert_close("delta state", s, s_ref, FP32_TOL)
    assert len(calls) == (2 if split else 0)
    # out= holds o whichever way the read-out is launched
    y = torch.empty(B, H, V, device=device)
    got = gla_mod.triton_gla_step(q, k, v, g, s0.clone(), 0.7, nw, gz, out=y)
    assert got is y and torch.equal(y, gla_mod.triton_gla_step(q, k, v, g, s0.clone(), 0.7, nw, gz))


def test_step_read_out_shapes_are_checked(device):
    q = torch.randn(1, 2, 8, device=device)
    s = torch.zeros(1, 2, 8, 8, device=device)
    with pytest.raises(ValueError, match="norm_weight"):
        gla_step(q, q, q, -q.abs(), s, impl="triton", norm_weight=torch.ones(15, device=device))
    with pytest.raises(ValueError, match="gate"):
        gla_step(q, q, q, -q.abs(), s, impl="triton", gate=torch.ones(1, 15, device=device))
