"""Gated linear attention (GLA) mixer initialised from the teacher's attention.

Map: the teacher's q/k/v/o projections are copied 1:1 (``q_proj``, ``k_proj``, ``v_proj``,
``o_proj``; GQA keys/values repeated across their query heads). The softmax becomes a causal linear
attention with a per-channel, input-dependent decay:

    S_t = diag(exp(g_t)) S_{t-1} + φ(k_t) v_t^T,   y_t = scale · S_t^T φ(q_t),   g_t = logsigmoid(W_g x_t + b_g) / γ

* No RoPE: position enters through the decay (as in Mamba-in-the-Llama); q/k are the teacher's
  pre-RoPE projections.
* ``scale`` defaults to ``head_dim**-0.5``, the teacher's logit scale.
* Decay gate: low rank (``D → r → H·hd``); the bias is set so that, per head, the initial decays
  ``exp(g)`` span ``[decay_min, decay_max]`` (time constants ``1/(1-decay)`` spaced log-uniformly
  over the key channels), i.e. start near 1: long memory, close to full attention. The second
  low-rank factor starts small, so the decay is nearly input-independent at init but trains.
* ``feature_map``: ``identity`` (GLA's choice), ``relu`` or ``elu_p1`` (1 + ELU, positive like softmax weights).
* Read-out: per-head RMSNorm (stands in for the softmax normaliser) and a sigmoid output gate that
  starts almost open; both optional. With identity features, norm and gate off and the decay
  forced to 1, the mixer is exactly unnormalised causal linear attention over the teacher's q/k/v/o
  (tested).

State: ``{"gla": [B, H, hd, hd] fp32}``, independent of the sequence length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels.gla import chunk_gla, gla_step
from students.mixers.base import parse_options, register_mixer
from students.mixers.qkvo import GatedOutput, QKVOMixer, repeat_kv

FEATURE_MAPS = {"identity": lambda x: x, "relu": F.relu, "elu_p1": lambda x: 1 + F.elu(x)}


def decay_spectrum(n: int, decay_min: float, decay_max: float) -> Tensor:
    """``n`` decays in ``[decay_min, decay_max]`` whose time constants ``1/(1-d)`` are log-uniformly spaced."""
    if not 0 < decay_min <= decay_max < 1:
        raise ValueError(f"decay_min={decay_min} and decay_max={decay_max} must satisfy 0 < decay_min ≤ decay_max < 1")
    tau = torch.logspace(math.log10(1 / (1 - decay_min)), math.log10(1 / (1 - decay_max)), n, dtype=torch.float64)
    return 1 - 1 / tau


@dataclass
class GLAOptions:
    """Options under ``student.mixers.gla`` (see the module docstring for what each does)."""

    chunk_size: int = 64
    feature_map: str = "identity"
    scale: float | None = None  # None: head_dim ** -0.5 (the teacher's)
    gate_low_rank_dim: int = 16
    gate_logit_normalizer: float = 16.0
    decay_min: float = 0.9
    decay_max: float = 0.999
    norm: bool = True
    output_gate: bool = True
    output_gate_bias: float = 3.0


@register_mixer
class GLAMixer(QKVOMixer):
    kind = "gla"

    def __init__(self, config, layer_idx: int):
        super().__init__()
        o = parse_options(GLAOptions, config.mixer_options(self.kind), self.kind)
        if o.feature_map not in FEATURE_MAPS:
            raise ValueError(f"student.mixers.gla.feature_map={o.feature_map!r}; choose one of {sorted(FEATURE_MAPS)}")
        if o.gate_low_rank_dim < 1 or o.gate_logit_normalizer <= 0:
            raise ValueError(
                f"student.mixers.gla.gate_low_rank_dim={o.gate_low_rank_dim} must be ≥ 1 and "
                f"gate_logit_normalizer={o.gate_logit_normalizer} > 0"
            )
        decay_spectrum(2, o.decay_min, o.decay_max)  # validates the range early, naming the fields
        self.opts = o
        self._init_qkvo(config, layer_idx)
        self.phi = FEATURE_MAPS[o.feature_map]
        self.scale = o.scale if o.scale is not None else self.hd**-0.5
        D = config.hidden_size
        self.gk_down = nn.Linear(D, o.gate_low_rank_dim, bias=False)
        self.gk_up = nn.Linear(o.gate_low_rank_dim, self.H * self.hd, bias=True)
        self.out = GatedOutput(D, self.H, self.hd, o.norm, o.output_gate, o.output_gate_bias, config.rms_norm_eps)
        self.reset_gate_parameters()

    @torch.no_grad()
    def reset_gate_parameters(self) -> None:
        """Decay bias from :func:`decay_spectrum` (inverted through logsigmoid/γ); small second factor."""
        o = self.opts
        d = decay_spectrum(self.hd, o.decay_min, o.decay_max)
        p = d.pow(o.gate_logit_normalizer)  # sigmoid(bias) = d^γ  ⇔  logsigmoid(bias)/γ = log d
        self.gk_up.bias.copy_((p.log() - torch.log1p(-p)).float().repeat(self.H))
        self.gk_up.weight.mul_(0.1)

    def init_state(self, batch_size, device=None, dtype=None) -> dict[str, Tensor]:
        device = device or self.q_proj.weight.device
        return {"gla": torch.zeros(batch_size, self.H, self.hd, self.hd, device=device, dtype=torch.float32)}

    def _inputs(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """x ``[..., D]`` → q, k, v ``[..., H, hd]`` and log-decay g ``[..., H, hd]`` (fp32)."""
        q, k, v = self._project(x)
        q, k = self.phi(q), repeat_kv(self.phi(k), self.rep)
        v = repeat_kv(v, self.rep)
        g = F.logsigmoid(self.gk_up(self.gk_down(x)).float()) / self.opts.gate_logit_normalizer
        return q, k, v, g.unflatten(-1, (self.H, self.hd))

    def forward(self, x: Tensor, state: dict[str, Tensor] | None = None) -> Tensor:
        """x: [B, T, D] → [B, T, D]; continues from and writes into ``state`` when given."""
        q, k, v, g = self._inputs(x)
        y, final = chunk_gla(
            q, k, v, g, scale=self.scale, initial_state=None if state is None else state["gla"],
            output_final_state=state is not None, chunk_size=self.opts.chunk_size, impl=self.impl,
        )
        if state is not None:
            state["gla"].copy_(final)
        return self.o_proj(self.out(y, x))

    def step(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        """x: [B, D] → [B, D]; ``state`` updated in place."""
        q, k, v, g = self._inputs(x)
        # the read-out's norm and gate ride in the step kernel (one launch instead of four)
        norm, gate = self.out.norm, self.out.gate
        y = gla_step(
            q, k, v, g, state["gla"], scale=self.scale, impl=self.impl,
            norm_weight=None if norm is None else norm.weight, gate=None if gate is None else gate(x),
            eps=1e-5 if norm is None else norm.eps,
        )
        return self.o_proj(y.flatten(-2))

    @torch.no_grad()
    def load_attention(self, attn, report, prefix: str) -> None:
        """Copy q/k/v/o from the teacher; decay gate and read-out at the documented init."""
        self._copy_qkvo(attn, report, prefix)
        o = self.opts
        report.initialise(f"{prefix}.gk_down.weight", "nn.Linear default")
        report.initialise(f"{prefix}.gk_up.weight", "nn.Linear default × 0.1")
        report.initialise(
            f"{prefix}.gk_up.bias",
            f"decays in [{o.decay_min}, {o.decay_max}] per head (log-uniform time constants), "
            f"through logsigmoid/{o.gate_logit_normalizer}",
        )
        self.out.report(report, f"{prefix}.out")
