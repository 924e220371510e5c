"""Synchformer visual encoder: MotionFormer with divided space-time attention (Iashin et al. 2024).

What MMAudio (and AudioGen-Omni after it) feeds the network as the synchronisation condition:
25 fps RGB frames, 224 px, cut into 16-frame windows every 8 frames; each window becomes
8 tokens of 768 features (one per 2-frame tubelet, after pooling its 14×14 patches).

    enc = SynchformerEncoder.load("synchformer", "/ckpt/synchformer_state_dict.pth")
    feats, times = enc.encode(frames)   # frames uint8 [T, 224, 224, 3] at 25 fps
    # feats [N·8, 768] float32, times [N·8] s, N = (T − 16) // 8 + 1

Weights: MMAudio's release `synchformer_state_dict.pth`
(https://github.com/hkchengrex/MMAudio/releases/download/v0.1/synchformer_state_dict.pth,
md5 5b2f5594b0730f70e41e549b7c94390c per MMAudio's download list). It is the whole audio-visual
Synchformer's state dict; like MMAudio we keep only the `vfeat_extractor.*` tensors (the visual
branch) and load those strictly: a missing, unexpected or wrongly shaped tensor is a ValueError
naming the tensors and the file.

The maths follow MMAudio's `mmaudio/ext/synchformer/` (motionformer.py, video_model_builder.py,
vit_helper.py) with the divided_224_16x4 config and MMAudio's patches to it:
  window [B, 3, 16, 224, 224], normalised (x/255 − 0.5)/0.5
  -> Conv3d tubelets (2×16×16)               [B, 8·196, D]  token order (t, h, w)
  -> prepend CLS; add pos_embed[0] to CLS and pos_embed[1+n] + temp_embed[t] to patch (t, n)
  -> depth × block: x += time-attn(norm3 x); x += space-attn(norm1 x); x += MLP(norm2 x)
     (each attention: CLS attends to every token; a patch attends to CLS plus the patches of
     its own position over time / of its own frame over space)
  -> drop CLS, LayerNorm                     [B, 8·196, D]
  -> per tubelet t: a pre-norm TransformerEncoderLayer over [CLS', 196 patches], keep CLS'
                                             [B, 8, D]
The unused 2-D `patch_embed` is kept only so the released file loads strictly, as in MMAudio.

How equality with the reference was checked (tests/encoders/make_synchformer_golden.py):
the reference files from MMAudio (commit 974010a) were run from a scratch copy with einops
installed beside them and a two-function stand-in for `timm.layers` (trunc_normal_, to_2tuple,
only used at init; weights are overwritten). The same random checkpoint (this module's
`build_random_checkpoint`, written with torch.save) was loaded into MMAudio's `Synchformer`
through its own `load_state_dict` (strict) and into ours through `load`; both encoded the same
uint8 frames (preprocessed as torchvision's ToDtype(scale=True) + Normalize(0.5, 0.5) compute it;
segmented like MMAudio's `FeaturesUtils.encode_video_with_sync`). Max abs difference, fp32 CPU,
outputs of std ≈ 1.25: 2.1e-6 for the real architecture (3 windows), 1.4e-6 for the tiny one. The tiny config's reference output is kept in
tests/fixtures/synchformer_tiny_golden.npz and checked by tests/encoders/test_synchformer.py.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor, nn

from .registry import IDENTITY_HEX, FeatureSpec, feature_spec, file_sha256, sync_token_times

# Frame normalisation of the reference (MMAudio's sync transform: ToDtype(scale) + Normalize(0.5, 0.5)).
PIXEL_MAX = 255.0
PIXEL_MEAN = 0.5
PIXEL_STD = 0.5
# The released file holds the whole audio-visual Synchformer; the visual branch is under this prefix.
VISUAL_PREFIX = "vfeat_extractor."
RELEASE_URL = "https://github.com/hkchengrex/MMAudio/releases/download/v0.1/synchformer_state_dict.pth"
_MAX_NAMED = 12  # tensors named in one error message


class MotionFormerConfig(BaseModel):
    """Architecture hyper-parameters (MotionFormer divided_224_16x4 as patched by Synchformer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    img_size: int = Field(224, ge=1, description="side of the square input frame (DATA.TRAIN_CROP_SIZE)")
    patch_size: int = Field(16, ge=1, description="spatial patch side (VIT.PATCH_SIZE)")
    tubelet: int = Field(2, ge=1, description="frames per tubelet (VIT.PATCH_SIZE_TEMP)")
    window_frames: int = Field(16, ge=1, description="frames per window (segment)")
    embed_dim: int = Field(768, ge=1, description="token width D (VIT.EMBED_DIM)")
    depth: int = Field(12, ge=1, description="divided space-time blocks (VIT.DEPTH)")
    num_heads: int = Field(12, ge=1, description="attention heads (VIT.NUM_HEADS)")
    mlp_ratio: int = Field(4, ge=1, description="MLP hidden = mlp_ratio·D (VIT.MLP_RATIO)")
    qkv_bias: bool = Field(True, description="bias in the q/k/v projection (VIT.QKV_BIAS)")
    norm_eps: float = Field(1e-6, gt=0, description="LayerNorm epsilon everywhere")
    in_chans: int = Field(3, ge=1, description="input channels (VIT.CHANNELS)")

    @model_validator(mode="after")
    def _check(self) -> MotionFormerConfig:
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.window_frames % self.tubelet:
            raise ValueError(f"window_frames {self.window_frames} is not a multiple of tubelet {self.tubelet}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        return self

    @property
    def grid(self) -> int:  # patches per side (14)
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:  # patches per frame (196)
        return self.grid * self.grid

    @property
    def temporal_resolution(self) -> int:  # tubelets per window = tokens per window (8)
        return self.window_frames // self.tubelet


CONFIGS: dict[str, MotionFormerConfig] = {
    "synchformer": MotionFormerConfig(),
    # same code and input geometry, narrow and shallow: 10 s of video encodes in about a second on one core
    "synchformer-tiny-random": MotionFormerConfig(embed_dim=64, depth=2, num_heads=4),
}


def _config(name: str) -> MotionFormerConfig:
    if name not in CONFIGS:
        raise KeyError(f"no Synchformer architecture for encoder {name!r}; known: {', '.join(sorted(CONFIGS))}")
    return CONFIGS[name]


# ---------------------------------------------------------------------------------------------
# network (parameter names are the reference's, so the released file loads as is)


class PatchEmbed2D(nn.Module):
    """The image patch embedding of the ViT MotionFormer started from; never called (tubelets are 3-D)."""

    def __init__(self, cfg: MotionFormerConfig):
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)


class TubeletEmbed(nn.Module):
    """[B, C, T, H, W] -> [B, (T/2)·(H/16)·(W/16), D], tokens ordered (t, h, w)."""

    def __init__(self, cfg: MotionFormerConfig):
        super().__init__()
        kernel = (cfg.tubelet, cfg.patch_size, cfg.patch_size)
        self.proj = nn.Conv3d(cfg.in_chans, cfg.embed_dim, kernel_size=kernel, stride=kernel)

    def forward(self, video: Tensor) -> Tensor:
        return self.proj(video).flatten(2).transpose(1, 2)


class DividedAttention(nn.Module):
    """Multi-head attention over one axis of a (frames × patches) token grid, plus a global CLS.

    The CLS query attends to every token. A patch query attends to the CLS key and to the patches
    that share its spatial position (axis "time") or its frame (axis "space").
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, axis: str, frames: int, patches: int) -> Tensor:
        # x: [B, 1 + F·N, D]
        if axis not in ("time", "space"):
            raise ValueError(f"axis must be 'time' or 'space', got {axis!r}")
        B, L, D = x.shape
        H = self.num_heads
        q, k, v = self.qkv(x).view(B, L, 3, H, D // H).permute(2, 0, 3, 1, 4)  # 3 × [B, H, L, d]
        cls_out = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # [B, H, 1, d]

        # patch tokens grouped: space -> [B, H·F, N, d] (one group per frame),
        #                       time  -> [B, H·N, F, d] (one group per spatial position)
        def grid(t: Tensor) -> Tensor:
            t = t[:, :, 1:].unflatten(2, (frames, patches))  # [B, H, F, N, d]
            if axis == "time":
                t = t.transpose(2, 3)
            return t.reshape(B, -1, t.shape[3], t.shape[4])

        q_, k_, v_ = grid(q), grid(k), grid(v)
        groups = q_.shape[1] // H
        cls_k = k[:, :, :1].repeat_interleave(groups, 1)  # [B, H·groups, 1, d], same CLS key for every group
        cls_v = v[:, :, :1].repeat_interleave(groups, 1)
        out = F.scaled_dot_product_attention(q_, torch.cat((cls_k, k_), 2), torch.cat((cls_v, v_), 2))
        out = out.unflatten(1, (H, groups))  # [B, H, groups, members, d]
        if axis == "time":
            out = out.transpose(2, 3)
        out = torch.cat((cls_out, out.flatten(2, 3)), 2)  # [B, H, L, d]
        return self.proj(out.transpose(1, 2).reshape(B, L, D))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DividedSpaceTimeBlock(nn.Module):
    """Time attention, then space attention, then MLP; pre-norm residuals (norm3, norm1, norm2)."""

    def __init__(self, cfg: MotionFormerConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.attn = DividedAttention(dim, cfg.num_heads, cfg.qkv_bias)  # over space
        self.timeattn = DividedAttention(dim, cfg.num_heads, cfg.qkv_bias)  # over time
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, cfg.mlp_ratio * dim)
        self.norm3 = nn.LayerNorm(dim, eps=cfg.norm_eps)

    def forward(self, x: Tensor, frames: int, patches: int) -> Tensor:
        x = x + self.timeattn(self.norm3(x), "time", frames, patches)
        x = x + self.attn(self.norm1(x), "space", frames, patches)
        return x + self.mlp(self.norm2(x))


class PoolingSelfAttention(nn.Module):
    """Multi-head self-attention with torch.nn.MultiheadAttention's parameter layout."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward_first(self, x: Tensor) -> Tensor:
        """Output of the first query only: [B, L, D] -> [B, 1, D] (row 0 of full self-attention)."""
        B, L, D = x.shape
        H = self.num_heads
        w_q, w_kv = self.in_proj_weight.split((D, 2 * D))
        b_q, b_kv = self.in_proj_bias.split((D, 2 * D))
        q = F.linear(x[:, :1], w_q, b_q).view(B, 1, H, D // H).transpose(1, 2)  # [B, H, 1, d]
        k, v = F.linear(x, w_kv, b_kv).view(B, L, 2, H, D // H).permute(2, 0, 3, 1, 4)  # 2 × [B, H, L, d]
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(out.transpose(1, 2).reshape(B, 1, D))


class SpatialPooling(nn.Module):
    """One pre-norm transformer encoder layer over [CLS, patches of one tubelet]; returns the CLS.

    The reference runs torch.nn.TransformerEncoderLayer(norm_first, GELU, eps 1e-6) on every
    position and keeps position 0; only position 0 is computed here (the same numbers)."""

    def __init__(self, cfg: MotionFormerConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.self_attn = PoolingSelfAttention(dim, cfg.num_heads)
        self.linear1 = nn.Linear(dim, cfg.mlp_ratio * dim)
        self.linear2 = nn.Linear(cfg.mlp_ratio * dim, dim)
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)

    def forward(self, x: Tensor) -> Tensor:
        # x: [B·t, h·w, D] -> [B·t, D]
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), 1)  # [B·t, 1 + h·w, D]
        cls = x[:, :1] + self.self_attn.forward_first(self.norm1(x))  # [B·t, 1, D]
        cls = cls + self.linear2(F.gelu(self.linear1(self.norm2(cls))))
        return cls[:, 0]


class MotionFormer(nn.Module):
    """One window of video -> one token per tubelet: [B, 3, 16, H, W] -> [B, 8, D]."""

    def __init__(self, cfg: MotionFormerConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, D))  # CLS + one frame's patches
        self.temp_embed = nn.Parameter(torch.zeros(1, cfg.temporal_resolution, D))  # one per tubelet
        self.patch_embed = PatchEmbed2D(cfg)
        self.patch_embed_3d = TubeletEmbed(cfg)
        self.blocks = nn.ModuleList(DividedSpaceTimeBlock(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(D, eps=cfg.norm_eps)
        self.spatial_attn_agg = SpatialPooling(cfg)

    def positional_embedding(self) -> Tensor:
        """[1, 1 + t·N, D]: CLS position, then patch n of tubelet t gets pos_embed[1+n] + temp_embed[t]."""
        cfg = self.cfg
        patch_pos = self.pos_embed[:, 1:].repeat(1, cfg.temporal_resolution, 1)  # [1, t·N, D]
        time_pos = self.temp_embed.repeat_interleave(cfg.num_patches, 1)  # [1, t·N, D]
        return torch.cat((self.pos_embed[:, :1], patch_pos + time_pos), 1)

    def embed_frames(self, video: Tensor) -> Tensor:
        """Tubelet tokens of consecutive frames: [3, T, H, W] (T even) -> [T/2, N, D].

        Windows start on multiples of 8 frames, so tubelet k of window w is tubelet 4w + k of the
        clip: the overlapping windows share their tubelets and each is embedded once."""
        cfg = self.cfg
        _, T, H, W = video.shape
        if (H, W) != (cfg.img_size, cfg.img_size) or T % cfg.tubelet:
            raise ValueError(f"MotionFormer expects frames of {cfg.img_size}×{cfg.img_size} in whole tubelets of "
                             f"{cfg.tubelet}, got {T}×{H}×{W}")
        x = self.patch_embed_3d.proj(video[None])[0]  # [D, T/2, h, w]
        return x.flatten(2).permute(1, 2, 0)  # [T/2, N, D]

    def forward(self, video: Tensor) -> Tensor:
        # video: [B, 3, window_frames, H, W], normalised (the reference's input layout)
        cfg = self.cfg
        _, _, T, H, W = video.shape
        if (T, H, W) != (cfg.window_frames, cfg.img_size, cfg.img_size):
            raise ValueError(f"MotionFormer expects windows of {cfg.window_frames}×{cfg.img_size}×{cfg.img_size}, "
                             f"got {T}×{H}×{W}")
        return self.forward_tokens(self.patch_embed_3d(video))

    def forward_tokens(self, x: Tensor) -> Tensor:
        # x: [B, t·N, D] tubelet tokens of B windows, ordered (t, h, w) -> [B, t, D]
        cfg = self.cfg
        B = x.shape[0]
        frames, patches = cfg.temporal_resolution, cfg.num_patches
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), 1)  # [B, 1 + t·N, D]
        x = x + self.positional_embedding()
        for block in self.blocks:
            x = block(x, frames, patches)
        x = self.norm(x[:, 1:])  # [B, t·N, D]
        x = x.reshape(B * frames, patches, cfg.embed_dim)  # [B·t, N, D]
        return self.spatial_attn_agg(x).view(B, frames, cfg.embed_dim)  # [B, t, D]


