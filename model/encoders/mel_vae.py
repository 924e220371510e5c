"""MMAudio's 44.1 kHz mel VAE (`v1-44.pth`) + BigVGAN-v2 44 kHz vocoder as one latent codec.

    wave [B, S] 44.1 kHz ─pad S to a multiple of 1024─ MelFrontEnd (128 log-mel bins, hop 512)
        → mel [B, 128, 2T] ─normalise (per-bin data mean/std)─ Encoder1D (stride 2)
        → moments [B, 80, T] → mean, logvar (clamped to [−30, 20]), std = exp(logvar / 2)
        → (mean, std) [B, T, 40] channel-last
    latent [B, T, 40] → Decoder1D → mel [B, 128, 2T] (un-normalised) → BigVGAN-v2 (×512) → wave [B, 1024·T]

The network is the EDM2-style magnitude-preserving 1-D VAE of MMAudio
(mmaudio/ext/autoencoder/{vae,vae_modules,edm2_utils}.py), written here with the reference's
module and parameter names so the released `v1-44.pth` (a plain state dict of `VAE`, raw weights
before the forced weight normalisation, plus the `data_mean`/`data_std` buffers [1, 128, 1]) loads
strictly. As in the reference, the weights are normalised once after loading
(`MPConv1D.remove_weight_norm`).

Checked against the reference (MMAudio at HEAD of github:hkchengrex/MMAudio, run from a copy in
/tmp with einops installed there only; tests/encoders/make_mel_vae_golden.py): the same random
v1-44.pth-format file and the same wave through MMAudio's `get_mel_converter('44k')` and
`VAE.encode/decode` (loaded and weight-normalised as `AutoEncoderModule` does) vs ours give
bitwise-equal mel, mean, std and decoded mel (max |Δ| = 0, CPU float32) for the full 44k config
(hidden 512, 305 M parameters, 2 × 1 s) and for the tiny one; NVIDIA's `bigvgan` package vs
MMAudio's vendored bigvgan_v2 on the same random generator file is bitwise equal too (the real
122 M-parameter config on 16 mel frames, and the tiny config).

    codec = MelVAECodec.load("mel-vae-44k", "/ckpt/v1-44.pth",
                             vocoder_weights="/ckpt/bigvgan_v2_44khz_128band_512x")
    mean, std = codec.encode(wave)   # [B, T, 40] each, T = ceil(S / 1024)
    wave = codec.decode(mean)        # [B, 1024·T]
"""
from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.encoders.mel import MMAUDIO_44K, MelFrontEnd
from model.encoders.registry import LATENT_HOP, FeatureSpec, feature_spec
from model.encoders.vocoder import (
    BIGVGAN_44K_CONFIG,
    BIGVGAN_44K_ID,
    BIGVGAN_TINY_CONFIG,
    build_random_bigvgan,
    file_digest,
    load_bigvgan,
    strict_load,
)

V1_44_URL = "https://github.com/hkchengrex/MMAudio/releases/download/v0.1/v1-44.pth"
LOGVAR_RANGE = (-30.0, 20.0)  # DiagonalGaussianDistribution clamps the log-variance
MP_SUM_T = 0.3  # residual blend of the magnitude-preserving sum in every block
MP_SILU_SCALE = 0.596  # EDM2: SiLU divided by its output magnitude for unit-variance input
NORM_EPS = 1e-4

