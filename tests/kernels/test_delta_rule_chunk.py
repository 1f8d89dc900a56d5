"""Chunked (UT-transform) Triton forward of the generalized delta rule against the fp32 step-by-step reference."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from _kernel_util import Guards, assert_close, config_id, distinct, gpu_launch_choices, grads, only_configs, zipped

from kernels._dispatch import next_power_of_2
from kernels.delta_rule import naive_delta_rule_step, naive_recurrent_delta_rule
from kernels.delta_rule import triton_chunk as chunk
from kernels.delta_rule.triton_chunk import chunk_delta_rule_fwd, triton_chunk_delta_rule

# fp32 inputs take IEEE fp32 products in every kernel: the chunked form only reorders sums against the
# recurrence (seen ≤ 5e-7). The gradients come from the chunked reference (the documented fallback), which
# also only reorders sums.
FP32_TOL = 1e-5
SCALE = 0.7
BT = 32  # the default chunk


def _inputs(B, T, H, K, V, s0, device, dtype=torch.float32, log_decay=(-0.5, -1e-3)):
    """RWKV-7-like inputs: a = -κ̂, b = κ̂ ⊙ α (κ̂ unit norm, α ∈ (0, 1)), log-decay g uniform in ``log_decay``."""
    lo, hi = log_decay
    q = torch.randn(B, T, H, K, device=device).to(dtype).requires_grad_()
    k = (torch.randn(B, T, H, K, device=device) / K**0.5).to(dtype).requires_grad_()
    v = torch.randn(B, T, H, V, device=device).to(dtype).requires_grad_()
    g = (lo + (hi - lo) * torch.rand(B, T, H, K, device=device)).requires_grad_()
    kk = F.normalize(torch.randn(B, T, H, K, device=device), dim=-1)
    alpha = torch.rand(B, T, H, K, device=device) * 0.98 + 0.01
    a, b = (-kk).to(dtype).requires_grad_(), (kk * alpha).to(dtype).requires_grad_()
    h0 = torch.randn(B, H, K, V, device=device).requires_grad_() if s0 else None
    return q, k, v, g, a, b, h0


def _run(fn, inputs, do, dhT):
    """(o, final state or nothing, then every input gradient) of ``sum(o·do) + sum(hT·dhT)`` through ``fn``."""
    q, k, v, g, a, b, h0 = inputs
    o, hT = fn(q, k, v, g, a, b, SCALE, h0, dhT is not None)
    loss = (o * do).sum() + ((hT * dhT).sum() if dhT is not None else 0.0)
    loss.backward()
    return [o.detach(), *([hT.detach()] if dhT is not None else []), *grads(*inputs)]


def _check_all(names, got, ref, tol=FP32_TOL):
    for name, x, y in zip(names, got, ref, strict=True):
        if y.abs().max() == 0:
            # at T=1 with no initial state the old state is zero, so dg, da, db are exactly zero in the
            # recurrence; the chunked reference gets them as differences of equal terms (rounding only).
            assert x.abs().max() <= 1e-6, f"{name}: {x.abs().max():.2e} where the reference is exactly 0"
            continue
        assert_close(name, x, y, tol)


def _names(with_final: bool, s0: bool) -> list[str]:
    return ["o", *(["final"] if with_final else []), "dq", "dk", "dv", "dg", "da", "db", *(["dh0"] if s0 else [])]


@pytest.mark.parametrize("T", [1, 7, BT, BT + 1, 2 * BT + 3])
@pytest.mark.parametrize("s0", [False, True])
def test_forward_backward(T, s0, device):
    B, H, K, V = 2, 2, 12, 20  # K, V not powers of two: masked tiles; V = 20 spans two V blocks (BV = 16)
    inputs = _inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    dhT = torch.randn(B, H, K, V, device=device)
    got = _run(triton_chunk_delta_rule, inputs, do, dhT)
    ref = _run(naive_recurrent_delta_rule, inputs, do, dhT)
    _check_all(_names(True, s0), got, ref)


@pytest.mark.parametrize("T", [64, 2 * 64 + 3])
def test_chunk_64(T, device):
    """64-step chunks: four sub-chunks, so the UT transform takes the (I + X)(I + X²) path."""
    B, H, K, V = 1, 2, 12, 20
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, V, True, device))
    o, hT = chunk_delta_rule_fwd(q, k, v, g, a, b, SCALE, h0, True, chunk_size=64)
    o_ref, h_ref = naive_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert_close("o", o, o_ref, FP32_TOL)
    assert_close("final", hT, h_ref, FP32_TOL)


def test_several_blocks(device):
    """K = 20 takes two K blocks and V = 40 three V blocks under the interpreter (16 wide)."""
    B, T, H, K, V = 1, BT + 5, 2, 20, 40
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, V, True, device))
    o, hT = chunk_delta_rule_fwd(q, k, v, g, a, b, SCALE, h0)
    o_ref, h_ref = naive_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert_close("o", o, o_ref, FP32_TOL)
    assert_close("final", hT, h_ref, FP32_TOL)


@pytest.mark.parametrize("s0", [False, True])
def test_without_final_state(s0, device):
    B, T, H, K, V = 1, 9, 2, 12, 20
    inputs = _inputs(B, T, H, K, V, s0, device)
    do = torch.randn(B, T, H, V, device=device)
    got = _run(triton_chunk_delta_rule, inputs, do, None)
    ref = _run(naive_recurrent_delta_rule, inputs, do, None)
    with torch.no_grad():
        assert triton_chunk_delta_rule(*inputs[:6], SCALE, inputs[6], False)[1] is None
    _check_all(_names(False, s0), got, ref)


def test_inference_does_not_track_gradients(device):
    q, k, v, g, a, b, h0 = _inputs(1, 5, 2, 12, 20, True, device)
    with torch.no_grad():
        o, hT = triton_chunk_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert o.grad_fn is None and hT.grad_fn is None
    o_ref, h_ref = naive_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert_close("o", o, o_ref.detach(), FP32_TOL)
    assert_close("final", hT, h_ref.detach(), FP32_TOL)


def test_strong_decay_stays_finite(device):
    """Log-decays near -5 (a chunk's cumulative decay reaches e^-160 < the fp32 range): every factor the
    kernels exponentiate is ≤ 0, so nothing overflows and the outputs match the recurrence."""
    B, T, H, K, V = 1, BT + 3, 2, 12, 20
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, V, True, device, log_decay=(-5.5, -4.5)))
    o, hT = chunk_delta_rule_fwd(q, k, v, g, a, b, SCALE, h0)
    assert o.isfinite().all() and hT.isfinite().all()
    o_ref, h_ref = naive_recurrent_delta_rule(q, k, v, g, a, b, SCALE, h0)
    assert_close("o", o, o_ref, FP32_TOL)
    assert_close("final", hT, h_ref, FP32_TOL)


def test_prefill_then_step(device):
    """The chunked prefill's final state carries on with the decode step: same outputs as one chunked pass."""
    B, T, H, K, V = 1, BT + 2, 2, 12, 20
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, V, True, device))
    o_full, h_full = chunk_delta_rule_fwd(q, k, v, g, a, b, SCALE, h0)
    o_pre, state = chunk_delta_rule_fwd(*(x[:, : T - 1] for x in (q, k, v, g, a, b)), SCALE, h0)
    o_last = naive_delta_rule_step(*(x[:, T - 1] for x in (q, k, v, g, a, b)), state, SCALE)
    assert_close("prefill o", o_pre, o_full[:, : T - 1], FP32_TOL)
    assert_close("step o", o_last, o_full[:, T - 1], FP32_TOL)
    assert_close("state", state, h_full, FP32_TOL)


