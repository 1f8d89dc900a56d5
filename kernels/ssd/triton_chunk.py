"""Triton chunked SSD scan (scalar-decay gated linear attention) for training and prefill.

Same contract as :func:`kernels.ssd.naive.naive_chunk_ssd`. Two launches (chunk length from :func:`fwd_chunk_size`):

1. ``_ssd_chunk_states``: one program per (K block, V block, batch·head) walks the chunks in order and
   stores the state *entering* each chunk, ``h[n] [K, V]`` (inputs' dtype), then the final state (fp32).
   ``S ← exp(G_last) S + (k ⊙ exp(G_last − G))ᵀ v`` per chunk, ``G`` the in-chunk cumulative log-decay.
2. ``_ssd_chunk_output``: one program per (V block, chunk, batch·head), all independent:
   ``o = scale · [exp(G) ⊙ (q h[n]) + (q kᵀ ⊙ exp(G_i − G_j) ⊙ [j ≤ i]) v]``.

Split walk (few batch·heads, many chunks; :func:`fwd_state_splits`): with B·H = 16 the walk above has only
K/BK · V/BV · 16 programs, each taking NT dependent steps, and it took half of the forward (kernels/NOTES.md 50).
The state is linear in its start, so the chunks are cut into NS segments of LS chunks walked side by side:

1. ``_ssd_chunk_states`` (SPLIT): one program per (K block, V block, batch·head, segment) walks its segment
   from a zero state (segment 0 from ``h0``) and stores the *segment-local* entry states ``h[n]``, the
   segment's end state ``hs[s]`` (fp32), and each chunk's log-decay since its segment began, ``gc[n]``
   (``gs[s]`` for the whole segment).
2. ``_ssd_segment_carry``: walks the NS segments per (K block, V block, batch·head): the true state entering
   segment ``s`` is ``hin[s] = exp(gs[s−1]) hin[s−1] + hs[s−1]`` (``hin[0] = 0``), and the final state is
   the one after the last segment. NS steps instead of NT.
3. ``_ssd_chunk_output`` (SPLIT) adds the carried part back while it loads ``h[n]``:
   ``h[n] + exp(gc[n]) hin[s]``, the true entry state, in registers. Nothing else changes.

Decay factors are only ever ``exp`` of non-positive numbers (masked before the exp), so long chunks stay
finite. Matrix products take the inputs' dtype (bf16 → tensor cores, fp32 accumulate); fp32 inputs use
IEEE fp32 products so the fp32 path matches the reference to ~1e-6.

Backward: Triton kernels in :mod:`kernels.ssd.triton_chunk_bwd` (``ChunkSSDFunction``, the default): the
forward saves only its inputs, the backward recomputes ``h``. They match the reference on the CPU interpreter
and on an H200 in fp32 and bf16 (bf16 under compute-sanitizer memcheck, 0 errors), 38–53× faster than the
reference recompute (kernels/NOTES.md 23). ``triton_backward=False`` keeps the old fallback:
:func:`naive_chunk_ssd`'s gradient recomputed under autograd (the reference's speed and memory).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import cdiv, next_power_of_2, size_class, triton_interpreted
from kernels._fallback import with_reference_backward
from kernels.ssd.naive import _check, naive_chunk_ssd

__all__ = ["triton_chunk_ssd", "CHUNK"]

CHUNK, LONG_CHUNK = 64, 128
_OUTPUT_BV = (64, 128)  # the output kernel's GPU V blocks


def _configs(bvs: tuple[int, ...], interpreted: bool | None = None):
    if triton_interpreted() if interpreted is None else interpreted:
        return [triton.Config({"BV": 32}, num_warps=4, num_stages=1)]
    return [triton.Config({"BV": bv}, num_warps=w, num_stages=s) for bv in bvs for w in (4, 8) for s in (2, 3)]


def _state_configs(interpreted: bool | None = None):
    # BK and BV both split the state walk: at batch 1 the walk is latency-bound and more, smaller programs
    # (K/BK · V/BV · H of them) overlap more chunks' loads.
    if triton_interpreted() if interpreted is None else interpreted:
        return [triton.Config({"BK": 32, "BV": 32}, num_warps=4, num_stages=1)]
    return [triton.Config({"BK": bk, "BV": bv}, num_warps=4, num_stages=s) for bk in (32, 64) for bv in (32, 64) for s in (2, 3)]


@triton.autotune(configs=_state_configs(), key=["K", "V", "BT", "IS_FP32", "SPLIT", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _ssd_chunk_states(
    k, v, g, h, h0, hT, hs, gc, gs, T, NT, NS, LS,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    HAS_H0: tl.constexpr, STORE_FINAL: tl.constexpr, IS_FP32: tl.constexpr, SPLIT: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    # SPLIT: program axis 2 is (batch·head, segment); the walk covers chunks [s·LS, min((s+1)·LS, NT)).
    i_k, i_v, i_p = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    if SPLIT:
        i_bh, i_s = i_p // NS, i_p % NS
        n_lo = i_s * LS
        n_hi = tl.minimum(n_lo + LS, NT)
    else:
        i_bh, i_s = i_p, 0
        n_lo, n_hi = 0, NT
    i_b, i_h = i_bh // H, i_bh % H
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    if HAS_H0:  # only the first segment starts from h0; the carry brings it to the others
        m_h0 = m_kv
        if SPLIT:
            m_h0 = m_kv & (i_s == 0)
        b_h += tl.load(h0 + i_bh * K * V + o_k[:, None] * V + o_v[None, :], mask=m_h0, other=0.0).to(tl.float32)
    o_t = tl.arange(0, BT)
    first = (i_k == 0) & (i_v == 0)  # the one program of a (batch·head, segment) that stores its decays
    g_seg = 0.0  # log-decay since the segment began
    for i_n in range(n_lo, n_hi):
        tl.store(h + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], b_h.to(h.dtype.element_ty), mask=m_kv)
        if SPLIT:
            tl.store(gc + i_bh * NT + i_n, g_seg, mask=first)
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
        g_seg += G_last
    if SPLIT:
        tl.store(hs + ((i_bh * NS + i_s) * K + o_k[:, None]) * V + o_v[None, :], b_h, mask=m_kv)
        tl.store(gs + i_bh * NS + i_s, g_seg, mask=first)
    elif STORE_FINAL:
        tl.store(hT + i_bh * K * V + o_k[:, None] * V + o_v[None, :], b_h, mask=m_kv)


@triton.jit
def _ssd_segment_carry(
    hs, gs, hin, hT, NS,
    K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, STORE_FINAL: tl.constexpr,
):
    """The true state entering each segment (``hin[s]``, s ≥ 1; fp32) from the segments' local end states
    ``hs`` and log-decays ``gs``, and the final state; one program per (K block, V block, batch·head)."""
    i_k, i_v, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_k = i_k * BK + tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_kv = (o_k[:, None] < K) & (o_v[None, :] < V)
    p_kv = o_k[:, None] * V + o_v[None, :]
    b_h = tl.zeros([BK, BV], dtype=tl.float32)
    for i_s in range(NS):
        off = (i_bh * NS + i_s) * K * V
        tl.store(hin + off + p_kv, b_h, mask=m_kv & (i_s > 0))  # segment 0 starts from h0, already in h
        b_h = b_h * tl.exp(tl.load(gs + i_bh * NS + i_s)) + tl.load(hs + off + p_kv, mask=m_kv, other=0.0)
    if STORE_FINAL:
        tl.store(hT + i_bh * K * V + p_kv, b_h, mask=m_kv)


@triton.autotune(configs=_configs(_OUTPUT_BV), key=["K", "V", "BT", "BK", "IS_FP32", "SPLIT", "SIZE_CLASS"])
@triton.jit(do_not_specialize=["SIZE_CLASS"])
def _ssd_chunk_output(
    q, k, v, g, h, hin, gc, o, scale, T, NT, NS, LS,
    H: tl.constexpr, K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
    IS_FP32: tl.constexpr, SPLIT: tl.constexpr,
    SIZE_CLASS=0,  # autotune key only: kernels._dispatch.size_class
):
    i_v, i_n, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    if SPLIT:  # h[n] is segment-local: the carried state enters with the decay since the segment began
        i_s = i_n // LS
        carry = tl.exp(tl.load(gc + i_bh * NT + i_n))
    o_t = i_n * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_v = i_v * BV + tl.arange(0, BV)
    m_v = o_v < V
    acc_o = tl.zeros([BT, BV], dtype=tl.float32)
    acc_s = tl.zeros([BT, BT], dtype=tl.float32)
    for i_k in range(tl.cdiv(K, BK)):
        o_k = i_k * BK + tl.arange(0, BK)
        m_k = o_k < K
        b_q = tl.load(q + ((i_b * T + o_t[:, None]) * H + i_h) * K + o_k[None, :], mask=m_t[:, None] & m_k[None, :], other=0.0)
        b_kt = tl.load(k + ((i_b * T + o_t[None, :]) * H + i_h) * K + o_k[:, None], mask=m_t[None, :] & m_k[:, None], other=0.0)
        b_h = tl.load(h + ((i_bh * NT + i_n) * K + o_k[:, None]) * V + o_v[None, :], mask=m_k[:, None] & m_v[None, :], other=0.0)
        if SPLIT:
            p_in = hin + ((i_bh * NS + i_s) * K + o_k[:, None]) * V + o_v[None, :]
            b_in = tl.load(p_in, mask=m_k[:, None] & m_v[None, :] & (i_s > 0), other=0.0)
            b_h = (b_h.to(tl.float32) + carry * b_in).to(b_h.dtype)
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
    return min(64, max(16, next_power_of_2(K)))


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
    B, T, H, K = k.shape
    V = v.shape[-1]
    NT = cdiv(T, chunk_size)
    # Chunk-entry states in the inputs' dtype: for bf16 this halves the largest traffic term (h is
    # written once and read once; B·H·NT·K·V elements), as the peers do; fp32 inputs keep fp32 states.
    h = torch.empty(B, H, NT, K, V, device=k.device, dtype=k.dtype)
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    hT = torch.empty(B, H, K, V, device=k.device, dtype=torch.float32) if output_final_state else None
    _ssd_chunk_states[lambda meta: (cdiv(K, meta["BK"]), cdiv(V, meta["BV"]), B * H)](
        k, v, g, h, h0, hT, None, None, None, T, NT, 1, NT, SIZE_CLASS=size_class(B * H), H=H, K=K, V=V,
        BT=chunk_size, HAS_H0=h0 is not None, STORE_FINAL=output_final_state, IS_FP32=k.dtype == torch.float32,
        SPLIT=False,
    )
    return h, hT


class SplitStates(NamedTuple):
    """:func:`chunk_ssd_split_states`'s result: segment-local entry states and what restores the true ones."""

    h: Tensor  # [B, H, NT, K, V], k's dtype: entry states from a zero start at each segment (h0 in segment 0)
    hin: Tensor  # [B, H, NS, K, V] fp32: the true state entering each segment (index 0 unused)
    gc: Tensor  # [B·H·NT] fp32: each chunk's log-decay since its segment began
    final: Tensor | None  # [B, H, K, V] fp32
    seg_len: int  # LS, chunks per segment