# Per-bin mean / std of MMAudio's normalised 128-bin log-mel (mmaudio/ext/autoencoder/vae.py, DATA_*_128D).
DATA_MEAN_128 = [
    -3.3462, -2.6723, -2.4893, -2.3143, -2.2664, -2.3317, -2.1802, -2.4006, -2.2357, -2.4597,
    -2.3717, -2.4690, -2.5142, -2.4919, -2.6610, -2.5047, -2.7483, -2.5926, -2.7462, -2.7033,
    -2.7386, -2.8112, -2.7502, -2.9594, -2.7473, -3.0035, -2.8891, -2.9922, -2.9856, -3.0157,
    -3.1191, -2.9893, -3.1718, -3.0745, -3.1879, -3.2310, -3.1424, -3.2296, -3.2791, -3.2782,
    -3.2756, -3.3134, -3.3509, -3.3750, -3.3951, -3.3698, -3.4505, -3.4509, -3.5089, -3.4647,
    -3.5536, -3.5788, -3.5867, -3.6036, -3.6400, -3.6747, -3.7072, -3.7279, -3.7283, -3.7795,
    -3.8259, -3.8447, -3.8663, -3.9182, -3.9605, -3.9861, -4.0105, -4.0373, -4.0762, -4.1121,
    -4.1488, -4.1874, -4.2461, -4.3170, -4.3639, -4.4452, -4.5282, -4.6297, -4.7019, -4.7960,
    -4.8700, -4.9507, -5.0303, -5.0866, -5.1634, -5.2342, -5.3242, -5.4053, -5.4927, -5.5712,
    -5.6464, -5.7052, -5.7619, -5.8410, -5.9188, -6.0103, -6.0955, -6.1673, -6.2362, -6.3120,
    -6.3926, -6.4797, -6.5565, -6.6511, -6.8130, -6.9961, -7.1275, -7.2457, -7.3576, -7.4663,
    -7.6136, -7.7469, -7.8815, -8.0132, -8.1515, -8.3071, -8.4722, -8.7418, -9.3975, -9.6628,
    -9.7671, -9.8863, -9.9992, -10.0860, -10.1709, -10.5418, -11.2795, -11.3861,
]
DATA_STD_128 = [
    2.3804, 2.4368, 2.3772, 2.3145, 2.2803, 2.2510, 2.2316, 2.2083, 2.1996, 2.1835, 2.1769, 2.1659,
    2.1631, 2.1618, 2.1540, 2.1606, 2.1571, 2.1567, 2.1612, 2.1579, 2.1679, 2.1683, 2.1634, 2.1557,
    2.1668, 2.1518, 2.1415, 2.1449, 2.1406, 2.1350, 2.1313, 2.1415, 2.1281, 2.1352, 2.1219, 2.1182,
    2.1327, 2.1195, 2.1137, 2.1080, 2.1179, 2.1036, 2.1087, 2.1036, 2.1015, 2.1068, 2.0975, 2.0991,
    2.0902, 2.1015, 2.0857, 2.0920, 2.0893, 2.0897, 2.0910, 2.0881, 2.0925, 2.0873, 2.0960, 2.0900,
    2.0957, 2.0958, 2.0978, 2.0936, 2.0886, 2.0905, 2.0845, 2.0855, 2.0796, 2.0840, 2.0813, 2.0817,
    2.0838, 2.0840, 2.0917, 2.1061, 2.1431, 2.1976, 2.2482, 2.3055, 2.3700, 2.4088, 2.4372, 2.4609,
    2.4731, 2.4847, 2.5072, 2.5451, 2.5772, 2.6147, 2.6529, 2.6596, 2.6645, 2.6726, 2.6803, 2.6812,
    2.6899, 2.6916, 2.6931, 2.6998, 2.7062, 2.7262, 2.7222, 2.7158, 2.7041, 2.7485, 2.7491, 2.7451,
    2.7485, 2.7233, 2.7297, 2.7233, 2.7145, 2.6958, 2.6788, 2.6439, 2.6007, 2.4786, 2.2469, 2.1877,
    2.1392, 2.0717, 2.0107, 1.9676, 1.9140, 1.7102, 0.9101, 0.7164,
]


@dataclass(frozen=True)
class VAEConfig:
    data_dim: int = 128  # mel bins
    embed_dim: int = 40  # latent channels C
    hidden_dim: int = 512
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    attn_layers: tuple[int, ...] = (3,)  # no level has index 3: attention only in the middle
    down_layers: tuple[int, ...] = (0,)  # one 2× downsampling, after level 0
    kernel_size: int = 3
    clip_act: float = 256.0


VAE_44K = VAEConfig()  # MMAudio get_my_vae('44k')
VAE_TINY = VAEConfig(hidden_dim=16)  # demo/tests: same code, 32× narrower


@dataclass(frozen=True)
class CodecVariant:
    vae: VAEConfig
    vocoder_config: dict  # for build_random_checkpoint
    vocoder_default: str | None  # hub id used when no vocoder_weights and no sibling folder
    vocoder_dirname: str  # sibling folder of the VAE file looked up when vocoder_weights is None