def test_rejects_bad_arguments(device):
    q, k, v, g, a, b, _ = (t.detach() for t in _inputs(1, 4, 1, 12, 20, True, device))
    with pytest.raises(ValueError, match="K=257"):
        big = torch.zeros(1, 4, 1, 257, device=device)
        chunk_delta_rule_fwd(big, big, v, big, big, big)
    with pytest.raises(ValueError, match="chunk_size=8"):
        chunk_delta_rule_fwd(q, k, v, g, a, b, chunk_size=8)
    with pytest.raises(ValueError, match="scores_skip_group=3"):
        chunk_delta_rule_fwd(q, k, v, g, a, b, scores_skip_group=3)
    with pytest.raises(ValueError, match="initial_state"):
        chunk_delta_rule_fwd(q, k, v, g, a, b, initial_state=torch.zeros(1, 1, 12, 21, device=device))
    with pytest.raises(ValueError, match="b "):
        chunk_delta_rule_fwd(q, k, v, g, a, b[..., :4])
    with pytest.raises(ValueError, match="v "):
        triton_chunk_delta_rule(q, k, v[:, :3], g, a, b)


_FP32_DISPATCH = [
    (2, 16, 4, 32, False, "chunk fused"), (1, 33, 4, 32, False, "chunk fused"), (8, 16, 4, 16, False, "chunk fused"),
    (1, 129, 4, 32, False, "recurrent"), (1, 33, 4, 64, False, "chunk fused"), (2, 16, 4, 64, False, "chunk fused"),
    (1, 129, 4, 64, False, "recurrent"), (1, 2, 4, 8, False, "recurrent"), (1, 129, 4, 32, True, "chunk fused"),
    (1, 33, 4, 64, True, "chunk fused"), (1, 2, 4, 16, True, "chunk fused"), (1, 2, 4, 8, True, "recurrent"),
    # chunk_size=None: under autograd 16 at K ≤ 64 from 32 batch·heads, else 32; forward only, 64 at K ≤ 64 from 16
    # to 64 batch·heads, else 32 up to 32 batch·heads and 16 above (auto_chunk_size)
    (1, 8, 64, None, False, "chunk fused 32"), (1, 16, 64, None, False, "chunk fused 64"),
    (2, 16, 64, None, False, "chunk fused 64"),
    (4, 16, 64, None, False, "chunk fused 64"), (4, 16, 128, None, False, "chunk fused 16"),
    (2, 16, 128, None, False, "chunk fused 32"), (8, 16, 64, None, False, "chunk fused 16"),
    (8, 16, 64, None, True, "chunk fused 16"), (4, 16, 64, None, True, "chunk fused 16"),
    (2, 16, 64, None, True, "chunk fused 16"), (1, 16, 64, None, True, "chunk fused 32"),
    (8, 16, 128, None, True, "chunk fused 32"), (1, 129, 4, None, False, "recurrent 16"),
    (1, 129, 4, None, True, "chunk fused 16"), (1, 32, 4, None, True, "chunk fused 16"),
    (1, 31, 4, None, True, "chunk fused 32"),
]
# 16-bit inputs, forward only: the chunked forward with a lean walk at every batch·heads; under autograd as fp32
_LEAN_DISPATCH = [
    (1, 129, 4, 32, False, "chunk fused lean"), (16, 16, 64, None, False, "chunk fused lean 16"),
    (2, 16, 64, None, False, "chunk fused lean 64"), (1, 2, 4, 8, False, "recurrent"),
    (1, 129, 4, None, True, "chunk fused 16"),
]