# ---------------------------------------------------------------------------------------------
# encoder: load, preprocess, window, encode


class SynchformerEncoder(nn.Module):
    """Frames at 25 fps -> Synchformer tokens with their times (see the module docstring)."""

    def __init__(self, name: str, identity: str | None = None):
        super().__init__()
        self.spec: FeatureSpec = feature_spec(name)
        self.arch = _config(name)
        _check_spec_fits(self.spec, self.arch)
        self.identity = identity or f"{name}@unloaded"
        self.vfeat_extractor = MotionFormer(self.arch)

    # ---- loading
    @classmethod
    def load(cls, name: str, weights: str | None = None, *, device="cpu", dtype=None) -> SynchformerEncoder:
        """Load encoder `name` from a Synchformer state dict file (MMAudio's synchformer_state_dict.pth).

        weights None: `synchformer` needs the file (FileNotFoundError saying where to get it);
        `synchformer-tiny-random` builds its seed-0 random weights in memory (same key checks).
        dtype None: float32 on CPU, bfloat16 on CUDA."""
        spec = feature_spec(name)
        if spec.kind != "sync":
            raise ValueError(f"encoder {name!r} is a {spec.kind} encoder, not a Synchformer")
        if weights is None and spec.default_weights is None:
            state, source, identity = random_state_dict(name, seed=0), "random weights (seed 0)", f"{name}@random-seed0"
        else:
            path = Path(weights or spec.default_weights)
            if not path.is_file():
                raise FileNotFoundError(
                    f"{name}: weights file {str(path)!r} not found; download MMAudio's release "
                    f"{RELEASE_URL} and pass its path (stage option `weights`)")
            state, source = _read_state_dict(path), str(path)
            identity = f"{name}@sha256:{file_sha256(path)[:IDENTITY_HEX]}"
        with torch.device("meta"):  # no random init: every tensor comes from `state`
            model = cls(name, identity)
        model.load_visual_state(state, source)
        device = torch.device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        return model.to(device=device, dtype=dtype).eval().requires_grad_(False)  # a frozen feature extractor

    def load_visual_state(self, state: dict[str, Tensor], source: str) -> None:
        """Strictly load the `vfeat_extractor.*` tensors of `state` (others are the audio branch: dropped)."""
        visual = {k: v for k, v in state.items() if k.startswith(VISUAL_PREFIX)}
        if not visual:
            raise ValueError(f"{source}: no {VISUAL_PREFIX}* tensors; not a Synchformer state dict "
                             f"(first keys: {_named(list(state))})")
        own = self.state_dict()
        missing = [k for k in own if k not in visual]
        unexpected = [k for k in visual if k not in own]
        wrong = [f"{k} {tuple(visual[k].shape)} (expected {tuple(own[k].shape)})"
                 for k in own if k in visual and visual[k].shape != own[k].shape]
        problems = []
        if missing:
            problems.append(f"{len(missing)} missing: {_named(missing)}")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected: {_named(unexpected)}")
        if wrong:
            problems.append(f"{len(wrong)} with the wrong shape: {_named(wrong)}")
        if problems:
            raise ValueError(f"{source} does not fit the {self.spec.name!r} Synchformer "
                             f"({self.arch.embed_dim}-d, depth {self.arch.depth}): " + "; ".join(problems))
        self.load_state_dict(visual, strict=True, assign=True)

    # ---- inference
    @property
    def device(self) -> torch.device:
        return self.vfeat_extractor.cls_token.device

    @property
    def dtype(self) -> torch.dtype:
        return self.vfeat_extractor.cls_token.dtype

    def preprocess(self, frames: np.ndarray) -> Tensor:
        """uint8 [T, S, S, 3] -> float32 [T, 3, S, S] in [-1, 1], computed as torchvision's
        ToDtype(float32, scale=True) then Normalize(0.5, 0.5) (MMAudio's sync transform)."""
        self._check_frames(frames)
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
        return x.to(torch.float32).mul_(1.0 / PIXEL_MAX).sub_(PIXEL_MEAN).div_(PIXEL_STD)

    def windows(self, n_frames: int) -> int:
        """Number of windows for `n_frames` frames: (T − 16) // 8 + 1 (0 below one window)."""
        if n_frames < self.spec.window_frames:
            return 0
        return (n_frames - self.spec.window_frames) // self.spec.window_stride + 1

    @torch.no_grad()
    def encode(self, frames: np.ndarray, batch_windows: int = 32) -> tuple[Tensor, np.ndarray]:
        """uint8 [T, 224, 224, 3] at 25 fps -> (features [N·8, D] float32 CPU, token times [N·8] s)."""
        self._check_frames(frames)
        n = self.windows(len(frames))
        if n == 0:
            raise ValueError(f"{self.spec.name}: clip too short: {len(frames)} frames, one window needs "
                             f"{self.spec.window_frames} ({self.spec.window_frames / self.spec.frame_fps:.2f} s "
                             f"at {self.spec.frame_fps:g} fps)")
        if batch_windows < 1:
            raise ValueError(f"batch_windows must be >= 1, got {batch_windows}")
        spec, arch = self.spec, self.arch
        if spec.window_stride % arch.tubelet:
            raise ValueError(f"{spec.name}: window_stride {spec.window_stride} is not a whole number of tubelets")
        tubes_per_window, tube_stride = arch.temporal_resolution, spec.window_stride // arch.tubelet
        out = []
        for first in range(0, n, batch_windows):
            last = min(n, first + batch_windows) - 1
            # window w = frames stride·w … stride·w + 15, as MMAudio's encode_video_with_sync cuts them
            start, stop = first * spec.window_stride, last * spec.window_stride + spec.window_frames
            video = self.preprocess(frames[start:stop]).to(device=self.device, dtype=self.dtype)  # [T, 3, H, W]
            tubes = self.vfeat_extractor.embed_frames(video.transpose(0, 1))  # [T/2, N, D]
            windows = tubes.unfold(0, tubes_per_window, tube_stride)  # [b, N, D, t]
            tokens = windows.permute(0, 3, 1, 2).flatten(1, 2)  # [b, t·N, D]
            out.append(self.vfeat_extractor.forward_tokens(tokens).float().cpu())  # [b, t, D]
        features = torch.cat(out).reshape(n * self.spec.tokens_per_window, self.spec.dim)
        return features, sync_token_times(n, self.spec)

    def _check_frames(self, frames) -> None:
        s = self.spec.frame_size
        if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
            raise TypeError(f"{self.spec.name}: frames must be a uint8 numpy array [T, {s}, {s}, 3], "
                            f"got {type(frames).__name__} {getattr(frames, 'dtype', '')}")
        if frames.ndim != 4 or frames.shape[1:] != (s, s, 3):
            raise ValueError(f"{self.spec.name}: frames must be [T, {s}, {s}, 3] (short side {s}, centre crop), "
                             f"got {list(frames.shape)}")


