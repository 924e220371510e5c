"""The conditions the network takes besides the noisy latent and the flow time.

Every modality may be absent for the whole batch (tensor None) or for some samples
(`has_*` False). Absent and dropped inputs are replaced inside the network by a learnable empty
token per modality; the same path serves classifier-free-guidance dropout.

Modalities: `video` (CLIP frames + Synchformer features), `caption` (text-encoder states) and
`voice` (VoiceBPE ids of a transcript or of lyrics; `transcript` and `lyrics` are names for it).
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

MODALITIES = ("video", "caption", "voice")


def has_values(t: Tensor) -> bool:
    """False for meta tensors (parameter and FLOP counting), whose values cannot be checked."""
    return t.device.type != "meta"


# Checks that read tensor VALUES (a real frame per sample, ids in range, presence flags backed by
# tokens). They synchronise with the device and break `torch.compile` graphs, so they run in eager
# mode only: never while a graph is traced, and not at all inside `value_checks(False)` (a trainer
# that validated its batches at collate time, see `Conditions.check_values`).
_VALUE_CHECKS = [True]


@contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Turn the value checks of the network's inputs on or off within the block."""
    before = _VALUE_CHECKS[0]
    _VALUE_CHECKS[0] = enabled
    try:
        yield
    finally:
        _VALUE_CHECKS[0] = before


def check_values_of(t: Tensor) -> bool:
    """Whether value checks on `t` run now (eager, enabled, not a meta tensor)."""
    return _VALUE_CHECKS[0] and has_values(t) and not torch.compiler.is_compiling()

MODALITY_ALIASES = {
    "video": "video",
    "caption": "caption",
    "voice": "voice",
    "transcript": "voice",
    "lyrics": "voice",
}


def canonical_modalities(names: Iterable[str]) -> set[str]:
    out = set()
    for name in names:
        if name not in MODALITY_ALIASES:
            raise ValueError(f"unknown modality {name!r}; known: {', '.join(sorted(MODALITY_ALIASES))}")
        out.add(MODALITY_ALIASES[name])
    return out


