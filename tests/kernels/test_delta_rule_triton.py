"""Triton generalized delta rule (fused-recurrent forward, decode step) against the fp32 step-by-step reference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _kernel_util import assert_close, grads, mixer_read_out

from kernels.delta_rule import delta_rule_step, naive_delta_rule_step, naive_recurrent_delta_rule
from kernels.delta_rule.triton_recurrent import triton_fused_recurrent_delta_rule

# fp32 everywhere in the kernels; the Triton walk and the reference only reorder sums (~1e-7). The
# gradients come from the chunked reference (the documented fallback), which also only reorders sums.
FP32_TOL = 1e-5
SCALE = 0.7


def _inputs(B, T, H, K, V, s0, device, dtype=torch.float32):
    """RWKV-7-like inputs: a = -κ̂, b = κ̂ ⊙ α (κ̂ unit norm, α ∈ (0, 1)), log-decay g ∈ [-0.5, 0): bounded state."""
    q = torch.randn(B, T, H, K, device=device).to(dtype).requires_grad_()
    k = (torch.randn(B, T, H, K, device=device) / K**0.5).to(dtype).requires_grad_()
    v = torch.randn(B, T, H, V, device=device).to(dtype).requires_grad_()
    g = -(torch.rand(B, T, H, K, device=device) * 0.499 + 1e-3)
    kk = F.normalize(torch.randn(B, T, H, K, device=device), dim=-1)
    alpha = torch.rand(B, T, H, K, device=device) * 0.98 + 0.01
    a, b = (-kk).to(dtype), (kk * alpha).to(dtype)
    h0 = torch.randn(B, H, K, V, device=device) if s0 else None
    return [t.requires_grad_() if t is not None and not t.requires_grad else t for t in (q, k, v, g, a, b, h0)]


def _check_grads(names, got, ref):
    for name, x, y in zip(names, got, ref, strict=True):
        if y.abs().max() == 0:
            # at T=1 with no initial state the old state is zero, so dg, da, db are exactly zero in the
            # recurrence; the chunked reference gets them as differences of equal terms (rounding only).
            assert x.abs().max() <= 1e-6, f"{name}: {x.abs().max():.2e} where the reference is exactly 0"
            continue
        assert_close(name, x, y, FP32_TOL)


@pytest.mark.parametrize("T", [1, 7, 33])
@pytest.mark.parametrize("s0", [False, True])
def test_recurrent_forward_backward(T, s0, device):
    B, H, K, V = 2, 2, 12, 20  # K, V not powers of two: masked tiles; V = 20 spans two V blocks (BV = 16)
    q, k, v, g, a, b, h0 = _inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    dhT = torch.randn(B, H, K, V, device=device)

    o, hT = triton_fused_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0, output_final_state=True)
    ((o * do).sum() + (hT * dhT).sum()).backward()
    tri = [o.detach(), hT.detach(), *grads(q, k, v, g, a, b, h0)]

    o, hT = naive_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0, output_final_state=True)
    ((o * do).sum() + (hT * dhT).sum()).backward()
    ref = [o.detach(), hT.detach(), *grads(q, k, v, g, a, b, h0)]

    names = ["o", "final", "dq", "dk", "dv", "dg", "da", "db"] + (["dh0"] if s0 else [])
    _check_grads(names, tri, ref)


@pytest.mark.parametrize("s0", [False, True])
def test_recurrent_without_final_state(s0, device):
    B, T, H, K, V = 1, 7, 3, 12, 20
    q, k, v, g, a, b, h0 = _inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    outs = []
    for fn in (triton_fused_recurrent_delta_rule, naive_recurrent_delta_rule):
        o, hT = fn(q, k, v, g, a, b, SCALE, h0, False)
        assert hT is None
        (o * do).sum().backward()
        outs.append([o.detach(), *grads(q, k, v, g, a, b, h0)])
    _check_grads(["o", "dq", "dk", "dv", "dg", "da", "db"] + (["dh0"] if s0 else []), *outs)


def test_recurrent_inference_does_not_track_gradients(device):
    q, k, v, g, a, b, h0 = _inputs(1, 5, 2, 12, 20, True, device)
    with torch.no_grad():
        o, hT = triton_fused_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert o.grad_fn is None and hT.grad_fn is None
    o_ref, h_ref = naive_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert_close("o", o, o_ref.detach(), FP32_TOL)
    assert_close("final", hT, h_ref.detach(), FP32_TOL)


@pytest.mark.parametrize("s0", [False, True])
def test_step_matches_reference_and_recurrent(s0, device):
    B, T, H, K, V = 2, 7, 3, 12, 20
    q, k, v, g, a, b, h0 = (t.detach() if t is not None else None for t in _inputs(B, T, H, K, V, s0, device))
    start = h0 if h0 is not None else torch.zeros(B, H, K, V, device=device)
    s_tri, s_ref = start.clone(), start.clone()
    outs = []
    for t in range(T):
        x = [y[:, t] for y in (q, k, v, g, a, b)]
        o = delta_rule_step(*x, s_tri, scale=SCALE, impl="triton")
        r = naive_delta_rule_step(*x, s_ref, scale=SCALE)
        assert_close(f"o[{t}]", o, r, FP32_TOL)
        assert_close(f"state[{t}]", s_tri, s_ref, FP32_TOL)
        outs.append(o)
    o_rec, h_rec = triton_fused_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert_close("step loop vs recurrent", torch.stack(outs, 1), o_rec, FP32_TOL)
    assert_close("step state vs recurrent", s_tri, h_rec, FP32_TOL)


@pytest.mark.parametrize("impl", ["triton", "naive"])
def test_step_on_transposed_state_matches_reference(impl, device):
    """``transposed_state``: the state held as Sᵀ ([B, H, V, K], K ≠ V here) steps to the transpose of the
    reference's, o into a NaN-filled ``out`` (every element written), both impls."""
    from kernels.delta_rule.triton_step import triton_delta_rule_step

    B, T, H, K, V = 2, 5, 3, 12, 20
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, V, True, device))
    s_t, s_ref = h0.transpose(-1, -2).contiguous(), h0.clone()
    for t in range(T):
        x = [y[:, t] for y in (q, k, v, g, a, b)]
        if impl == "triton":
            o = triton_delta_rule_step(*x, s_t, SCALE, out=torch.full((B, H, V), float("nan"), device=device),
                                       transposed_state=True)
        else:
            o = delta_rule_step(*x, s_t, scale=SCALE, impl=impl, transposed_state=True)
        assert_close(f"o[{t}]", o, naive_delta_rule_step(*x, s_ref, scale=SCALE), FP32_TOL)
        assert_close(f"state[{t}]", s_t.transpose(-1, -2), s_ref, FP32_TOL)
    with pytest.raises(ValueError, match=r"\[B, H, V, K\]"):  # a [K, V] state given as Sᵀ
        delta_rule_step(*x, h0.clone(), impl=impl, transposed_state=True)


