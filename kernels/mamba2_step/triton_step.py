"""Fused Mamba2 decode step in one Triton launch: conv update + dt softplus + SSD state update +
C·state + D skip + (gated) RMSNorm, for a batch of streams.

Same contract as :func:`kernels.mamba2_step.naive.naive_mamba2_step`. One program per (stream, KV group):
it owns the conv channels of its group's x and B and of the C of its ``H / Hkv`` query heads, so the
in-place conv-state roll has no cross-program hazard, and it walks those query heads, each holding its
``[N, P]`` fp32 state tile in registers (read once, written once). Intermediate values are rounded to the
activation dtype where the reference stores them (conv output, v, y), so bf16 follows the same logic.

Bytes per step ≈ B · (2 · H·N·P·4 [ssm state] + 2 · conv_dim·(W−1)·s [conv state] + |zxbcdt|·s + H·P·s),
s = bytes per activation element; that is the floor the benchmark divides by.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import next_power_of_2
from kernels.causal_conv1d.triton_conv import conv_update_channels

__all__ = ["triton_mamba2_step"]


@triton.jit
def _conv_channels(
    xbc_row, cs, cw, cb, ch, m, i_b, CONV_DIM, W: tl.constexpr, WP: tl.constexpr, HAS_CONV: tl.constexpr, HAS_CB: tl.constexpr
):
    """Conv-updated, SiLU'd values of channels ``ch`` rounded to the activation dtype (the reference stores
    them), or the raw inputs when the mixer has no conv; fp32."""
    if HAS_CONV:
        acc = conv_update_channels(xbc_row, cs, cw, cb, ch, m, i_b, CONV_DIM, W, WP, HAS_CB, True)
        return acc.to(xbc_row.dtype.element_ty).to(tl.float32)
    return tl.load(xbc_row + ch, mask=m, other=0.0).to(tl.float32)


@triton.jit
def _mamba2_step_kernel(
    zxbcdt, ssm, cs, cw, cb, dt_bias, A_log, Dp, nw, y, scale, eps, row_stride,
    H: tl.constexpr, HKV: tl.constexpr, P: tl.constexpr, N: tl.constexpr, W: tl.constexpr, WP: tl.constexpr,
    BP: tl.constexpr, BN: tl.constexpr,
    HAS_CONV: tl.constexpr, HAS_CB: tl.constexpr, HAS_D: tl.constexpr, HAS_NORM: tl.constexpr, GATE: tl.constexpr,
):
    i_b, i_g = tl.program_id(0), tl.program_id(1)
    REP: tl.constexpr = H // HKV
    CONV_DIM: tl.constexpr = HKV * P + HKV * N + H * N
    row = zxbcdt + i_b * row_stride
    xbc_row = row + H * P
    o_p, o_n = tl.arange(0, BP), tl.arange(0, BN)
    m_p, m_n = o_p < P, o_n < N
    x = _conv_channels(xbc_row, cs, cw, cb, i_g * P + o_p, m_p, i_b, CONV_DIM, W, WP, HAS_CONV, HAS_CB)
    k = _conv_channels(xbc_row, cs, cw, cb, HKV * P + i_g * N + o_n, m_n, i_b, CONV_DIM, W, WP, HAS_CONV, HAS_CB)
    for r in range(REP):
        i_h = i_g * REP + r
        q = _conv_channels(xbc_row, cs, cw, cb, HKV * P + HKV * N + i_h * N + o_n, m_n, i_b, CONV_DIM, W, WP, HAS_CONV, HAS_CB)
        dt = tl.load(row + H * P + CONV_DIM + i_h).to(tl.float32) + tl.load(dt_bias + i_h).to(tl.float32)
        # softplus with torch's threshold (x > 20 → x); log1p(u) by Kahan's trick, exact for small u
        u = tl.exp(tl.minimum(dt, 20.0))
        w = 1.0 + u
        sp = tl.where(w == 1.0, u, tl.log(w) * (u / (w - 1.0)))
        dt = tl.where(dt > 20.0, dt, sp)
        g = -dt * tl.exp(tl.load(A_log + i_h).to(tl.float32))
        v = (x * dt).to(zxbcdt.dtype.element_ty).to(tl.float32)
        p_s = ssm + ((i_b * H + i_h) * N + o_n[:, None]) * P + o_p[None, :]
        m_s = m_n[:, None] & m_p[None, :]
        s = tl.load(p_s, mask=m_s, other=0.0)
        s = s * tl.exp(g) + k[:, None] * v[None, :]
        # replicated threads must all have read the old state before any writes the new one
        tl.debug_barrier()
        tl.store(p_s, s, mask=m_s)
        out = tl.sum(s * (q * scale)[:, None], axis=0).to(zxbcdt.dtype.element_ty).to(tl.float32)
        if HAS_D:
            out = (out + x * tl.load(Dp + i_h).to(tl.float32)).to(zxbcdt.dtype.element_ty).to(tl.float32)
        if GATE:
            z = tl.load(row + i_h * P + o_p, mask=m_p, other=0.0).to(tl.float32)
            out = out * (z * tl.sigmoid(z))
        if HAS_NORM:
            out = tl.where(m_p, out, 0.0)
            rstd = 1.0 / tl.sqrt(tl.sum(out * out, axis=0) / P + eps)
            out = out * rstd * tl.load(nw + i_h * P + o_p, mask=m_p, other=0.0).to(tl.float32)
        tl.store(y + i_b * H * P + i_h * P + o_p, out.to(y.dtype.element_ty), mask=m_p)


def triton_mamba2_step(
    zxbcdt: Tensor,
    ssm_state: Tensor,
    conv_state: Tensor | None,
    conv_weight: Tensor | None,
    conv_bias: Tensor | None,
    dt_bias: Tensor,
    A_log: Tensor,
    D: Tensor | None,
    norm_weight: Tensor | None,
    *,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    d_state: int,
    scale: float = 1.0,
    gate: bool = True,
    norm_eps: float = 1e-5,
    num_warps: int | None = None,
) -> Tensor:
    """Fused decode step; arguments and returns as :func:`kernels.mamba2_step.naive.naive_mamba2_step`.
    ``num_warps`` overrides the launch's warps (8 for a state tile of ≥ 8K elements, else 4): at P = N = 128, 16
    warps take 64 registers per thread against 8 warps' 97 (ptxas), offered to the benchmark, not timed yet."""
    H, Hkv, P, N = num_heads, num_kv_heads, head_dim, d_state
    conv_dim = Hkv * P + Hkv * N + H * N
    B = zxbcdt.shape[0]
    if H % Hkv or zxbcdt.shape[-1] != H * P + conv_dim + H or zxbcdt.stride(-1) != 1:
        raise ValueError(f"mamba2_step: zxbcdt {tuple(zxbcdt.shape)} does not match H={H}, Hkv={Hkv}, P={P}, N={N}")
    if ssm_state.shape != (B, H, N, P) or ssm_state.dtype != torch.float32 or not ssm_state.is_contiguous():
        raise ValueError(f"mamba2_step: ssm_state {tuple(ssm_state.shape)} must be contiguous fp32 [B, H, N, P]")
    W = 2
    if conv_state is not None:
        W = conv_weight.shape[1]
        if conv_state.shape != (B, conv_dim, W - 1) or not conv_state.is_contiguous() or W < 2:
            raise ValueError(f"mamba2_step: conv_state {tuple(conv_state.shape)} must be contiguous [B, {conv_dim}, W - 1]")
        conv_weight = conv_weight.contiguous()
    y = torch.empty(B, H * P, device=zxbcdt.device, dtype=zxbcdt.dtype)
    BP, BN = next_power_of_2(P), next_power_of_2(N)
    _mamba2_step_kernel[(B, Hkv)](
        zxbcdt, ssm_state, conv_state, conv_weight, conv_bias, dt_bias, A_log, D, norm_weight, y,
        float(scale), float(norm_eps), zxbcdt.stride(0),
        H=H, HKV=Hkv, P=P, N=N, W=W, WP=next_power_of_2(W - 1), BP=BP, BN=BN,
        HAS_CONV=conv_state is not None, HAS_CB=conv_bias is not None, HAS_D=D is not None,
        HAS_NORM=norm_weight is not None, GATE=gate, num_warps=num_warps or (8 if BP * BN >= 8192 else 4),
    )
    return y
