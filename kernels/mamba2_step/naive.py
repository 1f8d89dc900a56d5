"""Plain-PyTorch reference for one Mamba2 decode step after ``in_proj`` and before ``out_proj``.

It is :meth:`students.mixers.mamba2.Mamba2Mixer.step` written out with the op references, so the fused
kernel can be tested against exactly what the naive student computes:

    z | xBC | dt = zxbcdt                               (in_proj rows [z, x, B, C, dt])
    xBC ← silu(causal_conv1d_update(xBC, conv_state))  (when a conv is present)
    x, B, C → heads (x and B repeated over the query heads of their KV group)
    dt ← softplus(dt + dt_bias);  g = dt · (−exp(A_log));  v = x · dt
    y = ssd_step(q=C, k=B, v, g, ssm_state) + D · x
    y ← RMSNorm_P(y · silu(z)) · norm_weight            (or y · silu(z), or y, as configured)

Layouts: ``zxbcdt [B, H·P + Hkv·P + Hkv·N + H·N + H]``, ``ssm_state [B, H, N, P]`` fp32,
``conv_state [B, Hkv·P + Hkv·N + H·N, W − 1]``. Returns ``y [B, H·P]`` in zxbcdt's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kernels.causal_conv1d.naive import naive_causal_conv1d_update
from kernels.ssd.naive import naive_ssd_step


def naive_mamba2_step(
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
) -> Tensor:
    """One token for a batch of streams; ``ssm_state`` and ``conv_state`` are updated in place.

    Args:
        zxbcdt: ``[B, H·P + Hkv·P + Hkv·N + H·N + H]`` output of in_proj.
        ssm_state: ``[B, H, N, P]`` fp32. conv_state: ``[B, conv_dim, W − 1]`` or None (no conv).
        conv_weight ``[conv_dim, W]``, conv_bias ``[conv_dim]``; dt_bias, A_log, D: ``[H]`` (D may be None);
        norm_weight: ``[H·P]`` or None (no norm). gate: multiply by silu(z).
    Returns:
        y ``[B, H·P]`` in zxbcdt's dtype (input of out_proj).
    """
    H, Hkv, P, N = num_heads, num_kv_heads, head_dim, d_state
    conv_dim = Hkv * P + Hkv * N + H * N
    z, xbc, dt = zxbcdt.split([H * P, conv_dim, H], dim=-1)
    if conv_state is not None:
        xbc = naive_causal_conv1d_update(xbc, conv_state, conv_weight, conv_bias, "silu")
    x, Bm, Cm = xbc.split([Hkv * P, Hkv * N, H * N], dim=-1)
    rep = H // Hkv
    x = x.unflatten(-1, (Hkv, P)).repeat_interleave(rep, dim=-2)
    k = Bm.unflatten(-1, (Hkv, N)).repeat_interleave(rep, dim=-2)
    q = Cm.unflatten(-1, (H, N))
    dt = F.softplus(dt.float() + dt_bias.float())
    A = -torch.exp(A_log.float())
    v = (x.float() * dt[..., None]).to(x.dtype)
    y = naive_ssd_step(q, k, v, dt * A, ssm_state, scale)
    if D is not None:
        y = y + x * D.to(y.dtype)[:, None]
    y = y.flatten(-2)
    if norm_weight is not None:
        yf = y.float()
        if gate:
            yf = yf * F.silu(z.float())
        grp = yf.unflatten(-1, (-1, P))
        grp = grp * torch.rsqrt(grp.pow(2).mean(-1, keepdim=True) + norm_eps)
        return (grp.flatten(-2) * norm_weight.float()).to(y.dtype)
    if gate:
        y = y * F.silu(z)
    return y
