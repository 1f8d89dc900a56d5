"""Triton backward of the fused-recurrent generalized delta rule (:mod:`kernels.delta_rule.triton_recurrent`).

Per (batch, head), state ``S: [K, V]`` fp32, steps ``t = 1 … T`` (``S_0`` the initial state):

    u_t = S_{t-1}ᵀ a_t,   S_t = diag(e^{g_t}) S_{t-1} + b_t u_tᵀ + k_t v_tᵀ,   o_t = scale · S_tᵀ q_t

With ``dS_t`` the gradient of the loss w.r.t. ``S_t`` (``dS_T = dhT``, or zero), walking ``t = T … 1``:

    dS_t    += scale · q_t do_tᵀ
    dq_t     = scale · S_t do_t = scale · [e^{g_t} ⊙ (S_{t-1} do_t) + b_t (u_t · do_t) + k_t (v_t · do_t)]
    dk_t     = dS_t v_t,          dv_t = dS_tᵀ k_t
    du_t     = dS_tᵀ b_t,         db_t = dS_t u_t,         da_t = S_{t-1} du_t
    dg_t     = e^{g_t} ⊙ Σ_v S_{t-1} ⊙ dS_t
    dS_{t-1} = diag(e^{g_t}) dS_t + a_t du_tᵀ                                  (dh0 = dS_0)

(checked against autograd of the recurrence in float64 to ~2e-16). ``dq`` is written through ``S_{t-1}`` so that
only two ``[K, BV]`` tiles are live in the walk: ``S_{t-1}`` and ``dS_t``.

The transition acts on K only, so the V columns of ``S`` and ``dS`` evolve independently: one program per
(V block of ``BV`` columns, batch·head) runs the whole backward for its columns, holding all of K (``u`` and
``du`` reduce over K). ``dv`` is then complete in each program; the K-vector gradients ``dq``, ``dk``, ``dg``,
``da``, ``db`` sum over V and so over the ``NV = ceil(V / BV)`` programs of a head.

Cross-V-block reduction: each program writes its partial K vectors (fp32) into ``[5, NV, B, T, H, K]`` and one
torch sum over ``NV`` finishes them (a view when ``NV = 1``). Chosen over fp32 atomics because it is
deterministic (atomics add the ``NV`` parts in arrival order), needs no zero-filled buffer, and the ``NV``
programs of a head walk the same steps at about the same time, so atomics would contend on the same addresses.
It costs ``NV`` × the memory of the gradients it reduces (transient, during the backward).

States in reverse without inverting the transition (``e^{-g}`` overflows for strong decays): the forward under
autograd stores the state entering every ``C``-th step (``C = checkpoint_interval(T)``, fp32 ``[B, H,
ceil(T / C), K, V]``; the backward recomputes them with the forward kernel when not given). The backward walks the
segments last to first; per segment it reloads the checkpoint, recomputes the segment's ``C`` states forwards
into a per-program scratch (fp32 ``[B·H·NV, C, BK, BV]``, written and read back by the same program), then walks
the segment backwards reading ``S_{t-1}`` from it. Memory per (batch·head) ≈ ``(T / C + C)`` states, least at
``C ≈ √T``; scratch traffic is one write and one read of a ``[K, BV]`` tile per step (independent of ``C``), and
a small ``C`` keeps the scratch in L2 (``C · BK · BV · 4`` bytes per live program).
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from kernels._dispatch import cdiv, next_power_of_2, triton_interpreted
from kernels.delta_rule.naive import _check
from kernels.delta_rule.triton_recurrent import MAX_K, fused_recurrent_delta_rule_fwd

__all__ = ["FusedRecurrentDeltaRuleFunction", "fused_recurrent_delta_rule_bwd", "checkpoint_interval"]

# Programs wanted before the backward takes 32-wide V blocks instead of 16 (enough to give ~132 SMs a few each).
_TARGET_PROGRAMS = 512


def checkpoint_interval(T: int) -> int:
    """Steps ``C`` between the states the forward keeps for the backward: a power of two near √T, 16 … 64.

    Memory per batch·head is about ``T / C`` checkpoints plus ``C`` scratch states; √T balances the two. Capped at
    64 so that the scratch of the programs resident on the GPU has a chance to stay in L2; at least 16 so that short
    sequences do not walk many tiny segments."""
    return min(64, max(16, next_power_of_2(math.isqrt(max(T, 1)))))


def _configs(interpreted: bool | None = None):
    # Only the warp count is tuned: BV is the wrapper's choice (_block_v), because the partial-gradient and scratch
    # buffers are sized by it before the launch. Triton stacks the warps along K in the [BK, BV] tile's layout
    # (BV = 16: 2 × 16 threads of a warp over (K, V)), so each thread holds many rows (BK / (2 · warps) at BV = 16)
    # of every K vector it touches besides its share of the two live tiles (S_{t-1}, dS). ptxas for sm_90 (CPU, bf16
    # and fp32 inputs alike within a few registers), 4 / 8 warps:
    #   K = 64:  BV = 16  96 / 80 registers,    BV = 32  232 / 102
    #   K = 128: BV = 16  206 / 120,            BV = 32  255 / 232 (no spills)
    #   K = 256: BV = 16  255 + 76–128 B spilled / 200,   BV = 32  spills at 4 warps (and 24 B at 8 in bf16)
    # so 4 warps are pruned above 2048 tile elements (_prune) and K = 256 takes BV = 16 (_block_v): no config the
    # wrappers can pick spills.
    if triton_interpreted() if interpreted is None else interpreted:
        return [triton.Config({}, num_warps=4, num_stages=1)]
    return [triton.Config({}, num_warps=w) for w in (4, 8)]


_MAX_TILE_4_WARPS = 2048  # BK · BV elements a 4-warp program may hold
_MAX_TILE = 4096  # BK · BV elements of any backward program


def _prune(configs, named_args, **kwargs):
    tile = kwargs["BK"] * kwargs["BV"]
    kept = [c for c in configs if tile <= _MAX_TILE_4_WARPS or c.num_warps >= 8]
    return kept or configs


def _block_v(BH: int, K: int, V: int, interpreted: bool | None = None) -> int:
    """V block of the backward: 16 (more programs, for small batch·heads) unless 32-wide blocks alone give
    :data:`_TARGET_PROGRAMS` programs and the tile stays within :data:`_MAX_TILE` (not at K > 128). The
    interpreter takes 16, so that odd V (tests: V = 20) spans two blocks."""
    if triton_interpreted() if interpreted is None else interpreted:
        return 16
    BK = max(16, next_power_of_2(K))
    return 32 if BH * cdiv(V, 32) >= _TARGET_PROGRAMS and BK * 32 <= _MAX_TILE else 16


@triton.autotune(configs=_configs(), key=["K", "V", "BK", "BV", "C"], prune_configs_by={"early_config_prune": _prune})
@triton.jit(do_not_specialize=["B", "T", "NC"])
def _delta_rule_fused_recurrent_bwd(
    q, k, v, g, a, b, do, dhT, ckpt, scr, dq, dk, dg, da, db, dv, dh0, scale, B, T, NC,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, C: tl.constexpr,
    HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    NV: tl.constexpr = (V + BV - 1) // BV
    i_b, i_h = i_bh // H, i_bh % H
    o_k = tl.arange(0, BK)
    o_bv = tl.arange(0, BV)
    o_v = i_v * BV + o_bv
    m_k, m_v = o_k < K, o_v < V
    m = m_k[:, None] & m_v[None, :]
    i_bh64 = i_bh.to(tl.int64)
    # [BK, BV] offsets in the [K, V] state (int32): each pointer tile of a [BK, BV] tile costs two registers an
    # element, so pointer tiles are formed where used rather than kept live across the walk.
    o_kv = o_k[:, None] * V + o_v[None, :]
    b_ds = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DHT:
        b_ds += tl.load(dhT + i_bh64 * K * V + o_kv, mask=m, other=0.0)
    # This program's scratch: C tiles of [BK, BV], whole tiles (rows past K, columns past V hold the zeros the
    # masked checkpoint load put there), so no masks.
    scr += (i_bh64 * NV + i_v) * C * BK * BV
    o_scr = o_k[:, None] * BV + o_bv[None, :]
    bos = i_b.to(tl.int64) * T * H + i_h  # row (b, t = 0, h) of the [B·T·H, D] views
    # this V block's slice of the [NV, B·T·H, K] partial K-vector gradients
    p_part = i_v.to(tl.int64) * B * T * H * K + o_k
    for i_r in range(NC):
        i_n = NC - 1 - i_r
        t0 = i_n * C
        n_t = tl.minimum(C, T - t0)
        b_s = tl.load(ckpt + (i_bh64 * NC + i_n) * K * V + o_kv, mask=m, other=0.0)
        # forwards through the segment, keeping S_{t-1} of each step
        for j in range(n_t):
            tl.store(scr + j * BK * BV + o_scr, b_s)
            row = bos + (t0 + j) * H
            b_k = tl.load(k + row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
            b_g = tl.load(g + row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
            b_a = tl.load(a + row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
            b_b = tl.load(b + row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
            b_v = tl.load(v + row * V + o_v, mask=m_v, other=0.0).to(tl.float32)
            b_u = tl.sum(b_a[:, None] * b_s, axis=0)
            b_s = b_s * tl.exp(b_g)[:, None] + b_b[:, None] * b_u[None, :] + b_k[:, None] * b_v[None, :]
        # a scratch tile may be read back by other threads of this program than those that wrote it
        tl.debug_barrier()
        for jj in range(n_t):
            j = n_t - 1 - jj
            row = bos + (t0 + j) * H
            b_sp = tl.load(scr + j * BK * BV + o_scr)  # S_{t-1}
            # each K vector loaded just before its first use and each gradient stored as soon as it is formed,
            # to keep few [BK]-vectors live: every thread holds many K rows of the tile (BK / 8 at 4 warps and
            # BV = 16) and so that many elements of each K vector.
            b_do = tl.load(do + row * V + o_v, mask=m_v, other=0.0).to(tl.float32)
            b_v = tl.load(v + row * V + o_v, mask=m_v, other=0.0).to(tl.float32)
            b_q = tl.load(q + row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
            b_ds += (b_q * scale)[:, None] * b_do[None, :]
            p_r = p_part + row * K
            tl.store(dk + p_r, tl.sum(b_ds * b_v[None, :], axis=1), mask=m_k)
            b_a = tl.load(a + row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
            b_u = tl.sum(b_a[:, None] * b_sp, axis=0)
            tl.store(db + p_r, tl.sum(b_ds * b_u[None, :], axis=1), mask=m_k)
            b_b = tl.load(b + row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
            b_du = tl.sum(b_ds * b_b[:, None], axis=0)
            tl.store(da + p_r, tl.sum(b_sp * b_du[None, :], axis=1), mask=m_k)
            b_k = tl.load(k + row * K + o_k, mask=m_k, other=0.0).to(tl.float32)
            tl.store(dv + row * V + o_v, tl.sum(b_ds * b_k[:, None], axis=0).to(dv.dtype.element_ty), mask=m_v)
            b_eg = tl.exp(tl.load(g + row * K + o_k, mask=m_k, other=0.0).to(tl.float32))
            b_dq = b_eg * tl.sum(b_sp * b_do[None, :], axis=1) + b_b * tl.sum(b_u * b_do) + b_k * tl.sum(b_v * b_do)
            tl.store(dq + p_r, scale * b_dq, mask=m_k)
            tl.store(dg + p_r, b_eg * tl.sum(b_sp * b_ds, axis=1), mask=m_k)
            b_ds = b_ds * b_eg[:, None] + b_a[:, None] * b_du[None, :]
        # the next segment's forward pass overwrites tiles that other threads may still be reading
        tl.debug_barrier()
    if STORE_DH0:
        tl.store(dh0 + i_bh64 * K * V + o_kv, b_ds, mask=m)


def fused_recurrent_delta_rule_bwd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    scale: float,
    initial_state: Tensor | None,
    do: Tensor,
    dhT: Tensor | None,
    checkpoints: Tensor | None = None,
    checkpoint_every: int | None = None,
    need_dh0: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Gradients of the fused-recurrent delta rule (no autograd).

    Args:
        q, k, v, g, a, b, scale, initial_state: the forward's inputs (shapes as
            :func:`kernels.delta_rule.triton_recurrent.triton_fused_recurrent_delta_rule`).
        do: ``[B, T, H, V]`` gradient of the output. dhT: ``[B, H, K, V]`` gradient of the final state, or None.
        checkpoints: fp32 ``[B, H, ceil(T / C), K, V]``, the state entering steps 0, C, 2C, … as the forward stores
            it with ``checkpoint_every = C``; None recomputes them (one more forward launch).
        checkpoint_every: ``C`` (default :func:`checkpoint_interval` of T).
        need_dh0: return the initial state's gradient (when an initial state was given).
    Returns:
        dq, dk, dv, dg, da, db in their inputs' dtypes, and dh0 in the initial state's dtype (or None).
    """
    _check(q, k, v, g, a, b, "fused_recurrent_delta_rule_bwd")
    B, T, H, K = q.shape
    V = v.shape[-1]
    if K > MAX_K:
        raise ValueError(f"fused_recurrent_delta_rule_bwd: K={K} > {MAX_K}; every program holds all of K in registers")
    if do.shape != v.shape:
        raise ValueError(f"fused_recurrent_delta_rule_bwd: do {tuple(do.shape)} must be [B, T, H, V] like v {tuple(v.shape)}")
    if dhT is not None and dhT.shape != (B, H, K, V):
        raise ValueError(f"fused_recurrent_delta_rule_bwd: dhT {tuple(dhT.shape)} must be [B, H, K, V] = {(B, H, K, V)}")
    C = checkpoint_every or checkpoint_interval(T)
    NC = cdiv(T, C)
    q, k, v, g, a, b, do = (t.contiguous() for t in (q, k, v, g, a, b, do))
    if checkpoints is None:
        checkpoints = torch.empty(B, H, NC, K, V, device=q.device, dtype=torch.float32)
        fused_recurrent_delta_rule_fwd(q, k, v, g, a, b, scale, initial_state, False, checkpoints, C)
    BK = max(16, next_power_of_2(K))
    BV = _block_v(B * H, K, V)
    NV = cdiv(V, BV)
    scratch = torch.empty(B * H * NV, C, BK, BV, device=q.device, dtype=torch.float32)
    parts = torch.empty(5, NV, B, T, H, K, device=q.device, dtype=torch.float32)
    dv = torch.empty_like(v)
    store_dh0 = need_dh0 and initial_state is not None
    dh0 = torch.empty(B, H, K, V, device=q.device, dtype=torch.float32) if store_dh0 else None
    dhT = dhT.float().contiguous() if dhT is not None else None
    _delta_rule_fused_recurrent_bwd[(NV, B * H)](
        q, k, v, g, a, b, do, dhT, checkpoints, scratch, *parts, dv, dh0, float(scale), B, T, NC,
        H=H, K=K, V=V, BK=BK, BV=BV, C=C, HAS_DHT=dhT is not None, STORE_DH0=store_dh0,
    )
    dq, dk, dg, da, db = parts[:, 0] if NV == 1 else parts.sum(1)
    dq, dk, dg, da, db = (d.to(x.dtype) for d, x in ((dq, q), (dk, k), (dg, g), (da, a), (db, b)))
    return dq, dk, dv, dg, da, db, dh0.to(initial_state.dtype) if store_dh0 else None