@dataclass(frozen=True)
class Conditions:
    """Batch-first conditions. Masks are bool, True at real tokens/frames."""

    latent_mask: Tensor  # [B, T] real latent frames (the clip's duration)
    start_s: Tensor  # [B] start of the clip in its source, seconds
    duration_s: Tensor  # [B] clip duration, seconds
    clip: Tensor | None = None  # [B, Tc, D_clip] CLIP image features at 8 fps
    clip_mask: Tensor | None = None  # [B, Tc]
    sync: Tensor | None = None  # [B, Ts, D_sync] Synchformer tokens, window-major (8 per window)
    sync_mask: Tensor | None = None  # [B, Ts]
    caption: Tensor | None = None  # [B, Lc, D_text] caption encoder hidden states
    caption_mask: Tensor | None = None  # [B, Lc]
    voice_ids: Tensor | None = None  # [B, Lv] VoiceBPE ids padded to the latent length
    voice_mask: Tensor | None = None  # [B, Lv]
    has_video: Tensor | None = None  # [B] bool; default: CLIP present with a real frame
    has_caption: Tensor | None = None  # [B] bool; default: caption present with a real token
    has_voice: Tensor | None = None  # [B] bool; default: ids present with a real token
    # [B, Ts] float: centre of each sync token, seconds from the clip start (None: the Synchformer
    # layout of consecutive windows, `registry.sync_token_times`)
    sync_times: Tensor | None = None
    # [B, Lv] float: start of each VoiceBPE token, seconds from the clip start, where an alignment
    # exists (None: the paper's layout, token i at latent frame i, for the whole batch; NaN at a
    # sample's real tokens: that sample has no alignment and keeps the layout)
    voice_times: Tensor | None = None

    def __post_init__(self):
        B = self.latent_mask.shape[0]
        if self.start_s.shape != (B,) or self.duration_s.shape != (B,):
            raise ValueError(f"start_s and duration_s must have shape ({B},)")
        if check_values_of(self.latent_mask):
            self._check_latent_mask()
        for feat, mask, name in (
            (self.clip, self.clip_mask, "clip"),
            (self.sync, self.sync_mask, "sync"),
            (self.caption, self.caption_mask, "caption"),
            (self.voice_ids, self.voice_mask, "voice_ids"),
        ):
            if feat is None:
                if mask is not None:
                    raise ValueError(f"{name}_mask given without {name}")
                continue
            if feat.shape[0] != B:
                raise ValueError(f"{name} has batch {feat.shape[0]}, latent_mask has {B}")
            if mask is not None and mask.shape != feat.shape[:2]:
                raise ValueError(f"{name} mask shape {tuple(mask.shape)} does not match {tuple(feat.shape[:2])}")
        for times, feat, name in ((self.sync_times, self.sync, "sync"), (self.voice_times, self.voice_ids, "voice_ids")):
            if times is None:
                continue
            if feat is None:
                raise ValueError(f"{name} times given without {name}")
            if times.shape != feat.shape[:2]:
                raise ValueError(f"{name} times shape {tuple(times.shape)} does not match {tuple(feat.shape[:2])}")

    def _check_latent_mask(self) -> None:
        if not bool(self.latent_mask.any(1).all()):
            raise ValueError("every sample needs at least one real latent frame (latent_mask)")

    def check_values(self) -> Conditions:
        """All value checks, whatever `value_checks` says (call it where batches are collated)."""
        self._check_latent_mask()
        for m in MODALITIES:
            self._check_presence(m)
        return self

    @property
    def batch_size(self) -> int:
        return self.latent_mask.shape[0]

    def mask_of(self, name: str) -> Tensor | None:
        """The mask of feature `name` (clip, sync, caption, voice_ids): given, or all real."""
        feat, mask = getattr(self, name), getattr(self, f"{name}_mask" if name != "voice_ids" else "voice_mask")
        if feat is None:
            return None
        return mask if mask is not None else torch.ones(feat.shape[:2], dtype=torch.bool, device=feat.device)

    def present(self, modality: str) -> Tensor:
        """[B] bool: which samples carry `modality` (video, caption or voice)."""
        (modality,) = canonical_modalities([modality])
        flag = {"video": self.has_video, "caption": self.has_caption, "voice": self.has_voice}[modality]
        source = {"video": "clip", "caption": "caption", "voice": "voice_ids"}[modality]
        mask = self.mask_of(source)
        available = (
            torch.zeros(self.batch_size, dtype=torch.bool, device=self.latent_mask.device)
            if mask is None
            else mask.any(1)
        )
        if flag is None:
            return available
        if check_values_of(flag):
            self._check_presence(modality)
        return flag.to(torch.bool)

    def _check_presence(self, modality: str) -> None:
        flag = {"video": self.has_video, "caption": self.has_caption, "voice": self.has_voice}[modality]
        source = {"video": "clip", "caption": "caption", "voice": "voice_ids"}[modality]
        mask = self.mask_of(source)
        if flag is None:
            return
        available = torch.zeros_like(flag, dtype=torch.bool) if mask is None else mask.any(1)
        if bool((flag.to(torch.bool) & ~available).any()):
            raise ValueError(f"{modality} marked present for a sample without any real {source} token")

    def drop(self, modalities: Iterable[str], samples: Tensor | None = None) -> Conditions:
        """The same conditions with `modalities` absent for `samples` ([B] bool; all when None)."""
        changes = {}
        for modality in canonical_modalities(modalities):
            keep = self.present(modality)
            keep = torch.zeros_like(keep) if samples is None else keep & ~samples.to(keep.device)
            changes[f"has_{modality}"] = keep
        return replace(self, **changes)

    def keep_only(self, modalities: Iterable[str]) -> Conditions:
        """Conditions on the given subset of {video, caption, transcript, lyrics} only."""
        keep = canonical_modalities(modalities)
        return self.drop([m for m in MODALITIES if m not in keep])

    def unconditional(self) -> Conditions:
        return self.drop(MODALITIES)

    def to(self, device) -> Conditions:
        return replace(
            self, **{f.name: getattr(self, f.name).to(device) for f in fields(self) if getattr(self, f.name) is not None}
        )


def latent_mask_for_durations(
    durations_s: Iterable[float], latent_rate: float, max_duration_s: float, device=None
) -> Tensor:
    """[B, T_max] mask of real latent frames for clips of the given durations (8 s -> 345 frames)."""
    from model.config import frames_for_duration

    durations = [float(d) for d in durations_s]
    bad = [d for d in durations if not 0 < d <= max_duration_s]
    if bad:
        raise ValueError(f"durations must be in (0, {max_duration_s}] s, got {bad}")
    frames = [frames_for_duration(d, latent_rate) for d in durations]
    width = max(frames)
    return torch.arange(width, device=device)[None, :] < torch.tensor(frames, device=device)[:, None]
