"""The AudioGen-Omni MMDiT (paper §3.2-3.3, DESIGN §7).

Streams (B batch, H hidden):
  latent : noisy audio latent            [B, T,  C]      -> [B, T, H]   RoPE at latent rate
  clip   : CLIP frame features           [B, Tc, Dc]     -> [B, Tc, H]  RoPE at 8 fps on the audio timeline
  text   : caption ⊕ voice tokens        [B, Lc + Lv, H]                RoPE on voice part only
Joint blocks attend over the concatenation of the three streams; single-stream blocks refine the
latent alone. AdaLN: the latent stream (and the output layer) is modulated by the frame-aligned
condition (global + Synchformer on latent frames), CLIP and text streams by the global one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.blocks import FinalLayer, JointBlock, TemporalConv
from model.conditioning import GlobalCondition, SyncCondition, masked_mean
from model.config import MMDiTConfig
from model.inputs import Conditions
from model.lyrics_encoder import LyricsEncoder
from model.rope import RotaryTable, TimelineRotary

JOINT_STREAMS = ["latent", "clip", "text"]
CONTEXT_STREAMS = frozenset({"clip", "text"})
EMPTY_TOKEN_INIT_STD = 0.02


def _input_mlp(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.SiLU(), nn.Linear(dim, dim))


class TemporalInput(nn.Module):
    """Input projection of a stream with a time axis: conv over `kernel_size` frames -> SiLU ->
    Linear (MMAudio's conv input projection; padded frames are zeroed before the convolution)."""

    def __init__(self, in_dim: int, dim: int, kernel_size: int):
        super().__init__()
        self.conv = TemporalConv(in_dim, dim, kernel_size)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        # x: [B, L, D_in]; mask: [B, L] -> [B, L, H]
        return self.proj(F.silu(self.conv(x, mask)))


def substitute_empty(
    features: Tensor | None, mask: Tensor | None, present: Tensor, empty: Tensor
) -> tuple[Tensor, Tensor]:
    """Replace absent samples' sequences by the single learnable empty token.

    features: [B, L, D] or None (absent for all); mask: [B, L]; present: [B]; empty: [D].
    An absent sample becomes [empty, 0, 0, ...] with mask [True, False, ...].
    """
    B = present.shape[0]
    if features is None or features.shape[1] == 0:
        return empty.expand(B, 1, -1), torch.ones(B, 1, dtype=torch.bool, device=empty.device)
    features = features.to(empty.dtype)
    L = features.shape[1]
    empty_seq = torch.zeros_like(features[:1])  # [1, L, D]
    empty_seq = torch.cat([empty.expand(1, 1, -1), empty_seq[:, 1:]], dim=1)
    empty_mask = torch.arange(L, device=mask.device)[None, :] == 0  # [1, L]: [True, False, ...]
    keep = present[:, None, None]
    # padded slots are selected to zero (never multiplied): garbage there cannot leak
    features = torch.where(mask[..., None], features, torch.zeros((), dtype=features.dtype, device=features.device))
    return torch.where(keep, features, empty_seq), torch.where(present[:, None], mask, empty_mask)


@dataclass(frozen=True)
class PreparedConditions:
    """Everything that does not depend on (x_t, t): computed once per sampling run."""

    latent_mask: Tensor  # [B, T]
    start_s: Tensor  # [B]
    duration_s: Tensor  # [B]
    clip_tokens: Tensor  # [B, Tc, H]
    clip_mask: Tensor  # [B, Tc]
    text_tokens: Tensor  # [B, Lc + Lv, H]
    text_mask: Tensor  # [B, Lc + Lv]
    clip_pool: Tensor  # [B, H]
    caption_pool: Tensor  # [B, H]
    sync_frames: Tensor  # [B, T, H] Synchformer condition on latent frames
    ropes: dict[str, RotaryTable]


class MMDiT(nn.Module):
    def __init__(self, cfg: MMDiTConfig):
        super().__init__()
        self.cfg = cfg
        dim = cfg.hidden_dim
        self.latent_in = TemporalInput(cfg.latent_dim, dim, cfg.input_kernel_size)
        self.clip_in = _input_mlp(cfg.clip_dim, dim)
        self.caption_in = _input_mlp(cfg.text_dim, dim)
        self.voice_in = _input_mlp(cfg.lyrics.dim, dim)
        self.lyrics_encoder = LyricsEncoder(cfg.lyrics)

        self.empty_clip = nn.Parameter(torch.randn(cfg.clip_dim) * EMPTY_TOKEN_INIT_STD)
        self.empty_sync = nn.Parameter(torch.randn(cfg.sync_dim) * EMPTY_TOKEN_INIT_STD)
        self.empty_caption = nn.Parameter(torch.randn(cfg.text_dim) * EMPTY_TOKEN_INIT_STD)
        self.empty_voice = nn.Parameter(torch.randn(cfg.lyrics.dim) * EMPTY_TOKEN_INIT_STD)

        self.global_cond = GlobalCondition(cfg)
        self.sync_cond = SyncCondition(cfg)
        self.rotary = TimelineRotary(cfg.head_dim, cfg.latent_rate, cfg.rope_base)

        self.joint_blocks = nn.ModuleList(
            JointBlock(cfg, JOINT_STREAMS, pre_only=CONTEXT_STREAMS if i == cfg.joint_depth - 1 else frozenset())
            for i in range(cfg.joint_depth)
        )
        self.single_blocks = nn.ModuleList(JointBlock(cfg, ["latent"]) for _ in range(cfg.single_depth))
        self.final = FinalLayer(cfg)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.lyrics_encoder.embed.weight, std=EMPTY_TOKEN_INIT_STD)
        # adaLN-zero: every block starts as the identity, the output starts at zero
        for block in [*self.joint_blocks, *self.single_blocks]:
            for layer in block.streams.values():
                nn.init.zeros_(layer.adaln[-1].weight)
                nn.init.zeros_(layer.adaln[-1].bias)
        nn.init.zeros_(self.final.adaln[-1].weight)
        nn.init.zeros_(self.final.adaln[-1].bias)
        nn.init.zeros_(self.final.proj.weight)
        nn.init.zeros_(self.final.proj.bias)

    @property
    def dtype(self) -> torch.dtype:
        """dtype of the network's parameters (inputs are cast to it)."""
        return self.empty_clip.dtype

    # ---- conditions ---------------------------------------------------------------------

    def prepare(self, cond: Conditions) -> PreparedConditions:
        cfg = self.cfg
        T = cond.latent_mask.shape[1]
        has_video, has_caption, has_voice = (cond.present(m) for m in ("video", "caption", "voice"))

        clip, clip_mask = substitute_empty(cond.clip, cond.mask_of("clip"), has_video, self.empty_clip)
        sync_mask = cond.mask_of("sync")
        has_sync = has_video if sync_mask is None else has_video & sync_mask.any(1)
        sync, sync_mask = substitute_empty(cond.sync, sync_mask, has_sync, self.empty_sync)
        sync_times = cond.sync_times if cond.sync is not None and cond.sync.shape[1] > 0 else None
        caption, caption_mask = substitute_empty(
            cond.caption, cond.mask_of("caption"), has_caption, self.empty_caption
        )
        if cond.voice_ids is None:
            voice, voice_mask = substitute_empty(None, None, has_voice, self.empty_voice)
        else:
            voice_mask = cond.mask_of("voice_ids")
            voice = self.lyrics_encoder(cond.voice_ids, voice_mask & has_voice[:, None])
            voice, voice_mask = substitute_empty(voice, voice_mask, has_voice, self.empty_voice)

        clip_tokens = self.clip_in(clip)  # [B, Tc, H]
        caption_tokens = self.caption_in(caption)  # [B, Lc, H]
        voice_tokens = self.voice_in(voice)  # [B, Lv, H]
        sync_frames = self.sync_cond(sync, sync_mask, T, sync_times, cond.latent_mask)  # [B, T, H]

        Lv = voice_tokens.shape[1]
        use_times = (
            cfg.voice_alignment and cond.voice_times is not None and cond.voice_ids is not None
            and cond.voice_ids.shape[1] == Lv
        )
        if not use_times:
            # the paper's layout: VoiceBPE token i at latent frame i (ids padded to the frame budget)
            voice_rope = self.rotary.table(Lv, cfg.voice_rate)
        else:
            # aligned transcript/lyrics: each token at its start time on the audio timeline. A sample
            # whose real tokens are not all timed (NaN or negative time: no alignment for that row,
            # or all at one instant) keeps the paper's layout; padded tokens are never read.
            real = voice_mask & has_voice[:, None]
            times = cond.voice_times.float()
            valid = torch.where(real, times.isfinite() & (times >= 0), True).all(1, keepdim=True)  # [B, 1]
            # several tokens all at one instant (e.g. zero-filled times of an unaligned row) carry
            # no timing either
            inf = torch.tensor(float("inf"), device=times.device)
            spread = torch.where(real, times, -inf).amax(1, keepdim=True) - torch.where(real, times, inf).amin(
                1, keepdim=True
            )
            timed = valid & ((spread > 0) | (real.sum(1, keepdim=True) <= 1))
            layout = self.rotary.positions(Lv, cfg.voice_rate, device=times.device).float()[None]  # [1, Lv]
            zero = torch.zeros((), device=times.device)
            positions = torch.where(timed, torch.where(real, times, zero) * cfg.latent_rate, layout)
            voice_rope = self.rotary.table_at(positions)  # [B, Lv, d/2]
        ropes = {
            "latent": self.rotary.table(T, cfg.latent_rate),
            "clip": self.rotary.table(clip_tokens.shape[1], cfg.clip_rate),
            "text": RotaryTable.cat([self.rotary.identity(caption_tokens.shape[1]), voice_rope]),
        }
        return PreparedConditions(
            latent_mask=cond.latent_mask,
            start_s=cond.start_s,
            duration_s=cond.duration_s,
            clip_tokens=clip_tokens,
            clip_mask=clip_mask,
            text_tokens=torch.cat([caption_tokens, voice_tokens], dim=1),
            text_mask=torch.cat([caption_mask, voice_mask], dim=1),
            clip_pool=masked_mean(clip_tokens, clip_mask),
            caption_pool=masked_mean(caption_tokens, caption_mask),
            sync_frames=sync_frames,
            ropes=ropes,
        )

    # ---- network ------------------------------------------------------------------------

    def velocity(self, x_t: Tensor, t: Tensor, prep: PreparedConditions) -> Tensor:
        """Predicted velocity [B, T, C] for the noisy latent x_t [B, T, C] at flow times t [B]."""
        B, T, C = x_t.shape
        if prep.latent_mask.shape != (B, T):
            raise ValueError(f"x_t {tuple(x_t.shape)} does not match latent_mask {tuple(prep.latent_mask.shape)}")
        if C != self.cfg.latent_dim:
            raise ValueError(f"x_t has {C} channels, the model expects latent_dim={self.cfg.latent_dim}")
        if t.ndim == 0:
            t = t.expand(B)
        out_dtype = x_t.dtype
        # the network's own dtype (fp32, or bf16 after model.to(torch.bfloat16)); padded frames
        # are selected away so that garbage there (even NaN) cannot reach real outputs
        x_t = torch.where(prep.latent_mask[..., None], x_t.to(self.dtype), torch.zeros((), dtype=self.dtype, device=x_t.device))
        g = self.global_cond(t, prep.start_s, prep.duration_s, prep.clip_pool, prep.caption_pool)  # [B, H]
        frame_cond = g[:, None, :] + prep.sync_frames  # [B, T, H]
        global_cond = g[:, None, :]  # [B, 1, H]

        streams = {"latent": self.latent_in(x_t, prep.latent_mask), "clip": prep.clip_tokens, "text": prep.text_tokens}
        conds = {"latent": frame_cond, "clip": global_cond, "text": global_cond}
        joint_mask = torch.cat([prep.latent_mask, prep.clip_mask, prep.text_mask], dim=1)  # [B, ΣL]
        for block in self.joint_blocks:
            streams = block(streams, conds, prep.ropes, joint_mask)

        x = streams["latent"]
        latent_only = {"latent": frame_cond}
        for block in self.single_blocks:
            x = block({"latent": x}, latent_only, prep.ropes, prep.latent_mask)["latent"]
        v = self.final(x, frame_cond, prep.latent_mask)  # [B, T, C]
        return torch.where(prep.latent_mask[..., None], v, torch.zeros((), dtype=v.dtype, device=v.device)).to(out_dtype)

    def forward(self, x_t: Tensor, t: Tensor, cond: Conditions) -> Tensor:
        return self.velocity(x_t, t, self.prepare(cond))
