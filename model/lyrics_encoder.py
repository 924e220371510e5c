"""Lyrics-transcription encoder: VoiceBPE ids -> per-token features (paper §3.3).

Ids of a transcript or of lyrics are padded to the latent frame budget of the clip (no duration
supervision: the tokens are not aligned to frames, attention in the MMDiT does that). The encoder
embeds them, adds sinusoidal absolute positions, and refines them with ConvNeXt-V2 blocks.
Padded positions are zero before and after every block, so padding never leaks into real tokens.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import LyricsEncoderConfig
from model.inputs import check_values_of

# the sinusoidal table uses the Transformer's 10000 base
_SINUSOID_BASE = 10000.0
_GRN_EPS = 1e-6
_LAYERNORM_EPS = 1e-6


def sinusoidal_table(num_positions: int, dim: int) -> Tensor:
    """[num_positions, dim] absolute position table (sin on even channels, cos on odd)."""
    pos = torch.arange(num_positions, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(_SINUSOID_BASE) / dim))
    table = torch.zeros(num_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * div)
    table[:, 1::2] = torch.cos(pos * div)[:, : dim // 2]
    return table.float()


def zero_padding(x: Tensor, mask: Tensor) -> Tensor:
    """x [B, L, D] with padded steps (mask [B, L] False) selected to 0 (never multiplied: NaN-safe)."""
    return torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


class MaskedGRN(nn.Module):
    """Global response normalisation (ConvNeXt-V2) over real time steps only."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # x: [B, L, D]; mask: [B, L] bool
        x = zero_padding(x, mask)
        gx = torch.linalg.vector_norm(x, dim=1, keepdim=True)  # [B, 1, D] padding adds 0
        nx = gx / (gx.mean(dim=-1, keepdim=True) + _GRN_EPS)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """depthwise conv -> LayerNorm -> Linear(D, rD) -> GELU -> GRN -> Linear(rD, D), residual."""

    def __init__(self, dim: int, kernel_size: int, ffn_ratio: int):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=_LAYERNORM_EPS)
        self.pwconv1 = nn.Linear(dim, ffn_ratio * dim)
        self.grn = MaskedGRN(ffn_ratio * dim)
        self.pwconv2 = nn.Linear(ffn_ratio * dim, dim)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        # x: [B, L, D]; mask: [B, L] bool
        x = zero_padding(x, mask)
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        h = F.gelu(self.pwconv1(self.norm(h)))
        h = self.pwconv2(self.grn(h, mask))
        return zero_padding(x + h, mask)


def check_voice_ids(ids: Tensor, mask: Tensor, vocab_size: int) -> None:
    """Refuse real VoiceBPE ids outside [0, vocab_size) (a value check: eager / collate side)."""
    real = ids[mask]
    if real.numel() and (int(real.min()) < 0 or int(real.max()) >= vocab_size):
        raise ValueError(f"VoiceBPE id out of range [0, {vocab_size}): min {int(real.min())}, max {int(real.max())}")


class LyricsEncoder(nn.Module):
    def __init__(self, cfg: LyricsEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.register_buffer("positions", sinusoidal_table(cfg.max_positions, cfg.dim), persistent=False)
        self.blocks = nn.ModuleList(
            ConvNeXtV2Block(cfg.dim, cfg.kernel_size, cfg.ffn_ratio) for _ in range(cfg.num_blocks)
        )

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def forward(self, ids: Tensor, mask: Tensor) -> Tensor:
        # ids: [B, L] long; mask: [B, L] bool (True at real tokens) -> [B, L, D], zero at padding
        if ids.shape != mask.shape:
            raise ValueError(f"VoiceBPE ids {tuple(ids.shape)} and mask {tuple(mask.shape)} differ in shape")
        length = ids.shape[1]
        if length > self.cfg.max_positions:
            raise ValueError(
                f"{length} VoiceBPE positions exceed the encoder's table of {self.cfg.max_positions}"
            )
        if check_values_of(ids):
            check_voice_ids(ids, mask, self.cfg.vocab_size)
        ids = ids.masked_fill(~mask, self.cfg.pad_id)
        x = zero_padding(self.embed(ids) + self.positions[:length].to(self.embed.weight.dtype), mask)
        for block in self.blocks:
            x = block(x, mask)
        return zero_padding(x, mask)


def pad_voice_ids(sequences: list[Tensor | None], latent_frames: list[int], pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """Collate VoiceBPE id sequences padded to the batch's latent frame budget.

    Returns ids [B, max(latent_frames)] and mask [B, max(latent_frames)]. A sample without
    transcript/lyrics (None) gets an all-False mask. A sequence longer than its clip's latent
    frames is refused: the encoder's tokens must fit the clip's frame budget.
    """
    if len(sequences) != len(latent_frames):
        raise ValueError(f"{len(sequences)} id sequences but {len(latent_frames)} latent lengths")
    width = max(latent_frames)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), width, dtype=torch.bool)
    for i, (seq, frames) in enumerate(zip(sequences, latent_frames)):
        if seq is None:
            continue
        if seq.ndim != 1:
            raise ValueError(f"sample {i}: VoiceBPE ids must be 1-D, got shape {tuple(seq.shape)}")
        if len(seq) > frames:
            raise ValueError(f"sample {i}: {len(seq)} VoiceBPE ids exceed its {frames} latent frames")
        ids[i, : len(seq)] = seq.long()
        mask[i, : len(seq)] = True
    return ids, mask