VARIANTS = {
    "mel-vae-44k": CodecVariant(VAE_44K, BIGVGAN_44K_CONFIG, BIGVGAN_44K_ID, "bigvgan_v2_44khz_128band_512x"),
    "mel-vae-44k-tiny-random": CodecVariant(VAE_TINY, BIGVGAN_TINY_CONFIG, None, "bigvgan-tiny-random"),
}


# ---- magnitude-preserving operations (EDM2, Karras et al. 2024) ----

def mp_normalize(x: torch.Tensor, dim=None, eps: float = NORM_EPS) -> torch.Tensor:
    """x divided by its RMS over `dim` (default: all but the batch axis), eps-guarded."""
    if dim is None:
        dim = list(range(1, x.ndim))
    norm = torch.linalg.vector_norm(x, dim=dim, keepdim=True, dtype=torch.float32)
    norm = torch.add(eps, norm, alpha=np.sqrt(norm.numel() / x.numel()))
    return x / norm.to(x.dtype)


def mp_silu(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x) / MP_SILU_SCALE


def mp_sum(a: torch.Tensor, b: torch.Tensor, t: float = 0.5) -> torch.Tensor:
    return a.lerp(b, t) / np.sqrt((1 - t) ** 2 + t ** 2)


class MPConv1D(nn.Module):
    """Bias-free conv with forced weight normalisation (folded in once by remove_weight_norm)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__()
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size))
        self.weight_norm_removed = False

    def forward(self, x: torch.Tensor, gain=1) -> torch.Tensor:
        if not self.weight_norm_removed:
            raise RuntimeError("MPConv1D: call remove_weight_norm() after loading, before inference")
        w = self.weight * gain
        return F.conv1d(x, w, padding=(w.shape[-1] // 2,))

    def remove_weight_norm(self) -> MPConv1D:
        w = mp_normalize(self.weight.to(torch.float32))
        w = w / np.sqrt(w[0].numel())  # unit-variance output for unit-variance input
        self.weight.data.copy_(w.to(self.weight.dtype))
        self.weight_norm_removed = True
        return self


class ResnetBlock1D(nn.Module):
    def __init__(self, *, in_dim: int, out_dim: int | None = None, kernel_size: int = 3, use_norm: bool = True):
        super().__init__()
        out_dim = in_dim if out_dim is None else out_dim
        self.in_dim, self.out_dim, self.use_norm = in_dim, out_dim, use_norm
        self.conv1 = MPConv1D(in_dim, out_dim, kernel_size=kernel_size)
        self.conv2 = MPConv1D(out_dim, out_dim, kernel_size=kernel_size)
        if in_dim != out_dim:
            self.nin_shortcut = MPConv1D(in_dim, out_dim, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, in, L] → [B, out, L]
        if self.use_norm:
            x = mp_normalize(x, dim=1)  # pixel norm over channels
        h = self.conv2(mp_silu(self.conv1(mp_silu(x))))
        if self.in_dim != self.out_dim:
            x = self.nin_shortcut(x)
        return mp_sum(x, h, t=MP_SUM_T)


class AttnBlock1D(nn.Module):
    def __init__(self, in_channels: int, num_heads: int = 1):
        super().__init__()
        self.in_channels, self.num_heads = in_channels, num_heads
        self.qkv = MPConv1D(in_channels, in_channels * 3, kernel_size=1)
        self.proj_out = MPConv1D(in_channels, in_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, L] → [B, C, L]
        b, _, length = x.shape
        y = self.qkv(x).reshape(b, self.num_heads, -1, 3, length)  # [B, heads, C/heads, qkv, L]
        q, k, v = (t.transpose(-1, -2) for t in mp_normalize(y, dim=2).unbind(3))  # [B, heads, L, C/heads]
        h = F.scaled_dot_product_attention(q, k, v)
        h = h.permute(0, 1, 3, 2).reshape(b, -1, length)  # [B, C, L]
        return mp_sum(x, self.proj_out(h), t=MP_SUM_T)


class Upsample1D(nn.Module):
    def __init__(self, in_channels: int, with_conv: bool = True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = MPConv1D(in_channels, in_channels, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, L] → [B, C, 2L]
        x = F.interpolate(x, scale_factor=2.0, mode="nearest-exact")
        return self.conv(x) if self.with_conv else x


class Downsample1D(nn.Module):
    def __init__(self, in_channels: int, with_conv: bool = True):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv1 = MPConv1D(in_channels, in_channels, kernel_size=1)
            self.conv2 = MPConv1D(in_channels, in_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, L] → [B, C, L/2]
        if self.with_conv:
            x = self.conv1(x)
        x = F.avg_pool1d(x, kernel_size=2, stride=2)
        return self.conv2(x) if self.with_conv else x


class Encoder1D(nn.Module):
    """normalised mel [B, data_dim, 2T] → moments [B, 2·embed_dim, T]."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        dim, k = cfg.hidden_dim, cfg.kernel_size
        self.num_layers, self.num_res_blocks = len(cfg.ch_mult), cfg.num_res_blocks
        self.clip_act, self.down_layers = cfg.clip_act, list(cfg.down_layers)
        self.conv_in = MPConv1D(cfg.data_dim, dim, kernel_size=k)
        in_mult = (1,) + tuple(cfg.ch_mult)
        self.down = nn.ModuleList()
        for level in range(self.num_layers):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = dim * in_mult[level], dim * cfg.ch_mult[level]
            for _ in range(self.num_res_blocks):
                block.append(ResnetBlock1D(in_dim=block_in, out_dim=block_out, kernel_size=k, use_norm=True))
                block_in = block_out
                if level in cfg.attn_layers:
                    attn.append(AttnBlock1D(block_in))
            down = nn.Module()
            down.block, down.attn = block, attn
            if level in cfg.down_layers:
                down.downsample = Downsample1D(block_in, True)
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock1D(in_dim=block_in, out_dim=block_in, kernel_size=k, use_norm=True)
        self.mid.attn_1 = AttnBlock1D(block_in)
        self.mid.block_2 = ResnetBlock1D(in_dim=block_in, out_dim=block_in, kernel_size=k, use_norm=True)
        self.conv_out = MPConv1D(block_in, 2 * cfg.embed_dim, kernel_size=k)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in range(self.num_layers):
            for i in range(self.num_res_blocks):
                h = self.down[level].block[i](h)
                if len(self.down[level].attn) > 0:
                    h = self.down[level].attn[i](h)
                h = h.clamp(-self.clip_act, self.clip_act)
            if level in self.down_layers:
                h = self.down[level].downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        h = h.clamp(-self.clip_act, self.clip_act)
        return self.conv_out(mp_silu(h), gain=(self.learnable_gain + 1))


