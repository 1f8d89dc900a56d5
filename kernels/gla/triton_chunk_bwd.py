"""Triton backward of the chunked GLA scan (:mod:`kernels.gla.triton_chunk`).

Per (batch, head), chunk ``n`` of ``BT = 64`` steps with in-chunk cumulative log-decay ``G`` (``G_L`` its
last row), entering state ``h_n`` and ``dh_{n+1}`` the gradient of the state *leaving* chunk ``n``:

    o_t      = scale · [(q_t ⊙ e^{G_t})ᵀ h_n + Σ_{s≤t} A_ts v_s],   A_ts = Σ_k q_tk k_sk e^{G_tk − G_sk}
    h_{n+1}  = diag(e^{G_L}) h_n + Σ_s (k_s ⊙ e^{G_L − G_s}) v_sᵀ

Four launches (plus ``G``, one torch pass, and ``_gla_bwd_dg``, which adds the later sub-chunks' totals to dg):

1. ``chunk_gla_states`` recomputes ``h`` (and the fp32 final state when ``dhT`` is given) — nothing but the
   inputs is saved by the forward.
2. ``_gla_bwd_dh``: one program per (K block, V block, batch·head) walks the chunks backwards, storing
   ``dh[n] = dh_{n+1}`` (inputs' dtype) and ``dh_n = diag(e^{G_L}) dh_{n+1} + scale (q ⊙ e^G)ᵀ do``;
   the last one is ``dh0`` (fp32).
3. ``_gla_bwd_dv``: one program per (V block, 16-row sub-chunk, batch·head):
   ``dv_j = (k_j ⊙ e^{G_L − G_j}) dh[n] + scale · [Σ_{i>j} A_ijᵀ do_i + A_jjᵀ do_j]``.
4. ``_gla_bwd_dqk``: one program per (sub-chunk, batch·head) with the whole K tile, V in blocks:
   ``dq_i = scale · e^{G_i} ⊙ (do_i h[n]ᵀ) + Σ_{j≤i} dA_ij (k_j ⊙ e^{G_i − G_j})``,
   ``dk_i = e^{G_L − G_i} ⊙ (v_i dh[n]ᵀ) + Σ_{j≥i} dA_jiᵀ (q_j ⊙ e^{G_j − G_i})``, ``dA = scale · do vᵀ``;
   then ``q_i ⊙ dq_i − k_i ⊙ dk_i`` (fp32) reverse-summed inside the sub-chunk, for ``dg``.

With ``save_scores`` (:func:`kernels.gla.triton_chunk.triton_chunk_gla`) the forward keeps ``scale · A``; step 3 is
then ``_gla_bwd_dv_scores``: one program per (V block, chunk, batch·head), ``dv = (k ⊙ e^{G_L − G}) dh[n] +
(scale·A)ᵀ do`` as two products. ``_gla_bwd_dA`` forms the chunk's ``do vᵀ`` once, and step 4 loads its blocks
(``HAS_DA``) instead of forming each off-diagonal one twice by loops over V.

Off-diagonal sub-chunk pairs refer both factors to ``G`` at a row between them (``G`` is non-increasing,
so both exponents are ≤ 0). Diagonal blocks mask the pairwise difference to ``-inf`` before the exp, except in
the dq/dk kernel from saved scores: there a sub-chunk whose decay range is within ``FACTORED_RANGE`` takes two
products referred to its first row (key-side factors up to e^40), in a launch of its own (kernels/NOTES.md 43).

``dg``: with the global cumulative decay ``Γ_t = Σ_{τ≤t} g_τ`` the scan reads ``o_t = scale Σ_{s≤t}
(q_t e^{Γ_t})·(k_s e^{−Γ_s}) v_s + scale (q_t e^{Γ_t})ᵀ h0`` and ``hT = diag(e^{Γ_T}) (h0 + Σ_s (k_s e^{−Γ_s})
v_sᵀ)``, so ``∂L/∂Γ_t = q_t ⊙ dq_t − k_t ⊙ dk_t`` plus ``Σ_v hT ⊙ dhT`` at the last step, and
``dg_t = Σ_{τ≥t} ∂L/∂Γ_τ``. A shift of every ``Γ_τ`` from chunk ``n+1`` on scales the state leaving chunk
``n``, so all later chunks together add ``Σ_v h[n+1] ⊙ dh[n]`` (``hT ⊙ dhT`` after the last chunk): ``dg`` is
a suffix sum *inside the chunk* plus that boundary term. Summing ``q ⊙ dq − k ⊙ dk`` across the whole
sequence instead gives the same value in exact arithmetic, but in bf16 it piles up the rounding of every
later chunk's ``h``/``dh`` (5× the error in an fp64 emulation with bf16 ``h``/``dh``: 9.7e-3 → 1.8e-3).
The kernel adds the boundary term and the in-sub-chunk suffix sums; torch adds the later sub-chunks of the
same chunk and the fp32 final-state term.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import cdiv, next_power_of_2, size_class
from kernels._triton_math import exp_ftz
from kernels.gla.naive import check_gated
from kernels.gla.triton_chunk import (
    CHUNK,
    FACTORED_RANGE,
    SUB_CHUNK,
    _configs,
    _dot,
    check_k,
    chunk_gla_fwd,
    chunk_gla_states,
    chunk_local_cumsum,
    prepare_inputs,
)

__all__ = ["ChunkGLAFunction", "chunk_gla_bwd", "FACTORED_DIAGONAL"]

# The dq/dk kernel's factored diagonal blocks (kernels/NOTES.md 43) in ChunkGLAFunction's backward: on an H200 the
# dq/dk kernels took a third of the time and fwd+bwd 1.26-1.96x less wherever the GPU, not the launching CPU, set
# the pace. False restores the row-by-row form in one launch: a launch less, which helps only where the CPU sets
# the pace (B=1 T=4096 K=V=64: 1012 vs 1327 us).
FACTORED_DIAGONAL = True

# (BV, num_warps[, num_stages]) of each kernel's GPU configs (triton_chunk._configs); dh is the reverse state walk,
# offered 3 stages as the forward walk is
_DH_TILES = ((32, 4), (64, 4), (32, 4, 3), (64, 4, 3))
_DV_TILES = ((64, 4), (128, 8))
_DQK_TILES = ((32, 8), (64, 8))
# the last: the H200's pick (BV 32, 4 warps; NOTES 62) at 3 stages, its loops' loads a step further ahead (NOTES 65)
_DQK_DA_TILES = ((32, 4), (32, 8), (64, 8), (32, 4, 3))
# dv from saved scores: 8 warps (4 spilled 768 B at K = 128, BV = 64 in bf16; at 8 warps bf16 compiles for sm_90 with
# no spills for K = 64…256, fp32 spills 4–860 B); no 32-wide V block with several dots on Hopper (triton#11366).
_DVS_TILES = ((64, 8), (128, 8))


@triton.autotune(configs=_configs(_DH_TILES), key=["K", "V", "BK", "BT", "IS_FP32", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _gla_bwd_dh(
    q, do, G, dh, dhT, dh0, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    TP = NT * BT
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DHT:
        b_dh += tl.load(dhT + i_bh * K * V + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0)
    o_t = tl.arange(0, BT)
    for i_r in range(NT):
        i_n = NT - 1 - i_r
        tl.store(dh + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], b_dh.to(dh.dtype.element_ty), mask=m_kv)
        t = i_n * BT + o_t
        m_t = t < T
        # q and G as [BK, BT] (transposed), do as [BT, BV]; padded steps load q = do = 0.
        b_q = tl.load(q + ((i_b * T + t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_t[None, :] & m_k[:, None], other=0.0)
        b_G = tl.load(G + ((i_b * TP + t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_Gl = tl.load(G + ((i_b * TP + i_n * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        b_do = tl.load(do + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        b_qg = (b_q.to(tl.float32) * exp_ftz(b_G) * scale).to(b_q.dtype)
        b_dh = b_dh * exp_ftz(b_Gl)[:, None] + _dot(b_qg, b_do, IS_FP32)
    if STORE_DH0:
        tl.store(dh0 + i_bh * K * V + o_k[:, None] * V + o_v[None, :], b_dh, mask=m_kv)


@triton.autotune(configs=_configs(_DV_TILES), key=["K", "V", "BK", "BT", "IS_FP32", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _gla_bwd_dv(
    q, k, G, do, dh, dv, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_v, i_s, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    NC: tl.constexpr = BT // BC
    i_n, i_c = i_s // NC, i_s % NC
    TP = NT * BT
    t0 = i_n * BT + i_c * BC
    if t0 < T:
        o_k = tl.arange(0, BK)
        m_k = o_k < K
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        o_c = tl.arange(0, BC)
        t_j = t0 + o_c
        m_j = t_j < T
        b_k = tl.load(k + ((i_b * T + t_j[:, None]) * H + i_h) * K + o_k[None, :], mask=m_j[:, None] & m_k[None, :], other=0.0)
        b_k = b_k.to(tl.float32)
        b_Gj = tl.load(G + ((i_b * TP + t_j[:, None]) * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_Gl = tl.load(G + ((i_b * TP + i_n * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        b_dh = tl.load(dh + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
        acc = _dot((b_k * exp_ftz(b_Gl[None, :] - b_Gj)).to(b_dh.dtype), b_dh, IS_FP32)
        # later sub-chunks i > j, both factors referred to G at this sub-chunk's last row
        b_Gr = tl.load(G + ((i_b * TP + t0 + BC - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        b_kr = (b_k * exp_ftz(b_Gr[None, :] - b_Gj)).to(do.dtype.element_ty)
        acc_a = tl.zeros([BC, BV], dtype=tl.float32)
        for i_i in range(i_c + 1, NC):
            t_i = i_n * BT + i_i * BC + o_c
            m_i = t_i < T
            b_qi = tl.load(q + ((i_b * T + t_i[None, :]) * H + i_h) * K + o_k[:, None], mask=m_i[None, :] & m_k[:, None], other=0.0)
            b_Gi = tl.load(G + ((i_b * TP + t_i[None, :]) * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
            b_qr = (b_qi.to(tl.float32) * exp_ftz(b_Gi - b_Gr[:, None])).to(do.dtype.element_ty)
            b_At = _dot(b_kr, b_qr, IS_FP32)  # A_ijᵀ, [BC (j), BC (i)]
            b_do = tl.load(do + ((i_b * T + t_i[:, None]) * H + i_h) * V + o_v[None, :], mask=m_i[:, None] & m_v[None, :], other=0.0)
            acc_a += _dot(b_At.to(b_do.dtype), b_do, IS_FP32)
        # diagonal sub-chunk: Aᵀ[b, a] = Σ_k k_bk q_ak exp(G_ak − G_bk) for a ≥ b, built row a of A at a time
        b_At = tl.zeros([BC, BC], dtype=tl.float32)
        for a in range(BC):
            t_a = t0 + a
            b_qa = tl.load(q + ((i_b * T + t_a) * H + i_h) * K + o_k, mask=m_k & (t_a < T), other=0.0).to(tl.float32)
            b_Ga = tl.load(G + ((i_b * TP + t_a) * H + i_h) * K + o_k, mask=m_k, other=0.0)
            diff = tl.where(o_c[:, None] <= a, b_Ga[None, :] - b_Gj, float("-inf"))
            b_s = tl.sum(b_k * b_qa[None, :] * exp_ftz(diff), axis=1)
            b_At += tl.where(o_c[None, :] == a, b_s[:, None], 0.0)
        b_doj = tl.load(do + ((i_b * T + t_j[:, None]) * H + i_h) * V + o_v[None, :], mask=m_j[:, None] & m_v[None, :], other=0.0)
        acc_a += _dot(b_At.to(b_doj.dtype), b_doj, IS_FP32)
        acc += scale * acc_a
        p_dv = dv + ((i_b * T + t_j[:, None]) * H + i_h) * V + o_v[None, :]
        tl.store(p_dv, acc.to(dv.dtype.element_ty), mask=m_j[:, None] & m_v[None, :])


@triton.autotune(configs=_configs(_DVS_TILES), key=["K", "V", "BK", "BT", "IS_FP32", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _gla_bwd_dv_scores(
    k, G, A, do, dh, dv, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    """``dv`` of a whole chunk from the forward's saved scores ``A_s = scale · A``: one program per (V block, chunk,
    batch·head), ``dv = (k ⊙ e^{G_L − G}) dh[n] + A_sᵀ do`` — two products, no sub-chunk loops."""
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    TP = NT * BT
    o_t = tl.arange(0, BT)
    t = i_n * BT + o_t
    m_t = t < T
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    acc = tl.zeros([BT, BV], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_k = tl.load(k + ((i_b * T + t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_G = tl.load(G + ((i_b * TP + t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_Gl = tl.load(G + ((i_b * TP + i_n * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        b_dh = tl.load(dh + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
        b_kd = (b_k.to(tl.float32) * exp_ftz(b_Gl[None, :] - b_G)).to(b_dh.dtype)
        acc += _dot(b_kd, b_dh, IS_FP32)
    # A_sᵀ[j, i] = A_s[i, j], kept by the forward for j ≤ i (entries above the diagonal were never written)
    p_At = A + ((i_b * T + t[None, :]) * H + i_h) * BT + o_t[:, None]
    b_At = tl.load(p_At, mask=(o_t[:, None] <= o_t[None, :]) & m_t[None, :], other=0.0)
    b_do = tl.load(do + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
    acc += _dot(b_At.to(b_do.dtype), b_do, IS_FP32)
    tl.store(dv + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], acc.to(dv.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])


@triton.autotune(configs=_configs(_DVS_TILES), key=["V", "BT", "IS_FP32", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _gla_bwd_dA(
    v, do, dA, T, NT, H: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BV: tl.constexpr, IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    """``do vᵀ`` of a whole chunk, once (one program per chunk and batch·head), on and below the diagonal into
    ``dA [B, T, H, BT]`` fp32: the dq/dk kernel then loads its blocks instead of forming each off-diagonal block
    twice (once in each sub-chunk program of the pair) by a loop over V."""
    i_n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = tl.arange(0, BT)
    t = i_n * BT + o_t
    m_t = t < T
    acc = tl.zeros([BT, BT], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        b_do = tl.load(do + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        b_vt = tl.load(v + ((i_b * T + t[None, :]) * H + i_h) * V + o_v[:, None], mask=m_v[:, None] & m_t[None, :], other=0.0)
        acc += _dot(b_do, b_vt, IS_FP32)
    p_dA = dA + ((i_b * T + t[:, None]) * H + i_h) * BT + o_t[None, :]
    tl.store(p_dA, acc, mask=m_t[:, None] & (o_t[None, :] <= o_t[:, None]))


@triton.jit
def _dot_f32(a, b, IS_FP32: tl.constexpr):
    """Product of two fp32 tiles: IEEE for fp32 inputs, tf32 (10-bit mantissa, fp32 range) for 16-bit ones."""
    if IS_FP32:
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b, input_precision="tf32")


def _gla_bwd_dqk_body(
    q, k, v, G, h, do, dh, dq, dk, dgl, dA, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, IS_FP32: tl.constexpr, FACTORED: tl.constexpr, HAS_DA: tl.constexpr = False,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_k, i_s, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    NC: tl.constexpr = BT // BC
    i_n, i_c = i_s // NC, i_s % NC
    TP = NT * BT
    t0 = i_n * BT + i_c * BC
    # Two launches split the sub-chunks by their decay range d over this program's K columns (each column's dq
    # and dk need only that column): within FACTORED_RANGE (FACTORED) the diagonal block is two products whose
    # key-side factors grow to e^d; past it, the row-by-row pairwise form. Each program returns at once in the
    # launch that is not its own. One kernel with a branch between the two forms took 212-221 registers at
    # K = 128 (8 warps), where either form alone takes 111-128 (sm_90 ptxas).
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    b_G0 = tl.load(G + ((i_b * TP + t0) * H + i_h) * K + o_k, mask=m_k, other=0.0)
    b_Gc = tl.load(G + ((i_b * TP + t0 + BC - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
    # FACTORED None: one launch, every diagonal block pairwise (the dqk kernel without dA, which spills at K = 128
    # as it is: 216 → 656 bytes with the factored form).
    if FACTORED is not None:
        if (tl.max(b_G0 - b_Gc, axis=0) <= FACTORED_RANGE) != FACTORED:
            return
    # Sub-chunks past T still run (all loads masked to zero) so that their dg rows are written as zeros.
    o_c = tl.arange(0, BC)
    t_i = t0 + o_c
    m_i = t_i < T
    m_ik = m_i[:, None] & m_k[None, :]
    p_ik = ((i_b * T + t_i[:, None]) * H + i_h) * K + o_k[None, :]
    b_Gi = tl.load(G + ((i_b * TP + t_i[:, None]) * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
    b_Gl = tl.load(G + ((i_b * TP + i_n * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
    # inter-chunk parts (entering state h[n], leaving-state gradient dh[n]) and the diagonal block's dA
    b_dq = tl.zeros([BC, BK], dtype=tl.float32)
    b_dk = tl.zeros([BC, BK], dtype=tl.float32)
    b_dA = tl.zeros([BC, BC], dtype=tl.float32)
    # The chunk's last sub-chunk also takes Σ_v h[n+1] ⊙ dh[n] (state leaving the chunk times its gradient):
    # that is what all later chunks add to ∂L/∂Γ, so dg needs no suffix sum across chunks (see module doc).
    # Its own loop, run by that one program in four: it is the only use of h[n+1], and inside the loop below its
    # [BV, BK] fp32 products cost every program registers (at K = 128: 252 registers and spills at 4 warps).
    b_leave = tl.zeros([BK], dtype=tl.float32)
    if (i_c == NC - 1) & (i_n + 1 < NT):
        for i_v in range(tl.cdiv(V, BV)):
            o_v = i_v * BV + tl.arange(0, BV)
            p_hv = ((i_bh * NT + i_n) * K + o_k[None, :]) * V + o_v[:, None]  # [BV, BK] (transposed)
            m_hv = (o_v < V)[:, None] & m_k[None, :]
            b_hl = tl.load(h + p_hv + K * V, mask=m_hv, other=0.0).to(tl.float32)
            b_leave += tl.sum(b_hl * tl.load(dh + p_hv, mask=m_hv, other=0.0).to(tl.float32), axis=0)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        p_hv = ((i_bh * NT + i_n) * K + o_k[None, :]) * V + o_v[:, None]  # [BV, BK] (transposed)
        b_h = tl.load(h + p_hv, mask=m_v[:, None] & m_k[None, :], other=0.0)
        b_dh = tl.load(dh + p_hv, mask=m_v[:, None] & m_k[None, :], other=0.0)
        b_do = tl.load(do + ((i_b * T + t_i[:, None]) * H + i_h) * V + o_v[None, :], mask=m_i[:, None] & m_v[None, :], other=0.0)
        b_v = tl.load(v + ((i_b * T + t_i[:, None]) * H + i_h) * V + o_v[None, :], mask=m_i[:, None] & m_v[None, :], other=0.0)
        b_dq += _dot(b_do, b_h, IS_FP32)
        b_dk += _dot(b_v, b_dh, IS_FP32)
        if not HAS_DA:
            b_dA += _dot(b_do, tl.trans(b_v), IS_FP32)
    if HAS_DA:  # the diagonal block of the chunk's do vᵀ (_gla_bwd_dA), on and below its diagonal
        p_dAd = dA + ((i_b * T + t_i[:, None]) * H + i_h) * BT + i_c * BC + o_c[None, :]
        b_dA = tl.load(p_dAd, mask=m_i[:, None] & (o_c[None, :] <= o_c[:, None]), other=0.0)
    b_dq = b_dq * scale * exp_ftz(b_Gi)
    b_dk = b_dk * exp_ftz(b_Gl[None, :] - b_Gi)
    # earlier sub-chunks j < i, both factors referred to G at this sub-chunk's first row. Loaded again rather than
    # kept from the range check above: held across the V loop, those two rows cost spills (sm_90: 216 → 240 bytes
    # at K = 128 without dA, 12 → 16 with it).
    b_Gr = tl.load(G + ((i_b * TP + t0) * H + i_h) * K + o_k, mask=m_k, other=0.0)
    acc = tl.zeros([BC, BK], dtype=tl.float32)
    for j_c in range(i_c):
        t_j = i_n * BT + j_c * BC + o_c
        if HAS_DA:
            b_dAj = tl.load(dA + ((i_b * T + t_i[:, None]) * H + i_h) * BT + j_c * BC + o_c[None, :], mask=m_i[:, None], other=0.0)
        else:
            b_dAj = tl.zeros([BC, BC], dtype=tl.float32)
            for i_v in range(tl.cdiv(V, BV)):
                o_v = i_v * BV + tl.arange(0, BV)
                m_v = o_v < V
                b_do = tl.load(do + ((i_b * T + t_i[:, None]) * H + i_h) * V + o_v[None, :], mask=m_i[:, None] & m_v[None, :], other=0.0)
                p_vj = v + ((i_b * T + t_j[None, :]) * H + i_h) * V + o_v[:, None]
                b_vj = tl.load(p_vj, mask=m_v[:, None] & (t_j[None, :] < T), other=0.0)
                b_dAj += _dot(b_do, b_vj, IS_FP32)
        b_kj = tl.load(k + ((i_b * T + t_j[:, None]) * H + i_h) * K + o_k[None, :], mask=(t_j[:, None] < T) & m_k[None, :], other=0.0)
        b_Gj = tl.load(G + ((i_b * TP + t_j[:, None]) * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_kr = (b_kj.to(tl.float32) * exp_ftz(b_Gr[None, :] - b_Gj)).to(k.dtype.element_ty)
        acc += _dot(b_dAj.to(k.dtype.element_ty), b_kr, IS_FP32)
    b_dq += scale * exp_ftz(b_Gi - b_Gr[None, :]) * acc
    # later sub-chunks j > i, both factors referred to G at this sub-chunk's last row
    b_Gr = tl.load(G + ((i_b * TP + t0 + BC - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
    acc = tl.zeros([BC, BK], dtype=tl.float32)
    for j_c in range(i_c + 1, NC):
        t_j = i_n * BT + j_c * BC + o_c
        m_j = t_j < T
        if HAS_DA:  # dA_jiᵀ, [BC (i), BC (j)]: row j of the chunk's dA, read down a column
            p_dAt = dA + ((i_b * T + t_j[None, :]) * H + i_h) * BT + i_c * BC + o_c[:, None]
            b_dAt = tl.load(p_dAt, mask=m_j[None, :], other=0.0)
        else:
            b_dAt = tl.zeros([BC, BC], dtype=tl.float32)  # dA_jiᵀ, [BC (i), BC (j)]
            for i_v in range(tl.cdiv(V, BV)):
                o_v = i_v * BV + tl.arange(0, BV)
                m_v = o_v < V
                b_v = tl.load(v + ((i_b * T + t_i[:, None]) * H + i_h) * V + o_v[None, :], mask=m_i[:, None] & m_v[None, :], other=0.0)
                b_doj = tl.load(do + ((i_b * T + t_j[None, :]) * H + i_h) * V + o_v[:, None], mask=m_v[:, None] & m_j[None, :], other=0.0)
                b_dAt += _dot(b_v, b_doj, IS_FP32)
        b_qj = tl.load(q + ((i_b * T + t_j[:, None]) * H + i_h) * K + o_k[None, :], mask=m_j[:, None] & m_k[None, :], other=0.0)
        b_Gj = tl.load(G + ((i_b * TP + t_j[:, None]) * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_qr = (b_qj.to(tl.float32) * exp_ftz(b_Gj - b_Gr[None, :])).to(q.dtype.element_ty)
        acc += _dot(b_dAt.to(q.dtype.element_ty), b_qr, IS_FP32)
    b_dk += scale * exp_ftz(b_Gr[None, :] - b_Gi) * acc
    # diagonal sub-chunk, strictly below its diagonal. The a = b terms (dA_aa q_a k_a, decay e⁰) add the same
    # amount to q ⊙ dq and k ⊙ dk, so they are left out of ∂L/∂Γ and added to dq, dk afterwards: with strong
    # decays they dominate and would cancel in rounding.
    # q and k of these rows are loaded only now: fewer [BC, BK] tiles live across the loops above (spills)
    b_q = tl.load(q + p_ik, mask=m_ik, other=0.0).to(tl.float32)
    b_dA = b_dA * scale
    b_dd = tl.sum(tl.where(o_c[:, None] == o_c[None, :], b_dA, 0.0), axis=1)
    b_dA = tl.where(o_c[:, None] > o_c[None, :], b_dA, 0.0)
    if FACTORED is not None and FACTORED:  # two products; every factor referred to G at the sub-chunk's first row
        b_k = tl.load(k + p_ik, mask=m_ik, other=0.0).to(tl.float32)
        b_eq = exp_ftz(b_Gi - b_G0[None, :])  # ≤ 1
        b_ek = exp_ftz(b_G0[None, :] - b_Gi)  # ≤ e^d
        b_dq += b_eq * _dot_f32(b_dA, b_k * b_ek, IS_FP32)
        b_dk += b_ek * _dot_f32(tl.trans(b_dA), b_q * b_eq, IS_FP32)
    else:  # one key row b at a time, the pairwise decays masked before the exp
        for b in range(BC):
            t_b = t0 + b
            b_kb = tl.load(k + ((i_b * T + t_b) * H + i_h) * K + o_k, mask=m_k & (t_b < T), other=0.0).to(tl.float32)
            b_Gb = tl.load(G + ((i_b * TP + t_b) * H + i_h) * K + o_k, mask=m_k, other=0.0)
            b_e = exp_ftz(tl.where(o_c[:, None] > b, b_Gi - b_Gb[None, :], float("-inf")))  # [BC (a), BK]
            b_col = tl.sum(tl.where(o_c[None, :] == b, b_dA, 0.0), axis=1)  # dA[:, b]
            b_dq += b_col[:, None] * b_kb[None, :] * b_e
            b_row = tl.sum(b_col[:, None] * b_q * b_e, axis=0)
            b_dk += tl.where(o_c[:, None] == b, b_row[None, :], 0.0)
        b_k = tl.load(k + p_ik, mask=m_ik, other=0.0).to(tl.float32)
    # ∂L/∂Γ = q ⊙ dq − k ⊙ dk, from the fp32 accumulators, summed from the end of the sub-chunk
    b_dg = tl.cumsum(b_q * b_dq - b_k * b_dk, axis=0, reverse=True) + b_leave[None, :]
    tl.store(dgl + ((i_b * TP + t_i[:, None]) * H + i_h) * K + o_k[None, :], b_dg, mask=m_k[None, :])
    b_dq += b_dd[:, None] * b_k
    b_dk += b_dd[:, None] * b_q
    tl.store(dq + p_ik, b_dq.to(dq.dtype.element_ty), mask=m_ik)
    tl.store(dk + p_ik, b_dk.to(dk.dtype.element_ty), mask=m_ik)


@triton.jit
def _gla_bwd_dg(
    dgl, hdT, dg, T, NT, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
    HAS_DHT: tl.constexpr,
):
    """``dg`` from the dq/dk kernel's in-sub-chunk suffix sums ``dgl`` (fp32, padded to whole chunks): walking the
    chunk's sub-chunks from the last, add the totals of the later ones (row 0 of each holds its total), and to the
    last chunk the final-state term ``Σ_v hT ⊙ dhT`` (``hdT [B, H, K]``); stored in dg's dtype, steps < T only.
    One program per (K block, chunk, batch·head)."""
    i_k, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    NC: tl.constexpr = BT // BC
    TP = NT * BT
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    o_c = tl.arange(0, BC)
    b_carry = tl.zeros([BK], dtype=tl.float32)
    if HAS_DHT:
        b_carry += tl.load(hdT + i_bh * K + o_k, mask=m_k & (i_n == NT - 1), other=0.0)
    for i_r in range(NC):
        t = i_n * BT + (NC - 1 - i_r) * BC + o_c
        b_dg = tl.load(dgl + ((i_b * TP + t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        p_dg = dg + ((i_b * T + t[:, None]) * H + i_h) * K + o_k[None, :]
        tl.store(p_dg, (b_dg + b_carry[None, :]).to(dg.dtype.element_ty), mask=(t < T)[:, None] & m_k[None, :])
        b_carry += tl.sum(tl.where(o_c[:, None] == 0, b_dg, 0.0), axis=0)


# Without dA every program forms its do vᵀ blocks by loops over V, so it holds all of K (one K block; 8 warps:
# several [16, K] fp32 tiles, 4 warps spilled at K = 128 when compiled for sm_90). With dA (``HAS_DA``) every
# column of K is independent — dq, dk and dg of a K column need only that column of q, k, G, h and dh — so the
# grid splits K into blocks of at most 64: twice the programs at K = 128, each with half the tiles.
_gla_bwd_dqk_jit = triton.jit(_gla_bwd_dqk_body, do_not_specialize=["SIZE_CLASS"])
# FACTORED in the key: the factored launch and the pairwise one after it do different work (most of the
# pairwise programs return at once); with one key the first launch's tile served both (kernels/NOTES.md 46)
_DQK_KEY = ["K", "V", "BK", "BT", "IS_FP32", "HAS_DA", "FACTORED", "SIZE_CLASS"]
_gla_bwd_dqk = triton.autotune(configs=_configs(_DQK_TILES), key=_DQK_KEY)(_gla_bwd_dqk_jit)
_gla_bwd_dqk_da = triton.autotune(configs=_configs(_DQK_DA_TILES), key=_DQK_KEY)(_gla_bwd_dqk_jit)


def chunk_gla_bwd(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float, initial_state: Tensor | None, do: Tensor, dhT: Tensor | None,
    scores: Tensor | None = None, factored_diagonal: bool = True,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Gradients of :func:`kernels.gla.triton_chunk.chunk_gla_fwd` (no autograd needed).

    Args:
        q, k: ``[B, T, H, K]`` (K ≤ 256). v: ``[B, T, H, V]``. g: ``[B, T, H, K]`` log-decay.
        scale, initial_state (``[B, H, K, V]`` or None): as in the forward.
        do: ``[B, T, H, V]`` gradient of o. dhT: ``[B, H, K, V]`` gradient of the final state, or None.
        scores: the forward's ``scores_out`` (:func:`chunk_gla_fwd`) for dv as one product per chunk, or None
            (dv rebuilds the scores).
        factored_diagonal: with ``scores``, the dq/dk kernel's diagonal blocks as two products for sub-chunks
            within ``FACTORED_RANGE`` (a launch of their own; kernels/NOTES.md 43); else row by row.
    Returns:
        dq, dk, dv in the dtypes of q, k, v; dg ``[B, T, H, K]`` in g's dtype (fp32 inside);
        dh0 ``[B, H, K, V]`` in initial_state's dtype, or None without an initial state.
    """
    check_gated(q, k, v, g, "chunk_gla_bwd")
    check_k(q.shape[-1])
    dtypes = q.dtype, k.dtype, v.dtype, g.dtype
    q, k, v = prepare_inputs(q, k, v)
    do = do.contiguous().to(q.dtype)
    dhT = dhT.float().contiguous() if dhT is not None else None
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT, BC = CHUNK, SUB_CHUNK
    NT, NC = cdiv(T, BT), BT // BC
    sc = size_class(NT * B * H)  # the chunk-parallel kernels' autotune size class (kernels/NOTES.md 49)
    is_fp32 = q.dtype == torch.float32
    G = chunk_local_cumsum(g)
    # hT (fp32) only feeds dg's final-state term, so it is recomputed only when dhT is given.
    h, hT = chunk_gla_states(k, v, G, initial_state, dhT is not None)

    dh = torch.empty_like(h)
    dh0 = torch.empty(B, H, K, V, device=q.device, dtype=torch.float32) if initial_state is not None else None
    BKs = min(64, max(16, next_power_of_2(K)))
    _gla_bwd_dh[lambda meta: (cdiv(K, BKs), cdiv(V, meta["BV"]), B * H)](
        q, do, G, dh, dhT, dh0, float(scale), T, NT, SIZE_CLASS=size_class(B * H), H=H, K=K, V=V, BT=BT, BK=BKs,
        HAS_DHT=dhT is not None, STORE_DH0=dh0 is not None, IS_FP32=is_fp32,
    )

    BK = max(16, next_power_of_2(K))
    dv = torch.empty(B, T, H, V, device=q.device, dtype=q.dtype)
    if scores is not None:
        _gla_bwd_dv_scores[lambda meta: (cdiv(V, meta["BV"]), NT, B * H)](
            k, G, scores, do, dh, dv, T, NT, SIZE_CLASS=sc, H=H, K=K, V=V, BT=BT, BK=BKs, IS_FP32=is_fp32,
        )
    else:
        _gla_bwd_dv[lambda meta: (cdiv(V, meta["BV"]), NT * NC, B * H)](
            q, k, G, do, dh, dv, float(scale), T, NT, SIZE_CLASS=sc, H=H, K=K, V=V, BT=BT, BC=BC, BK=BK, IS_FP32=is_fp32,
        )

    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dgl = torch.empty(B, NT * BT, H, K, device=q.device, dtype=torch.float32)
    # Along with the forward's scores, the chunk's do vᵀ once for dq and dk (a new buffer: the saved scores must
    # stay as they are for a second backward through the same graph).
    dA = torch.empty_like(scores) if scores is not None else None
    if dA is not None:
        _gla_bwd_dA[(NT, B * H)](v, do, dA, T, NT, SIZE_CLASS=sc, H=H, V=V, BT=BT, IS_FP32=is_fp32)
    # with dA, K in blocks of BKs (see _gla_bwd_dqk_da); without, one K block
    dqk, BKq = (_gla_bwd_dqk_da, BKs) if dA is not None else (_gla_bwd_dqk, BK)
    # factored: sub-chunks within FACTORED_RANGE, then those past it (most programs return at once); else one
    for factored in (True, False) if dA is not None and factored_diagonal else (None,):
        dqk[(cdiv(K, BKq), NT * NC, B * H)](
            q, k, v, G, h, do, dh, dq, dk, dgl, dA, float(scale), T, NT, SIZE_CLASS=sc, H=H, K=K, V=V, BT=BT, BC=BC, BK=BKq,
            IS_FP32=is_fp32, FACTORED=factored, HAS_DA=dA is not None,
        )

    # dg_t: the kernel summed ∂L/∂Γ inside each sub-chunk (row 0 holds the sub-chunk's total, the last one's
    # including what later chunks contribute); _gla_bwd_dg adds the totals of the chunk's later sub-chunks, and to
    # the last chunk the final-state term Σ_v hT ⊙ dhT (fp32).
    hdT = (hT * dhT).sum(-1) if dhT is not None else None
    dg = torch.empty(B, T, H, K, device=q.device, dtype=dtypes[3])
    _gla_bwd_dg[(cdiv(K, BKs), NT, B * H)](dgl, hdT, dg, T, NT, H=H, K=K, BT=BT, BC=BC, BK=BKs, HAS_DHT=hdT is not None)

    dq, dk, dv = dq.to(dtypes[0]), dk.to(dtypes[1]), dv.to(dtypes[2])
    if dh0 is not None:
        dh0 = dh0.to(initial_state.dtype)
    return dq, dk, dv, dg, dh0


