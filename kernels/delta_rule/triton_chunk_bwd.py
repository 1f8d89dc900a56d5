"""Chunked Triton backward of the generalized delta rule, paired with the chunked forward (:mod:`.triton_chunk`).

The algorithm is :func:`kernels.delta_rule.naive.naive_chunk_delta_rule_bwd`'s. The forward under autograd keeps
what its kernels already formed: ``G``, the UT transform ``L`` and ``M = L A_ak`` (stored by the solve for it),
``Q_b``, ``Ã``, ``b̄ = b_out``, ``k_eff``, ``q_eff``, ``P`` and the chunk-entry states ``h``. Then, with
``dÕ = scale · do`` and ``dS'`` the gradient of the state leaving a chunk:

1. ``_delta_rule_chunk_dstates``, grid (V block, batch·head), walks the chunks last to first (the forward walk
   transposed): stores ``dS'`` per chunk (fp32) and ``dh0``,
   ``dS ← q_effᵀ do + e^{G_last} ⊙ dS' + Ãᵀ (b̄ dS')``.
2. ``_delta_rule_chunk_bwd_v``, grid (chunk, batch·head), all independent, V in blocks: ``u = M v + Ã S``,
   ``du = Q_bᵀ dÕ + b̄ dS'``, ``dr = Lᵀ du``, ``dv = Pᵀ do + k_eff dS'`` (``= A_akᵀ dr + Q_kᵀ dÕ + k̄ dS'``), stores
   ``u`` and ``dr`` and sums over V the four score gradients ``dA_ab = dr uᵀ``, ``dA_ak = dr vᵀ`` (strictly
   lower), ``dQ_b = dÕ uᵀ``, ``dQ_k = dÕ vᵀ`` (lower).
3. ``_delta_rule_chunk_bwd_k``, grid (K block · sub-chunk, chunk, batch·head), all independent: for the
   sub-chunk's rows, the direct terms ``dr Sᵀ``, ``dÕ Sᵀ``, ``u dS'ᵀ``, ``v dS'ᵀ`` (a loop over V), then the decayed
   scores' gradients (rows: ``dx_t = Σ_i dA[t, i] y_i e^{gx_t − G_i}``; columns: ``dy_i = Σ_t dA[t, i] x_t
   e^{gx_t − G_i}``). Blocks off the diagonal refer both factors to one row of ``G`` so that neither exponent is
   positive (the row before the sub-chunk for rows, its last row for columns). The diagonal block joins those
   products, masked, while the sub-chunk's decay range over the program's K block is at most ``FACTORED_RANGE``
   (factors within e^40, as in the forward's scores); past it, it walks its 16 columns (rows) with the exponent
   masked to ``−inf`` before the exp. Stores ``dq``, ``dk``, ``da``, ``db`` and the
   log-decay terms ``X = q dq − b db − k dk + a da``, ``Y = a da`` and ``c = b̄ db̄ + k̄ dk̄`` per step, ``w =
   e^{G_last} Σ_v S ⊙ dS'`` per chunk.
4. ``_delta_rule_chunk_bwd_dg``, grid (K block, chunk, batch·head): ``dg_s = Σ_{t≥s} X_t − Y_s + Σ_t c_t + w``.

Precision follows the forward: what comes from the walk and the solve is fp32; products of fp32 tiles are IEEE
for fp32 inputs and tf32 otherwise; ``q_eff``, ``P``, ``h`` and ``do`` are in the inputs' dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from kernels._dispatch import bh_bucket, cdiv, next_power_of_2, size_class
from kernels._triton_math import exp_ftz
from kernels.delta_rule.naive import _check
from kernels.delta_rule.triton_chunk import FACTORED_RANGE, WALK_TILES_3_STAGES, TileTable, chunk_delta_rule_fwd
from kernels.gla.triton_chunk import _dot

__all__ = ["ChunkDeltaRuleFunction", "chunk_delta_rule_bwd"]

# (meta-parameters, num_warps): those autotuned for 16-bit inputs, then the one fp32 inputs take. Registers per
# config: scripts/ptxas_report.py (bwd_v spills in most of them, kernels/NOTES.md 35).
_TILES = {
    # the reverse walk, as the forward's (the 4-warp, 3-stage BV 64 tile picked on the H200: 213 → 146 µs, NOTES 62)
    "dstates": ((({"BV": 16}, 4), ({"BV": 32}, 4), ({"BV": 32}, 8), ({"BV": 64}, 8), *WALK_TILES_3_STAGES), ({"BV": 16}, 8)),
    # the last tile of each: the one the H200 picks at K = 64 (NOTES 62), at 3 stages (NOTES 64: no new spills at
    # K = 64, shared memory 36-188 KB; its loops' loads a step further ahead, untimed)
    "bwd_v": ((({"BK": 32, "BV": 32}, 4), ({"BK": 64, "BV": 32}, 8), ({"BK": 32, "BV": 64}, 8),
               ({"BK": 32, "BV": 32}, 4, {"num_stages": 3})), ({"BK": 32, "BV": 32}, 8)),
    "bwd_k": ((({"BK": 32, "BV": 32}, 4), ({"BK": 64, "BV": 32}, 4), ({"BK": 64, "BV": 64}, 8),
               ({"BK": 64, "BV": 32}, 4, {"num_stages": 3})), ({"BK": 32, "BV": 32}, 4)),
}
_INTERPRETED = {"dstates": {"BV": 16}, "bwd_v": {"BK": 16, "BV": 16}, "bwd_k": {"BK": 16, "BV": 16}}
_TABLE = TileTable(_TILES, _INTERPRETED, walks=("dstates",))
_gpu_configs, _configs, _by_precision = _TABLE.gpu_configs, _TABLE.configs, _TABLE.by_precision


@triton.autotune(
    configs=_configs("dstates"), key=["K", "V", "BK", "BT", "IS_FP32", "BH_BUCKET"],
    prune_configs_by={"early_config_prune": _by_precision("dstates")},
)
@triton.jit(do_not_specialize=["T", "NT"])
def _delta_rule_chunk_dstates(
    do, G, Ae, Bo, Qe, dh, dhT, dh0, T, NT, BH_BUCKET,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, IS_FP32: tl.constexpr,
):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    TP = NT * BT
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_kv = o_k[:, None] * V + o_v[None, :]
    b_ds = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DHT:
        b_ds += tl.load(dhT + i_bh.to(tl.int64) * K * V + p_kv, mask=m_kv, other=0.0)
    o_t = tl.arange(0, BT)
    for j in range(NT):
        i_n = NT - 1 - j
        tl.store(dh + (i_bh.to(tl.int64) * NT + i_n) * K * V + p_kv, b_ds, mask=m_kv)
        t = i_n * BT + o_t
        row_o = i_bh.to(tl.int64) * TP + t
        # q_eff and Ã as [BK, BT] (transposed), b̄ as [BT, BK]; rows past T hold zeros
        b_qeT = tl.load(Qe + row_o[None, :] * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_aeT = tl.load(Ae + row_o[None, :] * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_bo = tl.load(Bo + row_o[:, None] * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_do = tl.load(do + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=(t[:, None] < T) & m_v[None, :], other=0.0)
        b_Gl = tl.load(G + ((i_b * TP + i_n * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        b_w = _dot(b_bo, b_ds, IS_FP32)  # b̄ dS'
        b_ds = b_ds * tl.exp(b_Gl)[:, None] + _dot(b_aeT, b_w, IS_FP32) + _dot(b_qeT, b_do.to(b_qeT.dtype), IS_FP32)
    if STORE_DH0:
        tl.store(dh0 + i_bh.to(tl.int64) * K * V + p_kv, b_ds, mask=m_kv)


@triton.autotune(
    configs=_configs("bwd_v"), key=["K", "V", "BT", "IS_FP32", "SIZE_CLASS"],
    prune_configs_by={"early_config_prune": _by_precision("bwd_v")},
)
@triton.jit(do_not_specialize=["T", "NT", "SIZE_CLASS"])
def _delta_rule_chunk_bwd_v(
    v, do, Lm, Mm, Q_b, P, Ae, Bo, Ke, h, dh, U, dR, dv, dA_ab, dA_ak, dQ_b, dQ_k, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_n, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    TP = NT * BT
    o_t = tl.arange(0, BT)
    t = i_n * BT + o_t
    m_t = t < T
    rows, cols = o_t[:, None], o_t[None, :]
    p_sq = (i_bh.to(tl.int64) * NT + i_n) * BT * BT + rows * BT + cols
    p_sqT = (i_bh.to(tl.int64) * NT + i_n) * BT * BT + cols * BT + rows
    b_M = tl.load(Mm + p_sq)  # rows past T and above the diagonal are zero (the solve wrote them)
    b_LT = tl.load(Lm + p_sqT)
    b_QbT = tl.load(Q_b + p_sqT, mask=(rows <= cols) & m_t[None, :], other=0.0)  # Q_b's rows past T were not written
    b_PT = tl.load(P + p_sqT)
    row_o = i_bh.to(tl.int64) * TP + t
    p_h = (i_bh.to(tl.int64) * NT + i_n) * K * V
    acc_ab = tl.zeros([BT, BT], dtype=tl.float32)
    acc_ak = tl.zeros([BT, BT], dtype=tl.float32)
    acc_qb = tl.zeros([BT, BT], dtype=tl.float32)
    acc_qk = tl.zeros([BT, BT], dtype=tl.float32)
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_tv = m_t[:, None] & m_v[None, :]
        p_v = ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :]
        b_v = tl.load(v + p_v, mask=m_tv, other=0.0)
        b_do = tl.load(do + p_v, mask=m_tv, other=0.0)
        b_vf = b_v.to(tl.float32)
        b_dos = b_do.to(tl.float32) * scale
        b_u = _dot(b_M, b_vf, IS_FP32)
        b_du = _dot(b_QbT, b_dos, IS_FP32)
        b_dv = _dot(b_PT, b_do.to(b_PT.dtype), IS_FP32)
        for i_k in range(tl.cdiv(K, BK)):
            o_k = i_k * BK + tl.arange(0, BK)
            m_k = o_k < K
            m_kv = m_k[:, None] & m_v[None, :]
            b_s = tl.load(h + p_h + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0).to(tl.float32)
            b_ds = tl.load(dh + p_h + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0)
            p_x = row_o[:, None] * K + o_k[None, :]
            b_ae = tl.load(Ae + p_x, mask=m_k[None, :], other=0.0)
            b_bo = tl.load(Bo + p_x, mask=m_k[None, :], other=0.0)
            b_ke = tl.load(Ke + p_x, mask=m_k[None, :], other=0.0)
            b_u += _dot(b_ae, b_s, IS_FP32)
            b_du += _dot(b_bo, b_ds, IS_FP32)
            b_dv += _dot(b_ke, b_ds, IS_FP32)
        b_dr = _dot(b_LT, b_du, IS_FP32)
        p_uv = row_o[:, None] * V + o_v[None, :]
        tl.store(U + p_uv, b_u, mask=m_v[None, :])
        tl.store(dR + p_uv, b_dr, mask=m_v[None, :])
        tl.store(dv + p_v, b_dv.to(dv.dtype.element_ty), mask=m_tv)
        b_uT = tl.trans(b_u)
        b_vT = tl.trans(b_vf)
        acc_ab += _dot(b_dr, b_uT, IS_FP32)
        acc_ak += _dot(b_dr, b_vT, IS_FP32)
        acc_qb += _dot(b_dos, b_uT, IS_FP32)
        acc_qk += _dot(b_dos, b_vT, IS_FP32)
    strict = cols < rows
    incl = cols <= rows
    tl.store(dA_ab + p_sq, tl.where(strict, acc_ab, 0.0))
    tl.store(dA_ak + p_sq, tl.where(strict, acc_ak, 0.0))
    tl.store(dQ_b + p_sq, tl.where(incl, acc_qb, 0.0))
    tl.store(dQ_k + p_sq, tl.where(incl, acc_qk, 0.0))


@triton.jit
def _diagonal_column_and_row(
    j, q, k, a, b, G, dA_ab, dA_ak, dQ_b, dQ_k, b_G, b_Gx, b_eg, b_da, b_dq, b_db, b_dk, r0, i_c, i_b, i_h, p_blk, o_c,
    o_k, m_k, T, TP, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
):
    """Step ``j`` of the diagonal block: column ``j`` of the score gradients into the rows' ``da``, ``dq`` and row
    ``j`` into the columns' ``db``, ``dk``; exponents masked to ``−inf`` before the exp."""
    t_j = r0 + j
    m_j = t_j < T
    p_j = ((i_b * T + t_j) * H + i_h) * K + o_k
    row_gj = (i_b * TP + t_j) * H + i_h
    b_Gj = tl.load(G + row_gj * K + o_k, mask=m_k, other=0.0)
    b_Gxj = tl.load(G + (row_gj - H) * K + o_k, mask=m_k & (i_c * BC + j > 0), other=0.0)
    b_bj = tl.load(b + p_j, mask=m_k & m_j, other=0.0).to(tl.float32)
    b_kj = tl.load(k + p_j, mask=m_k & m_j, other=0.0).to(tl.float32)
    b_aj = tl.load(a + p_j, mask=m_k & m_j, other=0.0).to(tl.float32)
    b_qj = tl.load(q + p_j, mask=m_k & m_j, other=0.0).to(tl.float32)
    # column j: rows t > j (strict) / t ≥ j (inclusive) of this sub-chunk
    p_cj = p_blk + (i_c * BC + o_c) * BT + i_c * BC + j
    # e^{G_t − G_j} = e^{G⁻_t − G_j} e^{g_t} for t > j and 1 at t = j (b_eg = e^{g} of this sub-chunk's rows), and
    # likewise for the row below: two [BC, BK] exps per step instead of four
    e_s = tl.exp(tl.where(o_c[:, None] > j, b_Gx - b_Gj[None, :], float("-inf")))
    e_i = tl.where(o_c[:, None] == j, 1.0, e_s * b_eg)
    b_da += (tl.load(dA_ab + p_cj)[:, None] * b_bj[None, :] + tl.load(dA_ak + p_cj)[:, None] * b_kj[None, :]) * e_s
    b_dq += (tl.load(dQ_b + p_cj)[:, None] * b_bj[None, :] + tl.load(dQ_k + p_cj)[:, None] * b_kj[None, :]) * e_i
    # row j: columns i < j (strict) / i ≤ j (inclusive) of this sub-chunk
    p_rj = p_blk + (i_c * BC + j) * BT + i_c * BC + o_c
    f_s = tl.exp(tl.where(o_c[:, None] < j, b_Gxj[None, :] - b_G, float("-inf")))
    f_i = tl.where(o_c[:, None] == j, 1.0, f_s * tl.exp(b_Gj - b_Gxj)[None, :])
    b_db += tl.load(dA_ab + p_rj)[:, None] * b_aj[None, :] * f_s + tl.load(dQ_b + p_rj)[:, None] * b_qj[None, :] * f_i
    b_dk += tl.load(dA_ak + p_rj)[:, None] * b_aj[None, :] * f_s + tl.load(dQ_k + p_rj)[:, None] * b_qj[None, :] * f_i
    return b_da, b_dq, b_db, b_dk


