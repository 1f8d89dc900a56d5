"""Teacher-shaped q/k/v/o projections shared by the mixers that keep the teacher's attention weights.

GLA, RWKV-7 and kept attention layers all own ``q_proj [H·hd, D]``, ``k_proj``/``v_proj
[Hkv·hd, D]`` (with the teacher's biases, if any) and ``o_proj [D, H·hd]``, copied 1:1 from the
teacher layer of the same index. Keys and values stay at KV width in the projections and are
repeated across the query heads of their group, exactly as GQA does.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from students.layers import GatedRMSNorm
from students.mixers.base import Mixer


def repeat_kv(x: Tensor, rep: int) -> Tensor:
    """``[..., Hkv, d]`` → ``[..., Hkv·rep, d]``, each KV head repeated for the ``rep`` query heads of its group."""
    return x if rep == 1 else x.repeat_interleave(rep, dim=-2)


class QKVOMixer(Mixer):
    """A mixer with teacher-shaped q/k/v/o projections and the exact copy map for them."""

    def _init_qkvo(self, config, layer_idx: int) -> None:
        self.layer_idx = layer_idx
        self.impl = config.impl
        D = config.hidden_size
        self.H, self.Hkv, self.hd = config.num_heads, config.num_kv_heads, config.head_dim
        self.rep = self.H // self.Hkv
        self.q_proj = nn.Linear(D, self.H * self.hd, bias=config.attention_bias)
        self.k_proj = nn.Linear(D, self.Hkv * self.hd, bias=config.attention_bias)
        self.v_proj = nn.Linear(D, self.Hkv * self.hd, bias=config.attention_bias)
        self.o_proj = nn.Linear(self.H * self.hd, D, bias=False)

    def _project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x ``[..., D]`` → q ``[..., H, hd]``, k and v ``[..., Hkv, hd]`` (not repeated)."""
        q = self.q_proj(x).unflatten(-1, (self.H, self.hd))
        k = self.k_proj(x).unflatten(-1, (self.Hkv, self.hd))
        v = self.v_proj(x).unflatten(-1, (self.Hkv, self.hd))
        return q, k, v

    def _check_geometry(self, attn) -> None:
        for field, mine, theirs in (
            ("num_heads", self.H, attn.num_heads),
            ("num_kv_heads", self.Hkv, attn.num_kv_heads),
            ("head_dim", self.hd, attn.head_dim),
        ):
            if mine != theirs:
                raise ValueError(
                    f"cannot map attention onto {self.kind} (layer {self.layer_idx}): student.{field}={mine} "
                    f"but the teacher's attention has {theirs}; q/k/v/o are copied 1:1, so they must be equal"
                )
        if attn.o_bias[1] is not None:
            raise ValueError(
                f"cannot map attention onto {self.kind} (layer {self.layer_idx}): o_proj has a bias "
                f"({attn.o_bias[0]}) and the student's o_proj has none"
            )

    @torch.no_grad()
    def _copy_qkvo(self, attn, report, prefix: str) -> None:
        """Copy q/k/v/o (and q/k/v biases) from the teacher; a teacher bias without a student bias raises."""
        self._check_geometry(attn)
        for role in ("q", "k", "v", "o"):
            proj = getattr(self, f"{role}_proj")
            name, tensor = getattr(attn, role)
            if tensor is None:
                raise ValueError(f"init: the teacher's attention (layer {self.layer_idx}) has no {role} projection")
            report.copy(proj.weight, tensor, f"{prefix}.{role}_proj.weight", name)
            if role == "o":
                continue
            bias_name, bias = getattr(attn, f"{role}_bias")
            if (bias is None) != (proj.bias is None):
                raise ValueError(
                    f"cannot map attention onto {self.kind} (layer {self.layer_idx}): teacher {role}_proj bias is "
                    f"{'absent' if bias is None else bias_name} but student.attention_bias={proj.bias is not None}"
                )
            if bias is not None:
                report.copy(proj.bias, bias, f"{prefix}.{role}_proj.bias", bias_name)


class GatedOutput(nn.Module):
    """Read-out of a linear-attention mixer: per-head RMSNorm, sigmoid output gate, then ``o_proj`` (owned by the mixer).

    The gate starts almost open (``sigmoid(gate_bias)``, weights scaled down) so the initialised
    student passes the (normalised) attention read-out through nearly unchanged.
    """

    def __init__(self, hidden_size: int, num_heads: int, head_dim: int, norm: bool, gate: bool, gate_bias: float, eps: float):
        super().__init__()
        self.norm = GatedRMSNorm(num_heads * head_dim, group_size=head_dim, eps=eps) if norm else None
        self.gate = nn.Linear(hidden_size, num_heads * head_dim, bias=True) if gate else None
        self.gate_bias = gate_bias
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if self.gate is not None:
            self.gate.weight.mul_(0.1)
            self.gate.bias.fill_(self.gate_bias)

    def forward(self, y: Tensor, x: Tensor) -> Tensor:
        """y ``[..., H, hd]`` (mixer read-out), x ``[..., D]`` (mixer input) → ``[..., H·hd]``."""
        y = y.flatten(-2)
        if self.norm is not None:
            y = self.norm(y)
        if self.gate is not None:
            y = y * torch.sigmoid(self.gate(x))
        return y

    def report(self, report, prefix: str) -> None:
        if self.norm is not None:
            report.initialise(f"{prefix}.norm.weight", "ones (per-head RMSNorm)")
        if self.gate is not None:
            report.initialise(f"{prefix}.gate.weight", "nn.Linear default × 0.1 (input dependence starts weak)")
            report.initialise(f"{prefix}.gate.bias", f"{self.gate_bias} (gate starts at sigmoid({self.gate_bias}))")
