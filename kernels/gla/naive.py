"""Plain-PyTorch references for gated linear attention (GLA) with a vector decay.

Per (batch, head), with one log-decay per key channel and step:

    S_t = diag(exp(g_t)) S_{t-1} + k_t v_t^T          S: [K, V]
    o_t = scale * S_t^T q_t

Layouts: activations ``[B, T, H, D]``, log-decay ``g`` ``[B, T, H, K]`` (≤ 0), states ``[B, H, K, V]``.
All math runs in fp32; outputs come back in the dtype of ``v``; states stay fp32.

:func:`decayed_scores` (the intra-chunk scores with per-channel decay) is shared with
``kernels.delta_rule``, and so is its gradient :func:`decayed_scores_grad`; neither ever exponentiates
a positive number, so long chunks and strong
decays stay finite.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def check_gated(q: Tensor, k: Tensor, v: Tensor, g: Tensor, op: str) -> None:
    """Shape checks shared by the vector-decay ops; errors name the argument and the expected layout."""
    if q.shape != k.shape:
        raise ValueError(f"{op}: q {tuple(q.shape)} and k {tuple(k.shape)} must have the same shape [B, T, H, K]")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"{op}: v {tuple(v.shape)} must be [B, T, H, V] with B, T, H of q {tuple(q.shape)}")
    if g.shape != q.shape:
        raise ValueError(f"{op}: g {tuple(g.shape)} must be [B, T, H, K] like q (one log-decay per key channel and step)")


def pad_time(x: Tensor, pad: int) -> Tensor:
    """Zero-pad dim 1 (time) of a ``[B, T, ...]`` tensor by ``pad`` steps."""
    return F.pad(x, (0, 0) * (x.dim() - 2) + (0, pad)) if pad else x


def naive_chunk_local_cumsum(g: Tensor, chunk_size: int) -> Tensor:
    """In-chunk inclusive cumulative log-decay ``G [B, NT·BT, H, K]`` fp32 of ``g [B, T, H, K]``, time padded to
    whole chunks of ``chunk_size`` with a zero log-decay (``G`` flat over the padding, so that every padded step
    leaves a state as it was). The reference of :mod:`kernels.gla.triton_cumsum`."""
    B, T, H, K = g.shape
    NT = -(-T // chunk_size)
    G = pad_time(g.float(), NT * chunk_size - T).reshape(B, NT, chunk_size, H, K).cumsum(2)
    return G.view(B, NT * chunk_size, H, K)


def to_chunks(x: Tensor, chunk_size: int) -> Tensor:
    """``[B, T, H, D]`` (T a multiple of chunk_size) → ``[B, N, H, C, D]``."""
    B, T, H, D = x.shape
    return x.view(B, T // chunk_size, chunk_size, H, D).transpose(2, 3)


def from_chunks(x: Tensor, T: int) -> Tensor:
    """``[B, N, H, C, D]`` → ``[B, T, H, D]`` (padding beyond T dropped)."""
    B, N, H, C, D = x.shape
    return x.transpose(2, 3).reshape(B, N * C, H, D)[:, :T]


def decayed_scores(x: Tensor, gx: Tensor, y: Tensor, gy: Tensor, strict: bool, sub_chunk: int = 16) -> Tensor:
    """Intra-chunk scores with per-channel decay, computed without exponentiating positive numbers.

    ``A[..., i, j] = Σ_k x[i, k] y[j, k] exp(gx[i, k] - gy[j, k])`` for ``j ≤ i`` (``j < i`` when
    ``strict``), zero above. Inside a ``sub_chunk`` block the pairwise differences are masked to
    ``-inf`` before the exp; across blocks both factors are referred to ``gy`` at the last row of the
    previous block, which needs ``gy`` non-increasing along the chunk and ``gx[i] ≤ gy[r]`` for
    ``i > r`` (true for inclusive and exclusive cumulative log-decays), so every factor is ≤ 1.

    Args:
        x, gx, y, gy: ``[B, N, H, C, K]`` fp32 (N chunks of C steps).
    Returns:
        ``[B, N, H, C, C]`` fp32.
    """
    C = x.shape[-2]
    out = x.new_zeros(*x.shape[:-1], C)
    tri = torch.ones(sub_chunk, sub_chunk, dtype=torch.bool, device=x.device).tril(-1 if strict else 0)
    for start in range(0, C, sub_chunk):
        r = slice(start, min(start + sub_chunk, C))
        c = r.stop - r.start
        diff = gx[..., r, None, :] - gy[..., None, r, :]  # [..., c, c, K]
        diff = torch.where(tri[:c, :c, None], diff, torch.full_like(diff, float("-inf")))
        out[..., r, r] = torch.einsum("...ik,...jk,...ijk->...ij", x[..., r, :], y[..., r, :], diff.exp())
        if start:
            ref = gy[..., start - 1 : start, :]
            xs = x[..., r, :] * (gx[..., r, :] - ref).exp()
            ys = y[..., :start, :] * (ref - gy[..., :start, :]).exp()
            out[..., r, :start] = xs @ ys.transpose(-1, -2)
    return out


def decayed_scores_grad(
    dA: Tensor, x: Tensor, gx: Tensor, y: Tensor, gy: Tensor, sub_chunk: int = 16
) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`decayed_scores` w.r.t. ``x`` and ``y`` given ``dA`` (already masked like ``A``).

    ``dx[i, k] = Σ_j dA[i, j] y[j, k] exp(gx[i, k] - gy[j, k])`` and ``dy[j, k] = Σ_i dA[i, j] x[i, k]
    exp(gx[i, k] - gy[j, k])``, with the same blocking (and so the same bounds on every exp) as the forward.
    The log-decays' gradients follow from these: ``dgx = x ⊙ dx`` and ``dgy = −y ⊙ dy``.

    Args:
        dA: ``[B, N, H, C, C]`` fp32, zero where ``A`` is. x, gx, y, gy: ``[B, N, H, C, K]`` fp32.
    Returns:
        dx, dy ``[B, N, H, C, K]`` fp32.
    """
    C = x.shape[-2]
    dx, dy = torch.zeros_like(x), torch.zeros_like(y)
    for start in range(0, C, sub_chunk):
        r = slice(start, min(start + sub_chunk, C))
        c = r.stop - r.start
        diff = gx[..., r, None, :] - gy[..., None, r, :]
        # dA is zero above the diagonal; the mask keeps those exps (of positive numbers) from overflowing to inf · 0
        e = torch.where(torch.ones(c, c, dtype=torch.bool, device=x.device).tril()[..., None], diff, float("-inf")).exp()
        dx[..., r, :] += torch.einsum("...ij,...jk,...ijk->...ik", dA[..., r, r], y[..., r, :], e)
        dy[..., r, :] += torch.einsum("...ij,...ik,...ijk->...jk", dA[..., r, r], x[..., r, :], e)
        if start:
            ref = gy[..., start - 1 : start, :]
            ex, ey = (gx[..., r, :] - ref).exp(), (ref - gy[..., :start, :]).exp()
            dx[..., r, :] += (dA[..., r, :start] @ (y[..., :start, :] * ey)) * ex
            dy[..., :start, :] += (dA[..., r, :start].transpose(-1, -2) @ (x[..., r, :] * ex)) * ey
    return dx, dy