@triton.autotune(
    configs=_configs("bwd_k"), key=["K", "V", "BT", "IS_FP32", "SIZE_CLASS"],
    prune_configs_by={"early_config_prune": _by_precision("bwd_k")},
)
@triton.jit(do_not_specialize=["T", "NT", "SIZE_CLASS"])
def _delta_rule_chunk_bwd_k(
    q, k, v, a, b, do, G, h, dh, U, dR, dA_ab, dA_ak, dQ_b, dQ_k, dq, dk, da, db, X, Y, C, W, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_kc, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    NC = BT // BC
    i_k, i_c = i_kc // NC, i_kc % NC
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    TP = NT * BT
    o_c = tl.arange(0, BC)
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    r0 = i_n * BT + i_c * BC
    t_i = r0 + o_c
    m_i = t_i < T
    m_ik = m_i[:, None] & m_k[None, :]
    # The chunk's first row in each view as one 64-bit offset per program; within the chunk int32 offsets (rows
    # H · K apart in q, k, a, b, G and the gradients, H · V in v and do, V in U and dR), so that no per-element
    # address is 64-bit arithmetic (as the forward's solve, kernels/NOTES.md 56, 60). The originals stay for the
    # diagonal's column-by-column path (_diagonal_column_and_row).
    x0 = ((i_b * T + i_n * BT) * H + i_h) * K
    g0 = ((i_b * TP + i_n * BT) * H + i_h) * K
    v0 = ((i_b * T + i_n * BT) * H + i_h) * V
    u0 = (i_bh.to(tl.int64) * TP + i_n * BT) * V
    p_blk = (i_bh.to(tl.int64) * NT + i_n) * BT * BT  # this chunk's [BT, BT] score gradients
    q_c, k_c, a_c, b_c, G_c = q + x0, k + x0, a + x0, b + x0, G + g0
    dA_ab_c, dA_ak_c, dQ_b_c, dQ_k_c = dA_ab + p_blk, dA_ak + p_blk, dQ_b + p_blk, dQ_k + p_blk
    s_i = i_c * BC + o_c  # this sub-chunk's rows within the chunk
    p_x = s_i[:, None] * (H * K) + o_k[None, :]
    b_G = tl.load(G_c + p_x, mask=m_k[None, :], other=0.0)
    b_Gx = tl.load(G_c + p_x - H * K, mask=(s_i > 0)[:, None] & m_k[None, :], other=0.0)
    b_Gl = tl.load(G_c + (BT - 1) * H * K + o_k, mask=m_k, other=0.0)
    # direct terms, summed over V: dr Sᵀ, dÕ Sᵀ, u dS'ᵀ, v dS'ᵀ (and Σ_v S ⊙ dS' once per chunk)
    acc_a = tl.zeros([BC, BK], dtype=tl.float32)
    acc_q = tl.zeros([BC, BK], dtype=tl.float32)
    acc_b = tl.zeros([BC, BK], dtype=tl.float32)
    acc_k = tl.zeros([BC, BK], dtype=tl.float32)
    acc_w = tl.zeros([BK], dtype=tl.float32)
    p_h = (i_bh.to(tl.int64) * NT + i_n) * K * V
    h_c, dh_c, U_c, dR_c, do_c, v_c = h + p_h, dh + p_h, U + u0, dR + u0, do + v0, v + v0
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_iv = m_i[:, None] & m_v[None, :]
        # S and dS' as [BV, BK] (transposed)
        p_hT = o_k[None, :] * V + o_v[:, None]
        m_vk = m_v[:, None] & m_k[None, :]
        b_sT = tl.load(h_c + p_hT, mask=m_vk, other=0.0).to(tl.float32)
        b_dsT = tl.load(dh_c + p_hT, mask=m_vk, other=0.0)
        p_uv = s_i[:, None] * V + o_v[None, :]
        b_dr = tl.load(dR_c + p_uv, mask=m_v[None, :], other=0.0)
        b_u = tl.load(U_c + p_uv, mask=m_v[None, :], other=0.0)
        p_v = s_i[:, None] * (H * V) + o_v[None, :]
        b_dos = tl.load(do_c + p_v, mask=m_iv, other=0.0).to(tl.float32) * scale
        b_v = tl.load(v_c + p_v, mask=m_iv, other=0.0).to(tl.float32)
        acc_a += _dot(b_dr, b_sT, IS_FP32)
        acc_q += _dot(b_dos, b_sT, IS_FP32)
        acc_b += _dot(b_u, b_dsT, IS_FP32)
        acc_k += _dot(b_v, b_dsT, IS_FP32)
        if i_c == 0:
            acc_w += tl.sum(b_sT * b_dsT, axis=0)
    b_q = tl.load(q_c + p_x, mask=m_ik, other=0.0).to(tl.float32)
    b_k = tl.load(k_c + p_x, mask=m_ik, other=0.0).to(tl.float32)
    b_a = tl.load(a_c + p_x, mask=m_ik, other=0.0).to(tl.float32)
    b_b = tl.load(b_c + p_x, mask=m_ik, other=0.0).to(tl.float32)
    e_out = exp_ftz(b_Gl[None, :] - b_G)
    b_dbt, b_dkt = acc_b, acc_k  # db̄, dk̄
    b_da = acc_a * exp_ftz(b_Gx)
    b_dq = acc_q * exp_ftz(b_G)
    b_db = acc_b * e_out
    b_dk = acc_k * e_out
    # The diagonal block joins the products below while this sub-chunk's decay range (over this program's K block)
    # is at most FACTORED_RANGE, as in the forward's scores; past it, one column and one row at a time.
    rows, cols = o_c[:, None], o_c[None, :]
    b_Gr = tl.load(G_c + (i_c * BC - 1) * H * K + o_k, mask=m_k & (i_c > 0), other=0.0)  # G⁻ at row r0
    b_Ge = tl.load(G_c + (i_c * BC + BC - 1) * H * K + o_k, mask=m_k, other=0.0)  # G at its last row
    n_diag = (tl.max(b_Gr - b_Ge, axis=0) <= FACTORED_RANGE).to(tl.int32)
    # rows of this sub-chunk against the columns of earlier sub-chunks (and its own), both factors referred to G_r
    p_rows = s_i[:, None] * BT
    acc_da = tl.zeros([BC, BK], dtype=tl.float32)
    acc_dq = tl.zeros([BC, BK], dtype=tl.float32)
    for j_c in range(i_c + n_diag):
        s_j = j_c * BC + o_c  # past T only on the diagonal or when this sub-chunk is padding only
        m_jk = (i_n * BT + s_j < T)[:, None] & m_k[None, :]
        p_y = s_j[:, None] * (H * K) + o_k[None, :]
        b_Gj = tl.load(G_c + p_y, mask=m_k[None, :], other=0.0)
        f = exp_ftz(b_Gr[None, :] - b_Gj)
        b_bj = tl.load(b_c + p_y, mask=m_jk, other=0.0).to(tl.float32) * f
        b_kj = tl.load(k_c + p_y, mask=m_jk, other=0.0).to(tl.float32) * f
        p_d = p_rows + j_c * BC + cols
        m_s, m_n = (j_c < i_c) | (cols < rows), (j_c < i_c) | (cols <= rows)  # strict (A) and inclusive (Q) entries
        acc_da += _dot(tl.load(dA_ab_c + p_d, mask=m_s, other=0.0), b_bj, IS_FP32)
        acc_da += _dot(tl.load(dA_ak_c + p_d, mask=m_s, other=0.0), b_kj, IS_FP32)
        acc_dq += _dot(tl.load(dQ_b_c + p_d, mask=m_n, other=0.0), b_bj, IS_FP32)
        acc_dq += _dot(tl.load(dQ_k_c + p_d, mask=m_n, other=0.0), b_kj, IS_FP32)
    b_da += acc_da * exp_ftz(b_Gx - b_Gr[None, :])
    b_dq += acc_dq * exp_ftz(b_G - b_Gr[None, :])
    # columns of this sub-chunk against the rows of later sub-chunks (and its own), both factors referred to G_e
    p_cols = s_i[:, None]  # + row · BT: element [row, this sub-chunk's column]
    acc_db = tl.zeros([BC, BK], dtype=tl.float32)
    acc_dk = tl.zeros([BC, BK], dtype=tl.float32)
    for j_c in range(i_c + 1 - n_diag, NC):
        s_j = j_c * BC + o_c
        m_jk = (i_n * BT + s_j < T)[:, None] & m_k[None, :]
        p_y = s_j[:, None] * (H * K) + o_k[None, :]
        b_Gj = tl.load(G_c + p_y, mask=m_k[None, :], other=0.0)
        b_Gxj = tl.load(G_c + p_y - H * K, mask=(s_j > 0)[:, None] & m_k[None, :], other=0.0)
        b_aj = tl.load(a_c + p_y, mask=m_jk, other=0.0).to(tl.float32) * exp_ftz(b_Gxj - b_Ge[None, :])
        b_qj = tl.load(q_c + p_y, mask=m_jk, other=0.0).to(tl.float32) * exp_ftz(b_Gj - b_Ge[None, :])
        # [this column, later row] = transposed blocks of the score gradients
        p_d = p_cols + (j_c * BC + cols) * BT
        m_s, m_n = (j_c > i_c) | (cols > rows), (j_c > i_c) | (cols >= rows)
        acc_db += _dot(tl.load(dA_ab_c + p_d, mask=m_s, other=0.0), b_aj, IS_FP32)
        acc_db += _dot(tl.load(dQ_b_c + p_d, mask=m_n, other=0.0), b_qj, IS_FP32)
        acc_dk += _dot(tl.load(dA_ak_c + p_d, mask=m_s, other=0.0), b_aj, IS_FP32)
        acc_dk += _dot(tl.load(dQ_k_c + p_d, mask=m_n, other=0.0), b_qj, IS_FP32)
    b_ef = exp_ftz(b_Ge[None, :] - b_G)
    b_db += acc_db * b_ef
    b_dk += acc_dk * b_ef
    if n_diag == 0:
        # the diagonal block one column (for rows) and one row (for columns) at a time, 16 dependent steps
        b_eg = tl.exp(b_G - b_Gx)
        for j in range(BC):
            b_da, b_dq, b_db, b_dk = _diagonal_column_and_row(
                j, q, k, a, b, G, dA_ab, dA_ak, dQ_b, dQ_k, b_G, b_Gx, b_eg, b_da, b_dq, b_db, b_dk, r0, i_c, i_b,
                i_h, p_blk, o_c, o_k, m_k, T, TP, H, K, BT, BC,
            )
    tl.store(dq + x0 + p_x, b_dq.to(dq.dtype.element_ty), mask=m_ik)
    tl.store(dk + x0 + p_x, b_dk.to(dk.dtype.element_ty), mask=m_ik)
    tl.store(da + x0 + p_x, b_da.to(da.dtype.element_ty), mask=m_ik)
    tl.store(db + x0 + p_x, b_db.to(db.dtype.element_ty), mask=m_ik)
    # the log-decay's terms, per padded step (zero past T: every factor is)
    b_y = b_a * b_da
    tl.store(X + g0 + p_x, b_q * b_dq - b_b * b_db - b_k * b_dk + b_y, mask=m_k[None, :])
    tl.store(Y + g0 + p_x, b_y, mask=m_k[None, :])
    tl.store(C + g0 + p_x, (b_b * b_dbt + b_k * b_dkt) * e_out, mask=m_k[None, :])
    if i_c == 0:
        tl.store(W + ((i_b * NT + i_n) * H + i_h) * K + o_k, acc_w * exp_ftz(b_Gl), mask=m_k)


@triton.jit(do_not_specialize=["T", "NT"])
def _delta_rule_chunk_bwd_dg(
    X, Y, C, W, dg, T, NT, H: tl.constexpr, K: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr,
):
    """``dg_s = Σ_{t ≥ s} X_t − Y_s + Σ_t C_t + W`` inside a chunk, for one K block."""
    i_k, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = (i_bh // H).to(tl.int64), i_bh % H
    TP = NT * BT
    t = i_n * BT + tl.arange(0, BT)
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    p_g = ((i_b * TP + t[:, None]) * H + i_h) * K + o_k[None, :]
    b_x = tl.load(X + p_g, mask=m_k[None, :], other=0.0)
    b_c = tl.sum(tl.load(C + p_g, mask=m_k[None, :], other=0.0), axis=0)
    b_w = tl.load(W + ((i_b * NT + i_n) * H + i_h) * K + o_k, mask=m_k, other=0.0)
    b_dg = tl.cumsum(b_x, axis=0, reverse=True) - tl.load(Y + p_g, mask=m_k[None, :], other=0.0) + (b_c + b_w)[None, :]
    p_o = ((i_b * T + t[:, None]) * H + i_h) * K + o_k[None, :]
    tl.store(dg + p_o, b_dg.to(dg.dtype.element_ty), mask=(t < T)[:, None] & m_k[None, :])


def chunk_delta_rule_bwd(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, a: Tensor, b: Tensor, saved: dict, scale: float,
    do: Tensor, dhT: Tensor | None, need_dh0: bool,
) -> tuple[Tensor, ...]:
    """Gradients of :func:`kernels.delta_rule.triton_chunk.chunk_delta_rule_fwd` from its ``saved`` tensors.

    Returns dq, dk, dv, dg, da, db (dtypes of the inputs) and dh0 (fp32 ``[B, H, K, V]``, or None).
    """
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT = saved["BT"]
    BC = 16
    NT = cdiv(T, BT)
    TP, BH = NT * BT, B * H
    dev, f32 = q.device, torch.float32
    IS_FP32 = q.dtype == torch.float32
    BK = max(16, next_power_of_2(K))
    do = do.to(q.dtype).contiguous()
    G = saved["G"]
    dh = torch.empty(BH, NT, K, V, device=dev, dtype=f32)
    dh0 = torch.empty(B, H, K, V, device=dev, dtype=f32) if need_dh0 else None
    _delta_rule_chunk_dstates[lambda meta: (cdiv(V, meta["BV"]), BH)](
        do, G, saved["Ae"], saved["Bo"], saved["Qe"], dh, dhT, dh0, T, NT, bh_bucket(BH),
        H=H, K=K, V=V, BT=BT, BK=BK, HAS_DHT=dhT is not None, STORE_DH0=need_dh0, IS_FP32=IS_FP32,
    )
    U, dR = torch.empty(2, BH, TP, V, device=dev, dtype=f32).unbind(0)
    dA = torch.empty(4, BH, NT, BT, BT, device=dev, dtype=f32)
    dv = torch.empty_like(v)
    _delta_rule_chunk_bwd_v[(NT, BH)](
        v, do, saved["L"], saved["M"], saved["Q_b"], saved["P"], saved["Ae"], saved["Bo"], saved["Ke"], saved["h"], dh,
        U, dR, dv, *dA.unbind(0), float(scale), T, NT, SIZE_CLASS=size_class(NT * BH), H=H, K=K, V=V, BT=BT,
        IS_FP32=IS_FP32,
    )
    dq, dk, da, db = (torch.empty(B, T, H, K, device=dev, dtype=x.dtype) for x in (q, k, a, b))  # rounded once, in-kernel
    X, Y, Cg = torch.empty(3, B, TP, H, K, device=dev, dtype=f32).unbind(0)
    W = torch.empty(B, NT, H, K, device=dev, dtype=f32)
    _delta_rule_chunk_bwd_k[lambda meta: (cdiv(K, meta["BK"]) * (BT // BC), NT, BH)](
        q, k, v, a, b, do, G, saved["h"], dh, U, dR, *dA.unbind(0), dq, dk, da, db, X, Y, Cg, W, float(scale), T, NT,
        SIZE_CLASS=size_class(NT * BH), H=H, K=K, V=V, BT=BT, BC=BC, IS_FP32=IS_FP32,
    )
    dg = torch.empty_like(g)
    BKG = min(64, BK)
    _delta_rule_chunk_bwd_dg[(cdiv(K, BKG), NT, BH)](X, Y, Cg, W, dg, T, NT, H=H, K=K, BT=BT, BK=BKG)
    return dq, dk, dv, dg, da, db, dh0


class ChunkDeltaRuleFunction(torch.autograd.Function):
    """Chunked Triton forward (keeping its intermediates) and chunked Triton backward.

    ``apply(q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size, fuse_scores=False)
    -> (o, final_state)``.
    """

    @staticmethod
    def forward(ctx, q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size, fuse_scores=False):
        _check(q, k, v, g, a, b, "chunk_delta_rule")
        saved: dict = {}
        o, hT = chunk_delta_rule_fwd(
            q, k, v, g, a, b, scale, initial_state, output_final_state, chunk_size, saved=saved, fuse_scores=fuse_scores
        )
        names = sorted(n for n in saved if isinstance(saved[n], Tensor))
        ctx.save_for_backward(q, k, v, g, a, b, *(saved[n] for n in names))
        ctx.names, ctx.BT, ctx.scale, ctx.h0_dtype = names, saved["BT"], scale, None
        if initial_state is not None:
            ctx.h0_dtype = initial_state.dtype
        ctx.set_materialize_grads(False)
        return o, hT

    @staticmethod
    @once_differentiable
    def backward(ctx, do, dhT):
        q, k, v, g, a, b, *rest = ctx.saved_tensors
        saved = dict(zip(ctx.names, rest, strict=True), BT=ctx.BT)
        if do is None:
            do = torch.zeros_like(v)
        need_dh0 = ctx.needs_input_grad[7]
        dq, dk, dv, dg, da, db, dh0 = chunk_delta_rule_bwd(
            q, k, v, g, a, b, saved, ctx.scale, do, None if dhT is None else dhT.float().contiguous(), need_dh0
        )
        if dh0 is not None:
            dh0 = dh0.to(ctx.h0_dtype)
        return dq, dk, dv, dg, da, db, None, dh0, None, None, None
