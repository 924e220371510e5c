"""Random but well-formed network inputs at the DESIGN §5 rates, for tests and benchmarks."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from model.config import MMDiTConfig, frames_for_duration
from model.encoders.registry import sync_token_count, sync_token_times
from model.inputs import Conditions, latent_mask_for_durations


def _lengths_mask(lengths: list[int]) -> torch.Tensor:
    width = max(lengths)
    return torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]


def _flags(value: bool | Sequence[bool], batch: int) -> torch.Tensor:
    if isinstance(value, bool):
        return torch.full((batch,), value, dtype=torch.bool)
    if len(value) != batch:
        raise ValueError(f"{len(value)} presence flags for a batch of {batch}")
    return torch.tensor(list(value), dtype=torch.bool)


def synthetic_conditions(
    cfg: MMDiTConfig,
    durations_s: Sequence[float],
    generator: torch.Generator | None = None,
    caption_tokens: int = 16,
    voice_fraction: float = 0.3,
    has_video: bool | Sequence[bool] = True,
    has_caption: bool | Sequence[bool] = True,
    has_voice: bool | Sequence[bool] = True,
    start_s: Sequence[float] | None = None,
) -> Conditions:
    """Conditions for clips of `durations_s`: CLIP at clip_rate; Synchformer tokens as the encoder
    gives them (`sync_token_count`: 8 s -> 192, none below one 0.64 s window) with their real times
    (`sync_times`); caption states of up to `caption_tokens` tokens; VoiceBPE ids (about
    `voice_fraction` of the latent frames) padded to the latent length. Samples flagged absent
    carry an all-padding mask for that modality."""
    B = len(durations_s)
    g = generator
    latent_mask = latent_mask_for_durations(durations_s, cfg.latent_rate, cfg.max_duration_s)
    latent_frames = latent_mask.sum(1).tolist()
    video, caption, voice = _flags(has_video, B), _flags(has_caption, B), _flags(has_voice, B)

    clip_mask = _lengths_mask([frames_for_duration(d, cfg.clip_rate) for d in durations_s]) & video[:, None]
    spec = cfg.sync_spec()
    sync_counts = [sync_token_count(d, spec) for d in durations_s]
    sync_mask = _lengths_mask([max(1, n) for n in sync_counts])
    sync_mask = sync_mask & (torch.arange(sync_mask.shape[1])[None] < torch.tensor(sync_counts)[:, None]) & video[:, None]
    # real times of consecutive windows; padded slots hold the continuation (never read)
    sync_times = torch.from_numpy(
        sync_token_times(-(-sync_mask.shape[1] // spec.tokens_per_window), spec)[: sync_mask.shape[1]]
    ).expand(B, -1).clone()
    cap_len = torch.randint(1, caption_tokens + 1, (B,), generator=g).tolist()
    caption_mask = _lengths_mask(cap_len) & caption[:, None]
    voice_len = [max(1, int(f * voice_fraction)) for f in latent_frames]
    voice_mask = (torch.arange(latent_mask.shape[1])[None] < torch.tensor(voice_len)[:, None]) & voice[:, None]
    voice_ids = torch.randint(1, cfg.lyrics.vocab_size, voice_mask.shape, generator=g)
    voice_ids = voice_ids.masked_fill(~voice_mask, cfg.lyrics.pad_id)

    def feats(mask: torch.Tensor, dim: int) -> torch.Tensor:
        return torch.randn(*mask.shape, dim, generator=g) * mask[..., None]

    starts = torch.tensor(start_s, dtype=torch.float32) if start_s is not None else torch.rand(B, generator=g) * 30
    return Conditions(
        latent_mask=latent_mask,
        start_s=starts,
        duration_s=torch.tensor(list(durations_s), dtype=torch.float32),
        clip=feats(clip_mask, cfg.clip_dim),
        clip_mask=clip_mask,
        sync=feats(sync_mask, cfg.sync_dim),
        sync_mask=sync_mask,
        sync_times=sync_times,
        caption=feats(caption_mask, cfg.text_dim),
        caption_mask=caption_mask,
        voice_ids=voice_ids,
        voice_mask=voice_mask,
    )
