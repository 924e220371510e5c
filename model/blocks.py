"""Transformer blocks of the MMDiT: AdaLN-modulated streams with joint QK-normalised attention.

A `JointBlock` holds one `StreamLayer` per stream. Each stream normalises and modulates its own
tokens (AdaLN from its own condition), projects them to queries/keys/values, the queries and keys
are RMS-normalised and rotated (PAAPI), attention runs once over the concatenation of all streams,
and the result is split back per stream for the stream's own output projection and SwiGLU.
A single-stream audio block is a `JointBlock` with only the latent stream.

Temporal convolutions (MMAudio's block design, adopted by the paper): the temporal streams
(latent, CLIP) use a convolution of `stream_kernel_size` frames for their output projection and
their SwiGLU; the text stream stays pointwise; the final layer is a convolution of
`final_kernel_size` frames. Every convolution zeroes padded frames first (selection, not
multiplication), so padding never leaks into real frames. Kernel size 1 is the pointwise layer.

Shapes: B batch, L_s tokens of stream s, H hidden width, h heads, d = H / h.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.config import MMDiTConfig
from model.rope import ApplyRotary, RotaryTable

# AdaLN chunks: shift/scale/gate before attention and before the feed-forward
_FULL_MODULATION_CHUNKS = 6
# a "pre-only" stream (context stream in the last joint block) only feeds keys/values: shift, scale
_PRE_ONLY_MODULATION_CHUNKS = 2
# streams with a time axis: their output projection and feed-forward convolve over frames
TEMPORAL_STREAMS = frozenset({"latent", "clip"})


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    # x: [B, L, H]; shift/scale: [B, L, H] (per-frame) or [B, 1, H] (global)
    return x * (1 + scale) + shift


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x.to(dtype) * self.weight


def zero_padding(x: Tensor, mask: Tensor | None) -> Tensor:
    """x [B, L, D] with padded frames (mask [B, L] False) selected to 0; mask None: all real."""
    if mask is None:
        return x
    return torch.where(mask[..., None], x, torch.zeros((), dtype=x.dtype, device=x.device))


class TemporalConv(nn.Module):
    """Channel-last 1-D convolution over frames ([B, L, D_in] -> [B, L, D_out], same length) that
    zeroes padded frames before convolving. kernel_size 1 is a plain Linear (no mask needed)."""

    def __init__(self, in_dim: int, out_dim: int, kernel_size: int, bias: bool = True):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 != 1:
            raise ValueError(f"temporal kernel size must be odd and >= 1, got {kernel_size}")
        self.kernel_size = kernel_size
        if kernel_size == 1:
            self.linear = nn.Linear(in_dim, out_dim, bias=bias)
        else:
            self.conv = nn.Conv1d(in_dim, out_dim, kernel_size, padding=kernel_size // 2, bias=bias)

    @property
    def weight(self) -> Tensor:
        return self.linear.weight if self.kernel_size == 1 else self.conv.weight

    @property
    def bias(self) -> Tensor | None:
        return self.linear.bias if self.kernel_size == 1 else self.conv.bias

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        if self.kernel_size == 1:
            return self.linear(x)
        return self.conv(zero_padding(x, mask).transpose(1, 2)).transpose(1, 2)


class SwiGLU(nn.Module):
    """SwiGLU feed-forward; with kernel_size > 1 its three projections are temporal convolutions
    (MMAudio's ConvMLP)."""

    def __init__(self, dim: int, hidden_dim: int, kernel_size: int = 1):
        super().__init__()
        self.gate_proj = TemporalConv(dim, hidden_dim, kernel_size, bias=False)
        self.up_proj = TemporalConv(dim, hidden_dim, kernel_size, bias=False)
        self.down_proj = TemporalConv(hidden_dim, dim, kernel_size, bias=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x, mask)) * self.up_proj(x, mask), mask)


