"""transformers' ``MimiModel`` behind the same interface as the embedded codec (weights from a LOCAL path only)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from teachers.codec.base import pad_to_frames


class MimiCodec(nn.Module):
    """``encode(wav [B, S]) → codes [B, K, T]``, ``decode(codes) → wav [B, T * frame_size]`` over a ``MimiModel``."""

    kind = "mimi"

    def __init__(self, model: nn.Module, num_codebooks: int | None = None):
        super().__init__()
        self.model = model.eval()
        cfg = model.config
        self.sample_rate = cfg.sampling_rate
        self.frame_rate = float(cfg.frame_rate)
        self.frame_size = round(self.sample_rate / self.frame_rate)
        self.num_codebooks = num_codebooks or cfg.num_quantizers
        self.codebook_size = cfg.codebook_size

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, num_codebooks: int | None = None) -> MimiCodec:
        from transformers import MimiModel

        if not Path(path).is_dir():
            raise FileNotFoundError(f"Mimi codec path {str(path)!r} is not a local directory (no hub downloads)")
        return cls(MimiModel.from_pretrained(str(path), local_files_only=True), num_codebooks)

    @torch.no_grad()
    def encode(self, wav: Tensor, num_quantizers: int | None = None) -> Tensor:
        """``wav [B, S]`` → codes ``[B, K, ceil(S / frame_size)]`` int64."""
        if wav.dim() != 2:
            raise ValueError(f"encode expects wav [B, S], got shape {tuple(wav.shape)}")
        wav = pad_to_frames(wav.float(), self.frame_size)
        out = self.model.encode(wav[:, None], num_quantizers=num_quantizers or self.num_codebooks)
        return out.audio_codes.long()

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes ``[B, K, T]`` → ``wav [B, T * frame_size]``."""
        return self.model.decode(codes).audio_values[:, 0]
