"""PAAPI: rotary position embeddings on one audio timeline.

Every temporally structured stream (audio latent, CLIP frames, VoiceBPE tokens) gets positions
expressed in latent frames: token i of a stream at `rate` frames per second sits at
`i * latent_rate / rate`. A latent frame and a CLIP frame that start at the same second therefore
share a position, whatever their index. Caption tokens get no rotation (cos = 1, sin = 0), which
leaves them bit-for-bit unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class RotaryTable:
    """cos/sin per token and frequency: [L, head_dim // 2] each."""

    cos: Tensor
    sin: Tensor

    def __len__(self) -> int:
        return self.cos.shape[-2]

    @staticmethod
    def cat(tables: list[RotaryTable]) -> RotaryTable:
        """Concatenate along tokens; shared [L, d/2] tables are expanded when one is per sample."""
        batch = next((t.cos.shape[0] for t in tables if t.cos.ndim == 3), None)
        if batch is None:
            return RotaryTable(torch.cat([t.cos for t in tables]), torch.cat([t.sin for t in tables]))
        grow = lambda x: x if x.ndim == 3 else x.expand(batch, -1, -1)
        return RotaryTable(
            torch.cat([grow(t.cos) for t in tables], dim=1), torch.cat([grow(t.sin) for t in tables], dim=1)
        )


class TimelineRotary(nn.Module):
    """Builds rotary tables for streams on the audio timeline (positions in latent frames)."""

    def __init__(self, head_dim: int, latent_rate: float, base: float):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head dimension, got {head_dim}")
        self.latent_rate = latent_rate
        self.head_dim, self.base = head_dim, base
        # frequencies θ_j = base^(-2j/d), j = 0 .. d/2-1. The buffer only carries the device: the
        # tables are computed from head_dim and base in float64 (a bf16-cast buffer would be coarse).
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def frequencies(self, device=None) -> Tensor:
        """[d/2] float64 θ_j, whatever dtype the module was cast to."""
        return self.base ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float64, device=device) / self.head_dim)

    def positions(self, length: int, rate: float, device=None) -> Tensor:
        """Positions (in latent frames) of `length` tokens of a stream running at `rate` per second."""
        return torch.arange(length, device=device, dtype=torch.float64) * (self.latent_rate / rate)

    def table(self, length: int, rate: float) -> RotaryTable:
        """Rotation of a temporal stream of `length` tokens at `rate` tokens per second."""
        pos = self.positions(length, rate, device=self.inv_freq.device)
        return self.table_at(pos)

    def table_at(self, positions: Tensor) -> RotaryTable:
        """Rotation of tokens at the given positions (latent frames): [L] or [B, L] -> fp32 tables."""
        freqs = self.frequencies(self.inv_freq.device)
        angles = positions.double()[..., None] * freqs  # [..., L, d/2], float64 for long clips
        return RotaryTable(angles.cos().float(), angles.sin().float())

    def identity(self, length: int) -> RotaryTable:
        """No rotation (caption tokens)."""
        half = self.inv_freq.shape[0]
        ones = torch.ones(length, half, device=self.inv_freq.device, dtype=torch.float32)
        return RotaryTable(ones, torch.zeros_like(ones))


class ApplyRotary(nn.Module):
    """Rotates feature pairs (x_j, x_{j+d/2}) of queries or keys by the table's angles.

    A module (not a function) so that tests can hook it and inspect what it rotated.
    """

    def forward(self, x: Tensor, table: RotaryTable) -> Tensor:
        # x: [B, heads, L, d]; table: [L, d/2] (shared) or [B, L, d/2] (per sample). Rotated in fp32.
        half = x.shape[-1] // 2
        xf = x.float()
        x1, x2 = xf[..., :half], xf[..., half:]
        cos, sin = table.cos.float(), table.sin.float()
        if cos.ndim == 3:
            cos, sin = cos[:, None], sin[:, None]  # [B, 1, L, d/2]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)
