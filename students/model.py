"""StudentLM: a teacher-shaped decoder whose attention layers are replaced by recurrent mixers."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

import students.mixers  # noqa: F401  (registers the mixer kinds)
from students.config import StudentConfig
from students.layers import GatedMLP, RMSNorm
from students.mixers.base import mixer_class
from students.state import RecurrentState


@dataclass
class StudentOutput:
    """logits ``[B, T, V]``; hidden_states: the embedding output and every block's output, ``[B, T, D]`` each."""

    logits: Tensor
    hidden_states: tuple[Tensor, ...] | None = None


class Block(nn.Module):
    """``x + mixer(norm(x))`` then ``x + mlp(norm(x))``: the teacher's block with its attention swapped."""

    def __init__(self, config: StudentConfig, layer_idx: int):
        super().__init__()
        self.input_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mixer = mixer_class(config.pattern[layer_idx])(config, layer_idx)
        self.post_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.mlp = GatedMLP(config.hidden_size, config.intermediate_size, config.hidden_act)

    def forward(self, x: Tensor, state: dict[str, Tensor] | None = None) -> Tensor:
        x = x + self.mixer(self.input_norm(x), state)
        return x + self.mlp(self.post_norm(x))

    def step(self, x: Tensor, state: dict[str, Tensor]) -> Tensor:
        x = x + self.mixer.step(self.input_norm(x), state)
        return x + self.mlp(self.post_norm(x))


class StudentLM(nn.Module):
    """Token embedding → blocks → RMSNorm → LM head.

    ``forward`` runs whole sequences (training, prefill); ``step`` runs one token per stream with a
    :class:`RecurrentState` updated in place. ``forward(ids, state)`` followed by ``step`` calls
    reproduces ``forward`` over the concatenated sequence (the streaming-parity contract).
    """

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Block(config, i) for i in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.embed.weight

    def allocate_state(self, batch_size: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> RecurrentState:
        """Zeroed state for ``batch_size`` streams, on the model's device/dtype unless given."""
        return RecurrentState([layer.mixer.init_state(batch_size, device, dtype) for layer in self.layers])

    def _check_ids(self, input_ids: Tensor) -> None:
        if input_ids.dtype not in (torch.int32, torch.int64):
            raise TypeError(f"input_ids must be integer token ids, got {input_ids.dtype}")

    def forward(self, input_ids: Tensor, state: RecurrentState | None = None, output_hidden_states: bool = False) -> StudentOutput:
        """input_ids ``[B, T]`` → logits ``[B, T, V]``; with ``state`` continue from it and leave the final state in it."""
        self._check_ids(input_ids)
        h = self.embed(input_ids)
        hidden = [h] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            h = layer(h, None if state is None else state[i])
            if hidden is not None:
                hidden.append(h)
        logits = self.lm_head(self.norm(h))
        return StudentOutput(logits, tuple(hidden) if hidden is not None else None)

    def step(self, input_ids: Tensor, state: RecurrentState) -> Tensor:
        """One token per stream: input_ids ``[B]`` → logits ``[B, V]``; ``state`` updated in place."""
        self._check_ids(input_ids)
        h = self.embed(input_ids)
        for i, layer in enumerate(self.layers):
            h = layer.step(h, state[i])
        return self.lm_head(self.norm(h))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