class Decoder1D(nn.Module):
    """latent [B, embed_dim, T] → normalised mel [B, data_dim, 2T]."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        dim = cfg.hidden_dim
        self.num_layers, self.num_res_blocks, self.clip_act = len(cfg.ch_mult), cfg.num_res_blocks, cfg.clip_act
        self.down_layers = [i + 1 for i in cfg.down_layers]  # the upsampling sits one level higher
        block_in = dim * cfg.ch_mult[-1]
        self.conv_in = MPConv1D(cfg.embed_dim, block_in, kernel_size=cfg.kernel_size)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock1D(in_dim=block_in, out_dim=block_in, use_norm=True)
        self.mid.attn_1 = AttnBlock1D(block_in)
        self.mid.block_2 = ResnetBlock1D(in_dim=block_in, out_dim=block_in, use_norm=True)
        self.up = nn.ModuleList()
        for level in reversed(range(self.num_layers)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_out = dim * cfg.ch_mult[level]
            for _ in range(self.num_res_blocks + 1):
                block.append(ResnetBlock1D(in_dim=block_in, out_dim=block_out, use_norm=True))
                block_in = block_out
                if level in cfg.attn_layers:
                    attn.append(AttnBlock1D(block_in))
            up = nn.Module()
            up.block, up.attn = block, attn
            if level in self.down_layers:
                up.upsample = Upsample1D(block_in, True)
            self.up.insert(0, up)  # self.up[level]
        self.conv_out = MPConv1D(block_in, cfg.data_dim, kernel_size=cfg.kernel_size)
        self.learnable_gain = nn.Parameter(torch.zeros([]))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(z)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        h = h.clamp(-self.clip_act, self.clip_act)
        for level in reversed(range(self.num_layers)):
            for i in range(self.num_res_blocks + 1):
                h = self.up[level].block[i](h)
                if len(self.up[level].attn) > 0:
                    h = self.up[level].attn[i](h)
                h = h.clamp(-self.clip_act, self.clip_act)
            if level in self.down_layers:
                h = self.up[level].upsample(h)
        return self.conv_out(mp_silu(h), gain=(self.learnable_gain + 1))


class VAE(nn.Module):
    """MMAudio's mel VAE; its state dict is the layout of v1-44.pth."""

    def __init__(self, cfg: VAEConfig = VAE_44K):
        super().__init__()
        if cfg.data_dim != len(DATA_MEAN_128):
            raise ValueError(f"VAEConfig.data_dim={cfg.data_dim}: only the 128-bin (44.1 kHz) statistics are known")
        self.cfg = cfg
        self.register_buffer("data_mean", torch.tensor(DATA_MEAN_128, dtype=torch.float32).view(1, -1, 1))
        self.register_buffer("data_std", torch.tensor(DATA_STD_128, dtype=torch.float32).view(1, -1, 1))
        self.encoder = Encoder1D(cfg)
        self.decoder = Decoder1D(cfg)
        self.embed_dim = cfg.embed_dim

    def encode_moments(self, mel: torch.Tensor) -> torch.Tensor:  # [B, 128, 2T] → [B, 2C, T]
        return self.encoder((mel - self.data_mean) / self.data_std)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # [B, C, T] → log-mel [B, 128, 2T]
        return self.decoder(z) * self.data_std + self.data_mean

    def remove_weight_norm(self) -> VAE:
        for m in self.modules():
            if isinstance(m, MPConv1D):
                m.remove_weight_norm()
        return self