@pytest.mark.parametrize("bonus,norm,gate", [(True, True, True), (False, True, False)])
@pytest.mark.parametrize("split", [False, True])
def test_step_on_transposed_state_with_read_out(bonus, norm, gate, split, device):
    from kernels.delta_rule.triton_step import triton_delta_rule_step

    B, H, K, V = 2, 3, 12, 20
    q, k, v, g, a, b, _ = (t[:, 0].detach() if t is not None else None for t in _inputs(B, 1, H, K, V, False, device))
    rk = torch.randn(H, K, device=device) if bonus else None
    nw = torch.rand(H * V, device=device) + 0.5 if norm else None
    gz = torch.randn(B, H * V, device=device) if gate else None
    s0 = torch.randn(B, H, K, V, device=device) / K
    s_t, s_ref = s0.transpose(-1, -2).contiguous(), s0.clone()
    o = triton_delta_rule_step(q, k, v, g, a, b, s_t, 0.7, rk, nw, gz, split=split, transposed_state=True)
    y = naive_delta_rule_step(q, k, v, g, a, b, s_ref, 0.7)
    if bonus:
        y = y + (q * k * rk).sum(-1, keepdim=True) * v
    assert_close("o", o, mixer_read_out(y, nw, gz), FP32_TOL)
    assert_close("state", s_t.transpose(-1, -2), s_ref, FP32_TOL)


def test_step_order_stores_last_only_on_deep_grids_and_still_matches(monkeypatch, device):
    """The delta rule's step sums in fla's order always and stores its state last once its grid is deep
    (``step_order``); SSD and GLA keep theirs. Forced on this small grid, the store-last step still matches."""
    import kernels.gla.triton_step as ts

    deep = ts._STORE_LAST_PROGRAMS
    assert ts.step_order(True, deep) == {"RANK_ONE_FIRST": True, "STORE_LAST": True}
    assert ts.step_order(True, deep - 1) == {"RANK_ONE_FIRST": True, "STORE_LAST": False}
    assert ts.step_order(False, 10 * deep) == {"RANK_ONE_FIRST": False, "STORE_LAST": False}
    monkeypatch.setattr(ts, "_STORE_LAST_PROGRAMS", 1)
    B, H, K, V = 2, 3, 12, 20
    q, k, v, g, a, b, _ = (t.detach()[:, 0] if t is not None else None for t in _inputs(B, 1, H, K, V, False, device))
    s = torch.randn(B, H, K, V, device=device)
    s_ref = s.clone()
    o = delta_rule_step(q, k, v, g, a, b, s, scale=SCALE, impl="triton")
    assert_close("o", o, naive_delta_rule_step(q, k, v, g, a, b, s_ref, scale=SCALE), FP32_TOL)
    assert_close("state", s, s_ref, FP32_TOL)


def test_step_rejects_bad_state(device):
    q, k, v, g, a, b = (torch.randn(1, 2, 8, device=device) for _ in range(6))
    with pytest.raises(ValueError, match="state"):
        delta_rule_step(q, k, v[..., :4], g, a, b, torch.zeros(1, 2, 8, 4, device=device, dtype=torch.float64), impl="triton")
    with pytest.raises(ValueError, match="b "):
        delta_rule_step(q, k, v, g, a, b[..., :4], torch.zeros(1, 2, 8, 8, device=device), impl="triton")


