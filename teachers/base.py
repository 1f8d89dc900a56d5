"""The uniform face every teacher shows the distillation code, whatever its architecture."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from students.init import NONE, AttentionWeights, NamedTensor

# Teachers load from local paths only; make sure nothing below us reaches for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class TeacherGeometry:
    """Dimensions a student inherits from its teacher."""

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    hidden_act: str = "silu"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] = field(default_factory=dict)  # HF rope_parameters beyond the default (e.g. llama3)
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    max_position_embeddings: int = 2048
    stream_vocab_sizes: list[int] = field(default_factory=list)  # multistream input; empty: flat ids

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rope_scaling_of(rope: dict[str, Any]) -> dict[str, Any]:
    """The RoPE variant a kept attention layer must reproduce: HF's rope parameters without ``rope_theta``, or
    ``{}`` for the default (unscaled) RoPE."""
    scaling = {k: v for k, v in dict(rope).items() if k != "rope_theta"}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    return {} if kind == "default" else {**scaling, "rope_type": kind}


def hf_geometry(config, **fields: Any) -> TeacherGeometry:
    """The attention stack's geometry from an HF decoder config; ``fields`` fill or override the rest."""
    rope = getattr(config, "rope_parameters", None) or {}
    common = dict(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads,
        num_kv_heads=config.num_key_value_heads or config.num_attention_heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        hidden_act=config.hidden_act,
        rms_norm_eps=config.rms_norm_eps,
        rope_theta=float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))),
        rope_scaling=rope_scaling_of(rope or getattr(config, "rope_scaling", None) or {}),
        max_position_embeddings=config.max_position_embeddings,
    )
    return TeacherGeometry(**{**common, **fields})


@dataclass
class TeacherOutput:
    """What every teacher returns; KL is taken over the last dim of each logits tensor.

    Attributes:
        logits: ``[B, T, V]`` next-token (multistream: next-frame text) logits.
        hidden_states: embedding output, then every layer's output before the final norm, ``[B, T, D]``
            each (``num_layers + 1`` tensors, the student's convention).
        last_hidden_state: the final norm's output ``[B, T, D]``.
        audio_logits: multistream teachers with a depth decoder: ``[B, T-1, K, V_audio]``, position t
            predicting frame t+1's audio codebooks teacher-forced (see ``MoshiTeacher.depth_logits``).
    """

    logits: Tensor
    hidden_states: tuple[Tensor, ...] | None = None
    last_hidden_state: Tensor | None = None
    audio_logits: Tensor | None = None


@dataclass
class AttentionCapture:
    """Per layer: the attention module's input ``[B, T, D]`` and output ``[B, T, D]`` from the last forward."""

    inputs: dict[int, Tensor] = field(default_factory=dict)
    outputs: dict[int, Tensor] = field(default_factory=dict)


