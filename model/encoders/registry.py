"""Encoder registry: the single source of truth for every feature the network consumes.

One entry per encoder. The entry says what the encoder eats (frame size and rate, or audio
rate), what it gives (feature width and rate) and where its code lives. The media stage takes
frame sizes from here, the feature stages load encoders through here, the network takes its
input widths from here, and the trainer / generation refuse a checkpoint or a shard whose
recorded encoders do not fit — naming both.

    spec = feature_spec("dfn5b-h14-384")      # FeatureSpec(kind="clip", dim=1024, frame_size=384, ...)
    enc = load_encoder("dfn5b-h14-384", weights="/ckpt/open_clip_pytorch_model.bin")

Every encoder class implements `load(weights, *, device, dtype)` (classmethod) and exposes
`spec` and `identity` ("name@revision", or "name@sha256:<12 hex>" for a local file).
"""
from __future__ import annotations

import hashlib
import importlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

AUDIO_SAMPLE_RATE = 44100
LATENT_HOP = 1024  # audio samples per latent frame (MMAudio 44k: mel hop 512, VAE stride 2)

Kind = Literal["clip", "sync", "latent"]


@dataclass(frozen=True)
class FeatureSpec:
    """What one encoder's features look like."""

    name: str  # registry name
    kind: Kind
    dim: int  # feature width (latent: channels C; shards store mean and std, [T, 2C])
    rate: float  # output frames or tokens per second (sync: nominal, the real times are stored)
    frame_size: int | None = None  # side of the square input frame (clip, sync)
    frame_fps: float | None = None  # input frame rate (clip 8, sync 25)
    sample_rate: int | None = None  # input audio rate (latent)
    window_frames: int | None = None  # sync: frames per window
    window_stride: int | None = None  # sync: frames between windows
    tokens_per_window: int | None = None  # sync: tokens per window
    default_weights: str | None = None  # hub id or well-known file name of the public release
    weight_free: bool = False  # needs no weights file (the log-mel codec)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EncoderEntry:
    spec: FeatureSpec
    impl: str  # "module:Class"


def _clip(name, dim, size, weights, impl="model.encoders.clip:ClipImageEncoder") -> EncoderEntry:
    return EncoderEntry(FeatureSpec(name, "clip", dim, rate=8.0, frame_size=size, frame_fps=8.0,
                                    default_weights=weights), impl)


def _sync(name, dim, weights) -> EncoderEntry:
    return EncoderEntry(FeatureSpec(name, "sync", dim, rate=25.0, frame_size=224, frame_fps=25.0, window_frames=16,
                                    window_stride=8, tokens_per_window=8, default_weights=weights),
                        "model.encoders.synchformer:SynchformerEncoder")


def _latent(name, dim, impl, weights=None, weight_free=False) -> EncoderEntry:
    return EncoderEntry(FeatureSpec(name, "latent", dim, rate=AUDIO_SAMPLE_RATE / LATENT_HOP,
                                    sample_rate=AUDIO_SAMPLE_RATE, default_weights=weights,
                                    weight_free=weight_free), impl)


ENCODERS: dict[str, EncoderEntry] = {
    # CLIP image encoders (8 fps)
    # paper; weights: open_clip's pretrained table (ViT-bigG-14-quickgelu, metaclip_fullcc) hub repo, or
    # a local copy of https://dl.fbaipublicfiles.com/MMPT/metaclip/G14_fullcc2.5b.pt
    "metaclip-bigg14-quickgelu": _clip("metaclip-bigg14-quickgelu", 1280, 224,
                                       "timm/vit_gigantic_patch14_clip_224.metaclip_2pt5b"),
    "dfn5b-h14-384": _clip("dfn5b-h14-384", 1024, 384, "apple/DFN5B-CLIP-ViT-H-14-384"),  # MMAudio
    "clip-tiny-random": _clip("clip-tiny-random", 64, 224, None),  # demo/tests: same code, random weights
    # Synchformer visual encoder (25 fps, 16-frame windows, stride 8, 8 tokens per window)
    "synchformer": _sync("synchformer", 768, "synchformer_state_dict.pth"),
    "synchformer-tiny-random": _sync("synchformer-tiny-random", 64, None),  # demo/tests: depth 2, 64-d
    # audio latents at 44100/1024 Hz
    "mel-vae-44k": _latent("mel-vae-44k", 40, "model.encoders.mel_vae:MelVAECodec", "v1-44.pth"),
    # tests: same code, VAE hidden 16 instead of 512, a small BigVGAN (random checkpoints)
    "mel-vae-44k-tiny-random": _latent("mel-vae-44k-tiny-random", 40, "model.encoders.mel_vae:MelVAECodec"),
    # demo: weight-free normalised 40-band log-mel, decoded by Griffin-Lim
    "logmel-codec": _latent("logmel-codec", 40, "model.encoders.logmel_codec:LogMelCodec", weight_free=True),
}

