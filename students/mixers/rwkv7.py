"""RWKV-7-style generalized delta rule mixer initialised from the teacher's attention.

Why RWKV-7 rather than gated DeltaNet: its transition ``diag(w_t) - κ̂_t (κ̂_t ⊙ α_t)^T`` has a
per-channel decay *and* a per-channel in-context learning rate, a superset of gated DeltaNet
(scalar decay, scalar β); RADLADS found delta-rule students align best with their attention
teachers, and fla ships both GPU kernels, so the richer rule costs nothing at decode time.

Map (as RADLADS): teacher Q → receptance r (``q_proj``), K → key (``k_proj``), V → value
(``v_proj``), O → output (``o_proj``), copied 1:1; GQA keys/values repeated across their query
heads. Per query head, with ``k`` and ``v`` the repeated teacher projections:

    κ̂ = normalize(k ⊙ k_k)                    removal key (k_k starts at 1)
    α = sigmoid(a_0 + x A_1 A_2)              in-context learning rate (low rank)
    k' = k ⊙ (1 + (α - 1) ⊙ k_a)               written key (k_a starts at 0: the teacher's key)
    g = -e^{-1/2} sigmoid(w_0 + tanh(x W_1) W_2)   log-decay per channel, in (-0.61, 0)
    S_t = diag(e^{g}) S_{t-1} - (κ̂ ⊙ α) (κ̂^T S_{t-1}) + k' v^T,   y = scale · S_t^T r + (r·(k' ⊙ r_k)) v

* ``w_0`` is set so that, per head, the initial decays span ``[decay_min, decay_max]`` (log-uniform
  time constants, near 1: long memory like full attention); ``a_0`` so that α starts at ``iclr_init``.
  Both low-rank second factors start small: decay and α are nearly input-independent at init.
* ``r_k`` (the bonus for the current token) starts at 0, so it is off at init but trains.
* No RoPE and no token shift: position enters through the decay; q/k are pre-RoPE projections.
* ``scale`` defaults to ``head_dim**-0.5``, the teacher's logit scale.
* Read-out: per-head RMSNorm and a sigmoid output gate that starts almost open (both optional).
  With α = 0, decay 1, bonus, norm and gate off, the mixer is exactly unnormalised causal linear
  attention over the teacher's q/k/v/o (tested).

State: ``{"delta": [B, H, hd, hd] fp32}``, independent of the sequence length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels.delta_rule import chunk_delta_rule, delta_rule_step
from students.mixers.base import parse_options, register_mixer
from students.mixers.gla import decay_spectrum
from students.mixers.qkvo import GatedOutput, QKVOMixer, repeat_kv

DECAY_RANGE = math.exp(-0.5)  # RWKV-7: log-decay = -e^{-1/2} · sigmoid(·)


class LowRank(nn.Module):
    """``bias + up(act(down(x)))``: RWKV-7's low-rank, input-dependent per-channel parameters."""

    def __init__(self, dim_in: int, rank: int, dim_out: int, act: str):
        super().__init__()
        if rank < 1:
            raise ValueError(f"low-rank dimension must be ≥ 1, got {rank}")
        self.down = nn.Linear(dim_in, rank, bias=False)
        self.up = nn.Linear(rank, dim_out, bias=True)
        self.act = torch.tanh if act == "tanh" else (lambda x: x)
        with torch.no_grad():
            self.up.weight.mul_(0.1)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(self.act(self.down(x)))


@dataclass
class RWKV7Options:
    """Options under ``student.mixers.rwkv7`` (see the module docstring for what each does)."""

    chunk_size: int | None = None  # None: the kernel picks (kernels.delta_rule.auto_chunk_size); 16, 32 or 64 to fix it
    scale: float | None = None  # None: head_dim ** -0.5 (the teacher's)
    decay_low_rank_dim: int = 32
    iclr_low_rank_dim: int = 32
    decay_min: float = 0.9
    decay_max: float = 0.999
    iclr_init: float = 0.5
    bonus: bool = True
    norm: bool = True
    output_gate: bool = True
    output_gate_bias: float = 3.0