@pytest.mark.gpu
@pytest.mark.parametrize("B", [1, 64])
@pytest.mark.parametrize("K", [64, 128])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])  # bf16: o rounding ~4e-3
def test_recurrent_full_shape_gpu(B, K, dtype, tol):
    dev = torch.device("cuda")
    T, H = 256, 16
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, K, True, dev, dtype))
    o, hT = triton_fused_recurrent_delta_rule(q, k, v, g, a, b, K**-0.5, h0)
    o_ref, h_ref = naive_recurrent_delta_rule(*(t.float() for t in (q, k, v, g, a, b)), K**-0.5, h0)
    assert o.dtype == dtype
    assert_close("o", o, o_ref, tol)
    assert_close("final", hT, h_ref, tol)


@pytest.mark.gpu
def test_recurrent_backward_gpu():
    dev = torch.device("cuda")
    q, k, v, g, a, b, h0 = _inputs(1, 300, 2, 64, 64, True, dev)
    do, dhT = torch.randn(1, 300, 2, 64, device=dev), torch.randn(1, 2, 64, 64, device=dev)
    outs = []
    for fn in (triton_fused_recurrent_delta_rule, naive_recurrent_delta_rule):
        o, hT = fn(q, k, v, g, a, b, 0.125, h0)
        ((o * do).sum() + (hT * dhT).sum()).backward()
        outs.append([o.detach(), hT.detach(), *grads(q, k, v, g, a, b, h0)])
    _check_grads(["o", "final", "dq", "dk", "dv", "dg", "da", "db", "dh0"], *outs)


@pytest.mark.gpu
@pytest.mark.parametrize("B", [1, 64])
@pytest.mark.parametrize("K", [64, 128])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
@pytest.mark.parametrize("transposed", [False, True])
def test_step_full_shape_gpu(B, K, dtype, tol, transposed):
    dev = torch.device("cuda")
    H = 16
    q, k, v, g, a, b, _ = (t.detach()[:, 0] if t is not None else None for t in _inputs(B, 1, H, K, K, False, dev, dtype))
    s = torch.randn(B, H, K, K, device=dev)
    s_ref = s.clone()
    if transposed:  # Sᵀ: the state the step is given is the transpose of the reference's
        s_ref = s.transpose(-1, -2).contiguous()
    o = delta_rule_step(q, k, v, g, a, b, s, scale=K**-0.5, impl="triton", transposed_state=transposed)
    r = naive_delta_rule_step(*(t.float() for t in (q, k, v, g, a, b)), s_ref, scale=K**-0.5)
    assert o.dtype == dtype
    assert_close("o", o, r, tol)
    assert_close("state", s.transpose(-1, -2) if transposed else s, s_ref, tol)


@pytest.mark.parametrize("bonus,norm,gate", [(True, True, True), (True, False, False), (False, True, True)])
def test_step_with_fused_read_out(bonus, norm, gate, device):
    """RWKV-7's read-out fused into the step (bonus (q · (k ⊙ r_k)) v, per-head RMSNorm × weight, × sigmoid(gate))
    equals the reference step followed by the mixer's read-out written out in torch."""
    B, T, H, K, V = 2, 1, 3, 12, 20
    q, k, v, g, a, b, _ = (t[:, 0].detach() if t is not None else None for t in _inputs(B, T, H, K, V, False, device))
    rk = torch.randn(H, K, device=device) if bonus else None
    nw = torch.rand(H * V, device=device) + 0.5 if norm else None
    gz = torch.randn(B, H * V, device=device) if gate else None
    s0 = torch.randn(B, H, K, V, device=device) / K
    s_tri, s_ref = s0.clone(), s0.clone()
    o = delta_rule_step(q, k, v, g, a, b, s_tri, 0.7, impl="triton", bonus=rk, norm_weight=nw, gate=gz)
    y = naive_delta_rule_step(q, k, v, g, a, b, s_ref, 0.7)
    if bonus:
        y = y + (q * k * rk).sum(-1, keepdim=True) * v
    y = mixer_read_out(y, nw, gz)
    assert_close("o", o, y, FP32_TOL)
    assert_close("state", s_tri, s_ref, FP32_TOL)
    with pytest.raises(ValueError, match="bonus"):
        delta_rule_step(q, k, v, g, a, b, s0.clone(), impl="triton", bonus=torch.ones(H * K + 1, device=device))
    # the read-out in its own launch after the step (split): the same o and state
    from kernels.delta_rule.triton_step import triton_delta_rule_step

    s_split = s0.clone()
    o_split = triton_delta_rule_step(q, k, v, g, a, b, s_split, 0.7, rk, nw, gz, split=True)
    assert_close("o split", o_split, y, FP32_TOL)
    assert_close("state split", s_split, s_ref, FP32_TOL)
