"""Speech-token layouts: how codec frames become token ids, and back.

A codec (Mimi) turns audio into frames at ``frame_rate_hz``; each frame holds one code per codebook,
per audio stream (Moshi has two streams: its own voice and the user's). Two layouts are in use:

* ``flat_frames`` (Llama-Mimi): one token stream; frame f contributes the consecutive tokens
  ``c = 0 .. C-1`` with id ``offset + c * codebook_size + code`` (``C = streams × codebooks``,
  stream-major), so each codebook owns its own vocabulary slice.
* ``multistream`` (Moshi/Hibiki): one step per frame; the ids stay per codebook ``[B, C, F]``
  (plus a text stream), embedded separately and summed. Codebook c may be delayed by
  ``delays[c % codebooks]`` frames.

The layout is plain JSON (``TokenLayout.to_dict``) stored in the teacher's config and copied into
the student's export (``StudentConfig.token_layout``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

KINDS = ("flat_frames", "multistream")


@dataclass
class TokenLayout:
    """Codec tokens laid out for a language model.

    Attributes:
        kind: ``"flat_frames"`` or ``"multistream"`` (see the module docstring).
        num_codebooks: codebooks per stream per frame (K).
        codebook_size: codes per codebook.
        num_streams: audio streams per frame (S); channels ``C = S·K``, stream-major.
        offset: flat_frames: id of code 0 of the first codebook (text vocabulary and specials come first).
        frame_rate_hz: codec frames per second (Mimi: 12.5).
        delays: frames each codebook of a stream lags behind (length K), or empty for none.
        text_vocab_size: multistream: the text stream's vocabulary (0: no text stream).
    """

    kind: str
    num_codebooks: int
    codebook_size: int
    num_streams: int = 1
    offset: int = 0
    frame_rate_hz: float = 12.5
    delays: list[int] = field(default_factory=list)
    text_vocab_size: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"token_layout.kind={self.kind!r}; choose one of {list(KINDS)}")
        for name in ("num_codebooks", "codebook_size", "num_streams"):
            if getattr(self, name) < 1:
                raise ValueError(f"token_layout.{name} must be ≥ 1, got {getattr(self, name)}")
        self.delays = [int(d) for d in self.delays]
        if self.delays and (len(self.delays) != self.num_codebooks or min(self.delays) < 0):
            raise ValueError(
                f"token_layout.delays={self.delays} must list one delay ≥ 0 per codebook "
                f"(num_codebooks={self.num_codebooks}), or be empty"
            )

    @property
    def channels(self) -> int:
        """Codes per frame, all streams: ``S·K``."""
        return self.num_streams * self.num_codebooks

    @property
    def codebook_offsets(self) -> list[int]:
        """flat_frames: the first id of each channel's vocabulary slice, length ``S·K``."""
        return [self.offset + c * self.codebook_size for c in range(self.channels)]

    @property
    def vocab_end(self) -> int:
        """flat_frames: one past the last audio id (the LM's vocabulary must cover it)."""
        return self.offset + self.channels * self.codebook_size

    @property
    def max_delay(self) -> int:
        return max(self.delays, default=0)

    def tokens_per_second(self) -> float:
        per_frame = self.channels if self.kind == "flat_frames" else 1
        return per_frame * self.frame_rate_hz

    def _check_codes(self, codes: Tensor) -> None:
        if codes.dim() != 3 or codes.shape[1] != self.channels:
            raise ValueError(f"codes must be [B, C={self.channels}, F] (streams × codebooks, frames), got {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, codebook_size={self.codebook_size})")

    def flatten(self, codes: Tensor) -> Tensor:
        """codes ``[B, C, F]`` → ids ``[B, F·C]``: frame-major, each channel in its own vocab slice."""
        self._check_codes(codes)
        offsets = torch.tensor(self.codebook_offsets, device=codes.device, dtype=codes.dtype)
        return (codes + offsets[None, :, None]).transpose(1, 2).reshape(codes.shape[0], -1)

    def unflatten(self, ids: Tensor) -> Tensor:
        """ids ``[B, F·C]`` → codes ``[B, C, F]``; raises if a token is not the expected channel's."""
        B, N = ids.shape
        if N % self.channels:
            raise ValueError(f"flat ids length {N} is not a whole number of frames of {self.channels} tokens")
        offsets = torch.tensor(self.codebook_offsets, device=ids.device, dtype=ids.dtype)
        codes = ids.reshape(B, N // self.channels, self.channels).transpose(1, 2) - offsets[None, :, None]
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise ValueError("flat ids hold tokens outside their channel's vocabulary slice (text, specials, misaligned frames)")
        return codes

    def apply_delay(self, codes: Tensor, pad_id: int) -> Tensor:
        """codes ``[B, C, F]`` → ``[B, C, F + max_delay]``: channel c shifted right by ``delays[c % K]``, gaps = ``pad_id``."""
        self._check_codes(codes)
        B, C, F = codes.shape
        out = codes.new_full((B, C, F + self.max_delay), pad_id)
        for c in range(C):
            d = self.delays[c % self.num_codebooks] if self.delays else 0
            out[:, c, d : d + F] = codes[:, c]
        return out

    def undo_delay(self, delayed: Tensor) -> Tensor:
        """Inverse of :meth:`apply_delay`: ``[B, C, F + max_delay]`` → ``[B, C, F]``."""
        B, C, N = delayed.shape
        F = N - self.max_delay
        if C != self.channels or F < 0:
            raise ValueError(f"delayed codes must be [B, {self.channels}, F + {self.max_delay}], got {tuple(delayed.shape)}")
        out = delayed.new_empty((B, C, F))
        for c in range(C):
            d = self.delays[c % self.num_codebooks] if self.delays else 0
            out[:, c] = delayed[:, c, d : d + F]
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenLayout:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown token_layout fields {unknown}; known: {sorted(known)}")
        return cls(**d)
