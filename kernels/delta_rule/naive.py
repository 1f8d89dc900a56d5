"""Plain-PyTorch references for the generalized (diagonal-plus-low-rank) delta rule of RWKV-7.

Per (batch, head), with state ``S: [K, V]``, a vector log-decay ``g`` and two key-side vectors
``a`` and ``b``:

    u_t = S_{t-1}^T a_t                                        [V]
    S_t = diag(exp(g_t)) S_{t-1} + b_t u_t^T + k_t v_t^T      i.e. S_t = (D_t + b_t a_t^T) S_{t-1} + k_t v_t^T
    o_t = scale * S_t^T q_t

RWKV-7 (whose ``[V, K]`` state is our transpose) uses ``a = -κ̂`` and ``b = κ̂ ⊙ α``: κ̂ the
L2-normalised removal key and α the in-context learning rate; ``a = b = 0`` is plain GLA, ``g = 0``
with ``a = -k̂, b = β k̂`` is DeltaNet. The low-rank term reads the *undecayed* state, as in RWKV-7.

Layouts: activations ``[B, T, H, D]``, ``g``/``a``/``b`` ``[B, T, H, K]``, states ``[B, H, K, V]``.
All math runs in fp32; outputs come back in v's dtype; states stay fp32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kernels.gla.naive import check_gated, decayed_scores, from_chunks, pad_time, read_out, to_chunks


def _check(q: Tensor, k: Tensor, v: Tensor, g: Tensor, a: Tensor, b: Tensor, op: str) -> None:
    check_gated(q, k, v, g, op)
    for name, t in (("a", a), ("b", b)):
        if t.shape != q.shape:
            raise ValueError(f"{op}: {name} {tuple(t.shape)} must be [B, T, H, K] like q {tuple(q.shape)}")


def naive_recurrent_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Step-by-step recurrence: the ground truth every other delta-rule path is tested against.

    Args:
        q, k, a, b: ``[B, T, H, K]``. v: ``[B, T, H, V]``. g: ``[B, T, H, K]`` log-decay (≤ 0).
        scale: multiplies q. initial_state: ``[B, H, K, V]`` or None (zeros).
    Returns:
        o ``[B, T, H, V]`` in v's dtype, final state ``[B, H, K, V]`` fp32 (or None).
    """
    _check(q, k, v, g, a, b, "naive_recurrent_delta_rule")
    B, T, H, K = q.shape
    V = v.shape[-1]
    state = q.new_zeros(B, H, K, V, dtype=torch.float32) if initial_state is None else initial_state.float().clone()
    out = []
    for t in range(T):
        u = torch.einsum("bhk,bhkv->bhv", a[:, t].float(), state)
        state = (
            state * g[:, t].float().exp()[..., None]
            + torch.einsum("bhk,bhv->bhkv", b[:, t].float(), u)
            + torch.einsum("bhk,bhv->bhkv", k[:, t].float(), v[:, t].float())
        )
        out.append(torch.einsum("bhk,bhkv->bhv", q[:, t].float() * scale, state))
    o = torch.stack(out, dim=1) if out else v.new_zeros(B, 0, H, V, dtype=torch.float32)
    return o.to(v.dtype), (state if output_final_state else None)


