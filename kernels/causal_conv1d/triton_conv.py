"""Triton causal depthwise conv1d: training forward/backward and the one-token streaming update.

Same contract as :mod:`kernels.causal_conv1d.naive`: ``x [B, T, C]`` channels-last, ``weight [C, W]``,
``bias [C]``, rolling state ``[B, C, W - 1]`` (oldest first). All arithmetic is fp32.

Think of the padded input ``full = cat(initial_state, x)`` of length ``T + W - 1``; then
``pre[t] = bias + sum_w weight[w] * full[t + w]`` and ``y = act(pre)``. The backward works on ``full``
too: ``dfull[p] = sum_w dpre[p - w] * weight[w] (+ dfinal[p - T] for the last W - 1 positions)``, whose
first ``W - 1`` entries are the initial state's gradient and the rest ``dx``. The channel axis is
contiguous, so every load is a coalesced ``[BT, BC]`` tile.

Launches: forward 1; backward 2 (dpre + per-tile weight/bias partial sums, then dfull) plus a torch sum
of the partials; update 1.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import cdiv, next_power_of_2, triton_interpreted
from kernels.causal_conv1d.naive import ACTIVATIONS

__all__ = ["triton_causal_conv1d", "triton_causal_conv1d_update", "conv_update_channels"]


def _blocks(T: int, C: int) -> tuple[int, int]:
    # Tiles of ≤ 64×64 fp32 keep registers low; the interpreter prefers fewer, larger programs.
    if triton_interpreted():
        return max(next_power_of_2(T), 16), max(next_power_of_2(C), 16)
    return min(64, max(next_power_of_2(T), 16)), min(64, max(next_power_of_2(C), 16))


@triton.jit
def _load_full(x, s0, i_b, src, o_c, m_c, T, C, W: tl.constexpr, HAS_S0: tl.constexpr):
    """full[src + W - 1] for a [BT] vector of x-time indices ``src`` (negative ⇒ initial state)."""
    m_x = (src >= 0) & (src < T)
    v = tl.load(x + i_b * T * C + src[:, None] * C + o_c[None, :], mask=m_x[:, None] & m_c[None, :], other=0.0).to(
        tl.float32
    )
    if HAS_S0:
        m_s = (src < 0) & (src >= -(W - 1))
        v += tl.load(
            s0 + i_b * C * (W - 1) + o_c[None, :] * (W - 1) + (src[:, None] + W - 1),
            mask=m_s[:, None] & m_c[None, :],
            other=0.0,
        ).to(tl.float32)
    return v


@triton.jit
def _conv_fwd_kernel(
    x, w, b, s0, y, sf, T, C, size_class,
    W: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_S0: tl.constexpr, SILU: tl.constexpr, STORE_FINAL: tl.constexpr,
):
    i_c, i_t, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    o_t = i_t * BT + tl.arange(0, BT)
    acc = tl.zeros([BT, BC], dtype=tl.float32)
    if HAS_BIAS:
        acc += tl.load(b + o_c, mask=m_c, other=0.0).to(tl.float32)[None, :]
    for j in tl.static_range(W):
        wj = tl.load(w + o_c * W + j, mask=m_c, other=0.0).to(tl.float32)
        acc += _load_full(x, s0, i_b, o_t - (W - 1) + j, o_c, m_c, T, C, W, HAS_S0) * wj[None, :]
    if SILU:
        acc = acc * tl.sigmoid(acc)
    m_t = o_t < T
    tl.store(y + i_b * T * C + o_t[:, None] * C + o_c[None, :], acc.to(y.dtype.element_ty), mask=m_t[:, None] & m_c[None, :])
    if STORE_FINAL:
        if i_t == 0:
            for j in tl.static_range(W - 1):
                src = T - (W - 1) + j + tl.zeros([1], dtype=tl.int32)
                v = tl.sum(_load_full(x, s0, i_b, src, o_c, m_c, T, C, W, HAS_S0), axis=0)
                tl.store(sf + i_b * C * (W - 1) + o_c * (W - 1) + j, v.to(sf.dtype.element_ty), mask=m_c)


# On the GPU the forward tile is autotuned per (C, W, size class): wide channel tiles stream longer
# contiguous rows, tall time tiles re-read fewer halo rows (W − 1 per tile). ``size_class`` = bit length of
# B·T, so a batch-1 prefill and a 64k-token training batch each get their own choice.
_FWD_CONFIGS = [triton.Config({"BT": bt, "BC": bc}, num_warps=wp) for bt, bc, wp in
                ((64, 64, 4), (32, 128, 4), (64, 128, 4), (128, 64, 8), (64, 256, 8), (16, 256, 4))]
_conv_fwd_tuned = triton.autotune(
    configs=_FWD_CONFIGS,
    key=["C", "size_class", "W", "HAS_S0", "SILU", "HAS_BIAS"],
)(_conv_fwd_kernel)


@triton.jit
def _conv_bwd_dpre_kernel(
    x, w, b, s0, dy, dpre, dw_part, db_part, T, C, NT,
    W: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr,
    HAS_BIAS: tl.constexpr, HAS_S0: tl.constexpr, SILU: tl.constexpr,
):
    """dpre = dy * act'(pre) (fp32), and this tile's partial sums of dweight and dbias."""
    i_c, i_t, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    o_t = i_t * BT + tl.arange(0, BT)
    m_t = o_t < T
    m = m_t[:, None] & m_c[None, :]
    g = tl.load(dy + i_b * T * C + o_t[:, None] * C + o_c[None, :], mask=m, other=0.0).to(tl.float32)
    if SILU:
        pre = tl.zeros([BT, BC], dtype=tl.float32)
        if HAS_BIAS:
            pre += tl.load(b + o_c, mask=m_c, other=0.0).to(tl.float32)[None, :]
        for j in tl.static_range(W):
            wj = tl.load(w + o_c * W + j, mask=m_c, other=0.0).to(tl.float32)
            pre += _load_full(x, s0, i_b, o_t - (W - 1) + j, o_c, m_c, T, C, W, HAS_S0) * wj[None, :]
        sig = tl.sigmoid(pre)
        g = g * sig * (1.0 + pre * (1.0 - sig))
    g = tl.where(m, g, 0.0)
    tl.store(dpre + i_b * T * C + o_t[:, None] * C + o_c[None, :], g, mask=m)
    part = (i_b * NT + i_t) * C
    for j in tl.static_range(W):
        xj = _load_full(x, s0, i_b, o_t - (W - 1) + j, o_c, m_c, T, C, W, HAS_S0)
        tl.store(dw_part + (part + o_c) * W + j, tl.sum(g * xj, axis=0), mask=m_c)
    if HAS_BIAS:
        tl.store(db_part + part + o_c, tl.sum(g, axis=0), mask=m_c)


@triton.jit
def _conv_bwd_dfull_kernel(
    dpre, w, dfinal, dx, ds0, T, C,
    W: tl.constexpr, BT: tl.constexpr, BC: tl.constexpr, HAS_DFINAL: tl.constexpr, STORE_DS0: tl.constexpr,
):
    """dfull[p] = sum_w dpre[p - w] weight[w] (+ dfinal[p - T]); split into d initial_state and dx."""
    i_c, i_t, i_b = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    o_p = i_t * BT + tl.arange(0, BT)  # position in full, length T + W - 1
    acc = tl.zeros([BT, BC], dtype=tl.float32)
    for j in tl.static_range(W):
        src = o_p - j
        m_s = (src >= 0) & (src < T)
        wj = tl.load(w + o_c * W + j, mask=m_c, other=0.0).to(tl.float32)
        d = tl.load(dpre + i_b * T * C + src[:, None] * C + o_c[None, :], mask=m_s[:, None] & m_c[None, :], other=0.0)
        acc += d * wj[None, :]
    if HAS_DFINAL:
        f = o_p - T
        m_f = (f >= 0) & (f < W - 1)
        acc += tl.load(
            dfinal + i_b * C * (W - 1) + o_c[None, :] * (W - 1) + f[:, None], mask=m_f[:, None] & m_c[None, :], other=0.0
        ).to(tl.float32)
    t = o_p - (W - 1)
    m_x = (t >= 0) & (t < T)
    tl.store(dx + i_b * T * C + t[:, None] * C + o_c[None, :], acc.to(dx.dtype.element_ty), mask=m_x[:, None] & m_c[None, :])
    if STORE_DS0:
        m_0 = o_p < W - 1
        tl.store(
            ds0 + i_b * C * (W - 1) + o_c[None, :] * (W - 1) + o_p[:, None],
            acc.to(ds0.dtype.element_ty),
            mask=m_0[:, None] & m_c[None, :],
        )


def _check(x: Tensor, weight: Tensor, activation: str | None) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"causal_conv1d: unknown activation={activation!r}; choose one of {ACTIVATIONS}")
    if x.dim() != 3 or weight.dim() != 2 or weight.shape[0] != x.shape[-1]:
        raise ValueError(f"causal_conv1d: x {tuple(x.shape)} must be [B, T, C] and weight {tuple(weight.shape)} [C, W]")
    if weight.shape[1] < 2:
        raise ValueError(f"causal_conv1d: the Triton kernel needs W ≥ 2, got weight {tuple(weight.shape)}")


class _CausalConv1dFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, initial_state, activation, output_final_state):
        B, T, C = x.shape
        W = weight.shape[1]
        x, weight = x.contiguous(), weight.contiguous()
        bias = bias.contiguous() if bias is not None else None
        s0 = initial_state.contiguous() if initial_state is not None else None
        y = torch.empty_like(x)
        final = None
        if output_final_state:
            final = x.new_empty(B, C, W - 1, dtype=x.dtype if s0 is None else s0.dtype)
        flags = dict(W=W, HAS_BIAS=bias is not None, HAS_S0=s0 is not None, SILU=activation == "silu",
                     STORE_FINAL=output_final_state)
        args = (x, weight, bias, s0, y, final, T, C, (B * T).bit_length())
        if triton_interpreted():
            BT, BC = _blocks(T, C)
            _conv_fwd_kernel[(cdiv(C, BC), max(cdiv(T, BT), 1), B)](*args, BT=BT, BC=BC, **flags)
        else:
            _conv_fwd_tuned[lambda m: (cdiv(C, m["BC"]), max(cdiv(T, m["BT"]), 1), B)](*args, **flags)
        ctx.save_for_backward(x, weight, bias, s0)
        ctx.activation = activation
        return y, final

    @staticmethod
    def backward(ctx, dy, dfinal):
        x, weight, bias, s0 = ctx.saved_tensors
        B, T, C = x.shape
        W = weight.shape[1]
        BT, BC = _blocks(T, C)
        NT = max(cdiv(T, BT), 1)
        dy = dy.contiguous()
        dpre = torch.empty(B, T, C, device=x.device, dtype=torch.float32)
        dw_part = torch.empty(B, NT, C, W, device=x.device, dtype=torch.float32)
        db_part = torch.empty(B, NT, C, device=x.device, dtype=torch.float32) if bias is not None else None
        _conv_bwd_dpre_kernel[(cdiv(C, BC), NT, B)](
            x, weight, bias, s0, dy, dpre, dw_part, db_part, T, C, NT,
            W=W, BT=BT, BC=BC, HAS_BIAS=bias is not None, HAS_S0=s0 is not None, SILU=ctx.activation == "silu",
        )
        dx = torch.empty_like(x)
        ds0 = torch.empty_like(s0) if s0 is not None else None
        BTf, _ = _blocks(T + W - 1, C)
        _conv_bwd_dfull_kernel[(cdiv(C, BC), cdiv(T + W - 1, BTf), B)](
            dpre, weight, dfinal.contiguous() if dfinal is not None else None, dx, ds0, T, C,
            W=W, BT=BTf, BC=BC, HAS_DFINAL=dfinal is not None, STORE_DS0=s0 is not None,
        )
        dw = dw_part.sum((0, 1)).to(weight.dtype)
        db = db_part.sum((0, 1)).to(bias.dtype) if bias is not None else None
        return dx, dw, db, ds0, None, None


def triton_causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    initial_state: Tensor | None = None,
    activation: str | None = None,
    output_final_state: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Causal depthwise conv over time; differentiable in x, weight, bias and initial_state.

    Args:
        x: ``[B, T, C]``. weight: ``[C, W]`` (W ≥ 2). bias: ``[C]`` or None.
        initial_state: ``[B, C, W - 1]`` or None (zeros). activation: None or ``"silu"``.
    Returns:
        y ``[B, T, C]`` in x's dtype, final state ``[B, C, W - 1]`` (the last W - 1 inputs) or None.
    """
    _check(x, weight, activation)
    return _CausalConv1dFn.apply(x, weight, bias, initial_state, activation, output_final_state)