SPLIT_WALK = True  # cut the forward's state walk into segments where few batch·heads leave the GPU idle (NOTES 50)
_SPLIT_MAX_HEADS = 32  # only below this many batch·heads (B=2 H=16 T=16k: 450 µs split or not) ...
_SPLIT_WALKS = 128  # ... until B·H·NS reaches this many walks ...
_SPLIT_MIN_CHUNKS = 16  # ... with at least this many chunks per segment (each segment adds 2·K·V fp32 of traffic) ...
_SPLIT_MIN_WALK = 64  # ... and only walks of at least this many chunks: shorter ones are bound by the CPU's launches
_CARRY_BLOCK = 32


def fwd_state_splits(B: int, H: int, NT: int) -> int:
    """Segments of the forward's state walk (1: one walk per batch·head). Splitting pays where B·H walks
    cannot fill the GPU: B=1 H=16 T=16k has 16 walks of 128 chunks (K=V=128: 279 → 242 µs, K=V=64: 193 → 117 µs
    on an H200, kernels/NOTES.md 50). At T ≤ 4096 the op is bound by the CPU's launches, and the split's third
    launch and extra buffers made it slower (B=1 T=4096 K=V=128: 88 → 246 µs), so walks under 64 chunks stay whole;
    from 32 batch·heads on the walk is no longer the bottleneck (B=2 H=16 T=16k: 449.5 µs whole, 452.7 µs split)."""
    if not SPLIT_WALK or B * H >= _SPLIT_MAX_HEADS or NT < _SPLIT_MIN_WALK:
        return 1
    return max(1, min(NT // _SPLIT_MIN_CHUNKS, _SPLIT_WALKS // (B * H)))


def chunk_ssd_split_states(
    k: Tensor, v: Tensor, g: Tensor, initial_state: Tensor | None, output_final_state: bool, chunk_size: int, splits: int
) -> SplitStates:
    """The forward's states with the walk cut into ``splits`` segments walked side by side, then a carry over
    the segments (see the module docstring). Inputs as :func:`chunk_ssd_states`."""
    B, T, H, K = k.shape
    V = v.shape[-1]
    NT = cdiv(T, chunk_size)
    LS = cdiv(NT, max(1, min(splits, NT)))
    NS = cdiv(NT, LS)  # no empty segment
    dev, f32 = k.device, torch.float32
    h = torch.empty(B, H, NT, K, V, device=dev, dtype=k.dtype)
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    # two allocations, not four: each costs the host a few µs, and at batch 1 the host sets the pace
    hs, hin = torch.empty(2, B, H, NS, K, V, device=dev, dtype=f32).unbind(0)
    gc, gs = torch.empty(B * H * (NT + NS), device=dev, dtype=f32).split([B * H * NT, B * H * NS])  # both contiguous
    hT = torch.empty(B, H, K, V, device=dev, dtype=f32) if output_final_state else None
    _ssd_chunk_states[lambda meta: (cdiv(K, meta["BK"]), cdiv(V, meta["BV"]), B * H * NS)](
        k, v, g, h, h0, None, hs, gc, gs, T, NT, NS, LS, SIZE_CLASS=size_class(B * H * NS), H=H, K=K, V=V,
        BT=chunk_size, HAS_H0=h0 is not None, STORE_FINAL=False, IS_FP32=k.dtype == torch.float32, SPLIT=True,
    )
    bk = bv = _CARRY_BLOCK
    _ssd_segment_carry[(cdiv(K, bk), cdiv(V, bv), B * H)](hs, gs, hin, hT, NS, K=K, V=V, BK=bk, BV=bv, STORE_FINAL=hT is not None)
    return SplitStates(h, hin, gc, hT, LS)


def fwd_chunk_size(B: int, T: int, H: int, dtype: torch.dtype) -> int:
    """The forward's chunk length. With few batch·heads on long sequences the sequential state walk is the
    cost: 128-step chunks halve its length and the chunk-entry state traffic (``h`` is B·H·T/BT·K·V elements).
    Measured on an H200 (scripts/results/bench_kernels_h200_2026-11-30.md): B=1 H=16 T=4096 K=V=128
    91.8 → 77.5 µs, T=16k 326 → 279 µs; but B=8 T=4096 439 → 448 µs and B=64 T=1024 823 → 881 µs, so 64
    elsewhere. fp32 (IEEE) products of 128-step chunks spill and compile for minutes: fp32 keeps 64."""
    if dtype == torch.float32 or B * H > 32 or T < 4096:
        return CHUNK
    return LONG_CHUNK


def chunk_ssd_fwd(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, scale: float, initial_state: Tensor | None, output_final_state: bool,
    chunk_size: int | None = None, splits: int | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Forward only (no autograd). Shapes as :func:`triton_chunk_ssd`; ``chunk_size`` 64 or 128 (default
    :func:`fwd_chunk_size`); ``splits``: segments of the state walk (default :func:`fwd_state_splits`)."""
    out_dtype = v.dtype
    q, k, v, g = _prepare(q, k, v, g)
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT = chunk_size or fwd_chunk_size(B, T, H, q.dtype)
    if BT not in (CHUNK, LONG_CHUNK):
        raise ValueError(f"chunk_ssd_fwd: chunk_size={chunk_size} must be {CHUNK} or {LONG_CHUNK}")
    NT = cdiv(T, BT)
    splits = fwd_state_splits(B, H, NT) if splits is None else splits
    if splits < 1:
        raise ValueError(f"chunk_ssd_fwd: splits={splits} must be at least 1")
    if splits > 1 and NT > 1:
        h, hin, gc, hT, LS = chunk_ssd_split_states(k, v, g, initial_state, output_final_state, BT, splits)
        NS = hin.shape[2]
    else:
        (h, hT), hin, gc, NS, LS = chunk_ssd_states(k, v, g, initial_state, output_final_state, BT), None, None, 1, NT
    o = torch.empty(B, T, H, V, device=q.device, dtype=out_dtype)
    _ssd_chunk_output[lambda meta: (cdiv(V, meta["BV"]), NT, B * H)](
        q, k, v, g, h, hin, gc, o, float(scale), T, NT, NS, LS, SIZE_CLASS=size_class(NT * B * H), H=H, K=K, V=V,
        BT=BT, BK=_block_k(K), IS_FP32=q.dtype == torch.float32, SPLIT=hin is not None,
    )
    return o, hT


# The reference-recompute backward, kept for cross-checks (``triton_backward=False``).
_ChunkSSDFn = with_reference_backward(
    chunk_ssd_fwd,
    lambda q, k, v, g, scale, h0, out_final: naive_chunk_ssd(q, k, v, g, scale, h0, out_final, CHUNK),
)


def triton_chunk_ssd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    triton_backward: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Chunked SSD scan with the Triton forward; differentiable in q, k, v, g and initial_state.

    Args:
        q, k: ``[B, T, H, K]``. v: ``[B, T, H, V]``. g: ``[B, T, H]`` log-decay (≤ 0).
        scale: multiplies q. initial_state: ``[B, H, K, V]`` or None.
        triton_backward: gradients from the Triton backward kernels (default); False recomputes them
            through the reference under autograd (slower, for cross-checks).
    Returns:
        o ``[B, T, H, V]`` in v's dtype, final state ``[B, H, K, V]`` fp32 (or None).
    """
    if triton_backward:
        # Imported here: the backward module imports this one (chunk_ssd_fwd, chunk_ssd_states).
        from kernels.ssd.triton_chunk_bwd import ChunkSSDFunction

        return ChunkSSDFunction.apply(q, k, v, g, scale, initial_state, output_final_state)
    return _ChunkSSDFn.apply(q, k, v, g, scale, initial_state, output_final_state)