@register_mixer
class RWKV7Mixer(QKVOMixer):
    kind = "rwkv7"

    def __init__(self, config, layer_idx: int):
        super().__init__()
        o = parse_options(RWKV7Options, config.mixer_options(self.kind), self.kind)
        if not 0 < o.iclr_init < 1:
            raise ValueError(f"student.mixers.rwkv7.iclr_init={o.iclr_init} must lie in (0, 1)")
        if o.decay_min <= math.exp(-DECAY_RANGE):
            raise ValueError(
                f"student.mixers.rwkv7.decay_min={o.decay_min} is below RWKV-7's reachable range; "
                f"choose decay_min > {math.exp(-DECAY_RANGE):.3f}"
            )
        decay_spectrum(2, o.decay_min, o.decay_max)
        for name in ("decay_low_rank_dim", "iclr_low_rank_dim"):
            if getattr(o, name) < 1:
                raise ValueError(f"student.mixers.rwkv7.{name}={getattr(o, name)} must be ≥ 1")
        self.opts = o
        self._init_qkvo(config, layer_idx)
        self.scale = o.scale if o.scale is not None else self.hd**-0.5
        D, HK = config.hidden_size, self.H * self.hd
        self.w_lora = LowRank(D, o.decay_low_rank_dim, HK, "tanh")
        self.a_lora = LowRank(D, o.iclr_low_rank_dim, HK, "identity")
        self.k_k = nn.Parameter(torch.ones(HK))
        self.k_a = nn.Parameter(torch.zeros(HK))
        self.r_k = nn.Parameter(torch.zeros(self.H, self.hd)) if o.bonus else None
        self.out = GatedOutput(D, self.H, self.hd, o.norm, o.output_gate, o.output_gate_bias, config.rms_norm_eps)
        self.reset_rwkv_parameters()

    @torch.no_grad()
    def reset_rwkv_parameters(self) -> None:
        """w_0 from :func:`decay_spectrum`, a_0 = logit(iclr_init), k_k = 1, k_a = 0, r_k = 0."""
        o = self.opts
        d = decay_spectrum(self.hd, o.decay_min, o.decay_max)
        s = -d.log() / DECAY_RANGE  # sigmoid(w_0) = -log(d) / e^{-1/2}
        self.w_lora.up.bias.copy_((s.log() - torch.log1p(-s)).float().repeat(self.H))
        self.a_lora.up.bias.fill_(math.log(o.iclr_init / (1 - o.iclr_init)))
        self.k_k.fill_(1.0)
        self.k_a.zero_()
        if self.r_k is not None:
            self.r_k.zero_()

    def init_state(self, batch_size, device=None, dtype=None) -> dict[str, Tensor]:
        """``delta``: the delta rule's state held as Sᵀ, ``[B, H, V, K]`` fp32 (the decode step's fastest layout,
        :func:`kernels.delta_rule.delta_rule_step`'s ``transposed_state``)."""
        device = device or self.q_proj.weight.device
        return {"delta": torch.zeros(batch_size, self.H, self.hd, self.hd, device=device, dtype=torch.float32)}

    def _inputs(self, x: Tensor) -> tuple[Tensor, ...]:
        """x ``[..., D]`` → r, k', v, g, a, b ``[..., H, hd]`` (the kernel's q, k, v, g, a, b)."""
        heads = (self.H, self.hd)
        r, k, v = self._project(x)
        k, v = repeat_kv(k, self.rep), repeat_kv(v, self.rep)
        g = (-DECAY_RANGE * torch.sigmoid(self.w_lora(x).float())).unflatten(-1, heads)
        alpha = torch.sigmoid(self.a_lora(x)).unflatten(-1, heads)
        kk = F.normalize(k * self.k_k.view(heads), dim=-1)
        k = k * (1 + (alpha - 1) * self.k_a.view(heads))
        return r, k, v, g, -kk, kk * alpha

    def _read_out(self, y: Tensor, x: Tensor, r: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if self.r_k is not None:
            y = y + (r * k * self.r_k).sum(-1, keepdim=True) * v
        return self.o_proj(self.out(y, x))

    def forward(self, x: Tensor, state: dict[str, Tensor] | None = None) -> Tensor:
        """x: [B, T, D] → [B, T, D]; continues from and writes into ``state`` when given."""
        r, k, v, g, a, b = self._inputs(x)
        y, final = chunk_delta_rule(
            r, k, v, g, a, b, scale=self.scale,
            initial_state=None if state is None else state["delta"].transpose(-1, -2).contiguous(),
            output_final_state=state is not None, chunk_size=self.opts.chunk_size, impl=self.impl,
        )
        if state is not None:
            state["delta"].copy_(final.transpose(-1, -2))  # held as Sᵀ (init_state)
        return self._read_out(y, x, r, k, v)

    def step(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        """x: [B, D] → [B, D]; ``state`` updated in place."""
        r, k, v, g, a, b = self._inputs(x)
        # bonus, norm and gate ride in the step kernel (one launch for the whole read-out)
        norm, gate = self.out.norm, self.out.gate
        y = delta_rule_step(
            r, k, v, g, a, b, state["delta"], scale=self.scale, impl=self.impl, bonus=self.r_k,
            norm_weight=None if norm is None else norm.weight, gate=None if gate is None else gate(x),
            eps=1e-5 if norm is None else norm.eps, transposed_state=True,
        )
        return self.o_proj(y.flatten(-2))

    @torch.no_grad()
    def load_attention(self, attn, report, prefix: str) -> None:
        """Copy Q/K/V/O → r/k/v/o; decay, learning rate, key scalings and read-out at the documented init."""
        self._copy_qkvo(attn, report, prefix)
        o = self.opts
        for name, what in (("w_lora", "decay"), ("a_lora", "in-context learning rate")):
            report.initialise(f"{prefix}.{name}.down.weight", f"nn.Linear default ({what})")
            report.initialise(f"{prefix}.{name}.up.weight", f"nn.Linear default × 0.1 ({what})")
        decays = f"decays in [{o.decay_min}, {o.decay_max}] per head (log-uniform time constants)"
        report.initialise(f"{prefix}.w_lora.up.bias", decays)
        report.initialise(f"{prefix}.a_lora.up.bias", f"logit({o.iclr_init})")
        report.initialise(f"{prefix}.k_k", "ones (removal key = normalised teacher key)")
        report.initialise(f"{prefix}.k_a", "zeros (written key = teacher key)")
        if self.r_k is not None:
            report.initialise(f"{prefix}.r_k", "zeros (bonus off at init)")
        self.out.report(report, f"{prefix}.out")