@pytest.mark.parametrize("B,H,K,chunk_size,grad,want,dtype", [(*case, torch.float32) for case in _FP32_DISPATCH]
                         + [(*case, dt) for case in _LEAN_DISPATCH for dt in (torch.bfloat16, torch.float16)])
def test_dispatch_by_batch_heads(B, H, K, chunk_size, grad, want, dtype, monkeypatch):
    """``chunk_delta_rule(impl="triton")`` takes the chunked pair (its solve forming the scores) when a gradient is
    tracked, for 16-bit inputs without one (walking on operands of their dtype) or up to ``FUSED_CHUNKED_MAX_BH``
    batch·heads, with a chunk length it supports, and the fused-recurrent walk otherwise."""
    import kernels.delta_rule as dr
    from kernels.delta_rule import triton_recurrent

    assert dr.FUSED_CHUNKED_MAX_BH == 128
    took = []
    def chose(name):  # what was taken, with the chunk length where the case leaves it open
        def took_it(*a, fuse_scores=False, walk_dtype=None):
            assert walk_dtype in (None, dtype)
            took.append(name + " fused" * fuse_scores + " lean" * (walk_dtype is not None) + f" {a[-1]}" * (chunk_size is None))
        return took_it

    monkeypatch.setenv("TRITON_INTERPRET", "1")  # CPU tensors reach the Triton branch on a GPU machine too
    monkeypatch.setattr(chunk, "triton_chunk_delta_rule", chose("chunk"))
    monkeypatch.setattr(triton_recurrent, "triton_fused_recurrent_delta_rule", chose("recurrent"))
    x = torch.zeros(B, 3, H, K, dtype=dtype, requires_grad=grad)
    dr.chunk_delta_rule(x, x, x, x, x, x, chunk_size=chunk_size, impl="triton")
    assert took == [want]