class StreamLayer(nn.Module):
    """One stream's share of a block: AdaLN, q/k/v with QK-norm and RoPE, output projection, SwiGLU."""

    def __init__(self, cfg: MMDiTConfig, pre_only: bool, kernel_size: int = 1):
        super().__init__()
        dim, self.num_heads = cfg.hidden_dim, cfg.num_heads
        self.pre_only = pre_only
        self.modulation_chunks = _PRE_ONLY_MODULATION_CHUNKS if pre_only else _FULL_MODULATION_CHUNKS
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, self.modulation_chunks * dim))
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        # a pre-only stream is only attended to: it needs keys and values, no queries
        self.num_projections = 2 if pre_only else 3
        self.qkv = nn.Linear(dim, self.num_projections * dim)
        self.k_norm = RMSNorm(cfg.head_dim, cfg.qk_norm_eps)
        self.rope = ApplyRotary()
        if not pre_only:
            self.q_norm = RMSNorm(cfg.head_dim, cfg.qk_norm_eps)
            self.out_proj = TemporalConv(dim, dim, kernel_size)
            self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
            self.ffn = SwiGLU(dim, cfg.ffn_hidden_dim, kernel_size)

    def queries_keys_values(self, x: Tensor, cond: Tensor, rope: RotaryTable) -> tuple[tuple, tuple]:
        # x: [B, L, H]; cond: [B, L or 1, H] -> (q or None, k, v) each [B, h, L, d], modulation chunks
        mod = self.adaln(cond).chunk(self.modulation_chunks, dim=-1)
        h = modulate(self.norm1(x), mod[0], mod[1])
        B, L, H = h.shape
        proj = self.qkv(h).view(B, L, self.num_projections, self.num_heads, H // self.num_heads)
        proj = proj.permute(2, 0, 3, 1, 4)
        k = self.rope(self.k_norm(proj[-2]), rope)
        q = None if self.pre_only else self.rope(self.q_norm(proj[0]), rope)
        return (q, k, proj[-1]), mod

    def finish(self, x: Tensor, attn: Tensor, mod: tuple, mask: Tensor | None = None) -> Tensor:
        # attn: [B, L, H] this stream's slice of the joint attention output; mask: [B, L] real tokens
        _, _, gate1, shift2, scale2, gate2 = mod  # shift/scale 1 were used before attention
        x = x + gate1 * self.out_proj(attn, mask)
        return x + gate2 * self.ffn(modulate(self.norm2(x), shift2, scale2), mask)


class JointBlock(nn.Module):
    """Joint attention over the concatenation of several streams; each stream keeps its own weights.

    Streams named in `pre_only` only contribute keys/values (used for the context streams of the
    last joint block, whose outputs nobody reads) and are returned unchanged.
    """

    def __init__(self, cfg: MMDiTConfig, streams: list[str], pre_only: frozenset[str] = frozenset()):
        super().__init__()
        unknown = set(pre_only) - set(streams)
        if unknown:
            raise ValueError(f"pre_only streams {sorted(unknown)} are not among {streams}")
        self.stream_names = list(streams)
        self.streams = nn.ModuleDict(
            {
                s: StreamLayer(
                    cfg, pre_only=s in pre_only, kernel_size=cfg.stream_kernel_size if s in TEMPORAL_STREAMS else 1
                )
                for s in streams
            }
        )

    def forward(
        self,
        xs: dict[str, Tensor],
        conds: dict[str, Tensor],
        ropes: dict[str, RotaryTable],
        key_mask: Tensor,
    ) -> dict[str, Tensor]:
        # xs[s]: [B, L_s, H]; key_mask: [B, ΣL_s] True at real tokens, streams in self.stream_names order
        qkvs, mods = [], {}
        for name in self.stream_names:
            qkv, mods[name] = self.streams[name].queries_keys_values(xs[name], conds[name], ropes[name])
            qkvs.append(qkv)
        # queries only from streams that will be updated; keys/values from all
        querying = [n for n in self.stream_names if not self.streams[n].pre_only]
        q = torch.cat([qkv[0] for qkv in qkvs if qkv[0] is not None], dim=2)  # [B, h, ΣL_q, d]
        k = torch.cat([qkv[1] for qkv in qkvs], dim=2)  # [B, h, ΣL, d]
        v = torch.cat([qkv[2] for qkv in qkvs], dim=2)
        attn_mask = key_mask[:, None, None, :]  # [B, 1, 1, ΣL]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        B, heads, L, d = out.shape
        out = out.transpose(1, 2).reshape(B, L, heads * d)  # [B, ΣL_q, H]
        result = dict(xs)  # pre-only streams pass through unchanged
        parts = out.split([xs[n].shape[1] for n in querying], dim=1)
        masks = dict(zip(self.stream_names, key_mask.split([xs[n].shape[1] for n in self.stream_names], dim=1)))
        for name, part in zip(querying, parts):
            result[name] = self.streams[name].finish(xs[name], part, mods[name], masks[name])
        return result


class FinalLayer(nn.Module):
    """AdaLN (from the frame-aligned condition) and a projection back to latent channels."""

    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        dim = cfg.hidden_dim
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.proj = TemporalConv(dim, cfg.latent_dim, cfg.final_kernel_size)

    def forward(self, x: Tensor, frame_cond: Tensor, mask: Tensor | None = None) -> Tensor:
        # x: [B, T, H]; frame_cond: [B, T, H]; mask: [B, T] real frames -> [B, T, C]
        shift, scale = self.adaln(frame_cond).chunk(2, dim=-1)
        return self.proj(modulate(self.norm(x), shift, scale), mask)
