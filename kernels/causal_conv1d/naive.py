"""Plain-PyTorch references for the causal depthwise conv1d used in front of Mamba2's scan.

Layouts: ``x [B, T, C]`` (channels last, like every activation in distill), ``weight [C, W]``,
``bias [C]``, rolling state ``[B, C, W - 1]`` holding the last ``W - 1`` inputs, oldest first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

ACTIVATIONS = (None, "silu")


def _act(y: Tensor, activation: str | None) -> Tensor:
    if activation not in ACTIVATIONS:
        raise ValueError(f"causal_conv1d: unknown activation={activation!r}; choose one of {ACTIVATIONS}")
    return F.silu(y) if activation == "silu" else y


def naive_causal_conv1d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    initial_state: Tensor | None = None,
    activation: str | None = None,
    output_final_state: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Causal depthwise convolution over time.

    Args:
        x: ``[B, T, C]``. weight: ``[C, W]``. bias: ``[C]`` or None.
        initial_state: ``[B, C, W - 1]`` previous inputs (zeros when None).
        activation: None or ``"silu"``.
    Returns:
        y ``[B, T, C]`` in x's dtype, final state ``[B, C, W - 1]`` (the last W - 1 inputs).
    """
    B, T, C = x.shape
    if weight.shape[0] != C:
        raise ValueError(f"weight {tuple(weight.shape)} must be [C={C}, W]")
    W = weight.shape[1]
    xt = x.transpose(1, 2).float()  # [B, C, T]
    prev = xt.new_zeros(B, C, W - 1) if initial_state is None else initial_state.float()
    full = torch.cat([prev, xt], dim=-1)  # [B, C, W - 1 + T]
    y = F.conv1d(full, weight.float().unsqueeze(1), None if bias is None else bias.float(), groups=C)
    y = _act(y, activation).transpose(1, 2).to(x.dtype)
    final = full[..., full.shape[-1] - (W - 1) :].to(x.dtype if initial_state is None else initial_state.dtype)
    return y, (final if output_final_state else None)


def naive_causal_conv1d_update(
    x: Tensor, state: Tensor, weight: Tensor, bias: Tensor | None = None, activation: str | None = None
) -> Tensor:
    """One streaming step: consume ``x [B, C]``, roll ``state [B, C, W - 1]`` in place, return ``[B, C]``."""
    window = torch.cat([state.float(), x.float().unsqueeze(-1)], dim=-1)  # [B, C, W]
    y = (window * weight.float()).sum(-1)
    if bias is not None:
        y = y + bias.float()
    state.copy_(window[..., 1:])
    return _act(y, activation).to(x.dtype)
