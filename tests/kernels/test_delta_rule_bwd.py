"""Triton backward of the fused-recurrent delta rule against autograd of the fp32 step-by-step reference.

Every interpreter case runs inside guard bands with NaN-filled allocations (:class:`Guards`): the checkpoints,
the scratch, the partial K-vector gradients and every output start as NaN, so an element the kernels fail to
write shows. The checkpoint interval is patched down (``C = 4``) in most cases so that short sequences still
walk several segments, a last partial one, and T a multiple of C; one case keeps the default interval.
The interpreter is slow (~10 ms a program-step), so the shapes are tiny; ``-m gpu`` runs full shapes.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _kernel_util import Guards, assert_close, grads

from kernels.delta_rule import naive_recurrent_delta_rule
from kernels.delta_rule import triton_recurrent_bwd as bwd
from kernels.delta_rule.triton_recurrent import triton_fused_recurrent_delta_rule

# fp32 throughout the kernels; the walk only reorders the reference's sums (seen ≤ 1e-6, most ≤ 3e-7).
FP32_TOL = 1e-5
# bf16 outputs and gradients are rounded once from fp32 (a bf16 ulp is 3.9e-3 relative): seen ≤ 3.7e-3.
BF16_TOL = 1e-2
SCALE = 0.7
NAMES = ("o", "final", "dq", "dk", "dv", "dg", "da", "db", "dh0")


def _inputs(B, T, H, K, V, s0, device, dtype=torch.float32):
    """RWKV-7-like inputs: a = −κ̂, b = κ̂ ⊙ α (κ̂ unit norm, α ∈ (0, 1)), log-decay g ∈ (−0.6, 0): bounded state.
    g stays fp32 (the mixers keep the decay in fp32); every tensor requires grad."""
    q = torch.randn(B, T, H, K, device=device).to(dtype)
    k = (torch.randn(B, T, H, K, device=device) / K**0.5).to(dtype)
    v = torch.randn(B, T, H, V, device=device).to(dtype)
    g = -(torch.rand(B, T, H, K, device=device) * 0.599 + 1e-3)
    kk = F.normalize(torch.randn(B, T, H, K, device=device), dim=-1)
    alpha = torch.rand(B, T, H, K, device=device) * 0.98 + 0.01
    a, b = (-kk).to(dtype), (kk * alpha).to(dtype)
    h0 = torch.randn(B, H, K, V, device=device) if s0 else None
    return [t.requires_grad_() if t is not None else None for t in (q, k, v, g, a, b, h0)]


def _run(fn, inputs, do, dhT, output_final_state):
    """o, final state (or None) and every input gradient; the loss takes the final state only when dhT is given."""
    q, k, v, g, a, b, h0 = inputs
    o, hT = fn(q, k, v, g, a, b, SCALE, h0, output_final_state)
    assert (hT is None) == (not output_final_state)
    loss = (o.float() * do).sum() + ((hT * dhT).sum() if dhT is not None else 0.0)
    loss.backward()
    return [o.detach(), None if hT is None else hT.detach(), *grads(q, k, v, g, a, b, h0)]


def _compare(got, ref, tol, names=NAMES):
    for name, x, y in zip(names, got, ref, strict=False):
        if y is None:
            assert x is None, f"{name}: expected None"
            continue
        assert x.dtype == y.dtype, f"{name}: dtype {x.dtype} != {y.dtype}"
        if y.abs().max() == 0:
            # at T = 1 without h0 the old state is zero: dg, da are exactly zero in the recurrence
            assert x.abs().max() == 0, f"{name}: {x.abs().max():.2e} where the reference is exactly 0"
            continue
        assert_close(name, x, y, tol)


@pytest.mark.parametrize("B,T,H,K,V,C,s0,final,with_dhT", [
    # the brief's odd shape at the default interval (16): 3 segments, the last of 5 steps; V = 20 is 2 V blocks
    pytest.param(1, 37, 2, 20, 20, None, True, True, True, id="T37-default-C-h0-dhT"),
    pytest.param(1, 13, 2, 20, 20, 4, False, False, False, id="T13-no-final"),
    pytest.param(1, 13, 2, 20, 20, 4, True, True, False, id="T13-h0-final-unused"),
    pytest.param(1, 16, 2, 20, 20, 4, False, True, True, id="T16-multiple-of-C-dhT"),
    pytest.param(1, 1, 2, 20, 20, 4, True, True, True, id="T1-h0-dhT"),
    pytest.param(1, 1, 2, 20, 20, 4, False, True, False, id="T1-zero-state"),
    # V = 40 is 3 V blocks (the last of 8 columns), K = 12 a 16-wide tile with 4 masked rows; two batches
    pytest.param(2, 9, 1, 12, 40, 4, True, True, True, id="V40-3-blocks-B2"),
])
def test_backward_matches_reference(B, T, H, K, V, C, s0, final, with_dhT, device, monkeypatch):
    if C is not None:
        monkeypatch.setattr(bwd, "checkpoint_interval", lambda T: C)
    inputs = _inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    dhT = torch.randn(B, H, K, V, device=device) if with_dhT else None
    guards = Guards()
    with guards.allocations():
        tri = _run(triton_fused_recurrent_delta_rule, inputs, do, dhT, final)
    guards.check("fused-recurrent forward + backward")
    ref = _run(naive_recurrent_delta_rule, inputs, do, dhT, final)
    _compare(tri, ref, FP32_TOL)


def test_backward_bf16(device, monkeypatch):
    """bf16 q, k, v, a, b (fp32 g and h0): fp32 inside, each gradient in its input's dtype, against the fp32
    reference on the same (bf16-valued) inputs."""
    monkeypatch.setattr(bwd, "checkpoint_interval", lambda T: 4)
    B, T, H, K, V = 1, 11, 2, 20, 20
    inputs = _inputs(B, T, H, K, V, True, device, torch.bfloat16)
    do, dhT = torch.randn(B, T, H, V, device=device), torch.randn(B, H, K, V, device=device)
    tri = _run(triton_fused_recurrent_delta_rule, inputs, do, dhT, True)
    assert [t.dtype for t in tri] == [torch.bfloat16, torch.float32, *(t.dtype for t in inputs)]
    ref_in = [t.detach().float().requires_grad_() for t in inputs]
    ref = _run(naive_recurrent_delta_rule, ref_in, do, dhT, True)
    _compare([t.float() for t in tri], ref, BF16_TOL)


def test_bwd_function_recomputes_checkpoints(device):
    """Called without autograd and without the forward's checkpoints, the backward recomputes them (one forward
    launch); T = 10 is shorter than the default interval (one partial segment). No dh0 without an initial state."""
    B, T, H, K, V = 1, 10, 2, 20, 20
    q, k, v, g, a, b, _ = _inputs(B, T, H, K, V, False, device)
    do, dhT = torch.randn(B, T, H, V, device=device), torch.randn(B, H, K, V, device=device)
    ref = _run(naive_recurrent_delta_rule, (q, k, v, g, a, b, None), do, dhT, True)
    with torch.no_grad():
        got = bwd.fused_recurrent_delta_rule_bwd(q, k, v, g, a, b, SCALE, None, do, dhT)
    assert got[-1] is None
    _compare(got[:-1], ref[2:], FP32_TOL, names=NAMES[2:])


def test_reference_backward_kept(device):
    """``triton_backward=False`` still recomputes through the reference; both backward passes agree."""
    inputs = _inputs(1, 9, 2, 20, 20, True, device)
    do, dhT = torch.randn(1, 9, 2, 20, device=device), torch.randn(1, 2, 20, 20, device=device)

    def reference_path(*args):
        return triton_fused_recurrent_delta_rule(*args, triton_backward=False)

    tri = _run(triton_fused_recurrent_delta_rule, inputs, do, dhT, True)
    ref = _run(reference_path, inputs, do, dhT, True)
    _compare(tri, ref, FP32_TOL)


def test_only_what_is_tracked(device):
    """Without a gradient to track nothing is checkpointed (the plain forward runs); with one, inputs that do
    not require grad get None."""
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(1, 5, 1, 12, 16, True, device))
    o1, h1 = triton_fused_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert o1.grad_fn is None and h1.grad_fn is None
    v.requires_grad_()
    o2, h2 = triton_fused_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert torch.equal(o1, o2) and torch.equal(h1, h2)
    (dv,) = torch.autograd.grad(o2.sum(), (v,))
    assert torch.isfinite(dv).all() and q.grad is None and h0.grad is None


def test_gpu_launch_choices_stay_within_registers():
    """The GPU tiles the wrapper and the pruning can pick are those that compiled for sm_90 without spills
    (the table in ``triton_recurrent_bwd._configs``): 4 warps up to 2048 tile elements, 8 warps up to 4096."""
    configs = bwd._configs(interpreted=False)
    for K in (20, 64, 128, 256):
        for BH in (1, 16, 4096):
            BV = bwd._block_v(BH, K, 128, interpreted=False)
            BK = max(16, 1 << (K - 1).bit_length())
            warps = {c.num_warps for c in bwd._prune(configs, {}, BK=BK, BV=BV)}
            assert BK * BV <= 4096 and warps == ({4, 8} if BK * BV <= 2048 else {8}), (K, BH, BV, warps)
    assert bwd._block_v(4096, 128, 128, interpreted=False) == 32 and bwd._block_v(16, 128, 128, interpreted=False) == 16


@pytest.mark.gpu
@pytest.mark.parametrize("B,T", [(1, 1000), (64, 200)])  # B = 64 (H = 4, V ≥ 64): 32-wide V blocks
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128)])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, FP32_TOL), (torch.bfloat16, BF16_TOL)])
def test_backward_full_shape_gpu(B, T, K, V, dtype, tol):
    dev = torch.device("cuda")
    H = 4
    inputs = _inputs(B, T, H, K, V, True, dev, dtype)
    do, dhT = torch.randn(B, T, H, V, device=dev), torch.randn(B, H, K, V, device=dev)
    tri = _run(triton_fused_recurrent_delta_rule, inputs, do, dhT, True)
    ref_in = [t.detach().float().requires_grad_() for t in inputs]
    ref = _run(naive_recurrent_delta_rule, ref_in, do, dhT, True)
    _compare([t.float() for t in tri], ref, tol)


@pytest.mark.gpu
def test_backward_largest_k_gpu():
    """K = 256 (MAX_K): the largest tiles the walk holds, no final-state gradient."""
    dev = torch.device("cuda")
    inputs = _inputs(2, 300, 2, 256, 64, True, dev)
    do = torch.randn(2, 300, 2, 64, device=dev)
    tri = _run(triton_fused_recurrent_delta_rule, inputs, do, None, False)
    ref = _run(naive_recurrent_delta_rule, inputs, do, None, False)
    _compare(tri, ref, FP32_TOL)
