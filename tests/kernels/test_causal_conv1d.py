"""Triton causal conv1d (forward, backward, streaming update) against the fp32 reference."""

from __future__ import annotations

import pytest
import torch
from _kernel_util import assert_close, grads

from kernels.causal_conv1d import causal_conv1d, causal_conv1d_update, naive_causal_conv1d, naive_causal_conv1d_update

# fp32 end to end; only the summation order differs from F.conv1d, so ~1e-7 is expected.
FP32_TOL = 1e-5


def _inputs(B, T, C, W, bias, s0, device, dtype=torch.float32):
    x = torch.randn(B, T, C, device=device, dtype=dtype, requires_grad=True)
    w = (torch.randn(C, W, device=device) / W).requires_grad_()
    b = torch.randn(C, device=device, requires_grad=True) if bias else None
    h0 = torch.randn(B, C, W - 1, device=device, dtype=dtype, requires_grad=True) if s0 else None
    return x, w, b, h0


@pytest.mark.parametrize("T", [1, 2, 7, 65])
@pytest.mark.parametrize("act", [None, "silu"])
@pytest.mark.parametrize("s0", [False, True])
def test_conv_forward_backward(T, act, s0, device):
    B, C, W = 2, 24, 4
    x, w, b, h0 = _inputs(B, T, C, W, bias=True, s0=s0, device=device)
    dy = torch.randn(B, T, C, device=device)
    dfin = torch.randn(B, C, W - 1, device=device)

    y, fin = causal_conv1d(x, w, b, h0, act, output_final_state=True, impl="triton")
    ((y * dy).sum() + (fin * dfin).sum()).backward()
    tri = [y.detach(), fin.detach(), *grads(x, w, b, h0)]

    y, fin = naive_causal_conv1d(x, w, b, h0, act, output_final_state=True)
    ((y * dy).sum() + (fin * dfin).sum()).backward()
    ref = [y.detach(), fin.detach(), *grads(x, w, b, h0)]

    names = ["y", "final", "dx", "dweight", "dbias"] + (["dinitial_state"] if s0 else [])
    for name, o, r in zip(names, tri, ref, strict=True):
        assert_close(name, o, r, FP32_TOL)


def test_conv_no_bias_no_final(device):
    x, w, _, h0 = _inputs(1, 5, 7, 3, bias=False, s0=True, device=device)
    y, fin = causal_conv1d(x, w, None, h0, "silu", output_final_state=False, impl="triton")
    assert fin is None
    dy = torch.randn_like(y)
    (y * dy).sum().backward()
    tri = [y.detach(), *grads(x, w, h0)]
    y, _ = naive_causal_conv1d(x, w, None, h0, "silu", output_final_state=False)
    (y * dy).sum().backward()
    ref = [y.detach(), *grads(x, w, h0)]
    for name, o, r in zip(["y", "dx", "dweight", "dinitial_state"], tri, ref, strict=True):
        assert_close(name, o, r, FP32_TOL)


@pytest.mark.parametrize("act", [None, "silu"])
def test_conv_update_matches_reference_and_sequence(act, device):
    B, C, W, T = 3, 40, 4, 6
    x, w, b, h0 = _inputs(B, T, C, W, bias=True, s0=True, device=device)
    x, w, b, h0 = x.detach(), w.detach(), b.detach(), h0.detach()
    s_tri, s_ref = h0.clone(), h0.clone()
    outs = []
    for t in range(T):
        o = causal_conv1d_update(x[:, t], s_tri, w, b, act, impl="triton")
        r = naive_causal_conv1d_update(x[:, t], s_ref, w, b, act)
        assert_close(f"y[{t}]", o, r, FP32_TOL)
        # The state is a copy of inputs: exact.
        assert torch.equal(s_tri, s_ref), f"state differs after step {t}"
        outs.append(o)
    # The streaming loop equals the whole-sequence op.
    y_seq, fin = naive_causal_conv1d(x, w, b, h0, act)
    assert_close("stream vs sequence", torch.stack(outs, 1), y_seq, FP32_TOL)
    assert torch.equal(s_tri, fin)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])  # bf16: storage rounding of y/dx
def test_conv_full_shape_gpu(dtype, tol):
    dev = torch.device("cuda")
    B, T, C, W = 4, 2048, 3 * 1024 + 64, 4
    x, w, b, h0 = _inputs(B, T, C, W, bias=True, s0=True, device=dev, dtype=dtype)
    dy = torch.randn(B, T, C, device=dev, dtype=dtype)
    y, fin = causal_conv1d(x, w, b, h0, "silu", impl="triton")
    (y.float() * dy.float()).sum().backward()
    tri = [y.detach(), fin.detach(), *grads(x, w, b, h0)]
    xr, h0r = x.detach().float().requires_grad_(), h0.detach().float().requires_grad_()
    y, fin = naive_causal_conv1d(xr, w, b, h0r, "silu")
    (y * dy.float()).sum().backward()
    ref = [y.detach(), fin.detach(), *grads(xr, w, b, h0r)]
    for name, o, r in zip(["y", "final", "dx", "dweight", "dbias", "dinitial_state"], tri, ref, strict=True):
        assert_close(name, o, r, tol)
