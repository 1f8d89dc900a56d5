"""Plain-PyTorch references for the SSD / scalar-decay gated linear attention op.

Mamba2's SSD scan is gated linear attention with one log-decay per head and step:

    S_t = exp(g_t) * S_{t-1} + k_t v_t^T          S: [K, V] per (batch, head)
    o_t = scale * q_t^T S_t

With Mamba2 names: q = C, k = B, v = x * dt, g = dt * A (A < 0). The D skip term is the
mixer's business, not the op's.

Layouts: activations ``[B, T, H, D]``, decay ``[B, T, H]``, states ``[B, H, K, V]``.
All math runs in fp32; outputs come back in the dtype of ``v``; states stay fp32.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check(q: Tensor, k: Tensor, v: Tensor, g: Tensor) -> None:
    if q.shape != k.shape:
        raise ValueError(f"q {tuple(q.shape)} and k {tuple(k.shape)} must have the same shape [B, T, H, K]")
    if v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v {tuple(v.shape)} must be [B, T, H, V] with B, T, H of q {tuple(q.shape)}")
    if g.shape != q.shape[:3]:
        raise ValueError(f"g {tuple(g.shape)} must be [B, T, H] (one log-decay per head and step)")


def naive_recurrent_ssd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Step-by-step recurrence: the ground truth every other SSD path is tested against.

    Args:
        q, k: ``[B, T, H, K]``. v: ``[B, T, H, V]``. g: ``[B, T, H]`` log-decay (≤ 0).
        initial_state: ``[B, H, K, V]`` or None (zeros).
    Returns:
        o ``[B, T, H, V]`` in v's dtype, final state ``[B, H, K, V]`` fp32 (or None).
    """
    _check(q, k, v, g)
    B, T, H, K = q.shape
    V = v.shape[-1]
    state = q.new_zeros(B, H, K, V, dtype=torch.float32) if initial_state is None else initial_state.float().clone()
    out = []
    for t in range(T):
        state = state * g[:, t].float().exp()[..., None, None] + torch.einsum("bhk,bhv->bhkv", k[:, t].float(), v[:, t].float())
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t].float() * scale, state))
    o = torch.stack(out, dim=1) if out else v.new_zeros(B, 0, H, V, dtype=torch.float32)
    return o.to(v.dtype), (state if output_final_state else None)


def naive_chunk_ssd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    chunk_size: int = 64,
) -> tuple[Tensor, Tensor | None]:
    """Chunked parallel form (training and prefill): quadratic inside a chunk, recurrent across chunks.

    Same arguments and returns as :func:`naive_recurrent_ssd`. Differentiable with autograd.
    Decay factors are formed as ``exp(G_i - G_j)`` with ``j ≤ i`` (masked before the exp), so
    no factor exceeds 1 and long chunks stay finite.
    """
    _check(q, k, v, g)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be ≥ 1, got {chunk_size}")
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = chunk_size
    pad = (-T) % C
    qf, kf, vf, gf = q.float() * scale, k.float(), v.float(), g.float()
    if pad:
        # Zero k/v and zero log-decay on padded steps leave the state untouched.
        qf = torch.nn.functional.pad(qf, (0, 0, 0, 0, 0, pad))
        kf = torch.nn.functional.pad(kf, (0, 0, 0, 0, 0, pad))
        vf = torch.nn.functional.pad(vf, (0, 0, 0, 0, 0, pad))
        gf = torch.nn.functional.pad(gf, (0, 0, 0, pad))
    N = (T + pad) // C
    qc = qf.view(B, N, C, H, K)
    kc = kf.view(B, N, C, H, K)
    vc = vf.view(B, N, C, H, V)
    G = gf.view(B, N, C, H).cumsum(dim=2)  # inclusive log-decay from chunk start

    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    diff = G.unsqueeze(3) - G.unsqueeze(2)  # [B, N, Ci, Cj, H] = G_i - G_j
    decay = torch.where(causal[None, None, :, :, None], diff, torch.full_like(diff, float("-inf"))).exp()
    scores = torch.einsum("bnihk,bnjhk->bnijh", qc, kc) * decay
    o_intra = torch.einsum("bnijh,bnjhv->bnihv", scores, vc)

    state = q.new_zeros(B, H, K, V, dtype=torch.float32) if initial_state is None else initial_state.float()
    o_inter = []
    for n in range(N):
        Gn = G[:, n]  # [B, C, H]
        o_inter.append(torch.einsum("bchk,bhkv->bchv", qc[:, n] * Gn.exp()[..., None], state))
        k_decayed = kc[:, n] * (Gn[:, -1:] - Gn).exp()[..., None]
        state = state * Gn[:, -1].exp()[..., None, None] + torch.einsum("bchk,bchv->bhkv", k_decayed, vc[:, n])
    o = o_intra + torch.stack(o_inter, dim=1)
    o = o.reshape(B, N * C, H, V)[:, :T]
    return o.to(v.dtype), (state if output_final_state else None)


def naive_ssd_step(q: Tensor, k: Tensor, v: Tensor, g: Tensor, state: Tensor, scale: float = 1.0) -> Tensor:
    """One decode step; updates ``state`` in place (so it can live in a captured CUDA graph).

    Args:
        q, k: ``[B, H, K]``. v: ``[B, H, V]``. g: ``[B, H]``. state: ``[B, H, K, V]`` fp32, written in place.
    Returns:
        o ``[B, H, V]`` in v's dtype.
    """
    state.mul_(g.float().exp()[..., None, None]).add_(torch.einsum("bhk,bhv->bhkv", k.float(), v.float()))
    return torch.einsum("bhk,bhkv->bhv", q.float() * scale, state).to(v.dtype)
