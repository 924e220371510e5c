"""Weight-free latent codec: 40-band log-mel "latents" at 44100/1024 Hz, decoded by Griffin-Lim.

Same interface and shapes as the mel-VAE codec (`MelVAECodec`), so the demo and the tests train
and generate audible audio with no downloaded weights. Not a learned codec: its latents are a
smoothed spectral envelope (40 bands cannot hold the harmonics), and the decoded audio sounds like
a whispered / noisy version of the input; speech stays intelligible (tests/encoders/test_codec_logmel.py
measures the spectral convergence and transcribes a round trip with whisper tiny.en).

    encode: wave [B, S] ─pad to 1024·T─ reflect pad (n_fft − hop)/2 ─STFT (n_fft 2048, hop 512, Hann)─ |·|
            ─average 2 sub-frames → [B, 1025, T]─ 40-band slaney mel (0 … 22.05 kHz)
            ─log(clamp(·, 1e-5))─ (· − LOG_MEL_OFFSET) / LOG_MEL_SCALE → mean [B, T, 40]; std = 0
    decode: latent [B, T, 40] ─undo the affine─ exp ─linear interpolation to the 512-sample grid─
            pseudo-inverse of the filterbank (clamped ≥ 0) → magnitude [B, 1025, 2T + 1]
            ─fast Griffin-Lim (GL_ITERS iterations, momentum GL_MOMENTUM, seeded initial phase)
            → wave [B, 1024·T]

Decode is deterministic (fixed iterations, fixed initial phase). Any change to these numbers
changes what a trained network's latents mean: bump CODEC_VERSION (it is part of `identity`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from model.encoders.mel import slaney_mel_filterbank
from model.encoders.registry import AUDIO_SAMPLE_RATE, LATENT_HOP, feature_spec

CODEC_VERSION = "v1"
N_FFT = 2048
SUB_FRAMES = 2  # STFT frames per latent frame (75 % window overlap)
STFT_HOP = LATENT_HOP // SUB_FRAMES  # 512 samples
N_MELS = 40
LOG_FLOOR = 1e-5
# log-mel ≈ LOG_MEL_OFFSET ± LOG_MEL_SCALE: espeak-ng speech at −25 dBFS RMS has mean −6.4, std 3.5
# over bands and frames (range −11.5 … 0.3), so latents are ≈ 0 ± 1; digital silence maps to −1.6.
LOG_MEL_OFFSET = -6.0
LOG_MEL_SCALE = 3.5
GL_ITERS = 16  # more barely helps: spectral convergence 0.599 at 16, 0.595 at 32
GL_MOMENTUM = 0.99
GL_SEED = 0
MIN_DECODE_FRAMES = 2  # GL runs on at least 2048 samples (> the n_fft/2 reflect padding)


class LogMelCodec:
    """Weight-free latent codec (registry name "logmel-codec")."""

    def __init__(self, name: str = "logmel-codec", *, device="cpu"):
        self.spec = feature_spec(name)
        if self.spec.dim != N_MELS or self.spec.sample_rate != AUDIO_SAMPLE_RATE:
            raise ValueError(f"registry entry {name!r} (dim {self.spec.dim}, {self.spec.sample_rate} Hz) does not "
                             f"match the log-mel codec ({N_MELS} bands, {AUDIO_SAMPLE_RATE} Hz)")
        self.identity = f"{name}@{CODEC_VERSION}"
        self.device = torch.device(device)
        fb = torch.from_numpy(slaney_mel_filterbank(AUDIO_SAMPLE_RATE, N_FFT, N_MELS)).double()
        self.mel_basis = fb.float().to(self.device)  # [40, 1025]
        self.mel_inverse = torch.linalg.pinv(fb).float().to(self.device)  # [1025, 40]
        self.window = torch.hann_window(N_FFT, device=self.device)

    @classmethod
    def load(cls, name: str = "logmel-codec", weights: str | None = None, *, device="cpu", dtype=None,
             vocoder_weights: str | None = None) -> LogMelCodec:
        if weights is not None or vocoder_weights is not None:
            raise ValueError(f"{name} is weight-free; it takes no weights (got {weights or vocoder_weights!r})")
        return cls(name, device=device)

    # ---- encode ----
    @torch.inference_mode()
    def encode(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wave [B, S] 44.1 kHz → (mean, std) [B, ceil(S/1024), 40]; std is 0 (deterministic)."""
        wave = torch.as_tensor(wave)
        if wave.ndim != 2:
            raise ValueError(f"{self.spec.name}.encode takes a wave [B, S], got shape {tuple(wave.shape)}")
        b = wave.shape[0]
        t = max(1, math.ceil(wave.shape[-1] / LATENT_HOP))
        wave = F.pad(wave.float().to(self.device).clamp(-1.0, 1.0), (0, t * LATENT_HOP - wave.shape[-1]))
        pad = (N_FFT - STFT_HOP) // 2  # sub-frame j is centred on sample 512·j + 256
        x = F.pad(wave.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        mag = torch.stft(x, N_FFT, hop_length=STFT_HOP, window=self.window, center=False,
                         return_complex=True).abs()  # [B, 1025, 2T]
        mag = mag.reshape(b, -1, t, SUB_FRAMES).mean(-1)  # [B, 1025, T]: frame t centred on 1024·t + 512
        logmel = torch.log(torch.clamp(self.mel_basis @ mag, min=LOG_FLOOR))  # [B, 40, T]
        mean = ((logmel - LOG_MEL_OFFSET) / LOG_MEL_SCALE).transpose(1, 2).contiguous()
        return mean, torch.zeros_like(mean)

    # ---- decode ----
    def magnitude(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, T, 40] → linear magnitude on the STFT grid [B, 1025, 2T + 1] (frame j at sample 512·j)."""
        latent = torch.as_tensor(latent).float().to(self.device)
        if latent.ndim != 3 or latent.shape[-1] != N_MELS or latent.shape[1] == 0:
            raise ValueError(f"{self.spec.name}.decode takes latents [B, T ≥ 1, {N_MELS}], got shape "
                             f"{tuple(latent.shape)}")
        logmel = latent.transpose(1, 2) * LOG_MEL_SCALE + LOG_MEL_OFFSET  # [B, 40, T]
        t = logmel.shape[-1]
        # STFT frame j sits at latent coordinate (j − SUB_FRAMES/2) / SUB_FRAMES; linear, clamped at the ends
        pos = ((torch.arange(SUB_FRAMES * t + 1, dtype=torch.float32, device=self.device) - SUB_FRAMES / 2)
               / SUB_FRAMES).clamp(0, t - 1)
        lo = pos.floor().long()
        hi = (lo + 1).clamp(max=t - 1)
        frac = pos - lo
        logmel = logmel[..., lo] * (1 - frac) + logmel[..., hi] * frac  # [B, 40, 2T + 1]
        return torch.clamp(self.mel_inverse @ torch.exp(logmel), min=0.0)

    @torch.inference_mode()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, T, 40] → wave [B, 1024·T] float32 at 44.1 kHz."""
        t = torch.as_tensor(latent).shape[1] if torch.as_tensor(latent).ndim == 3 else 0
        if 0 < t < MIN_DECODE_FRAMES:  # the STFT's reflect padding needs a longer signal: hold the last frame
            latent = torch.cat([latent, latent[:, -1:].expand(-1, MIN_DECODE_FRAMES - t, -1)], dim=1)
        mag = self.magnitude(latent)
        length = (mag.shape[-1] - 1) * STFT_HOP
        return griffin_lim(mag, self.window, length)[:, :t * LATENT_HOP]


def griffin_lim(mag: torch.Tensor, window: torch.Tensor, length: int, iters: int = GL_ITERS,
                momentum: float = GL_MOMENTUM, seed: int = GL_SEED) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013): magnitude [B, F, N] → wave [B, length], deterministic."""
    gen = torch.Generator().manual_seed(seed)
    # one [F, N] phase for every batch item: decoding a batch equals decoding its items one by one
    phase = torch.rand(mag.shape[-2:], generator=gen, dtype=torch.float32).to(mag.device) * (2 * np.pi)
    spec = torch.polar(mag, phase)

    def stft(w):
        return torch.stft(w, N_FFT, hop_length=STFT_HOP, window=window, center=True, return_complex=True)

    def istft(s):
        return torch.istft(s, N_FFT, hop_length=STFT_HOP, window=window, center=True, length=length)

    prev = None
    for _ in range(iters):
        rebuilt = stft(istft(spec))  # nearest consistent spectrogram
        accel = rebuilt if prev is None else rebuilt + momentum * (rebuilt - prev)
        prev = rebuilt
        spec = mag * torch.sgn(accel)  # keep the phase, impose the magnitude
    return istft(spec).clamp(-1.0, 1.0)
