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
    """logits ``[B, T, V]``; hidden_states: the embedding output and every block's output, ``[B, T, D]`` each;
    last_hidden_state: the final norm's output ``[B, T, D]`` (what the LM head, and a Moshi depth decoder, read)."""

    logits: Tensor
    hidden_states: tuple[Tensor, ...] | None = None
    last_hidden_state: Tensor | None = None


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

    Flat input: ids ``[B, T]`` (step: ``[B]``) through ``embed``. Multistream input
    (``config.stream_vocab_sizes``, Moshi/Hibiki): ids ``[B, S, T]`` (step: ``[B, S]``), stream s
    through ``embeds[s]``, the S embeddings summed per step; the time axis is always the last.
    """

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = config
        if config.multistream:
            self.embeds = nn.ModuleList(nn.Embedding(v, config.hidden_size) for v in config.stream_vocab_sizes)
        else:
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

    def embed_ids(self, input_ids: Tensor, step: bool = False) -> Tensor:
        """Flat ids ``[B, T]`` (step: ``[B]``) or multistream ``[B, S, T]`` (step: ``[B, S]``) → ``[B, T, D]`` (``[B, D]``)."""
        self._check_ids(input_ids)
        if not self.config.multistream:
            if input_ids.dim() != (1 if step else 2):
                raise ValueError(f"flat student: input_ids must be {'[B]' if step else '[B, T]'}, got {tuple(input_ids.shape)}")
            return self.embed(input_ids)
        S = len(self.embeds)
        if input_ids.dim() != (2 if step else 3) or input_ids.shape[1] != S:
            want = f"[B, S={S}]" if step else f"[B, S={S}, T]"
            raise ValueError(f"multistream student: input_ids must be {want} (a row per stream), got {tuple(input_ids.shape)}")
        ids = input_ids if step else input_ids.transpose(1, 2)  # streams last: [B, (T,) S]
        h = self.embeds[0](ids[..., 0])
        for s in range(1, S):
            h = h + self.embeds[s](ids[..., s])
        return h

    def forward(self, input_ids: Tensor, state: RecurrentState | None = None, output_hidden_states: bool = False) -> StudentOutput:
        """input_ids ``[B, T]`` or ``[B, S, T]`` → logits ``[B, T, V]``; with ``state`` continue from it and leave
        the final state in it."""
        h = self.embed_ids(input_ids)
        hidden = [h] if output_hidden_states else None
        for i, layer in enumerate(self.layers):
            h = layer(h, None if state is None else state[i])
            if hidden is not None:
                hidden.append(h)
        last = self.norm(h)
        return StudentOutput(self.lm_head(last), tuple(hidden) if hidden is not None else None, last)

    def step_hidden(self, input_ids: Tensor, state: RecurrentState) -> Tensor:
        """One step: input_ids ``[B]`` or ``[B, S]`` → the final norm's output ``[B, D]``; ``state`` updated in place.

        A Moshi-style runtime feeds this to its depth decoder; :meth:`step` applies the LM head to it.
        """
        h = self.embed_ids(input_ids, step=True)
        for i, layer in enumerate(self.layers):
            h = layer.step(h, state[i])
        return self.norm(h)

    def step(self, input_ids: Tensor, state: RecurrentState) -> Tensor:
        """One token per stream: input_ids ``[B]`` (multistream: ``[B, S]``) → logits ``[B, V]``; ``state`` updated in place."""
        return self.lm_head(self.step_hidden(input_ids, state))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
