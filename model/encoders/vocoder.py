"""BigVGAN-v2 vocoder (log-mel → wave) for the mel-VAE codec, through NVIDIA's `bigvgan` package.

The network is the package's own `bigvgan.bigvgan.BigVGAN` (NVIDIA's code, not a rewrite). What
lives here is the loading: the public release `nvidia/bigvgan_v2_44khz_128band_512x` is a folder
(or Hugging Face repo) holding `config.json` and `bigvgan_generator.pt` = {"generator": state_dict}
with weight-normed convolutions (`weight_g`/`weight_v`). We build the network from that
config.json, load the state dict strictly with `torch.load(weights_only=True)` (the package's own
`from_pretrained` loads non-strictly and with pickle), then fold the weight norm in, as MMAudio
does. A mismatch names the missing / unexpected / misshapen tensors and the file.

Dependency note: `pip install bigvgan==2.4.1` declares its training-time dependencies (auraloss,
pesq, nnaudio, tensorboard, ninja, …); the inference path imports only torch, huggingface_hub,
librosa, scipy, tqdm and matplotlib. The Makefile therefore installs the package with --no-deps and
pyproject's `audio-codecs` extra pins matplotlib (librosa comes with the `lyrics` extra).

    voc, ident = load_bigvgan("/ckpt/bigvgan_v2_44khz_128band_512x")   # or the hub id
    wave = voc(log_mel)                                                  # [B, 128, F] → [B, 1, 512·F]
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from pathlib import Path

import torch

from .registry import IDENTITY_HEX, file_sha256

BIGVGAN_44K_ID = "nvidia/bigvgan_v2_44khz_128band_512x"
BIGVGAN_CONFIG_FILE = "config.json"
BIGVGAN_WEIGHTS_FILE = "bigvgan_generator.pt"
BIGVGAN_STATE_KEY = "generator"

# Architecture and audio fields of the public bigvgan_v2_44khz_128band_512x config.json
# (BigVGAN repo: configs/bigvgan_v2_44khz_128band_512x.json); training-only fields left out.
BIGVGAN_44K_CONFIG = {
    "resblock": "1",
    "upsample_rates": [8, 4, 2, 2, 2, 2],
    "upsample_kernel_sizes": [16, 8, 4, 4, 4, 4],
    "upsample_initial_channel": 1536,
    "resblock_kernel_sizes": [3, 7, 11],
    "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "use_tanh_at_final": False,
    "use_bias_at_final": False,
    "activation": "snakebeta",
    "snake_logscale": True,
    "num_mels": 128,
    "num_freq": 2049,
    "n_fft": 2048,
    "hop_size": 512,
    "win_size": 2048,
    "sampling_rate": 44100,
    "fmin": 0,
    "fmax": None,
    "fmax_for_loss": None,
}
# Demo/tests: the same network, 64 instead of 1536 channels at the input and one AMP block
# (kernel 3) per upsampling stage instead of three (0.12 M parameters instead of 122 M).
BIGVGAN_TINY_CONFIG = {**BIGVGAN_44K_CONFIG, "upsample_initial_channel": 64, "resblock_kernel_sizes": [3],
                       "resblock_dilation_sizes": [[1, 3, 5]]}


def _bigvgan_module():
    try:
        from bigvgan import bigvgan as module
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the mel-VAE codec's vocoder needs NVIDIA's bigvgan package: "
                          "pip install --no-deps bigvgan==2.4.1 (see the Makefile)") from exc
    return module


def build_bigvgan(config: dict):
    """A BigVGAN network (weight norm still on, as in the released file) from a config dict."""
    mod = _bigvgan_module()
    from bigvgan.env import AttrDict

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*weight_norm.*is deprecated", category=FutureWarning)
        return mod.BigVGAN(AttrDict(dict(config)), use_cuda_kernel=False)


def file_digest(path: str | Path, n_hex: int = IDENTITY_HEX) -> str:
    return file_sha256(path)[:n_hex]


def strict_load(module: torch.nn.Module, state: dict, what: str) -> None:
    """load_state_dict(strict=True), but the error names the tensors and `what` (the file)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = sorted(f"{k} (file {tuple(state[k].shape)}, network {tuple(own[k].shape)})"
                       for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                more = f" … and {len(keys) - 8} more" if len(keys) > 8 else ""
                parts.append(f"{len(keys)} {label}: {', '.join(keys[:8])}{more}")
        raise ValueError(f"{what} does not fit the network: " + "; ".join(parts))
    module.load_state_dict(state, strict=True)


def _locate(source: str) -> tuple[Path, Path]:
    """(config.json, bigvgan_generator.pt) of a local folder, or of a hub repo (HF cache / download)."""
    if os.path.isdir(source):
        cfg, pt = Path(source) / BIGVGAN_CONFIG_FILE, Path(source) / BIGVGAN_WEIGHTS_FILE
        for p in (cfg, pt):
            if not p.is_file():
                raise FileNotFoundError(f"BigVGAN folder {source} has no {p.name} "
                                        f"(expected {BIGVGAN_CONFIG_FILE} and {BIGVGAN_WEIGHTS_FILE})")
        return cfg, pt
    if os.path.exists(source) or source.startswith((".", "/")) or source.count("/") != 1:
        raise FileNotFoundError(f"BigVGAN weights {source!r}: not a folder holding {BIGVGAN_CONFIG_FILE} and "
                                f"{BIGVGAN_WEIGHTS_FILE}, nor a hub id like {BIGVGAN_44K_ID!r}")
    from huggingface_hub import hf_hub_download

    try:
        return (Path(hf_hub_download(source, BIGVGAN_CONFIG_FILE)),
                Path(hf_hub_download(source, BIGVGAN_WEIGHTS_FILE)))
    except Exception as exc:  # noqa: BLE001 - offline, unknown repo, auth: all mean "give a local folder"
        raise OSError(f"cannot fetch BigVGAN {source!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
                      f"download {BIGVGAN_44K_ID} elsewhere and pass its folder as vocoder_weights") from None


def load_bigvgan(source: str | Path, *, device="cpu", expect: dict | None = None):
    """Load a released BigVGAN folder / hub id strictly; returns (network in eval mode, identity).

    `expect`: audio fields the config must have (e.g. num_mels, hop_size, sampling_rate).
    """
    cfg_path, pt_path = _locate(str(source))
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"BigVGAN config {cfg_path}: not readable JSON ({exc})") from None
    for field, want in (expect or {}).items():
        if config.get(field) != want:
            raise ValueError(f"BigVGAN config {cfg_path}: {field}={config.get(field)!r}, this codec needs {want!r}")
    net = build_bigvgan(config)
    ckpt = torch.load(pt_path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or BIGVGAN_STATE_KEY not in ckpt:
        raise ValueError(f"BigVGAN weights {pt_path}: expected a dict with key {BIGVGAN_STATE_KEY!r} "
                         f"(the released bigvgan_generator.pt format)")
    state = ckpt[BIGVGAN_STATE_KEY]
    with contextlib.redirect_stdout(io.StringIO()):
        if not any(k.endswith(".weight_g") for k in state):  # a file saved with the weight norm already folded
            net.remove_weight_norm()
            strict_load(net, state, f"BigVGAN weights {pt_path}")
        else:
            strict_load(net, state, f"BigVGAN weights {pt_path}")
            net.remove_weight_norm()
    net = net.eval().to(device)
    for p in net.parameters():
        p.requires_grad_(False)
    name = Path(str(source).rstrip("/")).name
    return net, f"{name}@sha256:{file_digest(pt_path)}"


def build_random_bigvgan(folder: str | Path, config: dict = BIGVGAN_TINY_CONFIG, *, seed: int = 0) -> Path:
    """Write a random-weight BigVGAN in the released format (config.json + bigvgan_generator.pt)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = build_bigvgan(config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the package leaves snake alphas/betas at 0 (log scale); jitter them a little
        for name, p in net.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    torch.save({BIGVGAN_STATE_KEY: net.state_dict()}, folder / BIGVGAN_WEIGHTS_FILE)
    (folder / BIGVGAN_CONFIG_FILE).write_text(json.dumps(config, indent=4))
    return folder