# ---------------------------------------------------------------------------------------------
# files


def _check_spec_fits(spec: FeatureSpec, arch: MotionFormerConfig) -> None:
    pairs = {"dim": (spec.dim, arch.embed_dim), "frame_size": (spec.frame_size, arch.img_size),
             "window_frames": (spec.window_frames, arch.window_frames),
             "tokens_per_window": (spec.tokens_per_window, arch.temporal_resolution)}
    bad = [f"{k}={a} but the architecture has {b}" for k, (a, b) in pairs.items() if a != b]
    if bad:
        raise ValueError(f"registry entry {spec.name!r} does not fit its Synchformer config: " + "; ".join(bad))


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_NAMED])
    return shown + (f", … ({len(names) - _MAX_NAMED} more)" if len(names) > _MAX_NAMED else "")


def _read_state_dict(path: Path) -> dict[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unpickling failure means a bad file
        raise ValueError(f"{path}: cannot read as a torch state dict ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise ValueError(f"{path}: expected a state dict (name -> tensor) as MMAudio's synchformer_state_dict.pth, "
                         f"got {type(state).__name__}")
    return state


# Tensors of the audio branch and the synchronisation transformer that the released file also holds
# (Synchformer's AST audio extractor, projections and GlobalTransformer); MMAudio drops them, so do we.
# A random checkpoint carries a few of them so that loading is tested on the real mixture of keys.
def _non_visual_tensors(dim: int, g: torch.Generator) -> dict[str, Tensor]:
    return {
        "afeat_extractor.cls_token": torch.randn(1, 1, dim, generator=g),
        "aproj.weight": torch.randn(dim, dim, generator=g) / dim ** 0.5,
        "aproj.bias": torch.zeros(dim),
        "vproj.weight": torch.randn(dim, dim, generator=g) / dim ** 0.5,
        "vproj.bias": torch.zeros(dim),
        "transformer.OFF_tok": torch.randn(1, 1, dim, generator=g),
        "transformer.MOD_tok": torch.randn(1, 1, dim, generator=g),
        "transformer.ln_f.weight": torch.ones(dim),
        "transformer.ln_f.bias": torch.zeros(dim),
    }


def random_state_dict(name: str, seed: int = 0) -> dict[str, Tensor]:
    """A full Synchformer-format state dict with random weights for architecture `name`.

    Scales keep activations of order one, so that any difference in the maths shows:
    matrices N(0, 1/fan_in), biases N(0, 0.1²), LayerNorm gains 1 + N(0, 0.1²), embeddings N(0, 0.5²)."""
    g = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in MotionFormer(_config(name)).state_dict().items()}
    state = {}
    for key, shape in shapes.items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf in ("cls_token", "pos_embed", "temp_embed"):
            t = 0.5 * torch.randn(shape, generator=g)
        elif leaf == "weight" and key.split(".")[-2].startswith("norm"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            t = 0.1 * torch.randn(shape, generator=g)
        else:
            fan_in = int(np.prod(shape[1:]))
            t = torch.randn(shape, generator=g) / fan_in ** 0.5
        state[VISUAL_PREFIX + key] = t
    state.update(_non_visual_tensors(_config(name).embed_dim, g))
    return state


def build_random_checkpoint(name: str, path: str | Path, *, seed: int = 0) -> Path:
    """Write random weights for `name` in the released file's format (torch.save of a flat state dict)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_state_dict(name, seed), path)
    return path