@triton.jit
def conv_update_channels(
    x_row, state, w, b, ch, m, i_b, C, W: tl.constexpr, WP: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr
):
    """One streaming step for channels ``ch`` of stream ``i_b``: returns act(conv) in fp32, rolls the state.

    Threads of a program may hold replicated copies of a channel (when the block has fewer elements than
    threads), so the whole window is loaded, then a barrier, then the rolled window is stored: no thread
    can overwrite a value another thread of the program has yet to read. No other program may touch
    ``ch``. ``WP`` = next power of two ≥ W − 1. Shared by the update kernel below and the fused Mamba2 step.
    """
    o_j = tl.arange(0, WP)
    m_j = (o_j < W - 1)[None, :] & m[:, None]
    p_s = state + (i_b * C + ch[:, None]) * (W - 1) + o_j[None, :]
    xv = tl.load(x_row + ch, mask=m, other=0.0)
    win = tl.load(p_s, mask=m_j, other=0.0)
    nxt = tl.load(p_s + 1, mask=m_j & (o_j < W - 2)[None, :], other=0.0)
    nxt = tl.where((o_j == W - 2)[None, :], xv[:, None].to(nxt.dtype), nxt)
    wt = tl.load(w + ch[:, None] * W + o_j[None, :], mask=m_j, other=0.0).to(tl.float32)
    acc = tl.sum(win.to(tl.float32) * wt, axis=1)
    acc += xv.to(tl.float32) * tl.load(w + ch * W + (W - 1), mask=m, other=0.0).to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(b + ch, mask=m, other=0.0).to(tl.float32)
    tl.debug_barrier()
    tl.store(p_s, nxt, mask=m_j)
    if SILU:
        acc = acc * tl.sigmoid(acc)
    return acc


