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

from kernels.gla.naive import check_gated, decayed_scores, decayed_scores_grad, from_chunks, pad_time, read_out, to_chunks


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


def naive_chunk_delta_rule_bwd(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    g: Tensor,
    a: Tensor,
    b: Tensor,
    do: Tensor,
    dhT: Tensor | None = None,
    scale: float = 1.0,
    initial_state: Tensor | None = None,
    chunk_size: int = 32,
    sub_chunk: int = 16,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The chunked backward written out (no autograd): the algorithm of the Triton chunked backward.

    Per chunk, with entry state ``S``, exit-state gradient ``dS'`` and (as in :func:`naive_chunk_delta_rule`)
    ``ã = a ⊙ e^{G⁻}``, ``q̃ = q ⊙ e^G``, ``b̄ = b ⊙ e^{G_last − G}``, ``k̄ = k ⊙ e^{G_last − G}``,
    ``r = A_ak v + ã S``, ``u = L r``, ``dÕ = scale · do``:

        du = Q_bᵀ dÕ + b̄ dS',   dr = Lᵀ du,   dS = q̃ᵀ dÕ + e^{G_last} ⊙ dS' + ãᵀ dr     (the reverse walk)
        dv = A_akᵀ dr + Q_kᵀ dÕ + k̄ dS'
        dA_ab = dr uᵀ, dA_ak = dr vᵀ (strictly lower);  dQ_b = dÕ uᵀ, dQ_k = dÕ vᵀ (lower)
        dã = dr Sᵀ, dq̃ = dÕ Sᵀ, db̄ = u dS'ᵀ, dk̄ = v dS'ᵀ

    then through the decayed scores (:func:`decayed_scores_grad`) to ``dq``, ``dk``, ``da``, ``db``, and to the
    log-decay: ``dG = q ⊙ dq − b ⊙ db − k ⊙ dk``, ``dG⁻ = a ⊙ da``, ``dG_last = e^{G_last} ⊙ Σ_v S ⊙ dS' + Σ_t
    (b̄ ⊙ db̄ + k̄ ⊙ dk̄)``, and ``dg_s = Σ_{t ≥ s} dG_t + Σ_{t > s} dG⁻_t + dG_last`` inside each chunk.

    Args:
        as :func:`naive_chunk_delta_rule`; do ``[B, T, H, V]``, dhT ``[B, H, K, V]`` or None (zero).
    Returns:
        dq, dk, dv, dg, da, db (fp32, the inputs' shapes) and dh0 ``[B, H, K, V]`` fp32.
    """
    _check(q, k, v, g, a, b, "naive_chunk_delta_rule_bwd")
    B, T, H, K = q.shape
    V = v.shape[-1]
    C = chunk_size
    pad = (-T) % C
    qc, kc, vc, gc, ac, bc, doc = (to_chunks(pad_time(t.float(), pad), C) for t in (q, k, v, g, a, b, do))
    G = gc.cumsum(dim=-2)
    Gx = G - gc
    Gl = G[..., -1:, :]
    A_ab = decayed_scores(ac, Gx, bc, G, strict=True, sub_chunk=sub_chunk)
    A_ak = decayed_scores(ac, Gx, kc, G, strict=True, sub_chunk=sub_chunk)
    Q_b = decayed_scores(qc, G, bc, G, strict=False, sub_chunk=sub_chunk)
    Q_k = decayed_scores(qc, G, kc, G, strict=False, sub_chunk=sub_chunk)
    eye = torch.eye(C, device=q.device, dtype=torch.float32)
    L = torch.linalg.solve_triangular(eye - A_ab, eye.expand_as(A_ab), upper=False, unitriangular=True)
    at, qt = ac * Gx.exp(), qc * G.exp()
    bt, kt = bc * (Gl - G).exp(), kc * (Gl - G).exp()
    dOs = doc * scale
    # forward walk: the state entering each chunk and u
    S = q.new_zeros(B, H, K, V, dtype=torch.float32) if initial_state is None else initial_state.float()
    states, us = [], []
    for n in range(qc.shape[1]):
        u = L[:, n] @ (A_ak[:, n] @ vc[:, n] + at[:, n] @ S)
        states.append(S)
        us.append(u)
        S = S * Gl[:, n].transpose(-1, -2).exp() + bt[:, n].transpose(-1, -2) @ u + kt[:, n].transpose(-1, -2) @ vc[:, n]
    Sn, u = torch.stack(states, 1), torch.stack(us, 1)
    # reverse walk: the gradient of the state leaving each chunk
    dS = q.new_zeros(B, H, K, V, dtype=torch.float32) if dhT is None else dhT.float()
    dstates = []
    for n in reversed(range(qc.shape[1])):
        dstates.append(dS)
        dr = L[:, n].transpose(-1, -2) @ (Q_b[:, n].transpose(-1, -2) @ dOs[:, n] + bt[:, n] @ dS)
        dS = qt[:, n].transpose(-1, -2) @ dOs[:, n] + Gl[:, n].transpose(-1, -2).exp() * dS + at[:, n].transpose(-1, -2) @ dr
    dSp = torch.stack(dstates[::-1], 1)
    du = Q_b.transpose(-1, -2) @ dOs + bt @ dSp
    dr = L.transpose(-1, -2) @ du
    dv = A_ak.transpose(-1, -2) @ dr + Q_k.transpose(-1, -2) @ dOs + kt @ dSp
    ut, vt = u.transpose(-1, -2), vc.transpose(-1, -2)
    dq_b, db_b = decayed_scores_grad((dOs @ ut).tril(), qc, G, bc, G, sub_chunk)
    dq_k, dk_k = decayed_scores_grad((dOs @ vt).tril(), qc, G, kc, G, sub_chunk)
    da_b, db_a = decayed_scores_grad((dr @ ut).tril(-1), ac, Gx, bc, G, sub_chunk)
    da_k, dk_a = decayed_scores_grad((dr @ vt).tril(-1), ac, Gx, kc, G, sub_chunk)
    dbt, dkt = u @ dSp.transpose(-1, -2), vc @ dSp.transpose(-1, -2)
    dq = dq_b + dq_k + (dOs @ Sn.transpose(-1, -2)) * G.exp()
    da = da_b + da_k + (dr @ Sn.transpose(-1, -2)) * Gx.exp()
    db = db_b + db_a + dbt * (Gl - G).exp()
    dk = dk_k + dk_a + dkt * (Gl - G).exp()
    dG = qc * dq - bc * db - kc * dk
    dGx = ac * da
    dGl = Gl.exp() * (Sn * dSp).sum(-1).unsqueeze(-2) + (bt * dbt + kt * dkt).sum(-2, keepdim=True)
    dG[..., -1:, :] += dGl
    dg = (dG + dGx).flip(-2).cumsum(-2).flip(-2) - dGx
    grads = tuple(from_chunks(x, T) for x in (dq, dk, dv, dg, da, db))
    return (*grads, dS)


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