class TeacherAdapter(nn.Module):
    """A frozen teacher with weights by role, attention layers by index and a plain forward.

    Subclasses wrap one architecture family and implement ``forward``, ``attention_weights``,
    ``role_weight`` and ``attention_modules``. The adapter is frozen and stays in eval mode:
    ``train(True)`` is ignored, so a Lightning fit cannot switch dropout or norm statistics on.
    """

    kind: ClassVar[str] = ""

    def __init__(self, model: nn.Module, geometry: TeacherGeometry, token_layout: dict | None = None, source: str | None = None):
        super().__init__()
        self.model = model
        self.geometry = geometry
        self.token_layout = dict(token_layout or {})
        self.source = source
        self._params = dict(model.named_parameters())
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> TeacherAdapter:
        return super().train(False)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, output_hidden_states: bool = False
    ) -> TeacherOutput:
        raise NotImplementedError

    def attention_weights(self, layer: int) -> AttentionWeights:
        raise NotImplementedError

    def role_weight(self, role: str) -> NamedTensor:
        raise NotImplementedError

    def attention_modules(self) -> list[nn.Module]:
        """The attention module of every layer, in order (for capture hooks)."""
        raise NotImplementedError

    def _named(self, name: str) -> NamedTensor:
        """(name, parameter) of the wrapped model, or ``NONE`` when it has no such parameter."""
        return (name, self._params[name]) if name in self._params else NONE

    def _attention_by_names(self, layer: int, prefix: str, suffix: str = "") -> AttentionWeights:
        """AttentionWeights from ``{prefix}.{q,k,v,o}_proj{suffix}.{weight,bias}`` of layer ``layer``."""
        if not 0 <= layer < self.geometry.num_layers:
            raise IndexError(f"teacher has {self.geometry.num_layers} layers; asked for layer {layer}")
        g = self.geometry
        tensors = {}
        for proj in "qkvo":
            tensors[proj] = self._named(f"{prefix}.{proj}_proj{suffix}.weight")
            tensors[f"{proj}_bias"] = self._named(f"{prefix}.{proj}_proj{suffix}.bias")
        return AttentionWeights(num_heads=g.num_heads, num_kv_heads=g.num_kv_heads, head_dim=g.head_dim, **tensors)

    @contextlib.contextmanager
    def capture_attention(self, layers: list[int] | None = None) -> Iterator[AttentionCapture]:
        """Record each chosen layer's attention input and output during forwards inside the block."""
        capture = AttentionCapture()
        modules = self.attention_modules()
        chosen = range(len(modules)) if layers is None else layers
        handles = []
        for i in chosen:
            def hook(module, args, kwargs, output, i=i):
                x = kwargs.get("hidden_states", args[0] if args else None)
                capture.inputs[i] = x
                capture.outputs[i] = output[0] if isinstance(output, tuple) else output
            handles.append(modules[i].register_forward_hook(hook, with_kwargs=True))
        try:
            yield capture
        finally:
            for h in handles:
                h.remove()

    @torch.no_grad()
    def sample_sequences(self, num_sequences: int, length: int, seed: int = 0, temperature: float = 1.0, batch_size: int = 256) -> list:
        """Token rows drawn from the teacher (in-distribution data for smoke runs on random teachers).

        Flat teachers: the first token is uniform, each next one drawn from the softened next-token
        distribution. Returns ``num_sequences`` rows of ``length`` ids (multistream teachers override
        this and return ``[S][length]`` rows).
        """
        g = torch.Generator().manual_seed(seed)
        vocab = self.geometry.vocab_size
        device = next(self.parameters()).device
        out: list = []
        for start in range(0, num_sequences, batch_size):
            b = min(batch_size, num_sequences - start)
            ids = torch.randint(0, vocab, (b, 1), generator=g).to(device)
            for _ in range(length - 1):
                logits = self(ids).logits[:, -1].float().cpu() / temperature
                nxt = torch.multinomial(torch.softmax(logits, -1), 1, generator=g)
                ids = torch.cat([ids, nxt.to(device)], dim=1)
            out.extend(ids.cpu().tolist())
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "parameters": sum(p.numel() for p in self.parameters()),
            "geometry": self.geometry.to_dict(),
            "token_layout": self.token_layout,
        }


@contextlib.contextmanager
def capture_input(module: nn.Module) -> Iterator[list[Tensor]]:
    """Record the first positional input of ``module`` on each forward inside the block."""
    seen: list[Tensor] = []
    handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        yield seen
    finally:
        handle.remove()


def require_files(path: str | os.PathLike, names: list[str]) -> Path:
    """Check that a local teacher directory holds ``names``; raise naming the first missing one."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"teacher.path={str(path)!r} is not a directory (teachers load from local paths only)")
    for name in names:
        if not (path / name).is_file():
            raise FileNotFoundError(f"teacher.path={str(path)!r} has no {name}; a local teacher needs {names}")
    return path


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    known = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype not in known:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {sorted(known)}")
    return known[dtype]