def test_gpu_configs_by_precision():
    """fp32 launches take their one config per kernel (unpipelined); 16-bit ones the tensor-core configs, the walk's
    pruned to BK · BV ≤ 8K fp32 state elements (BV = 64 only up to K = 128)."""
    for kernel in ("scores", "solve", "states", "output"):
        configs = chunk._configs(kernel, interpreted=False)
        prune = chunk._by_precision(kernel)
        fp32 = prune(configs, {}, IS_FP32=True, BK=64)
        assert [(c.kwargs, c.num_warps, c.num_stages) for c in fp32] == [(*chunk._TILES[kernel][1], 1)], kernel
        assert len(prune(configs, {}, IS_FP32=False, BK=64)) == len(chunk._TILES[kernel][0]), kernel
    # the solve's tiles wider than BK = 16 at 4 warps or fewer only at chunk 16
    solve = chunk._configs("solve", interpreted=False)
    wide = {bt: sum(c.num_warps <= 4 and c.kwargs["BK"] > 16 for c in chunk._by_precision("solve")(solve, {}, IS_FP32=False, BT=bt))
            for bt in chunk.CHUNKS}
    assert wide == {16: 4, 32: 0, 64: 0}
    states = chunk._configs("states", interpreted=False)
    bvs = {bk: {c.kwargs["BV"] for c in chunk._by_precision("states")(states, {}, IS_FP32=False, BK=bk)} for bk in (128, 256)}
    assert bvs == {128: {16, 32, 64}, 256: {16, 32}}
    # a lean walk's tile (launched past the autotuner) stays within the state tile at every K, whatever the
    # batch·heads: up to K = 128 4 warps and 3 stages, 16 wide at chunk 64 and 64 below (kernels/NOTES.md 58); above,
    # 32 wide at 8 warps and 2 stages (shared memory: tests/scripts/test_ptxas_report.py)
    for bh in (1, 255, 256, 4096):
        for K in (16, 64, 128, 200, chunk.MAX_K):
            for bt in chunk.CHUNKS:
                tile = chunk.lean_walk_tile(bh, K, bt)
                assert next_power_of_2(K) * tile["BV"] <= chunk._MAX_STATE_TILE
                if K <= 128:
                    assert tile == {"BV": 16 if bt == 64 else 64, "num_warps": 4, "num_stages": 3}
                else:
                    assert tile == {"BV": 32, "num_warps": 8, "num_stages": 2}


# Every GPU config: K = 72 is 3 blocks of 32 / 2 of 64 (one 128-wide tile in the walk), 5 of 16 in the diagonal
# score blocks; V = 80 is 5 blocks of 16 up to 1 of 128; T = 2·BT + 3 leaves the last chunk 3 steps (for BT = 64,
# three of its four sub-chunks are padding only).
CONFIG_SHAPE = dict(B=1, H=2, K=72, V=80)


def _gpu_runs():
    """pytest params (one pipeline run each): every distinct GPU config of every kernel (:func:`zipped`), each
    set of configs at both chunk lengths."""
    names = ("scores", "solve", "states", "output")
    kernels = [getattr(chunk, f"_delta_rule_chunk_{name}") for name in names]
    configs = [distinct(chunk._configs(name, interpreted=False)) for name in names]
    runs = [list(zip(kernels, cfgs, strict=True)) for cfgs in zipped(*configs)]
    return [
        pytest.param(run, bt, id="_".join(config_id(cfg) for _, cfg in run) + f"_BT{bt}") for run in runs for bt in chunk.CHUNKS
    ]


@pytest.mark.parametrize("run,chunk_size", _gpu_runs())
def test_every_gpu_config_in_bounds(run, chunk_size):
    """Each GPU config of each kernel, run in the interpreter (fp32: its bf16 ``tl.dot`` is not exact) through the
    real wrapper (grid lambdas included) at a shape where every tile is partial: every input and every buffer the
    wrapper allocates (scores, UT outputs, chunk states, o, final state) sits in NaN guard bands, so a stray read
    makes outputs non-finite or huge and a stray write changes a band. The autotuner runs each config on the same
    buffers, so a kernel that accumulated into its outputs would also show here."""
    dev = torch.device("cpu")
    B, H, K, V = CONFIG_SHAPE.values()
    T = 2 * chunk_size + 3
    inputs = [t.detach() for t in _inputs(B, T, H, K, V, True, dev)]
    o_ref, h_ref = naive_recurrent_delta_rule(*inputs[:6], SCALE, inputs[6])
    guards = Guards()
    with guards.allocations(), only_configs(*run):
        o, hT = chunk_delta_rule_fwd(*map(guards, inputs[:6]), SCALE, guards(inputs[6]), True, chunk_size)
    guards.check(", ".join(f"{kernel.base_fn.__name__} {cfg.kwargs}" for kernel, cfg in run))
    assert_close("o", o, o_ref, FP32_TOL)
    assert_close("final", hT, h_ref, FP32_TOL)