def naive_chunk_delta_rule(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    output_final_state: bool = True,
    chunk_size: int = 32,
    sub_chunk: int = 16,
) -> tuple[Tensor, Tensor | None]:
    """Chunked parallel form (UT transform inside chunks, recurrent across chunks).

    Inside a chunk with inclusive cumulative log-decay ``G`` (exclusive ``G⁻ = G - g``) and start
    state ``S_0``, the pseudo-values ``u_t = S_{t-1}^T a_t`` solve the unit lower-triangular system

        (I - A_ab) U = A_ak V + (a ⊙ exp(G⁻)) S_0,   A_xy[t, i] = Σ_k a_tk y_ik exp(G⁻_tk - G_ik), i < t

    whose inverse ``T = (I - A_ab)^{-1}`` (the UT transform) is formed for all chunks at once; then
    GLA with the two rank-one inputs ``b u^T + k v^T`` gives outputs and the next chunk's state.
    Same arguments and returns as :func:`naive_recurrent_delta_rule`; differentiable with autograd.
    """
    _check(q, k, v, g, a, b, "naive_chunk_delta_rule")
    if chunk_size < 1 or sub_chunk < 1:
        raise ValueError(f"naive_chunk_delta_rule: chunk_size={chunk_size} and sub_chunk={sub_chunk} must be ≥ 1")
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = chunk_size
    pad = (-T) % C
    # Zero k/a/b/v and zero log-decay on padded steps leave the state untouched.
    qc, kc, vc, gc, ac, bc = (to_chunks(pad_time(t.float(), pad), C) for t in (q, k, v, g, a, b))
    qc = qc * scale
    G = gc.cumsum(dim=-2)
    Gx = G - gc
    A_ab = decayed_scores(ac, Gx, bc, G, strict=True, sub_chunk=sub_chunk)
    A_ak = decayed_scores(ac, Gx, kc, G, strict=True, sub_chunk=sub_chunk)
    eye = torch.eye(C, device=q.device, dtype=torch.float32)
    T_inv = torch.linalg.solve_triangular(eye - A_ab, eye.expand_as(A_ab), upper=False, unitriangular=True)
    W = T_inv @ (A_ak @ vc)  # U = W + Ã S_0
    A_tilde = T_inv @ (ac * Gx.exp())
    Q_b = decayed_scores(qc, G, bc, G, strict=False, sub_chunk=sub_chunk)
    Q_k = decayed_scores(qc, G, kc, G, strict=False, sub_chunk=sub_chunk)
    o_k = Q_k @ vc
    G_last = G[..., -1:, :]
    q_in = qc * G.exp()
    b_out = bc * (G_last - G).exp()
    k_out = kc * (G_last - G).exp()
    state = q.new_zeros(B, H, K, V, dtype=torch.float32) if initial_state is None else initial_state.float()
    outs = []
    for n in range(qc.shape[1]):
        u = W[:, n] + A_tilde[:, n] @ state
        outs.append(q_in[:, n] @ state + Q_b[:, n] @ u + o_k[:, n])
        state = (
            state * G_last[:, n].transpose(-1, -2).exp()
            + b_out[:, n].transpose(-1, -2) @ u
            + k_out[:, n].transpose(-1, -2) @ vc[:, n]
        )
    o = torch.stack(outs, dim=1)
    return from_chunks(o, T).to(v.dtype), (state if output_final_state else None)


def naive_delta_rule_step(
    q: Tensor, k: Tensor, v: Tensor, g: Tensor, a: Tensor, b: Tensor, state: Tensor, scale: float = 1.0,
    bonus: Tensor | None = None, norm_weight: Tensor | None = None, gate: Tensor | None = None, eps: float = 1e-5,
) -> Tensor:
    """One decode step; updates ``state`` in place (so it can live in a captured CUDA graph).

    Args:
        q, k, g, a, b: ``[B, H, K]``. v: ``[B, H, V]``. state: ``[B, H, K, V]`` fp32, written in place.
        bonus: ``[H, K]``: RWKV-7's current-token bonus, ``o += (q · (k ⊙ bonus)) v`` (q unscaled), or None.
        norm_weight, gate, eps: the mixer's read-out, as :func:`kernels.gla.naive.naive_gla_step` (after the bonus).
    Returns:
        o ``[B, H, V]`` in v's dtype (fp32 throughout, rounded once).
    """
    u = torch.einsum("bhk,bhkv->bhv", a.float(), state)
    state.mul_(g.float().exp()[..., None])
    state.add_(torch.einsum("bhk,bhv->bhkv", b.float(), u)).add_(torch.einsum("bhk,bhv->bhkv", k.float(), v.float()))
    o = torch.einsum("bhk,bhkv->bhv", q.float() * scale, state)
    if bonus is not None:
        o = o + (q.float() * k.float() * bonus.float()).sum(-1, keepdim=True) * v.float()
    return read_out(o, norm_weight, gate, eps).to(v.dtype)