# The paper's encoders (AudioGen-Omni: MetaCLIP ViT-bigG-14, Synchformer, MMAudio's 44.1 kHz VAE).
PAPER_ENCODERS = {"clip": "metaclip-bigg14-quickgelu", "sync": "synchformer", "latent": "mel-vae-44k"}
# What `make demo` and the tests use: no downloaded weights.
DEMO_ENCODERS = {"clip": "clip-tiny-random", "sync": "synchformer-tiny-random", "latent": "logmel-codec"}


_HASH_CHUNK = 1 << 22
IDENTITY_HEX = 12  # hex digits of a weights file's sha256 in an encoder identity


def file_sha256(path: str | Path) -> str:
    """sha256 (hex) of a file, read in chunks (weights files are GBs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def entry(name: str) -> EncoderEntry:
    if name not in ENCODERS:
        raise KeyError(f"unknown encoder {name!r}; known: {', '.join(sorted(ENCODERS))}")
    return ENCODERS[name]


def feature_spec(name: str) -> FeatureSpec:
    return entry(name).spec


def encoder_class(name: str):
    module, _, attr = entry(name).impl.partition(":")
    return getattr(importlib.import_module(module), attr)


def load_encoder(name: str, weights: str | None = None, *, device="cpu", dtype=None, **options):
    """Load encoder `name` from `weights` (local path or hub id; default: the public release)."""
    return encoder_class(name).load(name, weights, device=device, dtype=dtype, **options)


def check_network_fits(network_cfg, encoders: dict[str, str], what: str = "network config") -> None:
    """Refuse a network whose input widths differ from the encoders' (names both)."""
    problems = []
    widths = {"clip": ("clip_dim", network_cfg.clip_dim), "sync": ("sync_dim", network_cfg.sync_dim),
              "latent": ("latent_dim", network_cfg.latent_dim)}
    for kind, enc_name in encoders.items():
        spec = feature_spec(enc_name)
        if spec.kind != kind:
            problems.append(f"{kind} encoder {enc_name!r} is a {spec.kind} encoder")
            continue
        field, width = widths[kind]
        if width != spec.dim:
            problems.append(f"{what} has {field}={width} but {kind} encoder {enc_name!r} gives {spec.dim}-d features")
    if problems:
        raise ValueError("; ".join(problems))


def sync_token_count(duration_s: float, spec: FeatureSpec | None = None) -> int:
    """Tokens the Synchformer gives for d seconds: 8·(floor((25d − 16)/8) + 1), 0 below one window."""
    spec = spec or feature_spec("synchformer")
    frames = int(duration_s * spec.frame_fps + 1e-6)
    if frames < spec.window_frames:
        return 0
    return spec.tokens_per_window * ((frames - spec.window_frames) // spec.window_stride + 1)


def sync_token_times(n_windows: int, spec: FeatureSpec | None = None):
    """Centre time (s from the clip start) of every sync token, window-major: [n_windows · 8].

    Window w covers frames stride·w … stride·w + window − 1; its token k covers the
    frames stride·w + k·(window/tokens) … + window/tokens − 1 (a tubelet of 2 frames at 25 fps),
    and frame i is on screen over [i/fps, (i+1)/fps).
    """
    import numpy as np

    spec = spec or feature_spec("synchformer")
    per = spec.window_frames // spec.tokens_per_window  # frames per token (2)
    w = np.arange(n_windows)[:, None]
    k = np.arange(spec.tokens_per_window)[None, :]
    first = spec.window_stride * w + per * k
    return ((first + per / 2.0) / spec.frame_fps).reshape(-1).astype(np.float32)