@pytest.mark.parametrize("gpu_tile", [False, True])
@pytest.mark.parametrize("chunk_size", chunk.CHUNKS)
def test_lean_walk(chunk_size, gpu_tile, device):
    """``walk_dtype`` = the 16-bit inputs' dtype: the walk on operands of that dtype (Ã, b̄, k_eff stored so; the
    state fp32), against the fp32 reference on the same rounded inputs and against the default fp32 walk, within
    bf16 rounding; and the dtype rules. bf16 on a GPU; fp16 under the interpreter, whose bf16 products are wrong
    (rel err ~1e10 there with or without the lean walk; fp16 ones are numpy's). ``gpu_tile``: the launch a GPU
    makes (the walk's one tile, past the autotuner), run by the interpreter too; V = 40 spans two of its blocks."""
    B, T, H, K, V = 2, 2 * chunk_size + 5, 2, 12, 40
    dtype, other = (torch.bfloat16, torch.float16) if device.type == "cuda" else (torch.float16, torch.bfloat16)
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, V, True, device, dtype))
    o_ref, h_ref = naive_recurrent_delta_rule(*(t.float() for t in (q, k, v, g, a, b)), SCALE, h0)
    with gpu_launch_choices(chunk) if gpu_tile else contextlib.nullcontext():
        lean = chunk_delta_rule_fwd(q, k, v, g, a, b, SCALE, h0, True, chunk_size, fuse_scores=True, walk_dtype=dtype)
    full = chunk_delta_rule_fwd(q, k, v, g, a, b, SCALE, h0, True, chunk_size, fuse_scores=True)
    for name, x, y in (("o", lean[0], o_ref), ("final", lean[1], h_ref), ("o vs fp32 walk", lean[0], full[0])):
        assert_close(name, x.float(), y.float(), 2e-2)
    assert lean[1].dtype == torch.float32
    with pytest.raises(ValueError, match=f"walk_dtype={other}"):
        chunk_delta_rule_fwd(q, k, v, g, a, b, walk_dtype=other)
    with pytest.raises(ValueError, match="the backward reads"):
        chunk_delta_rule_fwd(q, k, v, g, a, b, saved={}, walk_dtype=dtype)
    with pytest.raises(ValueError, match="with a gradient tracked"):
        triton_chunk_delta_rule(q.requires_grad_(), k, v, g, a, b, walk_dtype=dtype)


@pytest.mark.parametrize("chunk_size", chunk.FUSED_CHUNKS)
@pytest.mark.parametrize("saved", [False, True])
@pytest.mark.parametrize("group", [1, 2, 8])
def test_fused_scores_in_bounds(chunk_size, saved, group):
    """``fuse_scores`` inside NaN guard bands (the interpreter's configs): chunks formed in the solve leave their
    score blocks unread (and write Q_b when the backward's intermediates are kept); weak decays (every chunk formed)
    and strong ones (none) in one batch, and one sequence with a strong chunk between weak ones. ``group``: chunks
    tested per program of the scores kernel (``scores_skip_group``; 2 splits the three chunks over two programs)."""
    dev = torch.device("cpu")
    B, H, K, V = 3, 2, 12, 20
    T = 2 * chunk_size + 3
    inputs = [t.detach() for t in _inputs(B, T, H, K, V, True, dev)]
    inputs[3][1] = -5.0 + 0.5 * torch.rand_like(inputs[3][1])  # the second sequence's chunks span ≥ 64
    inputs[3][2, chunk_size:2 * chunk_size] = -5.0 + 0.5 * torch.rand_like(inputs[3][2, chunk_size:2 * chunk_size])
    o_ref, h_ref = naive_recurrent_delta_rule(*inputs[:6], SCALE, inputs[6])
    guards = Guards()
    with guards.allocations():
        o, hT = chunk_delta_rule_fwd(
            *map(guards, inputs[:6]), SCALE, guards(inputs[6]), True, chunk_size, saved={} if saved else None,
            fuse_scores=True, scores_skip_group=group,
        )
    guards.check(f"fused scores, chunk {chunk_size}, group {group}")
    assert_close("o", o, o_ref, FP32_TOL)
    assert_close("final", hT, h_ref, FP32_TOL)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, FP32_TOL), (torch.float16, 2e-2)])
