"""Triton GLA decode step: ``S ← diag(exp(g)) S + k vᵀ``, ``o = scale · Sᵀ q``, state updated in place.

Same contract as :func:`kernels.gla.naive.naive_gla_step` (vector log-decay ``g`` ``[B, H, K]``). One
launch, one program per (V block, batch·head); each program reads and writes its ``[K, BV]`` slice of
the fp32 state once, so the step moves ≈ 2 · B·H·K·V·4 bytes — the floor it is judged against.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import cdiv, next_power_of_2, step_launch

__all__ = ["triton_gla_step", "gated_step_kernel", "check_read_out", "read_out_args", "read_out_launch", "split_read_out",
           "even_tile", "split_by_default", "step_order", "STEP_VARIANTS"]

# Launch variants of gated_step_kernel (its constexprs), compiled by ``scripts/ptxas_report.py decode_step`` and timed
# beside the shipped launch by ``scripts/sweep_step_launch.py --variants`` (a variant's constexprs override the
# launch's): without the CTA barrier between the state's load and its in-place store (safe only where no two threads
# hold the same state element), with the state stored last (after o's reduction and store), and with the new state
# written to a second tensor ``s_out`` (fla's step reads its state from one tensor and writes another; ours updates
# in place), with the bounds masks kept where the tile fits the state exactly (the shipped launches drop them there:
# EVEN), with the vectors loaded as [BK, 1] columns (all their loads in one round, converted to the state's layout
# after), with fla's order of the update's sums (the decay and rank-one term first), which the compiler schedules in
# one round of vector loads fewer, with fla's indexing (a 1-D grid, 64-bit; its launcher flattens the grid;
# kernels/NOTES.md 71), and with the state's load marked evict-first in L2 (read once, so the vectors keep their
# lines). ``store-first`` and ``sums-first`` undo the orders that :func:`step_order` ships for the delta rule.
# ``state-vk`` reads and writes the state as Sᵀ ([V, K] per head, K contiguous): the load's layout then puts a
# warp's threads along K, so the reductions over K stay within a warp (shuffles, no shared memory or barrier); its
# caller holds the state transposed (the sweep's launcher converts it once).
STEP_VARIANTS = {"no-barrier": {"SYNC": False}, "store-last": {"STORE_LAST": True}, "out-of-place": {"OUT_OF_PLACE": True},
                 "masked": {"EVEN": False}, "row-loads": {"ROW_LOADS": True}, "rank-one-first": {"RANK_ONE_FIRST": True},
                 "flat-grid": {"FLAT_GRID": True}, "evict-first": {"EVICT_FIRST": True},
                 "store-first": {"STORE_LAST": False}, "sums-first": {"RANK_ONE_FIRST": False},
                 "state-vk": {"STATE_VK": True}}

# A delta-rule step whose grid has at least this many programs stores its state last (:func:`step_order`).
_STORE_LAST_PROGRAMS = 4096


def step_order(rank_one: bool, programs: int) -> dict:
    """The order constexprs of a step's launch (gated_step_kernel's RANK_ONE_FIRST and STORE_LAST) for a grid of
    ``programs``. The delta rule (``rank_one``) sums its update in fla's order, decay and rank-one term first, k vᵀ
    after: one round of vector loads fewer (H200, B=64 H=16 K=V=128, [128, 32] on 2 warps, stored first: 39.5
    against 40.8 µs; K=V=64 7.54 against 7.66; B=8 4.83 against 4.87; B=1 1.78 against 1.81). With 4096 programs
    and more it also stores the state after o: 38.1 against 39.5 µs at B=64 K=V=128 (fla's step 37.8); at B=64
    K=V=64 (2048 programs of [64, 32]) storing last was 7.96 against 7.54, at B=8 K=V=128 (512) 5.30-5.50 against
    4.96 (kernels/NOTES.md 72). SSD and GLA keep the order they were tuned in."""
    return {"RANK_ONE_FIRST": rank_one, "STORE_LAST": rank_one and programs >= _STORE_LAST_PROGRAMS}


@triton.jit
def _store_state(p_s, s_out, i_bh, o_k, o_v, b_s, m, K: tl.constexpr, V: tl.constexpr, SYNC: tl.constexpr,
                 OUT_OF_PLACE: tl.constexpr, STATE_VK: tl.constexpr):
    # replicated threads (small tiles) must all have read the old state before any writes the new one
    if SYNC:
        tl.debug_barrier()
    if OUT_OF_PLACE:
        if STATE_VK:
            tl.store(s_out + i_bh * K * V + o_k[:, None] + o_v[None, :] * K, b_s, mask=m)
        else:
            tl.store(s_out + i_bh * K * V + o_k[:, None] * V + o_v[None, :], b_s, mask=m)
    else:
        tl.store(p_s, b_s, mask=m)


@triton.jit
def _decay(b_g, SHAPED: tl.constexpr):
    """exp of the log-decay: a scalar or a ``[BK, 1]`` column as loaded (SHAPED), else a ``[BK]`` vector's exp made a
    column (exp first, then the new axis: the order the shipped step has always compiled)."""
    if SHAPED:
        return tl.exp(b_g)
    else:
        return tl.exp(b_g)[:, None]


@triton.jit
def _load_col(x, i_bh, o_k, m_k, K: tl.constexpr):
    """The K values of one batch·head of a ``[B·H, K]`` vector as a ``[BK, 1]`` fp32 column."""
    return tl.load(x + i_bh * K + o_k[:, None], mask=m_k[:, None], other=0.0).to(tl.float32)


@triton.jit
def _read_out(b_o, b_q, b_k, b_v, rk, nw, gz, eps, i_bh, H, o_k, o_v, m_k, m_v, K: tl.constexpr, V: tl.constexpr,
              HAS_BONUS: tl.constexpr, HAS_NORM: tl.constexpr, HAS_GATE: tl.constexpr):
    """A mixer's read-out of o (fp32, the V values of one batch·head): RWKV-7's current-token bonus, per-head
    RMSNorm, sigmoid gate; each where its flag is set."""
    if HAS_BONUS:
        b_rk = tl.load(rk + (i_bh % H) * K + o_k, mask=m_k, other=0.0).to(tl.float32)
        b_o += tl.sum(b_q * b_k * b_rk, axis=0) * b_v
    if HAS_NORM:
        b_o = tl.where(m_v, b_o, 0.0)
        b_o = b_o / tl.sqrt(tl.sum(b_o * b_o, axis=0) / V + eps)
        b_o = b_o * tl.load(nw + (i_bh % H) * V + o_v, mask=m_v, other=0.0).to(tl.float32)
    if HAS_GATE:
        b_o = b_o * tl.sigmoid(tl.load(gz + i_bh * V + o_v, mask=m_v, other=0.0).to(tl.float32))
    return b_o


@triton.jit
def gated_step_kernel(
    q, k, v, g, a, b, s, o, scale, rk, nw, gz, eps, H,
    K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, SCALAR_DECAY: tl.constexpr, DELTA: tl.constexpr,
    HAS_BONUS: tl.constexpr = False, HAS_NORM: tl.constexpr = False, HAS_GATE: tl.constexpr = False,
    SYNC: tl.constexpr = True, STORE_LAST: tl.constexpr = False, OUT_OF_PLACE: tl.constexpr = False, s_out=None,
    EVEN: tl.constexpr = False, ROW_LOADS: tl.constexpr = False, RANK_ONE_FIRST: tl.constexpr = False,
    FLAT_GRID: tl.constexpr = False, EVICT_FIRST: tl.constexpr = False, STATE_VK: tl.constexpr = False,
):
    """One decode step of the gated family, one program per (V block, batch·head), state ``[K, BV]`` in registers:
    ``S ← D S + k vᵀ (+ b (aᵀ S)ᵀ if DELTA)``, ``o = scale · Sᵀ q``; D = exp(g), one scalar per head
    (SCALAR_DECAY: SSD) or one per key channel (GLA, delta rule). The SSD, GLA and delta-rule steps launch it.
    HAS_BONUS / HAS_NORM / HAS_GATE fuse a mixer's read-out: RWKV-7's current-token bonus (q · (k ⊙ ``rk``)) v,
    per-head RMSNorm over V × ``nw``, then × sigmoid(``gz``); the norm needs the whole of V in one program.
    SYNC, STORE_LAST, OUT_OF_PLACE (with ``s_out``), ROW_LOADS, RANK_ONE_FIRST, FLAT_GRID, EVICT_FIRST and STATE_VK make the launch
    variants of STEP_VARIANTS; the shipped steps launch a barrier, then the state stored in place, before o's reduction
    except where :func:`step_order` stores it last, and sum in the order step_order gives. EVEN (K == BK and BV
    divides V, :func:`even_tile`) drops the bounds masks."""
    if FLAT_GRID:  # fla's indexing: a 1-D grid of V blocks × batch·heads, in 64 bits (launch it on cdiv(V, BV)·B·H)
        pid = tl.program_id(0).to(tl.int64)
        i_v, i_bh = pid % tl.cdiv(V, BV), pid // tl.cdiv(V, BV)
    else:
        i_v, i_bh = tl.program_id(0), tl.program_id(1)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    if EVEN:  # K == BK and BV divides V: masks the compiler sees are all true (no predicated loads, no zero fill)
        m_k, m_v = tl.full([BK], True, tl.int1), tl.full([BV], True, tl.int1)
    else:
        m_k, m_v = o_k < K, o_v < V
    m = m_k[:, None] & m_v[None, :]
    # (each pointer built as a column plus a row, not from one [BK, BV] offset tensor: written that way, the
    # shipped [128, 32] tile of the delta rule compiled to 168 registers instead of 128 and ran 8 % slower)
    if STATE_VK:  # the state held as Sᵀ, [V, K] per head: K is the contiguous axis of the tile
        p_s = s + i_bh * K * V + o_k[:, None] + o_v[None, :] * K
    else:
        p_s = s + i_bh * K * V + o_k[:, None] * V + o_v[None, :]
    # Every load first: Triton emits a load where the source has it, and ptxas does not move one past the barriers
    # of the layout conversions and the reduction over K, so a load written after them is one more memory round
    # trip in the program's critical path (the decay's, in the delta rule's step: kernels/NOTES.md 70).
    if EVICT_FIRST:
        b_s = tl.load(p_s, mask=m, other=0.0, eviction_policy="evict_first")
    else:
        b_s = tl.load(p_s, mask=m, other=0.0)
    if ROW_LOADS:
        # each vector loaded as a [BK, 1] or [1, BV] tile: all the loads issue in one round, where a [BK] vector's
        # conversion (shared memory and a barrier) comes between one load and the next; the columns are converted
        # to the state's layout after, by warp shuffles (NOTES 71)
        c_q = _load_col(q, i_bh, o_k, m_k, K)
        c_k = _load_col(k, i_bh, o_k, m_k, K)
        r_v = tl.load(v + i_bh * V + o_v[None, :], mask=m_v[None, :], other=0.0).to(tl.float32)
        b_q, b_k, b_v = tl.reshape(c_q, [BK]), tl.reshape(c_k, [BK]), tl.reshape(r_v, [BV])  # for the read-out
    else:
        b_q = tl.load(q + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
        b_k = tl.load(k + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
        b_v = tl.load(v + i_bh * V + o_v, mask=m_v, other=0.0).to(tl.float32)
        c_q, c_k, r_v = b_q[:, None], b_k[:, None], b_v[None, :]
    if SCALAR_DECAY:
        b_g = tl.load(g + i_bh).to(tl.float32)
    elif ROW_LOADS:
        b_g = _load_col(g, i_bh, o_k, m_k, K)
    else:
        b_g = tl.load(g + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    if not RANK_ONE_FIRST:
        b_d = _decay(b_g, SCALAR_DECAY or ROW_LOADS)
    if DELTA:
        if ROW_LOADS:
            c_a, c_b = _load_col(a, i_bh, o_k, m_k, K), _load_col(b, i_bh, o_k, m_k, K)
        else:
            c_a = tl.load(a + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)[:, None]
            c_b = tl.load(b + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)[:, None]
    if RANK_ONE_FIRST:
        # fla's order of the same sums: the decay and the rank-one term first, k vᵀ added after
        # (the decay's exp taken here, where it is used: written at the load, the compiler gives the loads one more
        # round; kernels/NOTES.md 71)
        if DELTA:
            b_s = _decay(b_g, SCALAR_DECAY or ROW_LOADS) * b_s + c_b * tl.sum(c_a * b_s, axis=0)[None, :]
        else:
            b_s = _decay(b_g, SCALAR_DECAY or ROW_LOADS) * b_s
        b_s += c_k * r_v
    else:
        upd = c_k * r_v
        if DELTA:
            # u reads the *undecayed* state (RWKV-7); masked rows load a = 0 and contribute nothing
            upd += c_b * tl.sum(c_a * b_s, axis=0)[None, :]
        b_s = b_s * b_d + upd
    if not STORE_LAST:
        _store_state(p_s, s_out, i_bh, o_k, o_v, b_s, m, K, V, SYNC, OUT_OF_PLACE, STATE_VK)
    b_o = tl.sum(b_s * (c_q * scale), axis=0)
    b_o = _read_out(b_o, b_q, b_k, b_v, rk, nw, gz, eps, i_bh, H, o_k, o_v, m_k, m_v, K, V, HAS_BONUS, HAS_NORM, HAS_GATE)
    tl.store(o + i_bh * V + o_v, b_o.to(o.dtype.element_ty), mask=m_v)
    if STORE_LAST:
        _store_state(p_s, s_out, i_bh, o_k, o_v, b_s, m, K, V, SYNC, OUT_OF_PLACE, STATE_VK)


@triton.jit
def read_out_kernel(o, q, k, v, rk, nw, gz, y, eps, H, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr,
                    BV: tl.constexpr, HAS_BONUS: tl.constexpr, HAS_NORM: tl.constexpr, HAS_GATE: tl.constexpr):
    """The read-out of a step whose o (fp32 ``[B·H, V]``) the step kernel wrote: one program per batch·head, so
    that the step itself keeps the V blocks of its own launch (:func:`split_read_out`)."""
    i_bh = tl.program_id(0)
    o_k, o_v = tl.arange(0, BK), tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    b_o = tl.load(o + i_bh * V + o_v, mask=m_v, other=0.0)
    b_q = tl.load(q + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_k = tl.load(k + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_v = tl.load(v + i_bh * V + o_v, mask=m_v, other=0.0).to(tl.float32)
    b_o = _read_out(b_o, b_q, b_k, b_v, rk, nw, gz, eps, i_bh, H, o_k, o_v, m_k, m_v, K, V, HAS_BONUS, HAS_NORM, HAS_GATE)
    tl.store(y + i_bh * V + o_v, b_o.to(y.dtype.element_ty), mask=m_v)


def split_read_out(step, q: Tensor, k: Tensor, v: Tensor, bonus: Tensor | None, norm_weight: Tensor | None,
                   gate: Tensor | None, eps: float, y: Tensor) -> Tensor:
    """A step with its read-out in a second launch: ``step(o32)`` runs the step kernel at its own launch, writing
    o in fp32 to ``o32``; :func:`read_out_kernel` then adds the bonus, norms and gates it into ``y`` (returned). The fused
    read-out holds all of V in one program, which at K = V = 128 takes the delta rule's step to 254 registers per
    thread (one 8-warp program per SM); split, the step keeps its V blocks, for one more launch and an fp32 round
    trip of o (B·H·V values, exact)."""
    B, H, K = q.shape
    V = v.shape[-1]
    o32 = torch.empty(B, H, V, device=v.device, dtype=torch.float32)
    step(o32)
    BK, BV = max(16, next_power_of_2(K)), max(16, next_power_of_2(V))
    nw, gz, eps = read_out_args(norm_weight, gate, eps)
    read_out_kernel[(B * H,)](
        o32, q, k, v, None if bonus is None else bonus.contiguous(), nw, gz, y, eps, H, K=K, V=V, BK=BK, BV=BV,
        HAS_BONUS=bonus is not None, HAS_NORM=norm_weight is not None, HAS_GATE=gate is not None,
        num_warps=max(1, min(4, BV // 32)),
    )
    return y


def even_tile(K: int, V: int, BK: int, BV: int) -> bool:
    """Whether a ``[BK, BV]`` tile covers a ``[K, V]`` state exactly (gated_step_kernel's EVEN)."""
    return K == BK and V % BV == 0


def split_by_default(K: int) -> bool:
    """Whether a step with a read-out launches it apart (:func:`split_read_out`) when the caller does not say: at
    K = 128, where the fused tile holds all of V (H200, three runs: RWKV-7 B=64 44 against 60 µs, B=1 4.0 against
    6.4; GLA B=64 40.7 against 43.0, B=1 3.5 against 4.6; GLA B=8 5.96-6.01 against 5.69-5.98 the one loss), not
    at K = 64, where the fused one is ahead at every batch (kernels/NOTES.md 70)."""
    return K >= 128


def step_out(op: str, v: Tensor, out: Tensor | None) -> Tensor:
    """o's tensor of a step: ``out`` (checked: ``[B, H, V]`` like v, contiguous) or a new one in v's dtype."""
    if out is None:
        return torch.empty(v.shape, device=v.device, dtype=v.dtype)
    if out.shape != v.shape or not out.is_contiguous() or out.device != v.device:
        raise ValueError(f"{op}: out {tuple(out.shape)} must be a contiguous [B, H, V] = {tuple(v.shape)} tensor on {v.device}")
    return out


def check_read_out(op: str, B: int, H: int, V: int, norm_weight: Tensor | None, gate: Tensor | None) -> None:
    if norm_weight is not None and norm_weight.numel() != H * V:
        raise ValueError(f"{op}: norm_weight {tuple(norm_weight.shape)} must hold H·V = {H * V} values")
    if gate is not None and gate.shape != (B, H * V):
        raise ValueError(f"{op}: gate {tuple(gate.shape)} must be [B, H·V] = {(B, H * V)}")


def read_out_args(norm_weight: Tensor | None, gate: Tensor | None, eps: float) -> tuple:
    """(nw, gz, eps) kernel arguments of the fused read-out."""
    return (None if norm_weight is None else norm_weight.contiguous(), None if gate is None else gate.contiguous(), float(eps))


def read_out_launch(BH: int, K: int, V: int, norm: bool, rank_one: bool = False,
                    state_vk: bool = False) -> tuple[int, int, int]:
    """:func:`kernels._dispatch.step_launch`, except that a fused norm (a reduction over V) needs one program
    per head holding all of V."""
    BK, BV, warps = step_launch(BH, K, V, rank_one=rank_one, state_vk=state_vk)
    if norm:
        BV = max(16, next_power_of_2(V))
        warps = max(warps, min(8, BK * BV // 1024))
    return BK, BV, warps


def triton_gla_step(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, state: Tensor, scale: float = 1.0,
    norm_weight: Tensor | None = None, gate: Tensor | None = None, eps: float = 1e-5, split: bool | None = None,
    out: Tensor | None = None,
) -> Tensor:
    """One decode step for a batch of streams, optionally with the mixer's read-out fused (one launch), or with
    ``split``, in a second launch after the step at its own V blocks (:func:`split_read_out`); None takes
    :func:`split_by_default` (apart at K = 128).

    Args:
        q, k, g: ``[B, H, K]`` (g: log-decay per key channel, ≤ 0). v: ``[B, H, V]``.
        state: ``[B, H, K, V]`` fp32, contiguous, written in place.
        norm_weight: ``[H·V]`` per-head RMSNorm weight of the read-out, or None. gate: ``[B, H·V]`` gate
            pre-activation (× sigmoid), or None. eps: the norm's epsilon.
        out: where to write o (``[B, H, V]``, contiguous; fp32 keeps it unrounded), or None for a new tensor.
    Returns:
        o ``[B, H, V]`` in v's dtype (out's, where given).
    """
    B, H, K = q.shape
    V = v.shape[-1]
    if k.shape != q.shape or g.shape != q.shape or v.shape[:2] != (B, H):
        raise ValueError(f"gla_step: q {tuple(q.shape)}, k {tuple(k.shape)}, g {tuple(g.shape)} must be [B, H, K] "
                         f"and v {tuple(v.shape)} [B, H, V]")
    if state.shape != (B, H, K, V) or state.dtype != torch.float32 or not state.is_contiguous():
        raise ValueError(f"gla_step: state {tuple(state.shape)} {state.dtype} must be contiguous fp32 [B, H, K, V]")
    check_read_out("gla_step", B, H, V, norm_weight, gate)
    q, k, v, g = q.contiguous(), k.contiguous(), v.contiguous(), g.contiguous()
    if split is None:
        split = split_by_default(K)
    if split and (norm_weight is not None or gate is not None):
        return split_read_out(lambda o32: triton_gla_step(q, k, v, g, state, scale, out=o32), q, k, v, None,
                              norm_weight, gate, eps, step_out("gla_step", v, out))
    o = step_out("gla_step", v, out)
    BK, BV, warps = read_out_launch(B * H, K, V, norm_weight is not None)
    gated_step_kernel[(cdiv(V, BV), B * H)](
        q, k, v, g, None, None, state, o, float(scale), None, *read_out_args(norm_weight, gate, eps), H,
        K=K, V=V, BK=BK, BV=BV, SCALAR_DECAY=False, DELTA=False,
        HAS_NORM=norm_weight is not None, HAS_GATE=gate is not None, EVEN=even_tile(K, V, BK, BV), num_warps=warps,
    )
    return o
