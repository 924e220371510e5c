"""Network configurations of the AudioGen-Omni model, loadable by name (`tiny`, `small`, `paper`).

Rates follow DESIGN §5: the audio latent runs at 44100/1024 Hz (8 s -> 345 frames, 10 s -> 431),
CLIP frames at 8 fps, Synchformer tokens at 24 per second, and VoiceBPE ids (transcript or lyrics)
are padded to the latent length, so by default they sit on the latent grid.
"""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

AUDIO_SAMPLE_RATE = 44100
LATENT_HOP = 1024
LATENT_RATE = AUDIO_SAMPLE_RATE / LATENT_HOP  # ≈ 43.07 latent frames per second
CLIP_FPS = 8.0
SYNC_TOKENS_PER_SECOND = 24.0  # 16-frame windows, stride 8 at 25 fps, 8 tokens per window
MAX_DURATION_S = 10.0
# Tolerance when turning seconds into frame counts, so that 8.0 s is 345 frames and not 346.
_FRAME_COUNT_EPS = 1e-6


def frames_for_duration(duration_s: float, rate: float) -> int:
    """Number of frames at `rate` that cover `duration_s` (rounded up, as the VAE pads to a hop)."""
    return math.ceil(duration_s * rate - _FRAME_COUNT_EPS)


