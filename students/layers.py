"""Teacher-shaped building blocks: RMSNorm, gated RMSNorm, gated MLP."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS = {"silu": F.silu, "gelu": F.gelu, "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown hidden_act={name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32, as Llama does: ``x / rms(x) * weight``."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return (xf * self.weight.float()).to(x.dtype)


class GatedRMSNorm(RMSNorm):
    """Mamba2's output norm: ``RMSNorm(y * silu(z))`` per group of ``group_size`` channels."""

    def __init__(self, dim: int, group_size: int, eps: float = 1e-5):
        super().__init__(dim, eps)
        if dim % group_size:
            raise ValueError(f"GatedRMSNorm: dim={dim} is not a multiple of group_size={group_size}")
        self.group_size = group_size

    def forward(self, y: Tensor, z: Tensor | None = None) -> Tensor:
        yf = y.float()
        if z is not None:
            yf = yf * F.silu(z.float())
        g = yf.unflatten(-1, (-1, self.group_size))
        g = g * torch.rsqrt(g.pow(2).mean(-1, keepdim=True) + self.eps)
        return (g.flatten(-2) * self.weight.float()).to(y.dtype)


class GatedMLP(nn.Module):
    """Llama's MLP: ``down(act(gate(x)) * up(x))``."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str = "silu", bias: bool = False):
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=bias)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=bias)
        self.act = activation(hidden_act)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(self.act(self.gate_proj(x)) * self.up_proj(x))
