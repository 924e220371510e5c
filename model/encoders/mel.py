"""Mel front end of the audio latent codecs: wave → log-mel spectrogram.

The 44.1 kHz setting is MMAudio's `get_mel_converter('44k')` (the features `v1-44.pth` was
trained on and BigVGAN-v2 44 kHz 128-band was trained to invert):

    wave [B, S] ─clamp [-1, 1]─ reflect pad (n_fft − hop)/2 both sides
         ─STFT (n_fft 2048, hop 512, periodic Hann 2048, centre off)─ |·| = sqrt(re² + im² + 1e-9)
         ─slaney mel filterbank (128 bands, 0 … sr/2)─ log(clamp(·, min=1e-5)) → [B, 128, S/512]

For S a multiple of the hop the output has exactly S/hop frames. Every step is the reference's
own operation in the reference's order, so the result equals it bit for bit
(tests/encoders/test_mel.py). The slaney filterbank is computed here (no librosa at run time) with
the same float64 maths and float32 casts as `librosa.filters.mel`; the test checks equality with it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Slaney's mel scale (Auditory Toolbox): linear below 1 kHz, logarithmic above.
SLANEY_HZ_PER_MEL = 200.0 / 3
SLANEY_LOG_START_HZ = 1000.0
SLANEY_LOG_STEP = np.log(6.4) / 27.0


@dataclass(frozen=True)
class MelConfig:
    sample_rate: int = 44100
    n_fft: int = 2048
    n_mels: int = 128
    hop: int = 512
    win: int = 2048
    fmin: float = 0.0
    fmax: float | None = None  # None: sample_rate / 2
    magnitude_eps: float = 1e-9  # inside the square root of the magnitude
    log_floor: float = 1e-5  # clamp before the natural log


MMAUDIO_44K = MelConfig()  # get_mel_converter('44k') of MMAudio


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel of frequencies in Hz (float64)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / SLANEY_HZ_PER_MEL
    log_start_mel = SLANEY_LOG_START_HZ / SLANEY_HZ_PER_MEL
    above = hz >= SLANEY_LOG_START_HZ
    mel = np.where(above, log_start_mel + np.log(np.where(above, hz, 1.0) / SLANEY_LOG_START_HZ) / SLANEY_LOG_STEP,
                   mel)
    return mel


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel` (float64)."""
    mel = np.asarray(mel, dtype=np.float64)
    hz = SLANEY_HZ_PER_MEL * mel
    log_start_mel = SLANEY_LOG_START_HZ / SLANEY_HZ_PER_MEL
    above = mel >= log_start_mel
    return np.where(above, SLANEY_LOG_START_HZ * np.exp(SLANEY_LOG_STEP * (mel - log_start_mel)), hz)


def slaney_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                          fmax: float | None = None) -> np.ndarray:
    """Triangular slaney-normalised mel filters [n_mels, n_fft//2 + 1] float32 (librosa's defaults)."""
    fmax = float(sample_rate) / 2 if fmax is None else fmax
    bin_hz = np.fft.rfftfreq(n=n_fft, d=1.0 / sample_rate)
    # n_mels + 2 edges evenly spaced in mel between fmin and fmax
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges_hz)
    dist = np.subtract.outer(edges_hz, bin_hz)  # [n_mels + 2, bins]
    filters = np.zeros((n_mels, n_fft // 2 + 1), dtype=np.float32)
    for m in range(n_mels):
        rising = -dist[m] / widths[m]
        falling = dist[m + 2] / widths[m + 1]
        filters[m] = np.maximum(0, np.minimum(rising, falling))
    filters *= (2.0 / (edges_hz[2:n_mels + 2] - edges_hz[:n_mels]))[:, None]  # constant energy per band
    return filters


class MelFrontEnd(nn.Module):
    """wave [B, S] in [-1, 1] → natural-log mel [B, n_mels, frames]."""

    def __init__(self, cfg: MelConfig = MMAUDIO_44K):
        super().__init__()
        self.cfg = cfg
        fb = slaney_mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
        self.register_buffer("mel_basis", torch.from_numpy(fb).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win), persistent=False)

    def magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """wave [B, S] → linear STFT magnitude [B, n_fft//2 + 1, frames]."""
        c = self.cfg
        wave = wave.clamp(min=-1.0, max=1.0).to(self.mel_basis.device)
        pad = int((c.n_fft - c.hop) / 2)
        wave = F.pad(wave.unsqueeze(1), [pad, pad], mode="reflect").squeeze(1)
        spec = torch.stft(wave, c.n_fft, hop_length=c.hop, win_length=c.win, window=self.window, center=False,
                          normalized=False, onesided=True, return_complex=True)
        spec = torch.view_as_real(spec)
        return torch.sqrt(spec.pow(2).sum(-1) + c.magnitude_eps)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 2:
            raise ValueError(f"mel front end takes a wave [B, S], got shape {tuple(wave.shape)}")
        mel = torch.matmul(self.mel_basis, self.magnitude(wave))
        return torch.log(torch.clamp(mel, min=self.cfg.log_floor))  # [B, n_mels, S/hop]