def naive_recurrent_gla(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Step-by-step recurrence: the ground truth every other GLA path is tested against.

    Args:
        q, k: ``[B, T, H, K]``. v: ``[B, T, H, V]``. g: ``[B, T, H, K]`` log-decay (≤ 0).
        scale: multiplies q. initial_state: ``[B, H, K, V]`` or None (zeros).
    Returns:
        o ``[B, T, H, V]`` in v's dtype, final state ``[B, H, K, V]`` fp32 (or None).
    """
    check_gated(q, k, v, g, "naive_recurrent_gla")
    B, T, H, K = q.shape
    V = v.shape[-1]
    state = q.new_zeros(B, H, K, V, dtype=torch.float32) if initial_state is None else initial_state.float().clone()
    out = []
    for t in range(T):
        state = state * g[:, t].float().exp()[..., None] + torch.einsum("bhk,bhv->bhkv", k[:, t].float(), v[:, t].float())
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t].float() * scale, state))
    o = torch.stack(out, dim=1) if out else v.new_zeros(B, 0, H, V, dtype=torch.float32)
    return o.to(v.dtype), (state if output_final_state else None)


def naive_chunk_gla(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    chunk_size: int = 64,
    sub_chunk: int = 16,
) -> tuple[Tensor, Tensor | None]:
    """Chunked parallel form (training and prefill): quadratic inside a chunk, recurrent across chunks.

    Same arguments and returns as :func:`naive_recurrent_gla`, plus ``chunk_size`` and the
    ``sub_chunk`` of :func:`decayed_scores` (memory ~ ``B·T·H·K·sub_chunk`` floats). Differentiable.
    """
    check_gated(q, k, v, g, "naive_chunk_gla")
    if chunk_size < 1 or sub_chunk < 1:
        raise ValueError(f"naive_chunk_gla: chunk_size={chunk_size} and sub_chunk={sub_chunk} must be ≥ 1")
    B, T, H, K = q.shape
    V = v.shape[-1]
    pad = (-T) % chunk_size
    # Zero k/v and zero log-decay on padded steps leave the state untouched.
    qc, kc, vc, gc = (to_chunks(pad_time(t.float(), pad), chunk_size) for t in (q, k, v, g))
    qc = qc * scale
    G = gc.cumsum(dim=-2)  # inclusive log-decay from the chunk start, [B, N, H, C, K]
    o = decayed_scores(qc, G, kc, G, strict=False, sub_chunk=sub_chunk) @ vc
    G_last = G[..., -1:, :]
    q_in = qc * G.exp()
    k_out = kc * (G_last - G).exp()
    state = q.new_zeros(B, H, K, V, dtype=torch.float32) if initial_state is None else initial_state.float()
    inter = []
    for n in range(qc.shape[1]):
        inter.append(q_in[:, n] @ state)
        state = state * G_last[:, n].transpose(-1, -2).exp() + k_out[:, n].transpose(-1, -2) @ vc[:, n]
    o = o + torch.stack(inter, dim=1)
    return from_chunks(o, T).to(v.dtype), (state if output_final_state else None)


def naive_gla_step(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, state: Tensor, scale: float = 1.0,
    norm_weight: Tensor | None = None, gate: Tensor | None = None, eps: float = 1e-5,
) -> Tensor:
    """One decode step; updates ``state`` in place (so it can live in a captured CUDA graph).

    Args:
        q, k, g: ``[B, H, K]``. v: ``[B, H, V]``. state: ``[B, H, K, V]`` fp32, written in place.
        norm_weight: ``[H·V]``: the read-out's per-head RMSNorm over V (eps ``eps``), or None.
        gate: ``[B, H·V]`` gate pre-activation: the read-out is multiplied by ``sigmoid(gate)``, or None.
    Returns:
        o ``[B, H, V]`` in v's dtype (after the norm and gate when given; computed in fp32 throughout).
    """
    state.mul_(g.float().exp()[..., None]).add_(torch.einsum("bhk,bhv->bhkv", k.float(), v.float()))
    o = torch.einsum("bhk,bhkv->bhv", q.float() * scale, state)
    return read_out(o, norm_weight, gate, eps).to(v.dtype)


def read_out(o: Tensor, norm_weight: Tensor | None, gate: Tensor | None, eps: float) -> Tensor:
    """A linear-attention mixer's read-out on fp32 ``o [B, H, V]``: per-head RMSNorm × weight, then × sigmoid(gate)."""
    B, H, V = o.shape
    if norm_weight is not None:
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + eps) * norm_weight.float().view(H, V)
    if gate is not None:
        o = o * torch.sigmoid(gate.float().view(B, H, V))
    return o
