"""The mixer contract every student layer kind implements, and the registry that names them."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

MIXERS: dict[str, type[Mixer]] = {}


def register_mixer(cls: type[Mixer]) -> type[Mixer]:
    """Class decorator: make ``cls`` available under ``cls.kind`` in ``StudentConfig.pattern``."""
    if cls.kind in MIXERS:
        raise ValueError(f"mixer kind {cls.kind!r} registered twice")
    MIXERS[cls.kind] = cls
    return cls


def mixer_class(kind: str) -> type[Mixer]:
    if kind not in MIXERS:
        raise ValueError(f"unknown mixer kind {kind!r} in student.pattern; known kinds: {sorted(MIXERS)}")
    return MIXERS[kind]


def parse_options(options_cls: type, options: dict[str, Any], kind: str):
    """Build a mixer's options dataclass, naming unknown keys and the known ones."""
    known = {f.name for f in dataclasses.fields(options_cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"student.mixers.{kind}: unknown options {unknown}; known: {sorted(known)}")
    return options_cls(**options)


class Mixer(nn.Module):
    """A sequence mixer with a parallel forward and a constant-size recurrent step.

    Subclasses set ``kind`` and implement:
      * ``init_state(batch_size, device, dtype) -> dict[str, Tensor]`` — zeroed, fixed-size state;
      * ``forward(x [B, T, D], state=None) -> [B, T, D]`` — when ``state`` is given the sequence
        continues from it and the final state is written into it in place (prefill);
      * ``step(x [B, D], state) -> [B, D]`` — one token, ``state`` updated in place;
      * ``load_attention(attn, report, prefix)`` — initialise from a teacher attention layer
        (:class:`students.init.AttentionWeights`), recording every copied and initialised tensor.
    """

    kind: ClassVar[str] = ""

    def init_state(self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> dict[str, Tensor]:
        raise NotImplementedError

    def step(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def load_attention(self, attn, report, prefix: str) -> None:
        raise NotImplementedError(f"mixer {self.kind!r} cannot be initialised from attention")
