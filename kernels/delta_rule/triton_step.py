"""Triton decode step of the generalized delta rule, state updated in place.

``u = Sᵀ a``, ``S ← diag(exp(g)) S + b uᵀ + k vᵀ``, ``o = scale · Sᵀ q`` — the contract of
:func:`kernels.delta_rule.naive.naive_delta_rule_step`. One launch, one program per (V block, batch·head).
``u`` reduces over K, so each program holds the whole ``[K, BV]`` column block of the fp32 state: it
reads its slice once and writes it once, and the step moves ≈ 2 · B·H·K·V·4 bytes (plus ≈ 5·K + V
input elements per head, negligible) — the floor it is judged against, the same as the GLA step's.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._dispatch import step_launch

__all__ = ["triton_delta_rule_step"]


@triton.jit
def _delta_rule_step_kernel(q, k, v, g, a, b, s, o, scale, K: tl.constexpr, V: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m = m_k[:, None] & m_v[None, :]
    p_s = s + i_bh * K * V + o_k[:, None] * V + o_v[None, :]
    b_s = tl.load(p_s, mask=m, other=0.0)
    b_q = tl.load(q + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_k = tl.load(k + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_g = tl.load(g + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_a = tl.load(a + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_b = tl.load(b + i_bh * K + o_k, mask=m_k, other=0.0).to(tl.float32)
    b_v = tl.load(v + i_bh * V + o_v, mask=m_v, other=0.0).to(tl.float32)
    # u reads the *undecayed* state (RWKV-7); masked rows load a = 0 and contribute nothing
    b_u = tl.sum(b_a[:, None] * b_s, axis=0)
    b_s = b_s * tl.exp(b_g)[:, None] + b_b[:, None] * b_u[None, :] + b_k[:, None] * b_v[None, :]
    # replicated threads (small tiles) must all have read the old state before any writes the new one
    tl.debug_barrier()
    tl.store(p_s, b_s, mask=m)
    b_o = tl.sum(b_s * (b_q * scale)[:, None], axis=0)
    tl.store(o + i_bh * V + o_v, b_o.to(o.dtype.element_ty), mask=m_v)


def triton_delta_rule_step(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, a: Tensor, b: Tensor, state: Tensor, scale: float = 1.0
) -> Tensor:
    """One decode step for a batch of streams.

    Args:
        q, k, g, a, b: ``[B, H, K]`` (g: log-decay per key channel, ≤ 0). v: ``[B, H, V]``.
        state: ``[B, H, K, V]`` fp32, contiguous, written in place.
    Returns:
        o ``[B, H, V]`` in v's dtype.
    """
    B, H, K = q.shape
    V = v.shape[-1]
    for name, t in (("k", k), ("g", g), ("a", a), ("b", b)):
        if t.shape != q.shape:
            raise ValueError(f"delta_rule_step: {name} {tuple(t.shape)} must be [B, H, K] like q {tuple(q.shape)}")
    if v.shape[:2] != (B, H):
        raise ValueError(f"delta_rule_step: v {tuple(v.shape)} must be [B, H, V] with q's B, H {(B, H)}")
    if state.shape != (B, H, K, V) or state.dtype != torch.float32 or not state.is_contiguous():
        raise ValueError(f"delta_rule_step: state {tuple(state.shape)} {state.dtype} must be contiguous fp32 [B, H, K, V]")
    q, k, v, g, a, b = (t.contiguous() for t in (q, k, v, g, a, b))
    o = torch.empty(B, H, V, device=v.device, dtype=v.dtype)
    BK, BV, warps = step_launch(B * H, K, V)
    _delta_rule_step_kernel[(triton.cdiv(V, BV), B * H)](
        q, k, v, g, a, b, state, o, float(scale), K=K, V=V, BK=BK, BV=BV, num_warps=warps
    )
    return o
