"""Triton chunked SSD scan (scalar-decay gated linear attention) for training and prefill.

Same contract as :func:`kernels.ssd.naive.naive_chunk_ssd`. Two launches (four when segmented):

1. ``_ssd_chunk_states``: one program per (K block · V block, segment, batch·head) walks its chunks in order
   and stores the state *entering* each chunk, ``h[n] [K, V]`` (inputs' dtype), then the final state (fp32).
   ``S ← exp(G_last) S + (k ⊙ exp(G_last − G))ᵀ v`` per chunk, ``G`` the in-chunk cumulative log-decay.
   With few batch·heads (decode-time prefill at batch 1) this walk is the whole cost, so :func:`fwd_launch`
   takes 128-step chunks and cuts the walk into segments run side by side from zero; a torch cumsum of g
   per segment and ``_ssd_segment_starts`` (a walk over the few segments) then give each segment's true
   entry state.
2. ``_ssd_chunk_output``: one program per (V block, chunk, batch·head), all independent:
   ``o = scale · [exp(G) ⊙ (q h[n]) + (q kᵀ ⊙ exp(G_i − G_j) ⊙ [j ≤ i]) v]``, with
   ``h[n] ← h[n] + exp(G since the segment start) · start[segment]`` when segmented.

Decay factors are only ever ``exp`` of non-positive numbers (masked before the exp), so long chunks stay
finite. Matrix products take the inputs' dtype (bf16 → tensor cores, fp32 accumulate); fp32 inputs use
IEEE fp32 products so the fp32 path matches the reference to ~1e-6.

Backward: Triton kernels in :mod:`kernels.ssd.triton_chunk_bwd` (:class:`ChunkSSDFunction`): only the inputs
are saved; the backward recomputes ``h`` with :func:`chunk_ssd_states`, walks the chunks backwards for the
state gradients ``dh`` (and ``dh0``), then forms dq, dk, dv and dg per chunk, all chunks independent.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import triton_interpreted
from kernels.ssd.naive import _check

__all__ = ["triton_chunk_ssd", "CHUNK"]

CHUNK, LONG_CHUNK = 64, 128


def _configs(bvs: tuple[int, ...]):
    if triton_interpreted():
        return [triton.Config({"BV": 32}, num_warps=4, num_stages=1)]
    return [triton.Config({"BV": bv}, num_warps=w, num_stages=s) for bv in bvs for w in (4, 8) for s in (2, 3)]


def _state_configs():
    # BK and BV both split the state walk: at batch 1 the walk is latency-bound and more, smaller programs
    # (K/BK · V/BV · H of them) overlap more chunks' loads.
    if triton_interpreted():
        return [triton.Config({"BK": 32, "BV": 32}, num_warps=4, num_stages=1)]
    return [triton.Config({"BK": bk, "BV": bv}, num_warps=4, num_stages=s) for bk in (32, 64) for bv in (32, 64) for s in (2, 3)]


@triton.autotune(configs=_state_configs(), key=["K", "V", "BT", "IS_FP32", "SEGMENTED"])
@triton.jit
def _ssd_chunk_states(
    k, v, g, h, h0, hT, hs, T, NT, CPS,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_FP32: tl.constexpr, SEGMENTED: tl.constexpr,
):
    """Walk chunks ``[i_s·CPS, (i_s+1)·CPS)`` storing each chunk's entry state. Unsegmented (one segment),
    ``h`` holds the true states and ``hT`` the final one; segmented, every segment starts from zero (the
    first from ``h0``): ``h`` holds segment-local states and ``hs`` each segment's local final state."""
    i_kv, i_s, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    NV: tl.constexpr = (V + BV - 1) // BV
    i_k, i_v = i_kv // NV, i_kv % NV
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:
        b_h += tl.load(h0 + i_bh * K * V + o_k[:, None] * V + o_v[None, :], mask=m_kv & (i_s == 0), other=0.0).to(tl.float32)
    o_t = tl.arange(0, BT)
    for i_n in range(i_s * CPS, tl.minimum((i_s + 1) * CPS, NT)):
        tl.store(h + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], b_h.to(h.dtype.element_ty), mask=m_kv)
        t = i_n * BT + o_t
        m_t = t < T
        # k as [BK, BT] (transposed), v as [BT, BV]; padded steps load k = v = g = 0.
        m_k, m_v = m_t[None, :] & (o_k[:, None] < K), m_t[:, None] & (o_v[None, :] < V)
        b_k = tl.load(k + ((i_b * T + t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_k, other=0.0)
        b_v = tl.load(v + ((i_b * T + t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_v, other=0.0)
        b_g = tl.load(g + (i_b * T + t) * H + i_h, mask=m_t, other=0.0).to(tl.float32)
        b_G = tl.cumsum(b_g, axis=0)
        G_last = tl.sum(b_g, axis=0)
        b_kd = (b_k.to(tl.float32) * tl.exp(G_last - b_G)[None, :]).to(b_k.dtype)
        if IS_FP32:
            upd = tl.dot(b_kd, b_v, input_precision="ieee")
        else:
            upd = tl.dot(b_kd, b_v)
        b_h = b_h * tl.exp(G_last) + upd
    if SEGMENTED:
        tl.store(hs + ((i_bh * tl.num_programs(1) + i_s) * K + o_k[:, None]) * V + o_v[None, :], b_h, mask=m_kv)
    elif STORE_FINAL:
        tl.store(hT + i_bh * K * V + o_k[:, None] * V + o_v[None, :], b_h, mask=m_kv)


@triton.jit
def _ssd_segment_starts(hs, Gs, hT, NS, LS, K: tl.constexpr, V: tl.constexpr, BKV: tl.constexpr, STORE_FINAL: tl.constexpr):
    """Turn ``hs`` (each segment's local final state) in place into the true state entering each segment,
    ``start[s] = exp(Gseg[s−1]) start[s−1] + local[s−1]``, ``start[0] = 0`` (segment 0's local states already
    include ``h0``); then the final state. ``Gs`` is the segment-local cumulative log-decay ``[B·H, NS·LS]``,
    so a segment's total is ``Gs[s·LS + LS − 1]``."""
    i_kv, i_bh = tl.program_id(0), tl.program_id(1)
    o = i_kv * BKV + tl.arange(0, BKV)
    m = o < K * V
    start = tl.zeros([BKV], dtype=tl.float32)
    for i_s in range(NS):
        p = hs + (i_bh * NS + i_s) * K * V + o
        local = tl.load(p, mask=m, other=0.0)
        tl.store(p, start, mask=m)
        start = start * tl.exp(tl.load(Gs + (i_bh * NS + i_s) * LS + LS - 1)) + local
    if STORE_FINAL:
        tl.store(hT + i_bh * K * V + o, start, mask=m)


@triton.autotune(configs=_configs((64, 128)), key=["K", "V", "BT", "BK", "IS_FP32", "SEGMENTED"])
@triton.jit
def _ssd_chunk_output(
    q, k, v, g, h, hs, Gs, o, scale, T, NT, CPS, LS,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    IS_FP32: tl.constexpr, SEGMENTED: tl.constexpr,
):
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_n * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    if SEGMENTED:
        # chunk entry state = segment-local state + decay since the segment start × true segment-entry state
        i_s = i_n // CPS
        j = i_n - i_s * CPS
        NS = tl.cdiv(NT, CPS)
        seg_decay = tl.exp(tl.load(Gs + (i_bh * NS + i_s) * LS + j * BT - 1, mask=j > 0, other=0.0))
    acc_o = tl.zeros([BT, BV], dtype=tl.float32)
    acc_s = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        m_kv = m_k[:, None] & m_v[None, :]
        b_q = tl.load(q + ((i_b * T + o_t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_kt = tl.load(k + ((i_b * T + o_t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_t[None, :] & m_k[:, None], other=0.0)
        b_h = tl.load(h + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], mask=m_kv, other=0.0)
        if SEGMENTED:
            start = tl.load(hs + ((i_bh * NS + i_s) * K + o_k[:, None]) * V + o_v[None, :], mask=m_kv, other=0.0)
            b_h = (b_h.to(tl.float32) + seg_decay * start).to(b_h.dtype)
        if IS_FP32:
            acc_o += tl.dot(b_q, b_h, input_precision="ieee")
            acc_s += tl.dot(b_q, b_kt, input_precision="ieee")
        else:
            acc_o += tl.dot(b_q, b_h.to(b_q.dtype))
            acc_s += tl.dot(b_q, b_kt)
    b_g = tl.load(g + (i_b * T + o_t) * H + i_h, mask=m_t, other=0.0).to(tl.float32)
    b_G = tl.cumsum(b_g, axis=0)
    causal = tl.arange(0, BT)[:, None] >= tl.arange(0, BT)[None, :]
    decay = tl.exp(tl.where(causal, b_G[:, None] - b_G[None, :], float("-inf")))
    b_v = tl.load(v + ((i_b * T + o_t[:, None]) * H + i_h) * V + o_v[None, :], mask=m_t[:, None] & m_v[None, :], other=0.0)
    b_s = (acc_s * decay).to(b_v.dtype)
    if IS_FP32:
        intra = tl.dot(b_s, b_v, input_precision="ieee")
    else:
        intra = tl.dot(b_s, b_v)
    b_o = (acc_o * tl.exp(b_G)[:, None] + intra) * scale
    p_o = o + ((i_b * T + o_t[:, None]) * H + i_h) * V + o_v[None, :]
    tl.store(p_o, b_o.to(o.dtype.element_ty), mask=m_t[:, None] & m_v[None, :])


def _block_k(K: int) -> int:
    return min(64, max(16, triton.next_power_of_2(K)))


def _prepare(q: Tensor, k: Tensor, v: Tensor, g: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Contiguous inputs with k and v in q's dtype (the kernels' matrix products take one dtype)."""
    _check(q, k, v, g)
    q, k, v, g = q.contiguous(), k.contiguous(), v.contiguous(), g.contiguous()
    if k.dtype != q.dtype or v.dtype != q.dtype:
        k, v = k.to(q.dtype), v.to(q.dtype)
    return q, k, v, g


def chunk_ssd_states(
    k: Tensor, v: Tensor, g: Tensor, initial_state: Tensor | None, output_final_state: bool, chunk_size: int = CHUNK
) -> tuple[Tensor, Tensor | None]:
    """The state entering every chunk, ``h [B, H, NT, K, V]`` in k's dtype, and the final state (fp32 or None).

    Inputs as :func:`chunk_ssd_fwd` (already contiguous, k and v of one dtype). The backward pass calls this
    to recompute ``h`` instead of keeping it from the forward.
    """
    h, hT, _ = _states(k, v, g, initial_state, output_final_state, chunk_size, 1)
    return h, hT


def _states(
    k: Tensor, v: Tensor, g: Tensor, initial_state: Tensor | None, output_final_state: bool, chunk_size: int, segments: int
) -> tuple[Tensor, Tensor | None, tuple[Tensor, Tensor, int, int] | None]:
    """Chunk-entry states ``h`` and the final state. With ``segments > 1`` the walk is split into segments run
    side by side: ``h`` then holds segment-local states, and the third value ``(starts, Gs, CPS, LS)`` — true
    segment-entry states ``[B, H, NS, K, V]`` fp32, segment-local cumulative log-decay ``[B, H, NS·LS]``, chunks
    and steps per segment — lets the output kernel correct them."""
    B, T, H, K = k.shape
    V = v.shape[-1]
    NT = triton.cdiv(T, chunk_size)
    CPS = triton.cdiv(NT, segments)
    NS = triton.cdiv(NT, CPS)
    # Chunk-entry states in the inputs' dtype: for bf16 this halves the largest traffic term (h is
    # written once and read once; B·H·NT·K·V elements), as the peers do; fp32 inputs keep fp32 states.
    h = torch.empty(B, H, NT, K, V, device=k.device, dtype=k.dtype)
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    hT = torch.empty(B, H, K, V, device=k.device, dtype=torch.float32) if output_final_state else None
    hs = torch.empty(B, H, NS, K, V, device=k.device, dtype=torch.float32) if NS > 1 else None
    _ssd_chunk_states[lambda meta: (triton.cdiv(K, meta["BK"]) * triton.cdiv(V, meta["BV"]), NS, B * H)](
        k, v, g, h, h0, hT, hs, T, NT, CPS, H=H, K=K, V=V, BT=chunk_size,
        HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_FP32=k.dtype == torch.float32, SEGMENTED=NS > 1,
    )
    if NS == 1:
        return h, hT, None
    # segment-local cumulative sums stay as short as one segment: no long fp32 running sums
    LS = CPS * chunk_size
    gp = torch.nn.functional.pad(g.float(), (0, 0, 0, NS * LS - T))
    Gs = gp.view(B, NS, LS, H).cumsum(2).permute(0, 3, 1, 2).contiguous()
    BKV = min(1024, triton.next_power_of_2(K * V))
    _ssd_segment_starts[(triton.cdiv(K * V, BKV), B * H)](hs, Gs, hT, NS, LS, K=K, V=V, BKV=BKV, STORE_FINAL=output_final_state)
    return h, hT, (hs, Gs, CPS, LS)


def fwd_launch(B: int, T: int, H: int) -> tuple[int, int]:
    """(chunk length, segments) of the forward. With few batch·heads the sequential state walk is the whole
    cost: 128-step chunks halve its length and the chunk-entry state traffic (``h`` is B·H·T/BT·K·V
    elements), and segments walked side by side (then joined by a short pass) divide it again. With many
    batch·heads: 64-step chunks (less intra-chunk work, more output programs) and one segment."""
    if B * H > 32 or T < 1024:
        return CHUNK, 1
    return LONG_CHUNK, max(1, min(64 // (B * H), triton.cdiv(T, LONG_CHUNK) // 8))


def chunk_ssd_fwd(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float, initial_state: Tensor | None, output_final_state: bool,
    chunk_size: int | None = None, segments: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Forward only (no autograd). Shapes as :func:`triton_chunk_ssd`; ``chunk_size`` (64 or 128) and the
    number of state-walk ``segments`` default to :func:`fwd_launch`'s choice."""
    out_dtype = v.dtype
    q, k, v, g = _prepare(q, k, v, g)
    B, T, H, K = q.shape
    V = v.shape[-1]
    auto_bt, auto_ns = fwd_launch(B, T, H)
    if q.dtype == torch.float32:
        # fp32 (IEEE) products of 128-step chunks spill and compile for minutes on sm_90; fp32 is the accuracy
        # path, not the fast one
        auto_bt = CHUNK
    BT, NS = chunk_size or auto_bt, segments or auto_ns
    if BT not in (CHUNK, LONG_CHUNK):
        raise ValueError(f"chunk_ssd_fwd: chunk_size={chunk_size} must be {CHUNK} or {LONG_CHUNK}")
    NT = triton.cdiv(T, BT)
    h, hT, seg = _states(k, v, g, initial_state, output_final_state, BT, NS)
    hs, Gs, CPS, LS = seg if seg is not None else (None, None, NT, 0)
    o = torch.empty(B, T, H, V, device=q.device, dtype=out_dtype)
    _ssd_chunk_output[lambda meta: (triton.cdiv(V, meta["BV"]), NT, B * H)](
        q, k, v, g, h, hs, Gs, o, float(scale), T, NT, CPS, LS, H=H, K=K, V=V, BT=BT, BK=_block_k(K),
        IS_FP32=q.dtype == torch.float32, SEGMENTED=seg is not None,
    )
    return o, hT


def triton_chunk_ssd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Chunked SSD scan, Triton forward and backward (differentiable in q, k, v, g and initial_state).

    Args:
        q, k: ``[B, T, H, K]``. v: ``[B, T, H, V]``. g: ``[B, T, H]`` log-decay (≤ 0).
        scale: multiplies q. initial_state: ``[B, H, K, V]`` or None.
    Returns:
        o ``[B, T, H, V]`` in v's dtype, final state ``[B, H, K, V]`` fp32 (or None).
    """
    # Imported here: the backward module imports this one (chunk_ssd_fwd, chunk_ssd_states).
    from kernels.ssd.triton_chunk_bwd import ChunkSSDFunction

    return ChunkSSDFunction.apply(q, k, v, g, scale, initial_state, output_final_state)
