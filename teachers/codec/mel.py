"""Causal log-mel analysis and Griffin-Lim synthesis (plain torch; no librosa/torchaudio).

Analysis frame ``i`` (hop ``h``) ends at sample ``(i + 1) * h``: it sees only the past, so encoding a prefix of a
waveform gives the prefix of the full encoding (the codec is causal at frame granularity).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def hz_to_mel(f: Tensor | float) -> Tensor:
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> Tensor:
    """Triangular HTK-mel filters, area-normalised (Slaney style). Returns ``[n_mels, n_fft // 2 + 1]`` float32."""
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    edges = mel_to_hz(torch.linspace(hz_to_mel(f_min).item(), hz_to_mel(f_max).item(), n_mels + 2, dtype=torch.float64))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    fb = torch.clamp(torch.minimum(up, down), min=0.0)
    fb = fb * (2.0 / (hi - lo))
    return fb.float()


class MelAnalysis:
    """STFT magnitude / log-mel with causal framing and the matching Griffin-Lim inverse.

    Args:
        sample_rate, n_fft, win_length, hop: STFT geometry (samples).
        n_mels, f_min, f_max: mel filterbank.
    """

    def __init__(self, sample_rate: int, n_fft: int, win_length: int, hop: int, n_mels: int, f_min: float, f_max: float):
        self.sample_rate, self.n_fft, self.win_length, self.hop = sample_rate, n_fft, win_length, hop
        self.fb = mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max)
        self.window = torch.hann_window(win_length)
        # Centre of analysis frame i lies at i * hop - lag; synthesis (centred STFT) puts it at i * hop.
        self.lag = n_fft - hop - n_fft // 2

    def magnitude(self, wav: Tensor) -> Tensor:
        """``wav [B, S]`` (S a multiple of hop) → STFT magnitude ``[B, S // hop, n_fft // 2 + 1]``."""
        x = torch.nn.functional.pad(wav, (self.n_fft - self.hop, 0))
        spec = torch.stft(x, self.n_fft, self.hop, self.win_length, self.window.to(wav.device), center=False, return_complex=True)
        return spec.abs().transpose(1, 2)

    def log_mel(self, wav: Tensor, eps: float = 1e-5) -> Tensor:
        """``wav [B, S]`` → natural-log mel magnitude ``[B, S // hop, n_mels]``."""
        return torch.log(self.magnitude(wav) @ self.fb.to(wav.device).T + eps)

    def mel_to_linear(self, mel: Tensor, n_iter: int = 16) -> Tensor:
        """Non-negative least squares (multiplicative updates from the pseudo-inverse) ``[.., n_mels] → [.., F]``."""
        fb = self.fb.to(mel.device)
        lin = torch.clamp(mel @ torch.linalg.pinv(fb).T, min=1e-6)
        target = mel @ fb
        for _ in range(n_iter):
            lin = lin * target / ((lin @ fb.T) @ fb + 1e-8)
        return lin

    def griffin_lim(self, mag: Tensor, n_iter: int = 32, momentum: float = 0.99, seed: int = 0) -> Tensor:
        """Fast Griffin-Lim: magnitude ``[B, T, F]`` (causal frames) → waveform ``[B, T * hop]``."""
        b, t, _ = mag.shape
        length = t * self.hop
        window = self.window.to(mag.device)
        # A centred STFT of length L has L // hop + 1 frames: repeat the last one.
        spec_mag = torch.cat([mag, mag[:, -1:]], dim=1).transpose(1, 2)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        angles = torch.exp(2j * math.pi * torch.rand(spec_mag.shape, generator=gen)).to(mag.device)
        prev = torch.zeros_like(angles)
        stft_kw = dict(n_fft=self.n_fft, hop_length=self.hop, win_length=self.win_length, window=window, center=True)
        for _ in range(n_iter):
            y = torch.istft(spec_mag * angles, length=length, **stft_kw)
            rebuilt = torch.stft(y, return_complex=True, **stft_kw)
            angles = rebuilt - (momentum / (1 + momentum)) * prev
            angles = angles / (angles.abs() + 1e-12)
            prev = rebuilt
        y = torch.istft(spec_mag * angles, length=length, **stft_kw)
        # Synthesis put frame centres at i * hop; analysis had them at i * hop - lag: shift back.
        return torch.nn.functional.pad(y[:, self.lag:], (0, self.lag)) if self.lag > 0 else y