def load_vae_file(path: str | Path, cfg: VAEConfig) -> VAE:
    """A v1-44.pth-format file → VAE with the weight norm folded in (strict; errors name the tensors)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mel VAE weights {path}: no such file (the public one is {V1_44_URL})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
        raise ValueError(f"mel VAE weights {path}: not a torch state dict ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"mel VAE weights {path}: expected a plain state dict of tensors (v1-44.pth layout)")
    vae = VAE(cfg)
    strict_load(vae, state, f"mel VAE weights {path}")
    return vae.remove_weight_norm().eval()


class MelVAECodec:
    """Latent codec: wave ↔ (mean, std) latents at 44100/1024 Hz via mel VAE + BigVGAN."""

    def __init__(self, spec: FeatureSpec, vae: VAE, vocoder: nn.Module, identity: str, *, device="cpu",
                 dtype=None):
        self.spec, self.identity = spec, identity
        self.device, self.dtype = torch.device(device), dtype or torch.float32
        self.mel = MelFrontEnd(MMAUDIO_44K).to(self.device)
        self.vae = vae.to(self.device, self.dtype)
        self.vocoder = vocoder.to(self.device, self.dtype) if vocoder is not None else None
        for p in self.vae.parameters():
            p.requires_grad_(False)
        if self.spec.dim != vae.embed_dim:
            raise ValueError(f"{spec.name}: registry dim {spec.dim} but the VAE has {vae.embed_dim} latent channels")

    @classmethod
    def load(cls, name: str, weights: str | None = None, *, device="cpu", dtype=None,
             vocoder_weights: str | None = None) -> MelVAECodec:
        if name not in VARIANTS:
            raise KeyError(f"MelVAECodec has no variant {name!r}; known: {', '.join(VARIANTS)}")
        variant, spec = VARIANTS[name], feature_spec(name)
        if weights is None:
            raise FileNotFoundError(f"{name} needs its VAE weights file (weights=...): the public one is "
                                    f"{V1_44_URL}" if variant.vocoder_default else
                                    f"{name} needs weights: write a random checkpoint with "
                                    f"model.encoders.mel_vae.build_random_checkpoint")
        vae = load_vae_file(weights, variant.vae)
        if vocoder_weights is None:
            sibling = Path(weights).parent / variant.vocoder_dirname
            if sibling.is_dir():
                vocoder_weights = str(sibling)
            elif variant.vocoder_default is not None:
                vocoder_weights = variant.vocoder_default
            else:
                raise FileNotFoundError(f"{name}: no vocoder_weights given and no {sibling} folder next to {weights}")
        mc = MMAUDIO_44K
        vocoder, voc_id = load_bigvgan(vocoder_weights, device="cpu",
                                       expect={"num_mels": mc.n_mels, "hop_size": mc.hop,
                                               "sampling_rate": mc.sample_rate})
        identity = f"{name}@sha256:{file_digest(weights)}+{voc_id}"
        return cls(spec, vae, vocoder, identity, device=device, dtype=dtype)

    @staticmethod
    def pad_to_hop(wave: torch.Tensor) -> torch.Tensor:
        frames = max(1, math.ceil(wave.shape[-1] / LATENT_HOP))
        return F.pad(wave, (0, frames * LATENT_HOP - wave.shape[-1]))

    @torch.inference_mode()
    def encode(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """wave [B, S] 44.1 kHz → (mean, std) [B, ceil(S/1024), C]."""
        wave = torch.as_tensor(wave)
        if wave.ndim != 2:
            raise ValueError(f"{self.spec.name}.encode takes a wave [B, S], got shape {tuple(wave.shape)}")
        mel = self.mel(self.pad_to_hop(wave.float().to(self.device)))  # [B, 128, 2T]
        moments = self.vae.encode_moments(mel.to(self.dtype)).float()  # [B, 2C, T]
        mean, logvar = torch.chunk(moments, 2, dim=1)
        std = torch.exp(0.5 * torch.clamp(logvar, *LOGVAR_RANGE))
        return mean.transpose(1, 2).contiguous(), std.transpose(1, 2).contiguous()

    @torch.inference_mode()
    def decode_mel(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, T, C] → log-mel [B, 128, 2T]."""
        latent = torch.as_tensor(latent)
        if latent.ndim != 3 or latent.shape[-1] != self.spec.dim:
            raise ValueError(f"{self.spec.name}.decode takes latents [B, T, {self.spec.dim}], "
                             f"got shape {tuple(latent.shape)}")
        return self.vae.decode(latent.to(self.device, self.dtype).transpose(1, 2)).float()

    @torch.inference_mode()
    def vocode(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, 128, F] → wave [B, 512·F]."""
        return self.vocoder(mel.to(self.device, self.dtype)).float().squeeze(1)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, T, C] → wave [B, 1024·T] float32 at 44.1 kHz."""
        return self.vocode(self.decode_mel(latent))


