"""Fused-recurrent Triton forward of the generalized delta rule (whole sequences: prefill, training).

Same contract as :func:`kernels.delta_rule.naive.naive_recurrent_delta_rule`. One launch, one program per
(V block, batch·head) that keeps its ``[K, BV]`` fp32 state tile in registers and walks the T steps in
order (a runtime loop, so compile time does not grow with T):

    u = Sᵀ a_t,   S ← diag(exp(g_t)) S + b_t uᵀ + k_t v_tᵀ,   o_t = scale · Sᵀ q_t

``u`` reduces over K, so every program holds all of K; V is split into blocks of ``BV`` (autotuned, 16
or 32). Each program re-reads q, k, g, a, b of its head (``V / BV`` times per head in all) and writes its
``BV`` slice of o; the state touches memory only at the start (optional h0) and the end (optional final
state). The walk is sequential in T: fine for prefill of moderate length and for decode-sized batches,
but it cannot use tensor cores. :mod:`kernels.delta_rule.triton_chunk` is the chunked (UT-transform) forward;
:func:`kernels.delta_rule.chunk_delta_rule` takes it for few batch·heads and this walk for many.

Backward: :mod:`kernels.delta_rule.triton_recurrent_bwd` (default). Under autograd this forward also stores the
state entering every ``C``-th step (``CKPT``, fp32 ``[B, H, ceil(T / C), K, V]``); the backward walks the
checkpoint segments in reverse, recomputing each segment's states. ``triton_backward=False`` keeps the former
fallback for cross-checks: :func:`kernels._fallback.with_reference_backward` recomputes the forward through the
reference :func:`naive_chunk_delta_rule` under autograd inside ``backward`` (``g``, ``a`` and ``b`` travel
through that wrapper stacked as one fp32 ``[3, B, T, H, K]`` tensor, its gate slot).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import bh_bucket, cdiv, next_power_of_2, tracks_grad, triton_interpreted
from kernels.delta_rule._autograd import reference_differentiable
from kernels.delta_rule.naive import _check

__all__ = ["triton_fused_recurrent_delta_rule", "fused_recurrent_delta_rule_fwd", "MAX_K"]

MAX_K = 256  # all of K lives in one program's registers


def _configs(interpreted: bool | None = None):
    # Few configs on purpose: every new (K, V, dtype, batch·head bucket) autotunes all of them. These four
    # compile for sm_90 (checked on the CPU with Triton's ptxas) without register spills for K ∈ {64, 128,
    # 256} (94–254 registers with the prefetch below); BV = 64 spilled at K = 64 (4 warps) and K = 128
    # (8 warps) even without it, because Triton's layout for the [BK, BV] tile gives each thread many K
    # rows and so many copies of the five K vectors. With K ≤ MAX_K, BK · BV ≤ 8K fp32 state elements per
    # program. The interpreter gets BV = 16 so that odd V (tests: V = 20) spans two V blocks.
    if triton_interpreted() if interpreted is None else interpreted:
        return [triton.Config({"BV": 16}, num_warps=4, num_stages=1)]
    return [triton.Config({"BV": bv}, num_warps=w) for bv, w in ((16, 2), (16, 4), (32, 4), (32, 8))]


# BH_BUCKET (next power of two of batch·heads) is in the key because the best BV depends on how many
# programs the batch alone provides: at batch 1 small V blocks buy parallelism, at batch 64 larger ones
# save re-reads of q, k, g, a, b.
@triton.autotune(configs=_configs(), key=["K", "V", "BK", "BH_BUCKET", "CKPT"])  # CKPT: under autograd
@triton.jit(do_not_specialize=["T"])
def _delta_rule_fused_recurrent_fwd(
    q, k, v, g, a, b, o, h0, hT, ckpt, scale, T, NC, BH_BUCKET,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, CKPT: tl.constexpr = 0,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m = m_k[:, None] & m_v[None, :]
    p_h = i_bh.to(tl.int64) * K * V + o_k[:, None] * V + o_v[None, :]
    b_s = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        b_s += tl.load(h0 + p_h, mask=m, other=0.0).to(tl.float32)
    bos = i_b.to(tl.int64) * T * H + i_h  # row (b, t = 0, h) of the [B·T·H, D] views
    p_k = bos * K + o_k
    p_v = bos * V + o_v
    # Step t + 1's inputs are loaded while step t computes: they do not depend on the state, and
    # without the prefetch every step waits a full memory latency before its first multiply.
    n_q = tl.load(q + p_k, mask=m_k & (T > 0), other=0.0)
    n_k = tl.load(k + p_k, mask=m_k & (T > 0), other=0.0)
    n_g = tl.load(g + p_k, mask=m_k & (T > 0), other=0.0)
    n_a = tl.load(a + p_k, mask=m_k & (T > 0), other=0.0)
    n_b = tl.load(b + p_k, mask=m_k & (T > 0), other=0.0)
    n_v = tl.load(v + p_v, mask=m_v & (T > 0), other=0.0)
    for t in range(T):
        if CKPT > 0:
            # the state entering every CKPT-th step, for the backward (kernels.delta_rule.triton_recurrent_bwd); the
            # address tile is formed here, not carried through the loop (an int64 [BK, BV] tile live across the walk
            # made the sm_90 build spill)
            if t % CKPT == 0:
                p_c = ckpt + (i_bh.to(tl.int64) * NC + t // CKPT) * K * V
                tl.store(p_c + o_k[:, None] * V + o_v[None, :], b_s, mask=m)
        b_q, b_k, b_g, b_a, b_b, b_v = n_q.to(tl.float32), n_k.to(tl.float32), n_g.to(tl.float32), n_a.to(tl.float32), \
            n_b.to(tl.float32), n_v.to(tl.float32)
        m_n = t + 1 < T
        n_q = tl.load(q + p_k + H * K, mask=m_k & m_n, other=0.0)
        n_k = tl.load(k + p_k + H * K, mask=m_k & m_n, other=0.0)
        n_g = tl.load(g + p_k + H * K, mask=m_k & m_n, other=0.0)
        n_a = tl.load(a + p_k + H * K, mask=m_k & m_n, other=0.0)
        n_b = tl.load(b + p_k + H * K, mask=m_k & m_n, other=0.0)
        n_v = tl.load(v + p_v + H * V, mask=m_v & m_n, other=0.0)
        # u reads the *undecayed* state (RWKV-7); masked rows load a = 0 and contribute nothing
        b_u = tl.sum(b_a[:, None] * b_s, axis=0)
        b_s = b_s * tl.exp(b_g)[:, None] + b_b[:, None] * b_u[None, :] + b_k[:, None] * b_v[None, :]
        b_o = tl.sum(b_s * (b_q * scale)[:, None], axis=0)
        tl.store(o + p_v, b_o.to(o.dtype.element_ty), mask=m_v)
        p_k += H * K
        p_v += H * V
    if STORE_FINAL:
        tl.store(hT + p_h, b_s, mask=m)


def fused_recurrent_delta_rule_fwd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    checkpoints: Tensor | None = None,
    checkpoint_every: int = 0,
) -> tuple[Tensor, Tensor | None]:
    """The forward launch alone (no autograd). Arguments and returns as :func:`triton_fused_recurrent_delta_rule`;
    with ``checkpoints`` (fp32 ``[B, H, ceil(T / checkpoint_every), K, V]``, contiguous) the state entering steps
    0, C, 2C, … (``C = checkpoint_every``) is also written there, for the Triton backward."""
    _check(q, k, v, g, a, b, "fused_recurrent_delta_rule")
    B, T, H, K = q.shape
    V = v.shape[-1]
    if K > MAX_K:
        raise ValueError(f"fused_recurrent_delta_rule: K={K} > {MAX_K}; every program holds all of K in registers")
    if initial_state is not None and initial_state.shape != (B, H, K, V):
        raise ValueError(f"fused_recurrent_delta_rule: initial_state {tuple(initial_state.shape)} must be [B, H, K, V] = {(B, H, K, V)}")
    q, k, v, g, a, b = (t.contiguous() for t in (q, k, v, g, a, b))
    h0 = initial_state.contiguous() if initial_state is not None else None
    o = torch.empty(B, T, H, V, device=v.device, dtype=v.dtype)
    hT = torch.empty(B, H, K, V, device=v.device, dtype=torch.float32) if output_final_state else None
    NC = 0
    if checkpoints is not None:
        NC = cdiv(T, checkpoint_every) if checkpoint_every > 0 else -1
        if checkpoints.shape != (B, H, NC, K, V) or checkpoints.dtype != torch.float32 or not checkpoints.is_contiguous():
            raise ValueError(
                f"fused_recurrent_delta_rule: checkpoints {tuple(checkpoints.shape)} {checkpoints.dtype} must be a "
                f"contiguous fp32 [B, H, ceil(T / C), K, V] = {(B, H, NC, K, V)} with checkpoint_every = C ≥ 1"
            )
    BK = max(16, next_power_of_2(K))
    bucket = bh_bucket(B * H)

    def grid(meta):
        return (cdiv(V, meta["BV"]), B * H)

    _delta_rule_fused_recurrent_fwd[grid](
        q, k, v, g, a, b, o, h0, hT, checkpoints, float(scale), T, NC, bucket,
        H=H, K=K, V=V, BK=BK, HAS_H0=h0 is not None, STORE_FINAL=output_final_state,
        CKPT=checkpoint_every if checkpoints is not None else 0,
    )
    return o, hT


def triton_fused_recurrent_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    chunk_size: int = 32,
    triton_backward: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Whole-sequence generalized delta rule: fused-recurrent Triton forward and backward.

    Args:
        q, k, a, b: ``[B, T, H, K]`` (K ≤ 256). v: ``[B, T, H, V]``. g: ``[B, T, H, K]`` log-decay (≤ 0).
        scale: multiplies q. initial_state: ``[B, H, K, V]`` or None (zeros).
        output_final_state: return the final state (else None).
        chunk_size: chunk of the reference :func:`naive_chunk_delta_rule` that the backward recomputes
            through with ``triton_backward=False`` (neither Triton pass chunks).
        triton_backward: gradients from the Triton backward
            (:mod:`kernels.delta_rule.triton_recurrent_bwd`, default); False recomputes them through the
            reference under autograd (slower, for cross-checks).
    Returns:
        o ``[B, T, H, V]`` in v's dtype, final state ``[B, H, K, V]`` fp32 (or None).
    """
    if triton_backward:
        tensors = (q, k, v, g, a, b, initial_state)
        if not tracks_grad(*tensors):
            return fused_recurrent_delta_rule_fwd(q, k, v, g, a, b, scale, initial_state, output_final_state)
        # Imported here: the backward module imports this one (the forward launch, MAX_K).
        from kernels.delta_rule.triton_recurrent_bwd import FusedRecurrentDeltaRuleFunction

        return FusedRecurrentDeltaRuleFunction.apply(q, k, v, g, a, b, scale, initial_state, output_final_state)
    return reference_differentiable(
        fused_recurrent_delta_rule_fwd, "fused_recurrent_delta_rule", q, k, v, g, a, b, scale, initial_state,
        output_final_state, chunk_size, False,
    )
