"""Triton backward of the chunked SSD scan (scalar-decay gated linear attention).

Per (batch, head), chunk ``n`` with in-chunk cumulative log-decay ``G`` (``G_L`` its last entry), entry state
``h[n]`` and ``dh[n]`` the gradient of the state *leaving* chunk ``n``; ``D_ij = exp(G_i − G_j)·[j ≤ i]``:

    dh[n−1] = exp(G_L) dh[n] + scale · (q ⊙ exp(G))ᵀ do            (dh[NT−1] = dhT, dh0 = the last dh[−1])
    dq = scale · [exp(G) ⊙ (do hᵀ) + (D ⊙ do vᵀ) k]
    dk = scale · (D ⊙ do vᵀ)ᵀ q + exp(G_L − G) ⊙ (v dhᵀ)
    dv = scale · (D ⊙ q kᵀ)ᵀ do + exp(G_L − G) ⊙ (k dh)

``dg`` (``g_t`` enters every ``G_s`` with ``s ≥ t`` of its chunk): ``dG_s = q_s·dq_s − k_s·dk_s``, then
``dg_t = Σ_{s ≥ t in chunk} dG_s + <dh[n], h_leaving>``, the last term being the state-transition part
(``exp(G_L)<h[n], dh[n]> + Σ_j k_j·dk_inter_j``). The intra-chunk part of ``q·dq − k·dk`` is formed as the
row sum minus the column sum of ``M = scale · D ⊙ (do vᵀ) ⊙ (q kᵀ)`` in fp32 (its diagonal cancels exactly),
not from the bf16-rounded dq/dk, so bf16 inputs do not lose dg to cancellation.

Three launches after recomputing ``h`` with :func:`chunk_ssd_states` (nothing but the inputs is saved):

1. ``_ssd_chunk_bwd_dh``: one program per (K block, V block, batch·head) walks the chunks backwards and
   stores ``dh[n]`` (inputs' dtype, like ``h``) and ``dh0`` (fp32).
2. ``_ssd_chunk_bwd_dv``: one program per (V block, chunk, batch·head): ``dv``.
3. ``_ssd_chunk_bwd_dqkg``: one program per (K block, chunk, batch·head): ``dq``, ``dk`` and that K block's
   share of ``dg`` (fp32 partials ``[NK, B, T, H]``, summed in torch when K needs more than one block).

Decay factors are only ``exp`` of non-positive numbers (pairwise differences masked before the exp).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

from kernels._dispatch import cdiv, size_class, triton_interpreted
from kernels.ssd.triton_chunk import CHUNK, _block_k, _prepare, chunk_ssd_fwd, chunk_ssd_states

__all__ = ["ChunkSSDFunction", "triton_chunk_ssd_bwd"]


def _dh_configs(interpreted: bool | None = None):
    # The reverse walk is sequential over chunks like the forward's state walk: smaller tiles give more programs;
    # 3 stages fetch a chunk further ahead, as the forward walk's autotuner picks them (kernels/NOTES.md 63).
    if triton_interpreted() if interpreted is None else interpreted:
        return [triton.Config({"BK": 32, "BV": 32}, num_warps=4, num_stages=1)]
    return [triton.Config({"BK": bk, "BV": bv}, num_warps=4, num_stages=s) for bk in (32, 64) for bv in (32, 64) for s in (2, 3)]


# fp32 products run as IEEE FMA loops (no tensor cores) whose operands live in registers: at 4 warps or BV = 64
# the dq/dk/dg kernel spills 9-50 KB and takes up to ~25 s to compile for sm_90 (ptxas, checked on the CPU);
# BV = 32 at 8 warps spills least (~5 KB) and compiles in ~4 s. fp32 is the precision path, not the fast one,
# so it gets that one config (passed on the H200, 2026-11-30).
_FP32_BV, _FP32_WARPS = 32, 8
# bf16 (tensor-core) products only at BV = 64: a suspected compiler fault, not a proven one. The first bf16 run
# on an H200 (triton 3.6) hit an illegal memory access while the dv kernel's configs were benchmarked, yet every
# index is in bounds for every config (interpreter with NaN guard bands, tests/kernels/test_ssd_bwd.py) and no
# kernel accumulates into its outputs. The dv kernel has the forward output kernel's structure, which passes
# bf16 on the H200 at BV = 64 and 128; its BV = 32 configs ([64, 64] x [64, 32] wgmma next to other dots, first
# benchmarked at 4 warps) match triton-lang/triton#11366 (Hopper wgmma IMA, several dots, a 32-wide block,
# 4 warps; 3.6 and later, clean on 3.5).
_TC_BV, _TC_WARPS = 64, (4, 8)


def _chunk_configs(interpreted: bool | None = None):
    if triton_interpreted() if interpreted is None else interpreted:
        return [triton.Config({"BV": 32}, num_warps=4, num_stages=1)]
    return [triton.Config({"BV": _FP32_BV}, num_warps=_FP32_WARPS, num_stages=2)] + [
        triton.Config({"BV": _TC_BV}, num_warps=w, num_stages=2) for w in _TC_WARPS
    ]


def _by_precision(configs, named_args, **kwargs):
    """The configs of this launch's precision (see ``_FP32_BV`` and ``_TC_BV``); the interpreter's one config."""
    if len(configs) == 1:
        return configs
    if kwargs.get("IS_FP32"):
        return [c for c in configs if c.kwargs["BV"] == _FP32_BV and c.num_warps == _FP32_WARPS]
    return [c for c in configs if c.kwargs["BV"] == _TC_BV]


@triton.autotune(configs=_dh_configs(), key=["K", "V", "BT", "IS_FP32", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _ssd_chunk_bwd_dh(
    q, do, g, dh, dhT, dh0, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_DHT: tl.constexpr, STORE_DH0: tl.constexpr, IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    b_dh = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_DHT:
        b_dh += tl.load(dhT + i_bh * K * V + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0).to(tl.float32)
    o_t = tl.arange(0, BT)
    for i_r in range(NT):
        i_n = NT - 1 - i_r
        tl.store(dh + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], b_dh.to(dh.dtype.element_ty), mask=m_kv)
        t = i_n * BT + o_t
        m_t = t < T
        # q as [BK, BT] (transposed), do as [BT, BV]; padded steps load q = do = g = 0.
        b_q = tl.load(q + ((i_b * T + t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_t[None, :] & (o_k[:, None] < K), other=0.0)
        b_do = tl.load(do + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & (o_v[None, :] < V), other=0.0)
        b_g = tl.load(g + (i_b * T + t) * H + i_h, mask=m_t, other=0.0).to(tl.float32)
        b_G = tl.cumsum(b_g, axis=0)
        G_last = tl.sum(b_g, axis=0)
        b_qd = (b_q.to(tl.float32) * (tl.exp(b_G) * scale)[None, :]).to(b_q.dtype)
        if IS_FP32:
            upd = tl.dot(b_qd, b_do, input_precision="ieee")
        else:
            upd = tl.dot(b_qd, b_do)
        b_dh = b_dh * tl.exp(G_last) + upd
    if STORE_DH0:
        tl.store(dh0 + i_bh * K * V + o_k[:, None] * V + o_v[None, :], b_dh, mask=m_kv)


@triton.autotune(
    configs=_chunk_configs(), key=["K", "V", "BT", "BK", "IS_FP32", "SIZE_CLASS"],
    prune_configs_by={"early_config_prune": _by_precision},
)
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _ssd_chunk_bwd_dv(
    q, k, g, do, dh, dv, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_n * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    acc_s = tl.zeros([BT, BT], dtype=tl.float32)  # [j, i] = k_j · q_i
    acc_dv = tl.zeros([BT, BV], dtype=tl.float32)  # k dh
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_k = tl.load(k + ((i_b * T + o_t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_qt = tl.load(q + ((i_b * T + o_t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_t[None, :] & m_k[:, None], other=0.0)
        b_dh = tl.load(dh + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
        if IS_FP32:
            acc_s += tl.dot(b_k, b_qt, input_precision="ieee")
            acc_dv += tl.dot(b_k, b_dh, input_precision="ieee")
        else:
            acc_s += tl.dot(b_k, b_qt)
            acc_dv += tl.dot(b_k, b_dh.to(b_k.dtype))
    b_g = tl.load(g + (i_b * T + o_t) * H + i_h, mask=m_t, other=0.0).to(tl.float32)
    b_G = tl.cumsum(b_g, axis=0)
    G_last = tl.sum(b_g, axis=0)
    # Rows j, columns i: step j reaches output i ≥ j with decay exp(G_i − G_j) ≤ 1.
    later = tl.arange(0, BT)[None, :] >= tl.arange(0, BT)[:, None]
    decay = tl.exp(tl.where(later, b_G[None, :] - b_G[:, None], float("-inf")))
    b_do = tl.load(do + ((i_b * T + o_t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
    b_s = (acc_s * decay * scale).to(b_do.dtype)
    if IS_FP32:
        intra = tl.dot(b_s, b_do, input_precision="ieee")
    else:
        intra = tl.dot(b_s, b_do)
    b_dv = intra + acc_dv * tl.exp(G_last - b_G)[:, None]
    p_dv = dv + ((i_b * T + o_t[:, None]) * H + i_h) * V + o_v[None, :]
    tl.store(p_dv, b_dv.to(dv.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])


@triton.autotune(
    configs=_chunk_configs(), key=["K", "V", "BT", "BK", "IS_FP32", "SIZE_CLASS"],
    prune_configs_by={"early_config_prune": _by_precision},
)
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _ssd_chunk_bwd_dqkg(
    q, k, v, g, h, do, dh, dq, dk, dg, scale, T, NT, B,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_k, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_n * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_k = i_k * BK + tl.arange(0, BK)
    m_k = o_k < K
    acc_ds = tl.zeros([BT, BT], dtype=tl.float32)  # [i, j] = do_i · v_j
    acc_dq = tl.zeros([BT, BK], dtype=tl.float32)  # do hᵀ
    acc_dk = tl.zeros([BT, BK], dtype=tl.float32)  # v dhᵀ
    acc_hdh = tl.zeros([BK], dtype=tl.float32)  # this K block's share of <h[n], dh[n]>
    for i_v in range(tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_v = o_v < V
        m_tv = m_t[:, None] & m_v[None, :]
        b_do = tl.load(do + ((i_b * T + o_t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_tv, other=0.0)
        b_v = tl.load(v + ((i_b * T + o_t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_tv, other=0.0)
        # States [K, V] read as [BV, BK] tiles (transposed).
        p_st = ((i_bh * NT + i_n) * K + o_k[None, :]) * V + o_v[:, None]
        m_st = m_v[:, None] & m_k[None, :]
        b_ht = tl.load(h + p_st, mask=m_st, other=0.0)
        b_dht = tl.load(dh + p_st, mask=m_st, other=0.0)
        if IS_FP32:
            acc_ds += tl.dot(b_do, tl.trans(b_v), input_precision="ieee")
            acc_dq += tl.dot(b_do, b_ht, input_precision="ieee")
            acc_dk += tl.dot(b_v, b_dht, input_precision="ieee")
        else:
            acc_ds += tl.dot(b_do, tl.trans(b_v))
            acc_dq += tl.dot(b_do, b_ht.to(b_do.dtype))
            acc_dk += tl.dot(b_v, b_dht.to(b_v.dtype))
        acc_hdh += tl.sum(b_ht.to(tl.float32) * b_dht.to(tl.float32), axis=0)
    b_g = tl.load(g + (i_b * T + o_t) * H + i_h, mask=m_t, other=0.0).to(tl.float32)
    b_G = tl.cumsum(b_g, axis=0)
    G_last = tl.sum(b_g, axis=0)
    causal = tl.arange(0, BT)[:, None] >= tl.arange(0, BT)[None, :]
    decay = tl.exp(tl.where(causal, b_G[:, None] - b_G[None, :], float("-inf")))
    b_dsd = acc_ds * decay * scale  # fp32 [i, j]
    m_tk = m_t[:, None] & m_k[None, :]
    b_q = tl.load(q + ((i_b * T + o_t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_tk, other=0.0)
    b_k = tl.load(k + ((i_b * T + o_t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_tk, other=0.0)
    b_ds = b_dsd.to(b_q.dtype)
    if IS_FP32:
        dq_intra = tl.dot(b_ds, b_k, input_precision="ieee")
        dk_intra = tl.dot(tl.trans(b_ds), b_q, input_precision="ieee")
        b_a = tl.dot(b_q, tl.trans(b_k), input_precision="ieee")
    else:
        dq_intra = tl.dot(b_ds, b_k)
        dk_intra = tl.dot(tl.trans(b_ds), b_q)
        b_a = tl.dot(b_q, tl.trans(b_k))
    dq_inter = acc_dq * (tl.exp(b_G) * scale)[:, None]
    dk_inter = acc_dk * tl.exp(G_last - b_G)[:, None]
    tl.store(dq + ((i_b * T + o_t[:, None]) * H + i_h) * K + o_k[None, :], (dq_intra + dq_inter).to(dq.dtype.element_ty), mask=m_tk)
    tl.store(dk + ((i_b * T + o_t[:, None]) * H + i_h) * K + o_k[None, :], (dk_intra + dk_inter).to(dk.dtype.element_ty), mask=m_tk)
    # dG_s = q_s·dq_s − k_s·dk_s; the intra part as row sum − column sum of M in fp32 (diagonal cancels).
    b_m = b_dsd * b_a
    b_qf, b_kf = b_q.to(tl.float32), b_k.to(tl.float32)
    kdk_inter = tl.sum(b_kf * dk_inter, axis=1)
    b_dG = tl.sum(b_m, axis=1) - tl.sum(b_m, axis=0) + tl.sum(b_qf * dq_inter, axis=1) - kdk_inter
    # <dh[n], state leaving chunk n>: every g_t of the chunk scales the whole transition.
    leave = tl.exp(G_last) * tl.sum(acc_hdh, axis=0) + tl.sum(kdk_inter, axis=0)
    b_dg = tl.cumsum(b_dG, axis=0, reverse=True) + leave
    tl.store(dg + ((i_k * B + i_b) * T + o_t) * H + i_h, b_dg, mask=m_t)


def triton_chunk_ssd_bwd(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, do: Tensor, dhT: Tensor | None, scale: float,
    initial_state: Tensor | None, need_dh0: bool = True, chunk_size: int = CHUNK,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """Gradients of :func:`kernels.ssd.triton_chunk.triton_chunk_ssd` without autograd.

    Args:
        q, k: ``[B, T, H, K]``. v: ``[B, T, H, V]``. g: ``[B, T, H]`` log-decay (≤ 0). scale: as the forward.
        do: ``[B, T, H, V]`` gradient of the output. dhT: ``[B, H, K, V]`` gradient of the final state or None.
        initial_state: ``[B, H, K, V]`` or None. need_dh0: whether to return its gradient.
        chunk_size: the backward's own chunk length (any power of two ≥ 16; the result does not depend on it).
    Returns:
        dq, dk, dv, dg in the dtypes of q, k, v, g; dh0 ``[B, H, K, V]`` in initial_state's dtype, or None
        (no initial state or not ``need_dh0``).
    """
    dtypes = q.dtype, k.dtype, v.dtype, g.dtype
    q, k, v, g = _prepare(q, k, v, g)
    if do.shape != v.shape:
        raise ValueError(f"do {tuple(do.shape)} must have v's shape {tuple(v.shape)}")
    do = do.to(q.dtype).contiguous()
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT = chunk_size
    NT = cdiv(T, BT)
    BK = _block_k(K)
    NK = cdiv(K, BK)
    is_fp32 = q.dtype == torch.float32

    h, _ = chunk_ssd_states(k, v, g, initial_state, False, BT)
    dh = torch.empty(B, H, NT, K, V, device=q.device, dtype=q.dtype)
    store_dh0 = initial_state is not None and need_dh0
    dh0 = torch.empty(B, H, K, V, device=q.device, dtype=torch.float32) if store_dh0 else None
    dhT = dhT.float().contiguous() if dhT is not None else None
    _ssd_chunk_bwd_dh[lambda meta: (cdiv(K, meta["BK"]), cdiv(V, meta["BV"]), B * H)](
        q, do, g, dh, dhT, dh0, float(scale), T, NT, SIZE_CLASS=size_class(B * H), H=H, K=K, V=V, BT=BT,
        HAS_DHT=dhT is not None, STORE_DH0=store_dh0, IS_FP32=is_fp32,
    )
    dv = torch.empty_like(v)
    _ssd_chunk_bwd_dv[lambda meta: (cdiv(V, meta["BV"]), NT, B * H)](
        q, k, g, do, dh, dv, float(scale), T, NT, SIZE_CLASS=size_class(NT * B * H), H=H, K=K, V=V, BT=BT, BK=BK,
        IS_FP32=is_fp32,
    )
    dq, dk = torch.empty_like(q), torch.empty_like(k)
    dg = torch.empty(NK, B, T, H, device=q.device, dtype=torch.float32)
    _ssd_chunk_bwd_dqkg[(NK, NT, B * H)](
        q, k, v, g, h, do, dh, dq, dk, dg, float(scale), T, NT, B, SIZE_CLASS=size_class(NT * B * H), H=H, K=K, V=V,
        BT=BT, BK=BK, IS_FP32=is_fp32,
    )
    dg = dg.sum(0) if NK > 1 else dg[0]
    if dh0 is not None:
        dh0 = dh0.to(initial_state.dtype)
    return dq.to(dtypes[0]), dk.to(dtypes[1]), dv.to(dtypes[2]), dg.to(dtypes[3]), dh0


class ChunkSSDFunction(torch.autograd.Function):
    """Triton forward (:func:`chunk_ssd_fwd`) and Triton backward (:func:`triton_chunk_ssd_bwd`).

    Only the inputs are saved; the backward recomputes the chunk-entry states.
    ``apply(q, k, v, g, scale, initial_state, output_final_state) -> (o, final_state)``.
    """

    @staticmethod
    def forward(ctx, q, k, v, g, scale, initial_state, output_final_state):
        o, hT = chunk_ssd_fwd(q, k, v, g, scale, initial_state, output_final_state)
        ctx.save_for_backward(q, k, v, g, initial_state)
        ctx.scale = scale
        return o, hT

    @staticmethod
    @once_differentiable
    def backward(ctx, do, dhT):
        q, k, v, g, h0 = ctx.saved_tensors
        dq, dk, dv, dg, dh0 = triton_chunk_ssd_bwd(q, k, v, g, do, dhT, ctx.scale, h0, need_dh0=ctx.needs_input_grad[5])
        need = ctx.needs_input_grad
        return (dq if need[0] else None, dk if need[1] else None, dv if need[2] else None, dg if need[3] else None,
                None, dh0, None)
