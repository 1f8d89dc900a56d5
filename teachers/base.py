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

from students.init import AttentionWeights, NamedTensor

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
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    max_position_embeddings: int = 2048

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TeacherOutput:
    """logits ``[B, T, V]``; hidden_states: embedding output then every layer's output, ``[B, T, D]``."""

    logits: Tensor
    hidden_states: tuple[Tensor, ...] | None = None


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
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> TeacherAdapter:
        return super().train(False)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None, output_hidden_states: bool = False) -> TeacherOutput:
        raise NotImplementedError

    def attention_weights(self, layer: int) -> AttentionWeights:
        raise NotImplementedError

    def role_weight(self, role: str) -> NamedTensor:
        raise NotImplementedError

    def attention_modules(self) -> list[nn.Module]:
        """The attention module of every layer, in order (for capture hooks)."""
        raise NotImplementedError

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

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "parameters": sum(p.numel() for p in self.parameters()),
            "geometry": self.geometry.to_dict(),
            "token_layout": self.token_layout,
        }


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
