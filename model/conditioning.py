"""Conditioning: the global AdaLN vector and the frame-aligned Synchformer condition (paper §3.2).

global  = MLP([Fourier(t) ; start-second emb ; duration-second emb ; mean CLIP ; mean caption])
frame_i = global + SyncMLP(sync tokens (+ position within their window) resampled BY TIME onto
          latent frame i)

Sync tokens are placed by their real times (`Conditions.sync_times`, seconds from the clip
start, the centre of each token). The Synchformer's windows overlap (16 frames every 8), so
tokens of neighbouring windows share a time; tokens at the same time are averaged.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.blocks import TemporalConv, zero_padding
from model.config import MMDiTConfig
from model.inputs import check_values_of

# number of vectors concatenated into the global MLP: timestep, start, duration, CLIP, caption
_GLOBAL_PARTS = 5


class FourierTimestep(nn.Module):
    """Sinusoidal features of the flow time t in [0, 1], projected to the hidden width."""

    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        half = cfg.fourier_dim // 2
        freqs = torch.exp(-math.log(cfg.fourier_max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.max_period = cfg.fourier_max_period
        self.scale = cfg.timestep_scale
        self.proj = nn.Linear(cfg.fourier_dim, cfg.hidden_dim)

    def forward(self, t: Tensor) -> Tensor:
        # t: [B] -> [B, H]; features in fp32 whatever the parameter dtype (the buffer may be cast)
        half = self.freqs.shape[0]
        freqs = torch.exp(
            -math.log(self.max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half
        )
        angles = (t.float() * self.scale)[:, None] * freqs[None]
        features = torch.cat([angles.cos(), angles.sin()], dim=-1)
        return self.proj(features.to(self.proj.weight.dtype))


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
        frac = (s - lo.float())[:, None].to(self.table.weight.dtype)
        return self.table(lo) * (1 - frac) + self.table(hi) * frac


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    # x: [B, L, D]; mask: [B, L] bool with at least one True per row -> [B, D]
    # selection, not multiplication: NaN/inf in padded slots cannot reach the mean
    keep = mask[..., None]
    total = torch.where(keep, x, torch.zeros((), dtype=x.dtype, device=x.device)).sum(1)
    return total / keep.sum(1).clamp(min=1).to(x.dtype)


def layout_token_times(num_tokens: int, cfg: MMDiTConfig, device=None) -> Tensor:
    """[num_tokens] centre times (s) of Synchformer tokens of consecutive windows, window-major.

    Same formula as `registry.sync_token_times` (tested equal), in torch so that it compiles:
    token k of window w covers frames stride·w + k·f … + f − 1 (f = window / tokens frames).
    """
    per = cfg.sync_window_frames // cfg.sync_tokens_per_window
    j = torch.arange(num_tokens, device=device)
    window, k = j // cfg.sync_tokens_per_window, j % cfg.sync_tokens_per_window
    first = cfg.sync_window_stride * window + per * k
    return (first.to(torch.float32) + per / 2.0) / cfg.sync_frame_fps


# Token times closer than this (seconds) count as the same instant (overlapping windows).
SAME_TIME_TOLERANCE_S = 1e-4


def interpolation_weights(src_times: Tensor, src_mask: Tensor, dst_times: Tensor) -> Tensor:
    """[B, T, S] weights that read each destination time from the real source tokens.

    Linear interpolation between the nearest real token time at or before and the nearest at or
    after (tokens sharing a time are averaged); destination times outside a sample's real tokens
    are clamped to its first / last token time. Padded tokens (src_mask False) get weight 0 and
    their times are never read. Rows of a sample without any real token are all zero.

    src_times, src_mask: [B, S]; dst_times: [T] or [B, T] -> [B, T, S] float32
    """
    B = src_times.shape[0]
    inf = torch.tensor(float("inf"), device=src_times.device)
    zero = torch.zeros((), device=src_times.device)
    times = torch.where(src_mask, src_times.float(), zero)  # garbage in padding is never used
    dst = dst_times.float().expand(B, -1) if dst_times.ndim == 1 else dst_times.float()
    first = torch.where(src_mask, times, inf).amin(1, keepdim=True)  # [B, 1]
    last = torch.where(src_mask, times, -inf).amax(1, keepdim=True)
    first, last = torch.where(first.isfinite(), first, zero), torch.where(last.isfinite(), last, zero)
    q = torch.minimum(torch.maximum(dst, first), last)[..., None]  # [B, T, 1]
    t = times[:, None, :]  # [B, 1, S]
    real = src_mask[:, None, :]
    lo = torch.where(real & (t <= q), t, -inf).amax(-1, keepdim=True)  # [B, T, 1]
    hi = torch.where(real & (t >= q), t, inf).amin(-1, keepdim=True)
    lo, hi = torch.where(lo.isfinite(), lo, q), torch.where(hi.isfinite(), hi, q)
    span = hi - lo
    frac = torch.where(span > SAME_TIME_TOLERANCE_S, (q - lo) / torch.where(span > 0, span, 1.0), zero)
    at_lo = real & ((t - lo).abs() <= SAME_TIME_TOLERANCE_S)  # [B, T, S]
    at_hi = real & ((t - hi).abs() <= SAME_TIME_TOLERANCE_S)
    w_lo = at_lo.float() / at_lo.sum(-1, keepdim=True).clamp(min=1)
    w_hi = at_hi.float() / at_hi.sum(-1, keepdim=True).clamp(min=1)
    return w_lo * (1 - frac) + w_hi * frac


def resample_at_times(features: Tensor, src_times: Tensor, src_mask: Tensor, dst_times: Tensor) -> Tensor:
    """Features of tokens at `src_times` read at `dst_times` (see `interpolation_weights`).

    features: [B, S, D]; src_times, src_mask: [B, S]; dst_times: [T] or [B, T] -> [B, T, D]
    """
    weights = interpolation_weights(src_times, src_mask, dst_times).to(features.dtype)
    clean = torch.where(src_mask[..., None], features, torch.zeros((), dtype=features.dtype, device=features.device))
    return weights @ clean


def latent_frame_times(frames: int, latent_rate: float, device=None) -> Tensor:
    """[frames] centre time (s) of each latent frame: (i + 0.5) / latent_rate."""
    return (torch.arange(frames, device=device, dtype=torch.float64) + 0.5).div(latent_rate).float()


def resample_by_time(
    features: Tensor, lengths: Tensor, src_rate: float, dst_rate: float, dst_frames: int
) -> Tensor:
    """Linearly interpolate a feature sequence onto another frame rate, by time, not by index.

    Frame i of the destination covers [i/dst_rate, (i+1)/dst_rate); its centre is read from the
    source at the same instant (source frame centres at (j+0.5)/src_rate). Reads are clamped to each
    sample's real source frames (`lengths`), so padding of the source never leaks in.

    features: [B, S, D]; lengths: [B] (>= 1) -> [B, dst_frames, D]
    """
    B, S, _ = features.shape
    if check_values_of(lengths) and (bool((lengths < 1).any()) or bool((lengths > S).any())):
        raise ValueError(f"source lengths must be within [1, {S}], got {lengths.tolist()}")
    src_times = ((torch.arange(S, device=features.device, dtype=torch.float64) + 0.5) / src_rate).float()
    src_mask = torch.arange(S, device=features.device)[None, :] < lengths.to(features.device)[:, None]
    dst_times = latent_frame_times(dst_frames, dst_rate, device=features.device)
    return resample_at_times(features, src_times.expand(B, -1), src_mask, dst_times)


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
    """Synchformer tokens -> per-latent-frame condition.

    tokens + learned position within their window (`window_pos`, as the Synchformer's 8 tokens of
    a window are not interchangeable) -> resampled by time onto latent frame centres -> input
    convolution over latent frames (`input_kernel_size`, padded frames zeroed) -> SiLU -> Linear.
    The convolution runs on the latent grid, where frames are ordered in time (the token sequence
    is not: windows overlap).
    """

    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        self.cfg = cfg
        self.latent_rate = cfg.latent_rate
        self.tokens_per_window = cfg.sync_tokens_per_window
        # zero-initialised: a fresh network sees the raw features
        self.window_pos = nn.Parameter(torch.zeros(cfg.sync_tokens_per_window, cfg.sync_dim))
        self.proj_in = TemporalConv(cfg.sync_dim, cfg.hidden_dim, cfg.input_kernel_size)
        self.proj_out = nn.Linear(cfg.hidden_dim, cfg.hidden_dim)

    def forward(
        self,
        sync: Tensor,
        sync_mask: Tensor,
        latent_frames: int,
        sync_times: Tensor | None = None,
        latent_mask: Tensor | None = None,
    ) -> Tensor:
        # sync: [B, S, D_sync]; sync_mask: [B, S] bool (or [B] lengths, the old form);
        # sync_times: [B, S] s or None (the consecutive-window layout);
        # latent_mask: [B, T] real latent frames (None: all real) -> [B, T, H]
        B, S, _ = sync.shape
        if sync_mask.ndim == 1:
            sync_mask = torch.arange(S, device=sync.device)[None, :] < sync_mask[:, None]
        if sync_times is None:
            sync_times = layout_token_times(S, self.cfg, device=sync.device).expand(B, -1)
        position = torch.arange(S, device=sync.device) % self.tokens_per_window
        tokens = sync.to(self.window_pos.dtype) + self.window_pos[position][None]  # [B, S, D_sync]
        dst = latent_frame_times(latent_frames, self.latent_rate, device=sync.device)
        on_latent = resample_at_times(tokens, sync_times, sync_mask, dst)  # [B, T, D_sync]
        h = F.silu(self.proj_in(on_latent, latent_mask))
        return zero_padding(self.proj_out(h), latent_mask)
