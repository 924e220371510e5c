"""Compare model/encoders/{mel,mel_vae,vocoder}.py with MMAudio's reference; write the tiny golden.

Not a test (the reference is not a dependency). It runs the reference beside ours on the same
random checkpoint and the same wave:

  1. `build_random_checkpoint(name, dir/v1-44.pth, seed)` writes a random VAE state dict in
     v1-44.pth's format and a random BigVGAN folder (config.json + bigvgan_generator.pt);
  2. ours: `MelVAECodec.load(name, path)`, then `.mel(wave)`, `.encode(wave)`, `.decode_mel(mean)`,
     `.vocode(mel)` (NVIDIA's bigvgan package);
  3. reference: MMAudio's `get_mel_converter('44k')`, `VAE(data_dim=128, embed_dim=40,
     hidden_dim=H)` + `load_state_dict(torch.load(path, weights_only=True))` (strict) +
     `remove_weight_norm()` as `AutoEncoderModule` does, `.encode(mel)` (a
     DiagonalGaussianDistribution: .mean, .std), `.decode(mean)`, and MMAudio's vendored
     `bigvgan_v2.BigVGAN` loaded from the same generator file, `remove_weight_norm()`, `(mel)`.

Set-up used (MMAudio at HEAD of github:hkchengrex/MMAudio, fetched snapshot):
    git -C <snapshot> archive HEAD mmaudio | tar -x -C /tmp/mmaudio_src
    pip install --target /tmp/mmref_deps einops          # only the reference needs it
    PYTHONPATH=/tmp/mmref_deps:/tmp/mmaudio_src:. .venv/bin/python tests/encoders/make_mel_vae_golden.py \
        --name mel-vae-44k-tiny-random --seconds 1 --write
    PYTHONPATH=... .venv/bin/python tests/encoders/make_mel_vae_golden.py --name mel-vae-44k --seconds 1

Results on this machine (torch 2.13.0 CPU, fp32): every output bitwise equal (max |diff| 0) for
mel-vae-44k-tiny-random (hidden 16) and for the full mel-vae-44k config (hidden 512, 1 s; also 2 × 1 s
clips); the vocoder bitwise equal as well (tiny config here; the real 122 M-parameter config, 16 mel
frames, checked the same way: random folder from build_random_bigvgan(dir, BIGVGAN_44K_CONFIG),
load_bigvgan(dir) vs MMAudio's bigvgan_v2.BigVGAN + load_state_dict + remove_weight_norm).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "mel_vae_tiny_golden.npz"
GOLDEN_SEED = 3
VOCODE_FRAMES = 8  # mel frames vocoded for the golden (keeps the file small)


def golden_wave(seconds: float, sr: int = 44100) -> torch.Tensor:
    """A deterministic test wave [1, S]: a tone, a chirp and seeded noise (S a multiple of 1024)."""
    n = int(seconds * sr) // 1024 * 1024
    t = np.arange(n) / sr
    noise = np.random.default_rng(0).standard_normal(n)
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.05 * noise
    return torch.from_numpy(x.astype(np.float32))[None]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", default="mel-vae-44k-tiny-random")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--write", action="store_true", help="refresh the golden fixture (tiny only)")
    args = ap.parse_args()

    from mmaudio.ext.autoencoder.vae import VAE as RefVAE
    from mmaudio.ext.bigvgan_v2.bigvgan import BigVGAN as RefBigVGAN
    from mmaudio.ext.bigvgan_v2.env import AttrDict
    from mmaudio.ext.mel_converter import get_mel_converter

    from model.encoders.mel_vae import VARIANTS, MelVAECodec, build_random_checkpoint
    from model.encoders.vocoder import BIGVGAN_TINY_CONFIG, build_random_bigvgan

    tmp = Path(tempfile.mkdtemp())
    full = args.name == "mel-vae-44k"
    ck = build_random_checkpoint(args.name, tmp / "v1-44.pth", seed=GOLDEN_SEED, with_vocoder=not full)
    vdir = tmp / VARIANTS[args.name].vocoder_dirname
    if full:  # the 122 M-parameter vocoder adds nothing to this check: use the tiny config's folder
        build_random_bigvgan(vdir, BIGVGAN_TINY_CONFIG, seed=GOLDEN_SEED)
    codec = MelVAECodec.load(args.name, str(ck))
    cfg = VARIANTS[args.name].vae
    ref = RefVAE(data_dim=128, embed_dim=cfg.embed_dim, hidden_dim=cfg.hidden_dim).eval()
    ref.load_state_dict(torch.load(ck, weights_only=True, map_location="cpu"))
    ref.remove_weight_norm()
    h = AttrDict(json.loads((vdir / "config.json").read_text()))
    ref_voc = RefBigVGAN(h, use_cuda_kernel=False)
    ref_voc.load_state_dict(torch.load(vdir / "bigvgan_generator.pt", weights_only=True)["generator"])
    ref_voc.remove_weight_norm()
    ref_voc.eval()

    wave = golden_wave(args.seconds)
    with torch.inference_mode():
        r_mel = get_mel_converter("44k")(wave)
        dist = ref.encode(r_mel)
        r_mean, r_std = dist.mean.transpose(1, 2), dist.std.transpose(1, 2)
        r_dec = ref.decode(dist.mean)
        r_wave = ref_voc(r_dec[..., :VOCODE_FRAMES]).squeeze(1)
        mel = codec.mel(wave)
        mean, std = codec.encode(wave)
        dec = codec.decode_mel(mean)
        out = codec.vocode(dec[..., :VOCODE_FRAMES])
    for what, a, b in (("mel", mel, r_mel), ("mean", mean, r_mean), ("std", std, r_std),
                       ("decoded mel", dec, r_dec), ("vocoder wave", out, r_wave)):
        print(f"{what:13s} {tuple(a.shape)} bitwise equal {torch.equal(a, b)}  max |diff| "
              f"{float((a - b).abs().max()):.3g}  (ref std {float(b.std()):.3g})")
    if args.write:
        if full:
            raise SystemExit("--write is for the tiny variant only")
        np.savez_compressed(GOLDEN, mel=r_mel.numpy(), mean=r_mean.numpy(), std=r_std.numpy(),
                            decoded_mel=r_dec.numpy(), wave=r_wave.numpy(), seconds=args.seconds, seed=GOLDEN_SEED)
        print("wrote", GOLDEN)


if __name__ == "__main__":
    main()
