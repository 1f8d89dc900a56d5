"""Softmax attention kept from the teacher, for hybrid students: full causal or sliding window.

Map: q/k/v/o copied 1:1 from the teacher layer of the same index (with q/k/v biases), RoPE at the
teacher's ``rope_theta`` in HF's rotate-half convention, with the teacher's frequency scaling
(``rope_type`` "linear" or Llama-3's "llama3"; other variants are refused by name), scale
``head_dim**-0.5``. A layer kept with full attention computes exactly the teacher's layer (tested).

Streaming state (preallocated; per-step cost constant):

    k, v : [B, Hkv, L, hd]   ring-buffer KV cache (post-RoPE keys), slot = position mod L
    pos  : [B] int64         tokens seen so far per stream (``RecurrentState.reset_(i)`` restarts stream i)

``L = window`` for sliding-window attention (each token sees itself and the ``window - 1`` before
it). Full attention has no finite state: ``L = max_cache_len`` is preallocated, prefill past it
raises, and ``step`` past it (which cannot check without a device sync) attends to the last
``max_cache_len`` tokens only, i.e. it becomes sliding-window attention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from students.mixers.base import parse_options, register_mixer
from students.mixers.qkvo import QKVOMixer, repeat_kv

ROPE_TYPES = ("default", "linear", "llama3")


def rope_inv_freq(head_dim: int, theta: float, scaling: dict | None = None) -> Tensor:
    """RoPE frequencies ``[head_dim / 2]`` fp32 as HF computes them: ``theta ** (-2i / head_dim)``, then the
    teacher's scaling — "linear": divided by ``factor``; "llama3": long wavelengths (beyond
    ``original_max_position_embeddings / low_freq_factor``) divided by ``factor``, short ones (below
    ``… / high_freq_factor``) kept, and the band between interpolated smoothly."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    scaling = dict(scaling or {})
    kind = scaling.get("rope_type", "default")
    if kind not in ROPE_TYPES:
        raise ValueError(
            f"student.rope_scaling.rope_type={kind!r} is not reproduced by kept attention layers (known: {ROPE_TYPES}); "
            "keep no attention layer (a pattern without 'attn') or add the variant to students/mixers/attention.py"
        )
    if kind == "linear":
        return inv_freq / float(scaling["factor"])
    if kind == "llama3":
        factor, low, high = (float(scaling[k]) for k in ("factor", "low_freq_factor", "high_freq_factor"))
        old_len = float(scaling["original_max_position_embeddings"])
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
        return torch.where(medium, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    return inv_freq


def apply_rope(x: Tensor, positions: Tensor, inv_freq: Tensor) -> Tensor:
    """Rotate-half RoPE. x ``[B, T, H, hd]``, positions ``[B, T]`` int → ``[B, T, H, hd]``."""
    angles = positions[..., None].float() * inv_freq  # [B, T, hd/2]
    angles = torch.cat([angles, angles], dim=-1)[:, :, None]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


@dataclass
class AttentionOptions:
    """Options under ``student.mixers.attn``.

    ``window``: None for full causal attention, else the sliding-window length (≥ 1).
    ``max_cache_len``: KV slots preallocated for full attention (ignored with a window).
    """

    window: int | None = None
    max_cache_len: int = 4096


@register_mixer
class AttentionMixer(QKVOMixer):
    kind = "attn"

    def __init__(self, config, layer_idx: int):
        super().__init__()
        o = parse_options(AttentionOptions, config.mixer_options(self.kind), self.kind)
        if o.window is not None and o.window < 1:
            raise ValueError(f"student.mixers.attn.window={o.window} must be ≥ 1 (or null for full attention)")
        if o.max_cache_len < 1:
            raise ValueError(f"student.mixers.attn.max_cache_len={o.max_cache_len} must be ≥ 1")
        if config.head_dim % 2:
            raise ValueError(f"student.head_dim={config.head_dim} must be even for RoPE")
        self.opts = o
        self._init_qkvo(config, layer_idx)
        self.cache_len = o.window if o.window is not None else o.max_cache_len
        self.register_buffer("inv_freq", rope_inv_freq(self.hd, config.rope_theta, config.rope_scaling), persistent=False)

    def init_state(self, batch_size, device=None, dtype=None) -> dict[str, Tensor]:
        device = device or self.q_proj.weight.device
        dtype = dtype or self.q_proj.weight.dtype
        shape = (batch_size, self.Hkv, self.cache_len, self.hd)
        return {
            "k": torch.zeros(shape, device=device, dtype=dtype),
            "v": torch.zeros(shape, device=device, dtype=dtype),
            "pos": torch.zeros(batch_size, device=device, dtype=torch.int64),
        }

    def _band(self, qpos: Tensor, kpos: Tensor) -> Tensor:
        """Which keys each query sees: ``kpos ≤ qpos`` and, with a window, ``qpos - kpos < window``. → bool."""
        diff = qpos[..., :, None] - kpos[..., None, :]
        mask = diff >= 0
        if self.opts.window is not None:
            mask = mask & (diff < self.opts.window)
        return mask

    def _slot_positions(self, seen: Tensor) -> Tensor:
        """Position held by each cache slot after ``seen`` ``[B]`` tokens (negative: empty). → ``[B, L]``."""
        slots = torch.arange(self.cache_len, device=seen.device)
        last = seen[:, None] - 1
        return last - torch.remainder(last - slots, self.cache_len)

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        """q ``[B, H, T, hd]``, k/v ``[B, Hkv, S, hd]``, mask ``[B, T, S]`` → ``[B, T, H·hd]``."""
        k, v = repeat_kv(k.transpose(1, 2), self.rep).transpose(1, 2), repeat_kv(v.transpose(1, 2), self.rep).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
        return y.transpose(1, 2).flatten(-2)

    def forward(self, x: Tensor, state: dict[str, Tensor] | None = None) -> Tensor:
        """x: [B, T, D] → [B, T, D]; continues from the cache in ``state`` and writes the new keys into it."""
        B, T, _ = x.shape
        q, k, v = self._project(x)
        offset = torch.zeros(B, dtype=torch.int64, device=x.device) if state is None else state["pos"]
        positions = offset[:, None] + torch.arange(T, device=x.device)
        q, k = apply_rope(q, positions, self.inv_freq), apply_rope(k, positions, self.inv_freq)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if state is None:
            return self.o_proj(self._attend(q, k, v, self._band(positions, positions)))
        if self.opts.window is None and int((offset + T).max()) > self.cache_len:
            raise ValueError(
                f"attn layer {self.layer_idx}: {int((offset + T).max())} tokens exceed "
                f"student.mixers.attn.max_cache_len={self.cache_len}; raise it or use a sliding window"
            )
        cached = self._slot_positions(offset)
        keys_pos = torch.cat([cached, positions], dim=1)
        mask = self._band(positions, keys_pos)
        mask[:, :, : self.cache_len] &= (cached >= 0)[:, None]
        y = self._attend(q, torch.cat([state["k"], k], dim=2), torch.cat([state["v"], v], dim=2), mask)
        n = min(T, self.cache_len)  # only the last cache_len new keys survive in the ring
        index = torch.remainder(positions[:, T - n :], self.cache_len)[:, None, :, None].expand(B, self.Hkv, n, self.hd)
        state["k"].scatter_(2, index, k[:, :, T - n :].to(state["k"].dtype))
        state["v"].scatter_(2, index, v[:, :, T - n :].to(state["v"].dtype))
        state["pos"].add_(T)
        return self.o_proj(y)

    def step(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        """x: [B, D] → [B, D]; writes this token's k/v into its ring slot and advances ``pos`` in place."""
        B = x.shape[0]
        q, k, v = self._project(x[:, None])
        pos = state["pos"]
        q, k = apply_rope(q, pos[:, None], self.inv_freq), apply_rope(k, pos[:, None], self.inv_freq)
        index = torch.remainder(pos, self.cache_len)[:, None, None, None].expand(B, self.Hkv, 1, self.hd)
        state["k"].scatter_(2, index, k.transpose(1, 2).to(state["k"].dtype))
        state["v"].scatter_(2, index, v.transpose(1, 2).to(state["v"].dtype))
        kpos = self._slot_positions(pos + 1)
        mask = self._band(pos[:, None], kpos) & (kpos >= 0)[:, None]
        y = self._attend(q.transpose(1, 2), state["k"], state["v"], mask)
        state["pos"].add_(1)  # last: ``pos`` aliases it
        return self.o_proj(y[:, 0])

    @torch.no_grad()
    def load_attention(self, attn, report, prefix: str) -> None:
        """Copy q/k/v/o (and q/k/v biases) from the teacher: the layer is the teacher's attention."""
        self._copy_qkvo(attn, report, prefix)