def test_block_inverse(dtype, tol, device):
    """``block_inverse`` (chunk 64, fused scores): the chunk's inverse by 16 × 16 blocks through its scratch slot,
    inside NaN guard bands on the CPU, against the reference and against the whole-chunk inverse; a short last
    chunk (T = 2 · 64 + 5) and strong decays in the second sequence (its chunks read the scores kernel's blocks)."""
    B, H, K, V = 2, 2, 12, 20
    T = 2 * 64 + 5
    inputs = [t.detach() for t in _inputs(B, T, H, K, V, True, device, dtype)]
    inputs[3][1] = -5.0 + 0.5 * torch.rand_like(inputs[3][1])
    o_ref, h_ref = naive_recurrent_delta_rule(*(t.float() for t in inputs[:6]), SCALE, inputs[6])
    guards = Guards() if device.type == "cpu" else None
    with guards.allocations() if guards else contextlib.nullcontext():
        args = list(map(guards, inputs[:6])) + [SCALE, guards(inputs[6])] if guards else [*inputs[:6], SCALE, inputs[6]]
        o, hT = chunk_delta_rule_fwd(*args, True, 64, fuse_scores=True, block_inverse=True)
    if guards:
        guards.check("block inverse, chunk 64")
    whole = chunk_delta_rule_fwd(*inputs[:6], SCALE, inputs[6], True, 64, fuse_scores=True)
    assert_close("o", o.float(), o_ref, tol)
    assert_close("final", hT, h_ref, tol)
    assert_close("o vs whole-chunk inverse", o.float(), whole[0].float(), tol)


@pytest.mark.gpu
@pytest.mark.parametrize("K", [64, 128])
@pytest.mark.parametrize("chunk_size", chunk.CHUNKS)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])  # bf16: q_eff, P, h rounding
def test_full_shape_gpu(K, chunk_size, dtype, tol):
    """Full shape on the GPU, every config autotuned; the reference runs in fp32 on the same (rounded) inputs."""
    dev = torch.device("cuda")
    B, T, H = 2, 1000, 4
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, K, True, dev, dtype))
    o, hT = chunk_delta_rule_fwd(q, k, v, g, a, b, K**-0.5, h0, True, chunk_size)
    o_ref, h_ref = naive_recurrent_delta_rule(*(t.float() for t in (q, k, v, g, a, b)), K**-0.5, h0)
    assert o.dtype == dtype and hT.dtype == torch.float32
    assert_close("o", o, o_ref, tol)
    assert_close("final", hT, h_ref, tol)


@pytest.mark.gpu
@pytest.mark.parametrize("B,K", [(8, 64), (16, 64), (4, 128)])
@pytest.mark.parametrize("chunk_size", chunk.CHUNKS)
def test_lean_walk_full_shape_gpu(B, K, chunk_size):
    """The lean walk at the batch·heads where its chunk-64 walk once gave inf with Ã·S on bf16 operands (128 and 256;
    kernels/NOTES.md 54), each chunk's fixed tile (:func:`lean_walk_tile`, NOTES 58), against the fp32 reference and
    the fp32 walk; T = 2048 as the bench."""
    dev = torch.device("cuda")
    T, H = 2048, 16
    q, k, v, g, a, b, h0 = (t.detach() for t in _inputs(B, T, H, K, K, True, dev, torch.bfloat16))
    lean = chunk_delta_rule_fwd(q, k, v, g, a, b, K**-0.5, h0, True, chunk_size, fuse_scores=True, walk_dtype=torch.bfloat16)
    full = chunk_delta_rule_fwd(q, k, v, g, a, b, K**-0.5, h0, True, chunk_size, fuse_scores=True)
    o_ref, h_ref = naive_recurrent_delta_rule(*(t.float() for t in (q, k, v, g, a, b)), K**-0.5, h0)
    for name, x, y in (("o", lean[0], o_ref), ("final", lean[1], h_ref), ("o vs fp32 walk", lean[0], full[0])):
        assert_close(name, x.float(), y.float(), 2e-2)