def build_random_checkpoint(name: str, path: str | Path, *, seed: int = 0, with_vocoder: bool = True) -> Path:
    """Random VAE weights in v1-44.pth's on-disk format at `path` (a plain state dict, raw weights,
    data_mean/data_std buffers) and, with_vocoder, a random BigVGAN of the variant's config in the
    released folder format next to it (`<dir>/<vocoder_dirname>/`, where load() looks for it)."""
    if name not in VARIANTS:
        raise KeyError(f"no mel VAE variant {name!r}; known: {', '.join(VARIANTS)}")
    variant = VARIANTS[name]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vae = VAE(variant.vae)
    with torch.no_grad():  # the gains train away from 0; make the test exercise them
        vae.encoder.learnable_gain.fill_(0.25)
        vae.decoder.learnable_gain.fill_(-0.25)
    torch.save(vae.state_dict(), path)
    if with_vocoder:
        build_random_bigvgan(path.parent / variant.vocoder_dirname, variant.vocoder_config, seed=seed)
    return path


def build_random_vocoder(folder: str | Path, name: str = "mel-vae-44k-tiny-random", *, seed: int = 0) -> Path:
    """A random BigVGAN twin (config.json + bigvgan_generator.pt) of the variant's vocoder config."""
    return build_random_bigvgan(folder, VARIANTS[name].vocoder_config, seed=seed)


__all__ = [
    "VAE",
    "VAE_44K",
    "VAE_TINY",
    "MelVAECodec",
    "VAEConfig",
    "build_random_checkpoint",
    "build_random_vocoder",
    "load_vae_file",
]
