"""Network configurations of the AudioGen-Omni model, loadable by name (`tiny`, `small`, `paper`).

Widths and rates come from the encoder registry (`model/encoders/registry.py`): the audio latent
runs at 44100/1024 Hz (8 s -> 345 frames, 10 s -> 431), CLIP frames at 8 fps, and the Synchformer
gives 8 tokens per 16-frame window of 25 fps video, windows every 8 frames (tokens of neighbouring
windows overlap in time; 8 s -> 192 tokens, see `registry.sync_token_times`). VoiceBPE ids
(transcript or lyrics) are padded to the latent length, so by default they sit on the latent grid.

`config_for_encoders(name, encoders)` is the named config with its input widths and rates taken
from the encoders a run uses (the trainer and generation call it).
"""
from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

from model.encoders import registry as _registry

AUDIO_SAMPLE_RATE = _registry.AUDIO_SAMPLE_RATE
LATENT_HOP = _registry.LATENT_HOP
LATENT_RATE = AUDIO_SAMPLE_RATE / LATENT_HOP  # ≈ 43.07 latent frames per second
_PAPER_CLIP = _registry.feature_spec(_registry.PAPER_ENCODERS["clip"])
_PAPER_SYNC = _registry.feature_spec(_registry.PAPER_ENCODERS["sync"])
_PAPER_LATENT = _registry.feature_spec(_registry.PAPER_ENCODERS["latent"])
CLIP_FPS = _PAPER_CLIP.rate
# Nominal Synchformer token rate (tokens per window / window stride in seconds = 25 per second).
# Kept for readers of the old constant; the network places tokens by their real times.
SYNC_TOKENS_PER_SECOND = _PAPER_SYNC.tokens_per_window * _PAPER_SYNC.frame_fps / _PAPER_SYNC.window_stride
MAX_DURATION_S = 10.0
# Default probability of dropping all modalities together in training: CFG's unconditional branch
# then sees its own input in ≈10% of samples (10% + 90% · 0.1³), as in the usual 10% CFG dropout.
DROP_ALL_DEFAULT = 0.1
# The paper's "t = 0.05" at inference, in our reading a start of the sampling schedule.
PAPER_T_START = 0.05
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
    # temporal convolutions (MMAudio's block design; 1 = pointwise)
    stream_kernel_size: int = Field(
        3, ge=1, description="frames of the convolutions in the latent and CLIP streams (output projection, SwiGLU)"
    )
    input_kernel_size: int = Field(7, ge=1, description="frames of the input convolution of the latent and sync inputs")
    final_kernel_size: int = Field(7, ge=1, description="frames of the final layer's convolution")

    # timeline (PAAPI): rates of the temporal streams, frames per second
    latent_rate: float = Field(LATENT_RATE, gt=0)
    clip_rate: float = Field(CLIP_FPS, gt=0)
    voice_rate: float = Field(LATENT_RATE, gt=0, description="rate of VoiceBPE tokens (padded to the latent grid)")
    voice_alignment: bool = Field(
        True, description="place VoiceBPE tokens at their start times (Conditions.voice_times) where a batch "
        "carries them; False: always the paper's layout (token i at latent frame i)",
    )
    # Synchformer token layout (used when a batch carries no real token times, and for the
    # position embedding within a window): windows of `sync_window_frames` frames at
    # `sync_frame_fps`, every `sync_window_stride` frames, `sync_tokens_per_window` tokens each
    sync_frame_fps: float = Field(_PAPER_SYNC.frame_fps, gt=0, description="video frame rate the Synchformer eats")
    sync_window_frames: int = Field(_PAPER_SYNC.window_frames, ge=1, description="frames per Synchformer window")
    sync_window_stride: int = Field(_PAPER_SYNC.window_stride, ge=1, description="frames between window starts")
    sync_tokens_per_window: int = Field(_PAPER_SYNC.tokens_per_window, ge=1, description="tokens per window")

    # per-second start/duration embeddings
    max_start_s: int = Field(600, ge=1, description="start times beyond this many seconds share the last embedding")
    max_duration_s: float = Field(MAX_DURATION_S, gt=0, description="longest clip the model accepts")

    @model_validator(mode="before")
    @classmethod
    def _legacy_fields(cls, data):
        # `sync_rate` (a uniform 24 tokens/s) was replaced by the Synchformer layout; configs
        # saved before carry it with that fixed value, which the layout supersedes.
        if isinstance(data, dict) and "sync_rate" in data:
            data = {k: v for k, v in data.items() if k != "sync_rate"}
        return data

    @model_validator(mode="after")
    def _check(self) -> MMDiTConfig:
        for name in ("stream_kernel_size", "input_kernel_size", "final_kernel_size"):
            if getattr(self, name) % 2 != 1:
                raise ValueError(f"{name} must be odd to keep the sequence length, got {getattr(self, name)}")
        if self.sync_window_frames % self.sync_tokens_per_window:
            raise ValueError(
                f"sync_window_frames {self.sync_window_frames} is not divisible by "
                f"sync_tokens_per_window {self.sync_tokens_per_window}"
            )
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

    @property
    def sync_rate(self) -> float:
        """Nominal sync tokens per second (25 for the Synchformer); real placement uses token times."""
        return self.sync_tokens_per_window * self.sync_frame_fps / self.sync_window_stride

    def sync_spec(self) -> _registry.FeatureSpec:
        """The sync layout of this network as a registry spec (for `sync_token_count` / `_times`)."""
        return _registry.FeatureSpec(
            "network", "sync", self.sync_dim, rate=self.sync_rate, frame_fps=self.sync_frame_fps,
            window_frames=self.sync_window_frames, window_stride=self.sync_window_stride,
            tokens_per_window=self.sync_tokens_per_window,
        )