@triton.jit
def _conv_update_kernel(
    x, state, w, b, y, C, W: tl.constexpr, WP: tl.constexpr, BC: tl.constexpr, HAS_BIAS: tl.constexpr, SILU: tl.constexpr
):
    i_c, i_b = tl.program_id(0), tl.program_id(1)
    o_c = i_c * BC + tl.arange(0, BC)
    m_c = o_c < C
    acc = conv_update_channels(x + i_b * C, state, w, b, o_c, m_c, i_b, C, W, WP, HAS_BIAS, SILU)
    tl.store(y + i_b * C + o_c, acc.to(y.dtype.element_ty), mask=m_c)


def triton_causal_conv1d_update(
    x: Tensor, state: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None
) -> Tensor:
    """One streaming step: consume ``x [B, C]``, roll ``state [B, C, W - 1]`` in place, return ``[B, C]``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"causal_conv1d_update: unknown activation={activation!r}; choose one of {ACTIVATIONS}")
    B, C = x.shape
    W = weight.shape[1]
    if state.shape != (B, C, W - 1) or not state.is_contiguous() or W < 2:
        raise ValueError(
            f"causal_conv1d_update: state {tuple(state.shape)} must be contiguous [B={B}, C={C}, W-1={W - 1}], W ≥ 2"
        )
    x = x.contiguous()
    y = torch.empty_like(x)
    BC = max(16, min(next_power_of_2(C), 1024 if triton_interpreted() else 256))
    _conv_update_kernel[(cdiv(C, BC), B)](
        x, state, weight.contiguous(), bias, y, C, W=W, WP=next_power_of_2(W - 1), BC=BC,
        HAS_BIAS=bias is not None, SILU=activation == "silu",
    )
    return y