class ChunkGLAFunction(torch.autograd.Function):
    """Triton forward (:func:`chunk_gla_fwd`) and Triton backward (:func:`chunk_gla_bwd`).

    The forward saves its inputs (and, with ``save_scores``, its intra-chunk scores); the backward recomputes
    the chunk-entry states.
    """

    @staticmethod
    def forward(ctx, q, k, v, g, scale, initial_state, output_final_state, save_scores=False):
        B, T, H, _ = q.shape
        scores = torch.empty(B, T, H, CHUNK, device=q.device, dtype=torch.float32) if save_scores else None
        o, hT = chunk_gla_fwd(q, k, v, g, scale, initial_state, output_final_state, scores)
        ctx.save_for_backward(q, k, v, g, initial_state, scores)
        ctx.scale = scale
        # Unused outputs then arrive as None instead of zero tensors (no dhT term, no zeros read).
        ctx.set_materialize_grads(False)
        return o, hT

    @staticmethod
    def backward(ctx, do, dhT):
        q, k, v, g, h0, scores = ctx.saved_tensors
        if do is None:
            do = torch.zeros_like(v)
        dq, dk, dv, dg, dh0 = chunk_gla_bwd(q, k, v, g, ctx.scale, h0, do, dhT, scores, FACTORED_DIAGONAL)
        return dq, dk, dv, dg, None, dh0, None, None