class FlowConfig(BaseModel):
    """Flow matching and sampling options (paper §3.4, §4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timestep_sampling: str = Field("logit_normal", pattern="^(uniform|logit_normal)$")
    logit_normal_mean: float = 0.0
    logit_normal_std: float = Field(1.0, gt=0)
    cfg_dropout: float = Field(0.1, ge=0, le=1, description="per-modality probability of dropping it in training")
    cfg_drop_all: float = Field(
        DROP_ALL_DEFAULT, ge=0, le=1,
        description="probability of dropping every modality at once in training (the input of CFG's "
        "unconditional branch); with three independent 10% drops alone it would appear in 0.1% of samples",
    )
    num_steps: int = Field(25, ge=1, description="Euler steps at sampling")
    cfg_scale: float = Field(4.5, ge=0, description="classifier-free guidance scale")
    t_start: float = Field(
        0.0, ge=0, lt=1,
        description="flow time at which Euler sampling starts from pure noise (0: the whole path; the "
        "paper's 't = 0.05' read as starting the schedule there, see docs/model.md)",
    )


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

# 24 layers; with the 768-d, 4-block lyrics encoder this is 1.58 B parameters, within 5% of the
# paper's ≈1.55 B (see docs/model.md).
_PAPER = MMDiTConfig(
    latent_dim=_PAPER_LATENT.dim,  # MMAudio's 44.1 kHz VAE
    clip_dim=_PAPER_CLIP.dim,  # MetaCLIP ViT-bigG-14: 1280
    sync_dim=_PAPER_SYNC.dim,
    text_dim=768,
    lyrics=LyricsEncoderConfig(vocab_size=4096, dim=768, num_blocks=4),
    # 896 = 14 heads of 64 (MMAudio-L's width): with the temporal convolutions the 24 layers are
    # 1.58 B parameters (1152 wide they would be 2.57 B; 1152 pointwise was 1.54 B)
    hidden_dim=896,
    num_heads=14,
    joint_depth=20,
    single_depth=4,
)

NAMED_CONFIGS: dict[str, MMDiTConfig] = {"tiny": _TINY, "small": _SMALL, "paper": _PAPER}
# set on any config to get the pointwise (no temporal convolution) network
POINTWISE = {"stream_kernel_size": 1, "input_kernel_size": 1, "final_kernel_size": 1}

# The encoders each named config is meant for (`config_for_encoders` default): the paper's for
# `paper`, MMAudio's (DFN5B CLIP, Synchformer, 44.1 kHz VAE) for `small`, the random demo ones for `tiny`.
DEFAULT_ENCODERS: dict[str, dict[str, str]] = {
    "tiny": dict(_registry.DEMO_ENCODERS),
    "small": {"clip": "dfn5b-h14-384", "sync": "synchformer", "latent": "mel-vae-44k"},
    "paper": dict(_registry.PAPER_ENCODERS),
}


def get_config(name: str, **overrides) -> MMDiTConfig:
    """A named configuration, optionally with fields replaced (validated again)."""
    if name not in NAMED_CONFIGS:
        raise KeyError(f"unknown model config {name!r}; known: {', '.join(sorted(NAMED_CONFIGS))}")
    base = NAMED_CONFIGS[name].model_dump()
    base.update(overrides)
    return MMDiTConfig.model_validate(base)


def encoder_fields(encoders: dict[str, str]) -> dict:
    """The MMDiTConfig fields that the given encoders ({kind: registry name}) determine."""
    fields: dict = {}
    for kind, enc_name in encoders.items():
        spec = _registry.feature_spec(enc_name)
        if spec.kind != kind:
            raise ValueError(f"{kind} encoder {enc_name!r} is a {spec.kind} encoder")
        if kind == "clip":
            fields.update(clip_dim=spec.dim, clip_rate=spec.rate)
        elif kind == "sync":
            fields.update(
                sync_dim=spec.dim, sync_frame_fps=spec.frame_fps, sync_window_frames=spec.window_frames,
                sync_window_stride=spec.window_stride, sync_tokens_per_window=spec.tokens_per_window,
            )
        elif kind == "latent":
            fields.update(latent_dim=spec.dim, latent_rate=spec.rate)
        else:
            raise ValueError(f"unknown encoder kind {kind!r} (encoder {enc_name!r}); known: clip, sync, latent")
    return fields


def config_for_encoders(name: str, encoders: dict[str, str] | None = None, **overrides) -> MMDiTConfig:
    """Named config `name` with input widths and rates set from `encoders` ({kind: registry name};
    default: the config's own, `DEFAULT_ENCODERS[name]`), then `overrides`.

    An override that contradicts an encoder (e.g. clip_dim=1024 with MetaCLIP's 1280-d features)
    is refused by `registry.check_network_fits`, naming both.
    """
    if name not in NAMED_CONFIGS:
        raise KeyError(f"unknown model config {name!r}; known: {', '.join(sorted(NAMED_CONFIGS))}")
    encoders = dict(DEFAULT_ENCODERS[name] if encoders is None else encoders)
    fields = encoder_fields(encoders)
    cfg = get_config(name, **{**fields, **overrides})
    _registry.check_network_fits(cfg, encoders, what=f"network config {name!r} (with overrides {sorted(overrides)})")
    # rates and layout are not width checks: refuse those contradictions too
    wrong = [f"{k}={getattr(cfg, k)} but the encoders give {v}" for k, v in fields.items() if getattr(cfg, k) != v]
    if wrong:
        raise ValueError(f"network config {name!r}: " + "; ".join(wrong) + f" (encoders {encoders})")
    return cfg
