"""Conditioning: the global AdaLN vector and the frame-aligned Synchformer condition (paper §3.2).

global  = MLP([Fourier(t) ; start-second emb ; duration-second emb ; mean CLIP ; mean caption])
frame_i = global + SyncMLP(sync features resampled BY TIME onto latent frame i)
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from model.config import MMDiTConfig
from model.inputs import has_values

# number of vectors concatenated into the global MLP: timestep, start, duration, CLIP, caption
_GLOBAL_PARTS = 5


class FourierTimestep(nn.Module):
    """Sinusoidal features of the flow time t in [0, 1], projected to the hidden width."""

    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        half = cfg.fourier_dim // 2
        freqs = torch.exp(-math.log(cfg.fourier_max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.scale = cfg.timestep_scale
        self.proj = nn.Linear(cfg.fourier_dim, cfg.hidden_dim)

    def forward(self, t: Tensor) -> Tensor:
        # t: [B] -> [B, H]
        angles = (t.float() * self.scale)[:, None] * self.freqs[None]
        return self.proj(torch.cat([angles.cos(), angles.sin()], dim=-1))


class SecondsEmbedding(nn.Module):
    """A learnable vector per whole second; fractional seconds interpolate between neighbours."""

    def __init__(self, num_seconds: int, dim: int):
        super().__init__()
        self.table = nn.Embedding(num_seconds, dim)
        self.last = num_seconds - 1

    def forward(self, seconds: Tensor) -> Tensor:
        # seconds: [B] float -> [B, H]
        s = seconds.float().clamp(0, self.last)
        lo = s.floor().long()
        hi = (lo + 1).clamp(max=self.last)
        frac = (s - lo.float())[:, None]
        return self.table(lo) * (1 - frac) + self.table(hi) * frac


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    # x: [B, L, D]; mask: [B, L] bool with at least one True per row -> [B, D]
    w = mask.to(x.dtype)[..., None]
    return (x * w).sum(1) / w.sum(1).clamp(min=1)


def resample_by_time(
    features: Tensor, lengths: Tensor, src_rate: float, dst_rate: float, dst_frames: int
) -> Tensor:
    """Linearly interpolate a feature sequence onto another frame rate, by time, not by index.

    Frame i of the destination covers [i/dst_rate, (i+1)/dst_rate); its centre is read from the
    source at the same instant (source frame centres at (j+0.5)/src_rate). Reads are clamped to each
    sample's real source frames (`lengths`), so padding of the source never leaks in.

    features: [B, S, D]; lengths: [B] (>= 1) -> [B, dst_frames, D]
    """
    B, S, D = features.shape
    if has_values(lengths) and (bool((lengths < 1).any()) or bool((lengths > S).any())):
        raise ValueError(f"source lengths must be within [1, {S}], got {lengths.tolist()}")
    centres = (torch.arange(dst_frames, device=features.device, dtype=torch.float64) + 0.5) / dst_rate
    src_pos = centres * src_rate - 0.5  # fractional source index, [T]
    last = (lengths.to(torch.float64) - 1)[:, None]  # [B, 1]
    src_pos = torch.minimum(src_pos[None, :].clamp(min=0), last)  # [B, T]
    lo = src_pos.floor().long()
    hi = torch.minimum(lo + 1, last.long())
    frac = (src_pos - lo.to(torch.float64)).to(features.dtype)[..., None]  # [B, T, 1]
    gather = lambda idx: torch.gather(features, 1, idx[..., None].expand(B, dst_frames, D))
    return gather(lo) * (1 - frac) + gather(hi) * frac


class GlobalCondition(nn.Module):
    """Shallow MLP from the concatenated global parts to the AdaLN condition vector."""

    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        dim = cfg.hidden_dim
        self.timestep = FourierTimestep(cfg)
        self.start = SecondsEmbedding(cfg.max_start_s + 1, dim)
        self.duration = SecondsEmbedding(cfg.max_duration_embeddings, dim)
        self.mlp = nn.Sequential(nn.Linear(_GLOBAL_PARTS * dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor, start_s: Tensor, duration_s: Tensor, clip_pool: Tensor, caption_pool: Tensor):
        # all inputs [B] or [B, H] -> [B, H]
        parts = [self.timestep(t), self.start(start_s), self.duration(duration_s), clip_pool, caption_pool]
        return self.mlp(torch.cat(parts, dim=-1))


class SyncCondition(nn.Module):
    """Synchformer features -> per-latent-frame condition (resampled by time, then an MLP)."""

    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        self.src_rate, self.dst_rate = cfg.sync_rate, cfg.latent_rate
        self.mlp = nn.Sequential(
            nn.Linear(cfg.sync_dim, cfg.hidden_dim), nn.SiLU(), nn.Linear(cfg.hidden_dim, cfg.hidden_dim)
        )

    def forward(self, sync: Tensor, sync_lengths: Tensor, latent_frames: int) -> Tensor:
        # sync: [B, S, D_sync] -> [B, T, H]
        on_latent = resample_by_time(sync, sync_lengths, self.src_rate, self.dst_rate, latent_frames)
        return self.mlp(on_latent)
