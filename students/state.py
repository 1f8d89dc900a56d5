"""The streaming contract: a student's whole recurrent state, fixed in size and preallocated.

A :class:`RecurrentState` holds, per layer, a dict of named tensors (e.g. Mamba2's ``conv`` and
``ssm``; a sliding-window layer's ring buffer and position). Its size depends on the batch and
the model, never on how many steps have run. ``StudentLM.step`` writes it in place, so the step
can be captured in a CUDA graph and replayed with the same tensors.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class RecurrentState:
    """Per-layer named state tensors.

    Args:
        layers: one dict per layer, name → tensor; every tensor's dim 0 is the batch.
    """

    def __init__(self, layers: list[dict[str, Tensor]]):
        self.layers = layers

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return self.layers[i]

    def items(self) -> Iterator[tuple[str, Tensor]]:
        """Flat ``("layers.{i}.{name}", tensor)`` pairs, in a stable order."""
        for i, layer in enumerate(self.layers):
            for name in sorted(layer):
                yield f"layers.{i}.{name}", layer[name]

    @property
    def batch_size(self) -> int:
        return next(t for _, t in self.items()).shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the state (constant over a session)."""
        return sum(t.numel() * t.element_size() for _, t in self.items())

    def reset_(self, batch_index: int | None = None) -> RecurrentState:
        """Zero the state in place: all streams, or only ``batch_index`` (a finished session)."""
        for _, t in self.items():
            if batch_index is None:
                t.zero_()
            else:
                t[batch_index].zero_()
        return self

    def copy_(self, other: RecurrentState) -> RecurrentState:
        """Copy ``other`` into this state's tensors (shapes must match)."""
        mine, theirs = dict(self.items()), dict(other.items())
        if mine.keys() != theirs.keys():
            raise ValueError(f"state layouts differ: {sorted(mine.keys() ^ theirs.keys())}")
        for name, t in mine.items():
            if t.shape != theirs[name].shape:
                raise ValueError(f"state {name}: shape {tuple(t.shape)} vs {tuple(theirs[name].shape)}")
            t.copy_(theirs[name])
        return self

    def clone(self) -> RecurrentState:
        return RecurrentState([{k: v.clone() for k, v in layer.items()} for layer in self.layers])

    def to(self, device: torch.device | str | None = None) -> RecurrentState:
        return RecurrentState([{k: v.to(device) for k, v in layer.items()} for layer in self.layers])

    def state_dict(self) -> dict[str, Tensor]:
        return {name: t for name, t in self.items()}

    def load_state_dict(self, tensors: dict[str, Tensor]) -> RecurrentState:
        return self.copy_(RecurrentState.from_flat(tensors, len(self.layers)))

    @staticmethod
    def from_flat(tensors: dict[str, Tensor], num_layers: int) -> RecurrentState:
        layers: list[dict[str, Tensor]] = [{} for _ in range(num_layers)]
        for name, t in tensors.items():
            _, i, key = name.split(".", 2)
            layers[int(i)][key] = t
        return RecurrentState(layers)

    def spec(self) -> dict[str, dict]:
        """JSON description: name → shape with the batch as ``"B"``, dtype. Exported with the student."""
        return {name: {"shape": ["B", *t.shape[1:]], "dtype": str(t.dtype).removeprefix("torch.")} for name, t in self.items()}

    def __repr__(self) -> str:
        return f"RecurrentState(layers={len(self.layers)}, batch={self.batch_size}, nbytes={self.nbytes})"
