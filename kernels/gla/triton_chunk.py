"""Triton chunked GLA (vector-decay gated linear attention) for training and prefill.

Same contract as :func:`kernels.gla.naive.naive_chunk_gla`. Chunks of ``BT = 64`` steps, sub-chunks of
``BC = 16``; ``G`` is the inclusive cumulative log-decay from the chunk start (one torch pass, fp32,
padded to whole chunks: zero log-decay on padded steps keeps ``G`` flat there). Two launches:

1. ``_gla_chunk_states``: one program per (K block, V block, batch·head) walks the chunks in order and
   stores the state *entering* each chunk, ``h[n] [K, V]`` (inputs' dtype), then the final state (fp32):
   ``S ← diag(exp(G_last)) S + (k ⊙ exp(G_last − G))ᵀ v``.
2. ``_gla_chunk_output``: one program per (V block, chunk, batch·head). A chunk whose decay range (max over K of
   ``−G`` at its last row) is within ``FACTORED_RANGE`` = 40, for K ≤ 128, takes whole-chunk products:
   ``o = scale · [(q ⊙ e^G) h[n] + tril((q ⊙ e^G)(k ⊙ e^{−G})ᵀ) v]``, key factors ≤ e^40 (kernels/NOTES.md 41).
   Other chunks go sub-chunk by sub-chunk. For each sub-chunk ``i`` of rows:
   ``o_i = scale · [(q_i ⊙ exp(G_i)) h[n] + Σ_{j<i} A_ij v_j + A_ii v_i]`` where the off-diagonal
   ``A_ij = (q_i ⊙ exp(G_i − G_r)) (k_j ⊙ exp(G_r − G_j))ᵀ`` refers both factors to ``G_r``, the first
   row of sub-chunk ``i`` (``G`` is non-increasing, so both exponents are ≤ 0), and the diagonal block
   ``A_ii[a, b] = Σ_k q_ak k_bk exp(G_ak − G_bk)`` is built column by column with the pairwise
   difference masked to ``-inf`` above the diagonal before the exp.

On the sub-chunk path no factor is ever ``exp`` of a positive number, so strong decays and long chunks stay finite. Matrix
products take the inputs' dtype (bf16 → tensor cores, fp32 accumulate); fp32 inputs use IEEE fp32
products so the fp32 path matches the reference to ~1e-6.

Backward: Triton kernels in :mod:`kernels.gla.triton_chunk_bwd` (:class:`ChunkGLAFunction`); the forward saves
its inputs and (by default, when a gradient is wanted) its intra-chunk scores ``scale · A``; the backward
recomputes ``h`` with :func:`chunk_gla_states`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import cdiv, next_power_of_2, size_class, tracks_grad, triton_interpreted
from kernels._triton_math import exp_ftz
from kernels.gla.naive import check_gated
from kernels.gla.triton_cumsum import triton_chunk_local_cumsum

__all__ = ["triton_chunk_gla", "chunk_gla_fwd", "chunk_gla_states", "chunk_local_cumsum", "CHUNK"]

CHUNK = 64
SUB_CHUNK = 16
# A chunk whose decay range (max over K of −G at its last row) is within this takes whole-chunk products: its
# key factors e^{−G} stay below e^40 (fp32 and bf16 reach e^88). Past it, the 16-row sub-chunk path.
FACTORED_RANGE = tl.constexpr(40.0)
# whole-chunk products hold [64, BK] q, k and G tiles at once: up to BK = 128
WHOLE_MAX_K = 128
# (BV, num_warps[, num_stages]) of each kernel's GPU configs, 2 stages unless given. The state walk is a chain of
# dependent steps over the chunks whose loads do not depend on the state: 3 stages fetch a chunk further ahead, as
# in the delta rule's walks, where they cut the walk by 27-33 % on the H200 (kernels/NOTES.md 62, 63)
_STATES_TILES = ((32, 4), (64, 4), (32, 4, 3), (64, 4, 3))
_OUTPUT_TILES = ((64, 4), (64, 8), (128, 8))


def _configs(tiles: tuple[tuple[int, ...], ...], interpreted: bool | None = None):
    # Few configs on purpose: each compile of the output kernel takes ~5 s, and every new (K, V, dtype)
    # autotunes all of them (a 16-config sweep made the GPU tests and the benchmark run out of time).
    if triton_interpreted() if interpreted is None else interpreted:
        return [triton.Config({"BV": 32}, num_warps=4, num_stages=1)]
    return [triton.Config({"BV": bv}, num_warps=w, num_stages=stages) for bv, w, stages in ((*t, 2)[:3] for t in tiles)]


@triton.autotune(configs=_configs(_STATES_TILES), key=["K", "V", "BK", "BT", "IS_FP32", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _gla_chunk_states(
    k, v, G, h, h0, hT, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_FP32: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    TP = NT * BT  # G is padded to whole chunks
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k = o_k < K
    m_kv = m_k[:, None] & (o_v[None, :] < V)
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        b_h += tl.load(h0 + i_bh * K * V + o_k[:, None] * V + o_v[None, :], mask=m_kv, other=0.0).to(tl.float32)
    o_t = tl.arange(0, BT)
    for i_n in range(NT):
        tl.store(h + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], b_h.to(h.dtype.element_ty), mask=m_kv)
        t = i_n * BT + o_t
        m_t = t < T
        # k and G as [BK, BT] (transposed), v as [BT, BV]; padded steps load k = v = 0.
        b_k = tl.load(k + ((i_b * T + t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_t[None, :] & m_k[:, None], other=0.0)
        b_v = tl.load(v + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & (o_v[None, :] < V), other=0.0)
        b_G = tl.load(G + ((i_b * TP + t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
        b_Gl = tl.load(G + ((i_b * TP + i_n * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        b_kd = (b_k.to(tl.float32) * exp_ftz(b_Gl[:, None] - b_G)).to(b_k.dtype)
        if IS_FP32:
            upd = tl.dot(b_kd, b_v, input_precision="ieee")
        else:
            upd = tl.dot(b_kd, b_v)
        b_h = b_h * exp_ftz(b_Gl)[:, None] + upd
    if STORE_FINAL:
        tl.store(hT + i_bh * K * V + o_k[:, None] * V + o_v[None, :], b_h, mask=m_kv)


@triton.jit
def _dot(a, b, IS_FP32: tl.constexpr):
    if IS_FP32:
        return tl.dot(a, b, input_precision="ieee")
    else:
        return tl.dot(a, b)


# STORE_A in the key: the forward under autograd writes the scores, inference does not (kernels/NOTES.md 46)
@triton.autotune(configs=_configs(_OUTPUT_TILES), key=["K", "V", "BK", "BT", "IS_FP32", "STORE_A", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _gla_chunk_output(
    q, k, v, G, h, o, A, scale, T, NT,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, IS_FP32: tl.constexpr, STORE_A: tl.constexpr = False, WHOLE: tl.constexpr = False,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    TP = NT * BT
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    b_h = tl.load(h + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
    whole = False
    if WHOLE:  # the chunk's decay range: G ≤ 0 is non-increasing, so its last row holds the most negative
        b_Gl = tl.load(G + ((i_b * TP + i_n * BT + BT - 1) * H + i_h) * K + o_k, mask=m_k, other=0.0)
        whole = tl.max(-b_Gl, axis=0) <= FACTORED_RANGE
    if whole:
        # whole-chunk products: q e^{G} (≤ |q|) against k e^{−G} (≤ |k| e^{FACTORED_RANGE}), masked to s ≤ t
        o_t = tl.arange(0, BT)
        t = i_n * BT + o_t
        m_t = t < T
        m_tk = m_t[:, None] & m_k[None, :]
        b_G = tl.load(G + ((i_b * TP + t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
        b_q = tl.load(q + ((i_b * T + t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_tk, other=0.0)
        b_qg = (b_q.to(tl.float32) * scale * exp_ftz(b_G)).to(b_h.dtype)
        b_k = tl.load(k + ((i_b * T + t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_tk, other=0.0)
        b_kg = (b_k.to(tl.float32) * exp_ftz(-b_G)).to(b_h.dtype)
        b_A = tl.where(o_t[:, None] >= o_t[None, :], _dot(b_qg, tl.trans(b_kg), IS_FP32), 0.0)
        if STORE_A:
            p_A = A + ((i_b * T + t[:, None]) * H + i_h) * BT + o_t[None, :]
            tl.store(p_A, b_A, mask=m_t[:, None] & (o_t[:, None] >= o_t[None, :]) & (i_v == 0))
        b_v = tl.load(v + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
        acc = _dot(b_qg, b_h, IS_FP32) + _dot(b_A.to(b_v.dtype), b_v, IS_FP32)
        tl.store(o + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], acc.to(o.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])
    else:
        _gla_subchunk_output(q, k, v, G, o, A, b_h, scale, T, TP, i_v, i_n, i_b, i_h, H, K, V, BT, BC, BK, BV, IS_FP32, STORE_A)


@triton.jit
def _gla_subchunk_output(
    q, k, v, G, o, A, b_h, scale, T, TP, i_v, i_n, i_b, i_h,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, BK: tl.constexpr,
    BV: tl.constexpr, IS_FP32: tl.constexpr, STORE_A: tl.constexpr,
):
    """One chunk's output in 16-row sub-chunks (chunks whose decay range exceeds ``FACTORED_RANGE``)."""
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    o_c = tl.arange(0, BC)
    for i_c in range(BT // BC):
        t0 = i_n * BT + i_c * BC
        if t0 < T:
            t_i = t0 + o_c
            m_i = t_i < T
            b_q = tl.load(q + ((i_b * T + t_i[:, None]) * H + i_h) * K + o_k[None, :], mask=m_i[:, None] & m_k[None, :], other=0.0)
            b_q = b_q.to(tl.float32) * scale
            b_Gi = tl.load(G + ((i_b * TP + t_i[:, None]) * H + i_h) * K + o_k[None, :], mask=m_k[None, :], other=0.0)
            acc = _dot((b_q * exp_ftz(b_Gi)).to(b_h.dtype), b_h, IS_FP32)
            # off-diagonal sub-chunks, both factors referred to G at this sub-chunk's first row
            b_Gr = tl.load(G + ((i_b * TP + t0) * H + i_h) * K + o_k, mask=m_k, other=0.0)
            b_qr = (b_q * exp_ftz(b_Gi - b_Gr[None, :])).to(v.dtype.element_ty)
            for j_c in range(i_c):
                t_j = i_n * BT + j_c * BC + o_c
                b_kj = tl.load(k + ((i_b * T + t_j[None, :]) * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
                b_Gj = tl.load(G + ((i_b * TP + t_j[None, :]) * H + i_h) * K + o_k[:, None], mask=m_k[:, None], other=0.0)
                b_kr = (b_kj.to(tl.float32) * exp_ftz(b_Gr[:, None] - b_Gj)).to(v.dtype.element_ty)
                b_A = _dot(b_qr, b_kr, IS_FP32)
                if STORE_A:  # the first V block's program keeps the scores for the backward
                    p_A = A + ((i_b * T + t_i[:, None]) * H + i_h) * BT + j_c * BC + o_c[None, :]
                    tl.store(p_A, b_A, mask=m_i[:, None] & (i_v == 0))
                b_vj = tl.load(v + ((i_b * T + t_j[:, None]) * H + i_h) * V + o_v[None, :], mask=m_v[None, :], other=0.0)
                acc += _dot(b_A.to(b_vj.dtype), b_vj, IS_FP32)
            # diagonal sub-chunk: pairwise decays, masked before the exp
            b_D = tl.zeros([BC, BC], dtype=tl.float32)
            for j in range(BC):
                t_c = t0 + j
                b_kc = tl.load(k + ((i_b * T + t_c) * H + i_h) * K + o_k, mask=m_k & (t_c < T), other=0.0).to(tl.float32)
                b_Gc = tl.load(G + ((i_b * TP + t_c) * H + i_h) * K + o_k, mask=m_k, other=0.0)
                diff = tl.where(o_c[:, None] >= j, b_Gi - b_Gc[None, :], float("-inf"))
                b_s = tl.sum(b_q * b_kc[None, :] * exp_ftz(diff), axis=1)
                b_D += tl.where(o_c[None, :] == j, b_s[:, None], 0.0)
            if STORE_A:
                p_A = A + ((i_b * T + t_i[:, None]) * H + i_h) * BT + i_c * BC + o_c[None, :]
                tl.store(p_A, b_D, mask=m_i[:, None] & (o_c[None, :] <= o_c[:, None]) & (i_v == 0))
            b_vi = tl.load(v + ((i_b * T + t_i[:, None]) * H + i_h) * V + o_v[None, :], mask=m_i[:, None] & m_v[None, :], other=0.0)
            acc += _dot(b_D.to(b_vi.dtype), b_vi, IS_FP32)
            p_o = o + ((i_b * T + t_i[:, None]) * H + i_h) * V + o_v[None, :]
            tl.store(p_o, acc.to(o.dtype.element_ty), mask=m_i[:, None] & m_v[None, :])


def prepare_inputs(q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v contiguous and of q's dtype (the dtype every matrix product of the scan runs in)."""
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    if k.dtype != q.dtype or v.dtype != q.dtype:
        k, v = k.to(q.dtype), v.to(q.dtype)
    return q, k, v


def chunk_local_cumsum(g: Tensor) -> Tensor:
    """In-chunk inclusive cumulative log-decay ``G [B, NT·BT, H, K]`` fp32, padded to whole chunks with a zero
    log-decay (``G`` flat over the padding, so every padded step leaves the state as it was)."""
    return triton_chunk_local_cumsum(g, CHUNK)


def chunk_gla_states(
    k: Tensor, v: Tensor, G: Tensor, initial_state: Tensor | None, output_final_state: bool
) -> tuple[Tensor, Tensor | None]:
    """The state entering every chunk, ``h [B, H, NT, K, V]`` in k's dtype, and the final state (fp32 or None).

    Args:
        k, v: from :func:`prepare_inputs`. G: from :func:`chunk_local_cumsum`. initial_state: ``[B, H, K, V]`` or None.
    The backward calls this to recompute ``h`` instead of keeping it from the forward.
    """
    B, T, H, K = k.shape
    V = v.shape[-1]
    NT = cdiv(T, CHUNK)
    # Chunk-entry states in the inputs' dtype (bf16 halves the largest traffic term), as for SSD.
    h = torch.empty(B, H, NT, K, V, device=k.device, dtype=k.dtype)
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    hT = torch.empty(B, H, K, V, device=k.device, dtype=torch.float32) if output_final_state else None
    BKs = min(64, max(16, next_power_of_2(K)))
    _gla_chunk_states[lambda meta: (cdiv(K, BKs), cdiv(V, meta["BV"]), B * H)](
        k, v, G, h, h0, hT, T, NT, SIZE_CLASS=size_class(B * H), H=H, K=K, V=V, BT=CHUNK, BK=BKs,
        HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_FP32=k.dtype == torch.float32,
    )
    return h, hT


def check_k(K: int) -> None:
    if K > 256:
        raise ValueError(f"chunk_gla: K={K} > 256 is not supported by the Triton kernel (one K tile per program)")


def chunk_gla_fwd(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float, initial_state: Tensor | None, output_final_state: bool,
    scores_out: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Forward only (no autograd). Shapes as :func:`triton_chunk_gla`.

    ``scores_out``: a ``[B, T, H, 64]`` fp32 buffer that receives the intra-chunk scores ``scale · A`` (row ``t``,
    column ``s`` of ``t``'s chunk, for ``s ≤ t``; entries above the diagonal are left as they were), which
    :func:`kernels.gla.triton_chunk_bwd.chunk_gla_bwd` can take instead of rebuilding them; or None.
    """
    check_gated(q, k, v, g, "chunk_gla")
    check_k(q.shape[-1])
    out_dtype = v.dtype
    q, k, v = prepare_inputs(q, k, v)
    B, T, H, K = q.shape
    V = v.shape[-1]
    NT = cdiv(T, CHUNK)
    G = chunk_local_cumsum(g)
    h, hT = chunk_gla_states(k, v, G, initial_state, output_final_state)
    o = torch.empty(B, T, H, V, device=q.device, dtype=out_dtype)
    BK = max(16, next_power_of_2(K))
    if scores_out is not None and (scores_out.shape != (B, T, H, CHUNK) or scores_out.dtype != torch.float32):
        raise ValueError(f"chunk_gla_fwd: scores_out {tuple(scores_out.shape)} {scores_out.dtype} must be fp32 {(B, T, H, CHUNK)}")
    _gla_chunk_output[lambda meta: (cdiv(V, meta["BV"]), NT, B * H)](
        q, k, v, G, h, o, scores_out, float(scale), T, NT, SIZE_CLASS=size_class(NT * B * H), H=H, K=K, V=V, BT=CHUNK, BC=SUB_CHUNK, BK=BK,
        IS_FP32=q.dtype == torch.float32, STORE_A=scores_out is not None, WHOLE=BK <= WHOLE_MAX_K,
    )
    return o, hT


def triton_chunk_gla(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    save_scores: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Chunked GLA with a Triton forward and a Triton backward (chunk 64, sub-chunk 16).

    Args:
        q, k: ``[B, T, H, K]`` (K ≤ 256). v: ``[B, T, H, V]``. g: ``[B, T, H, K]`` log-decay (≤ 0).
        scale: multiplies q. initial_state: ``[B, H, K, V]`` or None.
        save_scores: keep the forward's intra-chunk scores (``B·T·H·64`` fp32, only when a gradient is wanted)
            for the backward, whose dv is then one product per chunk instead of a rebuild of the scores, and
            whose dq/dk kernel splits K (kernels/NOTES.md 32–33: fwd+bwd 2.02 vs 3.17 ms on an H200 at B=1
            T=4096 H=16 K=V=128). False keeps only the inputs (less memory, slower backward).
    Returns:
        o ``[B, T, H, V]`` in v's dtype, final state ``[B, H, K, V]`` fp32 (or None).
    """
    # Imported here: the backward module imports this one's kernels and helpers.
    from kernels.gla.triton_chunk_bwd import ChunkGLAFunction

    tensors = (q, k, v, g, initial_state)
    save_scores = save_scores and tracks_grad(*tensors)
    return ChunkGLAFunction.apply(q, k, v, g, scale, initial_state, output_final_state, save_scores)