class FusedRecurrentDeltaRuleFunction(torch.autograd.Function):
    """Triton forward (:func:`fused_recurrent_delta_rule_fwd`, keeping a state every :func:`checkpoint_interval`
    steps) and Triton backward (:func:`fused_recurrent_delta_rule_bwd`).

    ``apply(q, k, v, g, a, b, scale, initial_state, output_final_state) -> (o, final_state)``.
    """

    @staticmethod
    def forward(ctx, q, k, v, g, a, b, scale, initial_state, output_final_state):
        _check(q, k, v, g, a, b, "fused_recurrent_delta_rule")
        B, T, H, K = q.shape
        C = checkpoint_interval(T)
        ckpt = torch.empty(B, H, cdiv(T, C), K, v.shape[-1], device=q.device, dtype=torch.float32)
        o, hT = fused_recurrent_delta_rule_fwd(q, k, v, g, a, b, scale, initial_state, output_final_state, ckpt, C)
        ctx.save_for_backward(q, k, v, g, a, b, initial_state, ckpt)
        ctx.scale, ctx.checkpoint_every = scale, C
        # Unused outputs then arrive as None instead of zero tensors (no dhT term, no zeros read).
        ctx.set_materialize_grads(False)
        return o, hT

    @staticmethod
    @once_differentiable
    def backward(ctx, do, dhT):
        q, k, v, g, a, b, h0, ckpt = ctx.saved_tensors
        if do is None:
            do = torch.zeros_like(v)
        dq, dk, dv, dg, da, db, dh0 = fused_recurrent_delta_rule_bwd(
            q, k, v, g, a, b, ctx.scale, h0, do, dhT, ckpt, ctx.checkpoint_every, need_dh0=ctx.needs_input_grad[7],
        )
        return dq, dk, dv, dg, da, db, None, dh0, None
