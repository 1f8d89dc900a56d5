"""Speech tokenizers with one Mimi-like interface (24 kHz, 12.5 Hz frames of 1920 samples, K codebooks).

``load_codec(path)`` returns the embedded :class:`MelRVQCodec` (``codec.json`` + ``codec.safetensors``) or, for a
directory holding a transformers ``MimiModel`` (``config.json`` with ``model_type: mimi``), a :class:`MimiCodec`.
"""

from __future__ import annotations

import json
from pathlib import Path

from teachers.codec.base import FRAME_RATE, FRAME_SIZE, SAMPLE_RATE, SpeechCodec, pad_to_frames
from teachers.codec.melrvq import MelRVQCodec, MelRVQConfig
from teachers.codec.mimi import MimiCodec


def load_codec(path: str | Path, num_codebooks: int | None = None) -> SpeechCodec:
    """Load a codec from a local directory (see module docstring)."""
    path = Path(path)
    if (path / "codec.json").is_file():
        return MelRVQCodec.load(path)
    cfg = path / "config.json"
    if cfg.is_file() and json.loads(cfg.read_text()).get("model_type") == "mimi":
        return MimiCodec.from_pretrained(path, num_codebooks)
    raise FileNotFoundError(f"{str(path)!r} holds neither codec.json (mel_rvq) nor a Mimi config.json")


__all__ = ["FRAME_RATE", "FRAME_SIZE", "SAMPLE_RATE", "MelRVQCodec", "MelRVQConfig", "MimiCodec", "SpeechCodec",
           "load_codec", "pad_to_frames"]
