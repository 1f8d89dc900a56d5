"""Mamba2 (SSD) mixer with the Mamba-in-the-Llama geometry, initialisable from attention.

Geometry (expand = 1): heads H = attention heads, groups = KV heads Hkv, head_dim P = attention
head_dim, d_state N = P. ``in_proj`` produces, in this order,

    z [H·P] (gate) | x [Hkv·P] (← V) | B [Hkv·N] (← K) | C [H·N] (← Q) | dt [H]

x and B are produced at KV width and repeated across the query heads of their group, exactly like
GQA repeats K/V. The scan is SSD: q = C, k = B, v = x·dt, log-decay g = dt·A, plus D·x. No RoPE:
position enters through the decay and the causal conv.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kernels._dispatch import resolve_impl
from kernels.causal_conv1d import causal_conv1d, causal_conv1d_update
from kernels.mamba2_step import mamba2_step
from kernels.ssd import chunk_ssd, ssd_step
from students.layers import GatedRMSNorm
from students.mixers.base import Mixer, parse_options, register_mixer


@dataclass
class Mamba2Options:
    """Options under ``student.mixers.mamba2``.

    ``conv``, ``gate`` and ``norm`` switch the causal conv, the SiLU(z) gate and the gated RMSNorm;
    with all three off, A = 0, dt ≡ 1 and D = 0 the mixer is exactly unnormalised causal linear
    attention over the teacher's q/k/v/o (tested). ``conv_init="identity"`` starts the conv as a
    pass-through of the current step, so the initialised mixer sees the teacher's projections
    unchanged (up to the SiLU); ``"default"`` is Mamba's uniform init.
    """

    d_state: int | None = None  # None: head_dim (required by the attention map)
    d_conv: int = 4
    chunk_size: int = 64
    conv: bool = True
    conv_init: str = "default"
    gate: bool = True
    norm: bool = True
    use_D: bool = True
    dt_min: float = 1e-3
    dt_max: float = 1e-1
    dt_init_floor: float = 1e-4
    A_init_min: float = 1.0
    A_init_max: float = 16.0
    scale: float = 1.0


@register_mixer
class Mamba2Mixer(Mixer):
    kind = "mamba2"

    def __init__(self, config, layer_idx: int):
        super().__init__()
        o = parse_options(Mamba2Options, config.mixer_options(self.kind), self.kind)
        if o.conv_init not in ("default", "identity"):
            raise ValueError(f"student.mixers.mamba2.conv_init={o.conv_init!r}; choose 'default' or 'identity'")
        self.opts = o
        self.layer_idx = layer_idx
        self.impl = config.impl
        D = config.hidden_size
        H, Hkv, P = config.num_heads, config.num_kv_heads, config.head_dim
        N = o.d_state or P
        self.H, self.Hkv, self.P, self.N = H, Hkv, P, N
        self.sizes = {"z": H * P, "x": Hkv * P, "B": Hkv * N, "C": H * N, "dt": H}
        # q/k/v biases (Qwen2) carry over to the x/B/C rows; the other rows' biases start at zero.
        self.in_proj = nn.Linear(D, sum(self.sizes.values()), bias=config.attention_bias)
        conv_dim = self.sizes["x"] + self.sizes["B"] + self.sizes["C"]
        self.conv_dim = conv_dim
        if o.conv:
            self.conv_weight = nn.Parameter(torch.empty(conv_dim, o.d_conv))
            self.conv_bias = nn.Parameter(torch.zeros(conv_dim))
        self.dt_bias = nn.Parameter(torch.empty(H))
        self.A_log = nn.Parameter(torch.empty(H))
        self.D = nn.Parameter(torch.ones(H)) if o.use_D else None
        self.norm = GatedRMSNorm(H * P, group_size=P, eps=config.rms_norm_eps) if o.norm else None
        self.out_proj = nn.Linear(H * P, D, bias=False)
        self.reset_mamba_parameters()
        if self.in_proj.bias is not None:
            nn.init.zeros_(self.in_proj.bias)

    def segment(self, name: str) -> slice:
        """Rows of ``in_proj`` that produce ``name`` (one of z, x, B, C, dt)."""
        start = 0
        for key, size in self.sizes.items():
            if key == name:
                return slice(start, start + size)
            start += size
        raise KeyError(f"in_proj has no segment {name!r}; segments: {list(self.sizes)}")

    @torch.no_grad()
    def reset_mamba_parameters(self) -> None:
        """Mamba2's defaults for dt, A, D and the conv."""
        o = self.opts
        dt = torch.exp(torch.rand(self.H) * (math.log(o.dt_max) - math.log(o.dt_min)) + math.log(o.dt_min))
        dt = dt.clamp(min=o.dt_init_floor)
        self.dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        self.A_log.copy_(torch.empty(self.H).uniform_(o.A_init_min, o.A_init_max).log())
        if self.D is not None:
            self.D.fill_(1.0)
        if o.conv:
            if o.conv_init == "identity":
                self.conv_weight.zero_()
                self.conv_weight[:, -1] = 1.0
            else:
                bound = 1.0 / math.sqrt(o.d_conv)
                self.conv_weight.uniform_(-bound, bound)
            self.conv_bias.zero_()

    def init_state(self, batch_size, device=None, dtype=None) -> dict[str, Tensor]:
        device = device or self.in_proj.weight.device
        dtype = dtype or self.in_proj.weight.dtype
        state = {"ssm": torch.zeros(batch_size, self.H, self.N, self.P, device=device, dtype=torch.float32)}
        if self.opts.conv:
            state["conv"] = torch.zeros(batch_size, self.conv_dim, self.opts.d_conv - 1, device=device, dtype=dtype)
        return state

    def _split(self, zxbcdt: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        z, xbc, dt = zxbcdt.split([self.sizes["z"], self.conv_dim, self.sizes["dt"]], dim=-1)
        return z, xbc, dt

    def _heads(self, xbc: Tensor, dt: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """[..., conv_dim], [..., H] → q, k, v, g, x at query-head width ([..., H, ·])."""
        x, Bm, Cm = xbc.split([self.sizes["x"], self.sizes["B"], self.sizes["C"]], dim=-1)
        rep = self.H // self.Hkv
        x = x.unflatten(-1, (self.Hkv, self.P)).repeat_interleave(rep, dim=-2)
        k = Bm.unflatten(-1, (self.Hkv, self.N)).repeat_interleave(rep, dim=-2)
        q = Cm.unflatten(-1, (self.H, self.N))
        dt = F.softplus(dt.float() + self.dt_bias.float())
        A = -torch.exp(self.A_log.float())
        v = (x.float() * dt[..., None]).to(x.dtype)
        return q, k, v, dt * A, x

    def _output(self, y: Tensor, x: Tensor, z: Tensor) -> Tensor:
        """y, x: [..., H, P]; z: [..., H·P] → [..., D]."""
        if self.D is not None:
            y = y + x * self.D.to(y.dtype)[:, None]
        y = y.flatten(-2)
        if self.norm is not None:
            y = self.norm(y, z if self.opts.gate else None)
        elif self.opts.gate:
            y = y * F.silu(z)
        return self.out_proj(y)

    def forward(self, x: Tensor, state: dict[str, Tensor] | None = None) -> Tensor:
        """x: [B, T, D] → [B, T, D]; continues from and writes into ``state`` when given."""
        z, xbc, dt = self._split(self.in_proj(x))
        if self.opts.conv:
            xbc, conv_final = causal_conv1d(
                xbc, self.conv_weight, self.conv_bias, None if state is None else state["conv"],
                activation="silu", output_final_state=state is not None, impl=self.impl,
            )
        q, k, v, g, xh = self._heads(xbc, dt)
        y, ssm_final = chunk_ssd(
            q, k, v, g, scale=self.opts.scale, initial_state=None if state is None else state["ssm"],
            output_final_state=state is not None, chunk_size=self.opts.chunk_size, impl=self.impl,
        )
        if state is not None:
            state["ssm"].copy_(ssm_final)
            if self.opts.conv:
                state["conv"].copy_(conv_final)
        return self._output(y, xh, z)

    def step(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        """x: [B, D] → [B, D]; ``state`` updated in place."""
        if resolve_impl(self.impl, x, "Mamba2Mixer.step") == "triton":
            return self._fused_step(x, state)
        z, xbc, dt = self._split(self.in_proj(x))
        if self.opts.conv:
            xbc = causal_conv1d_update(xbc, state["conv"], self.conv_weight, self.conv_bias, "silu", impl=self.impl)
        q, k, v, g, xh = self._heads(xbc, dt)
        y = ssd_step(q, k, v, g, state["ssm"], scale=self.opts.scale, impl=self.impl)
        return self._output(y, xh, z)

    def _fused_step(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        """The step above in one Triton launch between in_proj and out_proj (same math, tested equal)."""
        y = mamba2_step(
            self.in_proj(x), state["ssm"], state.get("conv"),
            self.conv_weight if self.opts.conv else None, self.conv_bias if self.opts.conv else None,
            self.dt_bias, self.A_log, self.D, None if self.norm is None else self.norm.weight,
            num_heads=self.H, num_kv_heads=self.Hkv, head_dim=self.P, d_state=self.N, scale=self.opts.scale,
            gate=self.opts.gate, norm_eps=self.norm.eps if self.norm is not None else 0.0, impl="triton",
        )
        return self.out_proj(y)

    @torch.no_grad()
    def load_attention(self, attn, report, prefix: str) -> None:
        """Mamba-in-the-Llama map: V → x, K → B, Q → C, O → out_proj; z, dt, A, D, conv at defaults."""
        for field, mine, theirs in (
            ("num_heads", self.H, attn.num_heads),
            ("num_kv_heads", self.Hkv, attn.num_kv_heads),
            ("head_dim", self.P, attn.head_dim),
            ("mixers.mamba2.d_state", self.N, attn.head_dim),
        ):
            if mine != theirs:
                raise ValueError(
                    f"cannot map attention onto mamba2 (layer {self.layer_idx}): student.{field}={mine} "
                    f"but the teacher's attention has {theirs}; the Mamba-in-the-Llama map needs them equal"
                )
        w = self.in_proj.weight
        for seg, role in (("x", "v"), ("B", "k"), ("C", "q")):
            name, tensor = getattr(attn, role)
            report.copy(w[self.segment(seg)], tensor, f"{prefix}.in_proj.weight[{seg}]", name)
            bias_name, bias = getattr(attn, f"{role}_bias")
            if self.in_proj.bias is not None and bias is not None:
                report.copy(self.in_proj.bias[self.segment(seg)], bias, f"{prefix}.in_proj.bias[{seg}]", bias_name)
        if attn.o_bias[1] is not None:
            raise ValueError(f"cannot map attention onto mamba2 (layer {self.layer_idx}): o_proj has a bias ({attn.o_bias[0]})")
        name, tensor = attn.o
        report.copy(self.out_proj.weight, tensor, f"{prefix}.out_proj.weight", name)
        if self.in_proj.bias is not None:
            report.initialise(f"{prefix}.in_proj.bias", "zeros outside the copied x/B/C rows")
        report.initialise(f"{prefix}.in_proj.weight[z]", "nn.Linear default (gate)")
        report.initialise(f"{prefix}.in_proj.weight[dt]", "nn.Linear default")
        report.initialise(f"{prefix}.dt_bias", f"inverse softplus of log-uniform dt in [{self.opts.dt_min}, {self.opts.dt_max}]")
        report.initialise(f"{prefix}.A_log", f"log uniform({self.opts.A_init_min}, {self.opts.A_init_max})")
        if self.D is not None:
            report.initialise(f"{prefix}.D", "ones")
        if self.opts.conv:
            report.initialise(f"{prefix}.conv_weight", f"{self.opts.conv_init} conv init")
            report.initialise(f"{prefix}.conv_bias", "zeros")
        if self.norm is not None:
            report.initialise(f"{prefix}.norm.weight", "ones")
