"""The interface every speech tokenizer in distill shows (the Mimi one): 24 kHz in, 12.5 Hz frames of 1920 samples."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor

SAMPLE_RATE = 24_000
FRAME_SIZE = 1920
FRAME_RATE = SAMPLE_RATE / FRAME_SIZE  # 12.5 Hz


@runtime_checkable
class SpeechCodec(Protocol):
    sample_rate: int
    frame_size: int
    frame_rate: float
    num_codebooks: int
    codebook_size: int

    def encode(self, wav: Tensor, num_quantizers: int | None = None) -> Tensor:
        """``wav [B, S]`` float at ``sample_rate`` → codes ``[B, K, ceil(S / frame_size)]`` int64."""
        ...

    def decode(self, codes: Tensor) -> Tensor:
        """codes ``[B, K, T]`` → ``wav [B, T * frame_size]`` float32."""
        ...


def pad_to_frames(wav: Tensor, frame_size: int = FRAME_SIZE) -> Tensor:
    """Right-pad ``wav [B, S]`` with zeros to a whole number of frames."""
    import torch.nn.functional as F

    rem = (-wav.shape[-1]) % frame_size
    return F.pad(wav, (0, rem)) if rem else wav