class LyricsEncoderConfig(BaseModel):
    """VoiceBPE ids -> per-token features (the lyrics-transcription encoder, paper §3.3)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vocab_size: int = Field(4096, ge=2, description="VoiceBPE vocabulary size, including the padding id")
    pad_id: int = Field(0, ge=0, description="VoiceBPE id used for padding")
    dim: int = Field(768, ge=8, description="embedding width of the encoder")
    num_blocks: int = Field(4, ge=0, description="number of ConvNeXt-V2 blocks")
    kernel_size: int = Field(7, ge=1, description="depthwise convolution kernel (odd)")
    ffn_ratio: int = Field(4, ge=1, description="inverted-bottleneck expansion of a ConvNeXt-V2 block")
    max_positions: int = Field(4000, ge=1, description="longest id sequence the sinusoidal table covers")

    @model_validator(mode="after")
    def _check(self) -> LyricsEncoderConfig:
        if self.kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd to keep the sequence length, got {self.kernel_size}")
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"pad_id {self.pad_id} must be < vocab_size {self.vocab_size}")
        return self


class MMDiTConfig(BaseModel):
    """The MMDiT: joint blocks over [latent, CLIP, caption ⊕ voice] then single-stream audio blocks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # input feature widths
    latent_dim: int = Field(40, ge=1, description="channels C of the VAE latent (the model sees samples, not mean+std)")
    clip_dim: int = Field(1024, ge=1, description="width of CLIP image features")
    sync_dim: int = Field(768, ge=1, description="width of Synchformer features")
    text_dim: int = Field(768, ge=1, description="width of caption encoder (T5) hidden states")
    lyrics: LyricsEncoderConfig = Field(default_factory=LyricsEncoderConfig)

    # network size
    hidden_dim: int = Field(1152, ge=8, description="transformer width")
    num_heads: int = Field(16, ge=1, description="attention heads")
    joint_depth: int = Field(20, ge=1, description="joint blocks over the three streams")
    single_depth: int = Field(4, ge=0, description="single-stream audio blocks after the joint blocks")
    ffn_ratio: float = Field(4.0, gt=0, description="SwiGLU hidden width = 2/3 * ffn_ratio * hidden_dim")
    ffn_multiple: int = Field(64, ge=1, description="SwiGLU hidden width is rounded up to this multiple")
    qk_norm_eps: float = Field(1e-6, gt=0, description="epsilon of the RMS norm on queries and keys")
    fourier_dim: int = Field(256, ge=2, description="width of the sinusoidal timestep features")
    fourier_max_period: float = Field(10000.0, gt=1, description="longest period of the timestep features")
    timestep_scale: float = Field(1000.0, gt=0, description="t in [0,1] is multiplied by this before Fourier features")
    rope_base: float = Field(10000.0, gt=1, description="RoPE frequency base")

    # timeline (PAAPI): rates of the temporal streams, frames per second
    latent_rate: float = Field(LATENT_RATE, gt=0)
    clip_rate: float = Field(CLIP_FPS, gt=0)
    sync_rate: float = Field(SYNC_TOKENS_PER_SECOND, gt=0)
    voice_rate: float = Field(LATENT_RATE, gt=0, description="rate of VoiceBPE tokens (padded to the latent grid)")

    # per-second start/duration embeddings
    max_start_s: int = Field(600, ge=1, description="start times beyond this many seconds share the last embedding")
    max_duration_s: float = Field(MAX_DURATION_S, gt=0, description="longest clip the model accepts")

    @model_validator(mode="after")
    def _check(self) -> MMDiTConfig:
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if (self.hidden_dim // self.num_heads) % 2:
            raise ValueError("head dimension must be even for RoPE")
        if self.fourier_dim % 2:
            raise ValueError(f"fourier_dim must be even, got {self.fourier_dim}")
        return self

    @property
    def head_dim(self) -> int:
        return self.hidden_dim // self.num_heads

    @property
    def ffn_hidden_dim(self) -> int:
        width = int(2 * self.ffn_ratio * self.hidden_dim / 3)
        return self.ffn_multiple * math.ceil(width / self.ffn_multiple)

    @property
    def max_latent_frames(self) -> int:
        return frames_for_duration(self.max_duration_s, self.latent_rate)

    @property
    def max_duration_embeddings(self) -> int:
        return math.ceil(self.max_duration_s) + 1


class FlowConfig(BaseModel):
    """Flow matching and sampling options (paper §3.4, §4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestep_sampling: str = Field("logit_normal", pattern="^(uniform|logit_normal)$")
    logit_normal_mean: float = 0.0
    logit_normal_std: float = Field(1.0, gt=0)
    cfg_dropout: float = Field(0.1, ge=0, le=1, description="per-modality probability of dropping it in training")
    num_steps: int = Field(25, ge=1, description="Euler steps at sampling")
    cfg_scale: float = Field(4.5, ge=0, description="classifier-free guidance scale")


# ---- named configurations ---------------------------------------------------------------

_TINY = MMDiTConfig(
    latent_dim=8,
    clip_dim=32,
    sync_dim=24,
    text_dim=32,
    lyrics=LyricsEncoderConfig(vocab_size=512, dim=32, num_blocks=2, max_positions=4000),
    hidden_dim=64,
    num_heads=4,
    joint_depth=2,
    single_depth=1,
    ffn_multiple=16,
    fourier_dim=64,
)

_SMALL = MMDiTConfig(
    latent_dim=40,
    clip_dim=1024,
    sync_dim=768,
    text_dim=768,
    lyrics=LyricsEncoderConfig(vocab_size=4096, dim=256, num_blocks=2),
    hidden_dim=256,
    num_heads=4,
    joint_depth=4,
    single_depth=2,
)

# 24 layers; with the 768-d, 4-block lyrics encoder this is ≈1.55 B parameters (see docs/model.md).
_PAPER = MMDiTConfig(
    latent_dim=40,
    clip_dim=1024,
    sync_dim=768,
    text_dim=768,
    lyrics=LyricsEncoderConfig(vocab_size=4096, dim=768, num_blocks=4),
    hidden_dim=1152,
    num_heads=16,
    joint_depth=20,
    single_depth=4,
)

NAMED_CONFIGS: dict[str, MMDiTConfig] = {"tiny": _TINY, "small": _SMALL, "paper": _PAPER}


def get_config(name: str, **overrides) -> MMDiTConfig:
    """A named configuration, optionally with fields replaced (validated again)."""
    if name not in NAMED_CONFIGS:
        raise KeyError(f"unknown model config {name!r}; known: {', '.join(sorted(NAMED_CONFIGS))}")
    base = NAMED_CONFIGS[name].model_dump()
    base.update(overrides)
    return MMDiTConfig.model_validate(base)
