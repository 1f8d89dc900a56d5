"""Chunked backward of the generalized delta rule: the written-out reference against autograd, and the Triton
kernels (:mod:`kernels.delta_rule.triton_chunk_bwd`) against autograd of the fp32 step-by-step reference.

Interpreter cases run inside guard bands with NaN-filled allocations (:class:`Guards`): the saved forward
intermediates, the state gradients, ``u``, ``dr``, the score gradients and every output start as NaN, so an
element the kernels fail to write shows. Shapes are tiny (the interpreter is slow); ``-m gpu`` runs full ones.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _kernel_util import Guards, assert_close, config_id, distinct, grads, only_configs, zipped

from kernels.delta_rule import naive_recurrent_delta_rule
from kernels.delta_rule import triton_chunk_bwd as bwd
from kernels.delta_rule.naive import naive_chunk_delta_rule_bwd
from kernels.delta_rule.triton_chunk import triton_chunk_delta_rule

# fp32: IEEE products in every kernel, the chunked form only reorders the recurrence's sums (seen ≤ 1e-6).
FP32_TOL = 1e-5
# bf16 inputs: q_eff, P, h and do are rounded to bf16 as in the forward; gradients rounded once to bf16.
BF16_TOL = 1e-2
SCALE = 0.7
NAMES = ("o", "final", "dq", "dk", "dv", "dg", "da", "db", "dh0")


def _inputs(B, T, H, K, V, s0, device, dtype=torch.float32, log_decay=(-0.6, -1e-3)):
    """RWKV-7-like inputs: a = −κ̂, b = κ̂ ⊙ α (κ̂ unit norm, α ∈ (0, 1)); fp32 log-decay g; all require grad."""
    lo, hi = log_decay
    q = torch.randn(B, T, H, K, device=device).to(dtype)
    k = (torch.randn(B, T, H, K, device=device) / K**0.5).to(dtype)
    v = torch.randn(B, T, H, V, device=device).to(dtype)
    g = lo + (hi - lo) * torch.rand(B, T, H, K, device=device)
    kk = F.normalize(torch.randn(B, T, H, K, device=device), dim=-1)
    alpha = torch.rand(B, T, H, K, device=device) * 0.98 + 0.01
    a, b = (-kk).to(dtype), (kk * alpha).to(dtype)
    h0 = torch.randn(B, H, K, V, device=device) if s0 else None
    return [t.requires_grad_() if t is not None else None for t in (q, k, v, g, a, b, h0)]


def _run(fn, inputs, do, dhT, output_final_state=True):
    q, k, v, g, a, b, h0 = inputs
    o, hT = fn(q, k, v, g, a, b, SCALE, h0, output_final_state)
    loss = (o.float() * do).sum() + ((hT * dhT).sum() if dhT is not None else 0.0)
    loss.backward()
    return [o.detach(), None if hT is None else hT.detach(), *grads(q, k, v, g, a, b, h0)]


def _compare(got, ref, tol, names=NAMES, looser=()):
    """Each output within ``tol``, those named in ``looser`` within 10 × ``tol``."""
    for name, x, y in zip(names, got, ref, strict=False):
        if y is None:
            assert x is None, f"{name}: expected None"
            continue
        if y.abs().max() == 0:  # T = 1 without h0: dg, da are exactly zero in the recurrence
            assert x.abs().max() <= 1e-6, f"{name}: {x.abs().max():.2e} where the reference is exactly 0"
            continue
        assert_close(name, x.float(), y, 10 * tol if name in looser else tol)


def _chunked(chunk_size):
    def fn(q, k, v, g, a, b, scale, h0, final):
        return triton_chunk_delta_rule(q, k, v, g, a, b, scale, h0, final, chunk_size)

    return fn


@pytest.mark.parametrize("chunk_size", [16, 32])
def test_written_out_reference_matches_autograd(chunk_size):
    """:func:`naive_chunk_delta_rule_bwd` (the kernels' algorithm in torch) against autograd of the recurrence."""
    inputs = _inputs(2, 45, 3, 12, 20, True, torch.device("cpu"))
    do, dhT = torch.randn(2, 45, 3, 20), torch.randn(2, 3, 12, 20)
    ref = _run(naive_recurrent_delta_rule, inputs, do, dhT)
    got = naive_chunk_delta_rule_bwd(*(t.detach() for t in inputs[:6]), do, dhT, SCALE, inputs[6].detach(), chunk_size)
    _compare(got, ref[2:], FP32_TOL, names=NAMES[2:])


@pytest.mark.parametrize("B,T,H,K,V,chunk_size,s0,final,with_dhT", [
    # one step: the chunk is padding but for its first row, the second sub-chunk padding only
    pytest.param(1, 1, 2, 12, 20, 32, True, True, True, id="T1-h0-dhT"),
    pytest.param(1, 1, 2, 12, 20, 32, False, True, False, id="T1-zero-state"),
    pytest.param(2, 37, 2, 12, 20, 32, True, True, True, id="T37-B2"),
    pytest.param(1, 32, 2, 12, 20, 32, False, False, False, id="T32-no-final"),
    # K = 20 is two K blocks and V = 40 three V blocks (16 wide under the interpreter)
    pytest.param(1, 45, 1, 20, 40, 32, True, True, True, id="K20-V40"),
    # 64-step chunks: four sub-chunks; T = 67 leaves the last chunk 3 steps (three sub-chunks padding only)
    pytest.param(1, 67, 2, 12, 20, 64, True, True, True, id="BT64-T67"),
    # 16-step chunks: one sub-chunk, so the UT transform is the diagonal block's inverse alone
    pytest.param(2, 37, 2, 12, 20, 16, True, True, True, id="BT16-T37"),
])
def test_backward_matches_reference(B, T, H, K, V, chunk_size, s0, final, with_dhT, device):
    inputs = _inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    dhT = torch.randn(B, H, K, V, device=device) if with_dhT else None
    guards = Guards()
    with guards.allocations():
        tri = _run(_chunked(chunk_size), inputs, do, dhT, final)
    guards.check("chunked forward + backward")
    ref = _run(naive_recurrent_delta_rule, inputs, do, dhT, final)
    _compare(tri, ref, FP32_TOL)


def test_strong_decay_backward_finite(device):
    """Log-decays near −5 (a chunk's cumulative decay below the fp32 range): no exp of a positive number in the
    backward either, so every gradient is finite and matches. ``dg`` is a difference of terms much larger than
    itself here (``q dq − b db − k dk``, summed over the chunk): autograd through the chunked reference is 2.7e-5
    from the recurrence on these inputs and the written-out reference 4.1e-5, hence its looser bound."""
    inputs = _inputs(1, 37, 2, 12, 20, True, device, log_decay=(-5.5, -4.5))
    do, dhT = torch.randn(1, 37, 2, 20, device=device), torch.randn(1, 2, 12, 20, device=device)
    tri = _run(_chunked(32), inputs, do, dhT)
    assert all(t.isfinite().all() for t in tri)
    _compare(tri, _run(naive_recurrent_delta_rule, inputs, do, dhT), FP32_TOL, looser=("dg",))


@pytest.mark.parametrize("chunk_size", [32, 64])
@pytest.mark.parametrize("regime", ["near_bound", "mixed"])
def test_diagonal_blocks_either_way(regime, chunk_size, device):
    """The diagonal sub-chunk blocks are products of factors referred to one row while a sub-chunk's decay range is
    at most FACTORED_RANGE, and pairwise decays past it. ``near_bound``: every sub-chunk spans 37-39 (factors near
    e^±39); ``mixed``: sub-chunks of log-decay −5 (range 80, pairwise) between ones of −0.3 (factored), forward and
    backward, against the recurrence."""
    B, T, H, K, V = 1, 83, 2, 12, 20
    inputs = _inputs(B, T, H, K, V, True, device)
    with torch.no_grad():
        if regime == "near_bound":
            g = -2.4 + 0.05 * torch.rand(B, T, H, K, device=device)
            assert 16 * 2.4 - 1 < -(16 * g.min()) <= bwd.FACTORED_RANGE
        else:
            strong = (torch.arange(T, device=device) // 16) % 2 == 1
            g = torch.where(strong[None, :, None, None], -5.0, -0.3) + 0.01 * torch.rand(B, T, H, K, device=device)
        inputs[3] = g.requires_grad_()
    do, dhT = torch.randn(B, T, H, V, device=device), torch.randn(B, H, K, V, device=device)
    tri = _run(_chunked(chunk_size), inputs, do, dhT)
    assert all(t.isfinite().all() for t in tri)
    _compare(tri, _run(naive_recurrent_delta_rule, inputs, do, dhT), FP32_TOL, looser=("dg",))


@pytest.mark.parametrize("chunk_size", [16, 32, 64])
@pytest.mark.parametrize("regime", ["weak", "alternate_chunks", "strong"])
def test_fused_scores(regime, chunk_size, device):
    """``fuse_scores``: the solve forms a chunk's scores itself (whole-chunk products, the inverse in registers)
    when the chunk's decay range is within FACTORED_RANGE, and reads the scores kernel's otherwise. ``weak``: every
    chunk formed in the solve; ``alternate_chunks``: every other chunk at log-decay −5 (range ≥ 80, split path);
    ``strong``: none formed. Forward and backward against the recurrence."""
    B, T, H, K, V = 2, 83, 2, 12, 20
    inputs = _inputs(B, T, H, K, V, True, device)
    if regime != "weak":
        with torch.no_grad():
            strong = (torch.arange(T, device=device) // chunk_size) % 2 == 1
            if regime == "strong":
                strong |= True
            g = torch.where(strong[None, :, None, None], -5.0, -0.3) + 0.01 * torch.rand(B, T, H, K, device=device)
        inputs[3] = g.requires_grad_()
    do, dhT = torch.randn(B, T, H, V, device=device), torch.randn(B, H, K, V, device=device)

    def fused(q, k, v, g, a, b, scale, h0, final):
        return triton_chunk_delta_rule(q, k, v, g, a, b, scale, h0, final, chunk_size, fuse_scores=True)

    tri = _run(fused, inputs, do, dhT)
    _compare(tri, _run(naive_recurrent_delta_rule, inputs, do, dhT), FP32_TOL, looser=("dg",))


@pytest.mark.gpu
def test_backward_bf16_dtypes_gpu():
    """bf16 q, k, v, a, b (fp32 g and h0): each gradient in its input's dtype, against the fp32 reference on the
    same (bf16-valued) inputs. GPU only: the interpreter's bf16 products are not a GPU's (the forward's are off)."""
    device = torch.device("cuda")
    inputs = _inputs(1, 37, 2, 12, 20, True, device, torch.bfloat16)
    do, dhT = torch.randn(1, 37, 2, 20, device=device), torch.randn(1, 2, 12, 20, device=device)
    tri = _run(_chunked(32), inputs, do, dhT)
    assert [t.dtype for t in tri] == [torch.bfloat16, torch.float32, *(t.dtype for t in inputs)]
    ref_in = [t.detach().float().requires_grad_() for t in inputs]
    _compare(tri, _run(naive_recurrent_delta_rule, ref_in, do, dhT), BF16_TOL)


def test_reference_backward_kept(device):
    """``triton_backward=False`` still recomputes through the reference; both backward passes agree."""
    inputs = _inputs(1, 20, 2, 12, 20, True, device)
    do, dhT = torch.randn(1, 20, 2, 20, device=device), torch.randn(1, 2, 12, 20, device=device)

    def reference_path(q, k, v, g, a, b, scale, h0, final):
        return triton_chunk_delta_rule(q, k, v, g, a, b, scale, h0, final, 32, triton_backward=False)

    _compare(_run(_chunked(32), inputs, do, dhT), _run(reference_path, inputs, do, dhT), FP32_TOL)


def test_only_what_is_tracked(device):
    """Without a gradient to track nothing is kept (the plain forward runs); inputs not requiring grad get None."""
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(1, 5, 1, 12, 16, True, device))
    o1, h1 = triton_chunk_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert o1.grad_fn is None and h1.grad_fn is None
    v.requires_grad_()
    o2, h2 = triton_chunk_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert torch.equal(o1, o2) and torch.equal(h1, h2)
    (dv,) = torch.autograd.grad(o2.sum(), (v,))
    assert torch.isfinite(dv).all() and q.grad is None and h0.grad is None


def test_gpu_configs_by_precision():
    """fp32 launches take their one config per kernel (unpipelined), 16-bit ones the tensor-core configs; the walk's
    ``[K, BV]`` fp32 gradient tile stays within 8K elements."""
    for kernel in ("dstates", "bwd_v", "bwd_k"):
        configs = bwd._gpu_configs(kernel, False) + bwd._gpu_configs(kernel, True)
        prune = bwd._by_precision(kernel)
        fp32 = prune(configs, {}, IS_FP32=True, BK=64)
        assert [(c.kwargs, c.num_warps, c.num_stages) for c in fp32] == [(*bwd._TILES[kernel][1], 1)], kernel
        assert len(prune(configs, {}, IS_FP32=False, BK=64)) == len(bwd._TILES[kernel][0]), kernel
    configs = bwd._gpu_configs("dstates", False)
    assert {c.kwargs["BV"] for c in bwd._by_precision("dstates")(configs + configs[:1], {}, IS_FP32=False, BK=256)} == {16, 32}


def _gpu_runs():
    """pytest params (one forward + backward each): every distinct GPU config of every backward kernel
    (:func:`zipped`), each set at both chunk lengths."""
    names = ("dstates", "bwd_v", "bwd_k")
    kernels = [getattr(bwd, f"_delta_rule_chunk_{name}") for name in names]
    configs = [distinct(bwd._gpu_configs(name, False) + bwd._gpu_configs(name, True)) for name in names]
    runs = [list(zip(kernels, cfgs, strict=True)) for cfgs in zipped(*configs)]
    return [pytest.param(run, bt, id="_".join(config_id(c) for _, c in run) + f"_BT{bt}") for run in runs for bt in (16, 32, 64)]


@pytest.mark.parametrize("run,chunk_size", _gpu_runs())
def test_every_gpu_config_in_bounds(run, chunk_size):
    """Each GPU config of each backward kernel, in the interpreter (fp32) through the real wrapper at a shape where
    every tile is partial (K = 72, V = 80, last chunk 3 steps), all buffers in NaN guard bands."""
    dev = torch.device("cpu")
    B, H, K, V = 1, 2, 72, 80
    T = 2 * chunk_size + 3
    inputs = _inputs(B, T, H, K, V, True, dev)
    do, dhT = torch.randn(B, T, H, V), torch.randn(B, H, K, V)
    ref = _run(naive_recurrent_delta_rule, inputs, do, dhT)
    guards = Guards()
    with guards.allocations(), only_configs(*run):
        tri = _run(_chunked(chunk_size), inputs, do, dhT)
    guards.check(", ".join(f"{kernel.base_fn.__name__} {cfg.kwargs}" for kernel, cfg in run))
    _compare(tri, ref, FP32_TOL)


@pytest.mark.gpu
# B = 1 first: the first launch of each key autotunes, rerunning every kernel on the same buffers (a kernel that
# overwrote what it read showed only there)
@pytest.mark.parametrize("B,T,H", [(1, 500, 4), (4, 203, 8)])
@pytest.mark.parametrize("K,V", [(64, 64), (128, 128)])
@pytest.mark.parametrize("chunk_size", [32, 64, 16])
@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, BF16_TOL), (torch.float32, FP32_TOL)])
def test_backward_full_shape_gpu(B, T, H, K, V, chunk_size, dtype, tol):
    dev = torch.device("cuda")
    inputs = _inputs(B, T, H, K, V, True, dev, dtype)
    do, dhT = torch.randn(B, T, H, V, device=dev), torch.randn(B, H, K, V, device=dev)
    tri = _run(_chunked(chunk_size), inputs, do, dhT)
    ref_in = [t.detach().float().requires_grad_() for t in inputs]
    _compare(tri, _run(naive_recurrent_delta_rule, ref_in, do, dhT), tol)


@pytest.mark.gpu
@pytest.mark.parametrize("B,T,H,K", [(1, 500, 4, 64), (4, 203, 8, 128)])
@pytest.mark.parametrize("chunk_size", [16, 32, 64])
@pytest.mark.parametrize("dtype,tol", [(torch.bfloat16, BF16_TOL), (torch.float32, FP32_TOL)])
def test_fused_scores_full_shape_gpu(B, T, H, K, chunk_size, dtype, tol):
    """``fuse_scores`` at full shapes, every config autotuned: forward and backward (tf32 whole-chunk products for
    bf16 inputs, IEEE for fp32)."""
    dev = torch.device("cuda")
    inputs = _inputs(B, T, H, K, K, True, dev, dtype)
    do, dhT = torch.randn(B, T, H, K, device=dev), torch.randn(B, H, K, K, device=dev)

    def fused(q, k, v, g, a, b, scale, h0, final):
        return triton_chunk_delta_rule(q, k, v, g, a, b, scale, h0, final, chunk_size, fuse_scores=True)

    tri = _run(fused, inputs, do, dhT)
    ref_in = [t.detach().float().requires_grad_() for t in inputs]
    _compare(tri, _run(naive_recurrent_delta_rule, ref_in, do, dhT), tol)
