"""The embedded default speech tokenizer: causal log-mel frames + residual VQ fitted by k-means.

Each 80 ms frame (1920 samples at 24 kHz) stacks four 20 ms log-mel sub-frames, normalised per mel bin with
statistics of the training split; a residual VQ of K codebooks (k-means per stage, fitted on the training split only)
turns the stacked vector into K codes. Decoding de-quantises, un-normalises, maps mel → linear magnitude (NNLS) and runs
Griffin-Lim, so tokens can be listened to. No neural network, no downloaded weights; saved as
``codec.safetensors`` + ``codec.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from teachers.codec.base import FRAME_SIZE, SAMPLE_RATE, pad_to_frames
from teachers.codec.mel import MelAnalysis
from teachers.codec.rvq import fit_rvq, rvq_decode, rvq_encode


@dataclass
class MelRVQConfig:
    sample_rate: int = SAMPLE_RATE
    frame_size: int = FRAME_SIZE
    hop: int = 480  # 20 ms sub-frames, 4 per frame
    n_fft: int = 2048
    win_length: int = 1920
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 11_000.0
    num_codebooks: int = 8
    codebook_size: int = 1024
    griffin_lim_iters: int = 32

    @property
    def subframes(self) -> int:
        return self.frame_size // self.hop

    @property
    def dim(self) -> int:
        return self.subframes * self.n_mels


class MelRVQCodec(nn.Module):
    """Mimi-like interface: ``encode(wav [B, S]) → codes [B, K, T]``, ``decode(codes) → wav [B, T * 1920]``."""

    kind = "mel_rvq"

    def __init__(self, config: MelRVQConfig, mean: Tensor | None = None, std: Tensor | None = None,
                 codebooks: Tensor | None = None):
        super().__init__()
        if config.frame_size % config.hop:
            raise ValueError(f"frame_size={config.frame_size} must be a multiple of hop={config.hop}")
        self.config = config
        self.sample_rate, self.frame_size = config.sample_rate, config.frame_size
        self.frame_rate = config.sample_rate / config.frame_size
        self.num_codebooks, self.codebook_size = config.num_codebooks, config.codebook_size
        self.analysis = MelAnalysis(config.sample_rate, config.n_fft, config.win_length, config.hop, config.n_mels,
                                    config.f_min, config.f_max)
        self.register_buffer("mean", mean if mean is not None else torch.zeros(config.n_mels))
        self.register_buffer("std", std if std is not None else torch.ones(config.n_mels))
        shape = (config.num_codebooks, config.codebook_size, config.dim)
        self.register_buffer("codebooks", codebooks if codebooks is not None else torch.zeros(shape))
        if tuple(self.codebooks.shape) != shape:
            raise ValueError(f"codebooks have shape {tuple(self.codebooks.shape)}, config says {shape}")

    def features(self, wav: Tensor) -> Tensor:
        """``wav [B, S]`` → normalised stacked log-mel ``[B, T, subframes * n_mels]`` (T = ceil(S / frame_size))."""
        wav = pad_to_frames(wav.float(), self.frame_size)
        lm = (self.analysis.log_mel(wav) - self.mean) / self.std
        b, n, m = lm.shape
        return lm.reshape(b, n // self.config.subframes, self.config.subframes * m)

    def features_to_wav(self, feats: Tensor) -> Tensor:
        """Normalised stacked log-mel ``[B, T, D]`` → ``wav [B, T * frame_size]`` via NNLS + Griffin-Lim."""
        b, t, _ = feats.shape
        lm = feats.reshape(b, t * self.config.subframes, self.config.n_mels) * self.std + self.mean
        mag = self.analysis.mel_to_linear(torch.exp(lm))
        return self.analysis.griffin_lim(mag, n_iter=self.config.griffin_lim_iters)

    @torch.no_grad()
    def encode(self, wav: Tensor, num_quantizers: int | None = None) -> Tensor:
        """``wav [B, S]`` at 24 kHz → codes ``[B, K, ceil(S / 1920)]`` int64 (K = num_quantizers or all)."""
        if wav.dim() != 2:
            raise ValueError(f"encode expects wav [B, S], got shape {tuple(wav.shape)}")
        k = self._k(num_quantizers)
        feats = self.features(wav)
        b, t, d = feats.shape
        codes = rvq_encode(feats.reshape(b * t, d), self.codebooks[:k])
        return codes.reshape(k, b, t).transpose(0, 1).contiguous()

    @torch.no_grad()
    def dequantize(self, codes: Tensor) -> Tensor:
        """codes ``[B, K, T]`` → normalised features ``[B, T, D]``."""
        b, k, t = codes.shape
        self._k(k)
        flat = codes.transpose(0, 1).reshape(k, b * t)
        return rvq_decode(flat, self.codebooks).reshape(b, t, -1)

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """codes ``[B, K, T]`` → ``wav [B, T * 1920]`` float32."""
        return self.features_to_wav(self.dequantize(codes))

    def _k(self, k: int | None) -> int:
        if k is None:
            return self.num_codebooks
        if not 1 <= k <= self.num_codebooks:
            raise ValueError(f"num_quantizers={k}; this codec has 1..{self.num_codebooks}")
        return k

    @classmethod
    def fit(cls, wavs, config: MelRVQConfig, max_frames: int = 60_000, iters: int = 20, seed: int = 0, log=print) -> MelRVQCodec:
        """Fit normalisation and RVQ codebooks on an iterable of ``wav [S]`` tensors (the training split only)."""
        codec = cls(config)
        feats = []
        for w in wavs:
            feats.append(codec.analysis.log_mel(pad_to_frames(w.float()[None], config.frame_size))[0])
        lm = torch.cat(feats)
        codec.mean.copy_(lm.mean(0))
        codec.std.copy_(lm.std(0).clamp(min=1e-3))
        stacked = torch.cat([codec.features_from_log_mel(f) for f in feats])
        gen = torch.Generator().manual_seed(seed)
        if stacked.shape[0] > max_frames:
            stacked = stacked[torch.randperm(stacked.shape[0], generator=gen)[:max_frames]]
        log(f"fitting RVQ {config.num_codebooks}x{config.codebook_size} on {stacked.shape[0]} frames of dim {stacked.shape[1]}")
        codec.codebooks.copy_(fit_rvq(stacked, config.num_codebooks, config.codebook_size, iters, seed, log))
        return codec

    def features_from_log_mel(self, lm: Tensor) -> Tensor:
        """Un-normalised log-mel ``[N, n_mels]`` (N a multiple of subframes) → normalised frames ``[N / subframes, D]``."""
        return ((lm - self.mean) / self.std).reshape(-1, self.config.dim)

    def save(self, path: str | Path, codebook_dtype: torch.dtype = torch.float16) -> Path:
        """Write ``codec.safetensors`` (codebooks stored in ``codebook_dtype``) + ``codec.json``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({"mean": self.mean.contiguous(), "std": self.std.contiguous(),
                   "codebooks": self.codebooks.to(codebook_dtype).contiguous()}, str(path / "codec.safetensors"))
        meta = {"kind": self.kind, "frame_rate": self.frame_rate, **asdict(self.config)}
        (path / "codec.json").write_text(json.dumps(meta, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> MelRVQCodec:
        path = Path(path)
        meta = json.loads((path / "codec.json").read_text())
        if meta.pop("kind", None) != cls.kind:
            raise ValueError(f"{path}/codec.json is not a {cls.kind} codec")
        meta.pop("frame_rate", None)
        t = load_file(str(path / "codec.safetensors"))
        return cls(MelRVQConfig(**meta), t["mean"].float(), t["std"].float(), t["codebooks"].float())
