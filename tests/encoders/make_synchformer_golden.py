"""Compare model/encoders/synchformer.py with MMAudio's reference Synchformer; write the tiny golden.

Not a test (the reference is not a dependency). It runs the reference code beside ours on the same
random checkpoint and the same frames:

  1. `build_random_checkpoint(arch, path, seed)` writes a random Synchformer state dict (visual
     branch plus a few audio-branch tensors) with torch.save, the released file's format;
  2. ours: `SynchformerEncoder.load(arch, path)` then `.encode(frames)`;
  3. reference: MMAudio's `Synchformer()` (its MotionFormer config divided_224_16x4.yaml; for the
     tiny arch the same YAML with VIT.EMBED_DIM / DEPTH / NUM_HEADS overridden), loaded with its own
     `load_state_dict(torch.load(path, weights_only=True))` (drops non-visual keys, strict); frames
     preprocessed as torchvision's ToDtype(float32, scale=True) + Normalize(0.5, 0.5) compute it
     (x.float() * (1/255), then (x - 0.5) / 0.5) and cut as MMAudio's
     `FeaturesUtils.encode_video_with_sync` cuts them (16-frame segments every 8 frames, einops
     'b s t c h w -> (b s) 1 t c h w', `synchformer(x)`, '(b s) 1 t d -> b (s t) d').

Set-up used (MMAudio commit 974010a, fetched snapshot):
    mkdir -p /tmp/mmaudio_ref/mmaudio/ext/synchformer; touch /tmp/mmaudio_ref/mmaudio/{,ext/}__init__.py
    git show HEAD:mmaudio/ext/synchformer/<file> > /tmp/mmaudio_ref/mmaudio/ext/synchformer/<file>
        (for __init__.py synchformer.py motionformer.py video_model_builder.py vit_helper.py utils.py
         divided_224_16x4.yaml)
    einops 0.8.2 wheel unpacked into /tmp/refdeps; /tmp/refdeps/timm/layers/__init__.py defines
    trunc_normal_ (= torch.nn.init.trunc_normal_) and to_2tuple (timm itself would pull torchvision;
    both are used only to initialise weights that the checkpoint then overwrites)
    PYTHONPATH=/tmp/refdeps:/tmp/mmaudio_ref .venv/bin/python tests/encoders/make_synchformer_golden.py \
        --arch synchformer-tiny-random --frames 40      # add --write to refresh the golden fixture
    PYTHONPATH=... .venv/bin/python tests/encoders/make_synchformer_golden.py --arch synchformer --frames 24

Results on this machine (torch 2.13.0 CPU, fp32, one thread; outputs have std ≈ 1.25, max ≈ 4):
    synchformer-tiny-random, 24 frames (2 windows, 16×64):  max |diff| 1.3e-6, mean 2.9e-7  (the golden)
    synchformer-tiny-random, 40 frames (4 windows, 32×64):  max |diff| 1.4e-6, mean 3.0e-7
    synchformer (768-d, depth 12), 32 frames (3 windows, 24×768): max |diff| 2.1e-6, mean 4.2e-7
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "fixtures" / "synchformer_tiny_golden.npz"
GOLDEN_ARCH = "synchformer-tiny-random"
GOLDEN_WEIGHTS_SEED = 1234
GOLDEN_FRAMES_SEED = 5678
GOLDEN_FRAMES = 24  # 2 windows -> 16 tokens × 64 = 4 KiB of float32
_HASH_MUL = np.uint64(0x9E3779B97F4A7C15)
_HASH_SHIFT = np.uint64(29)


def hash_frames(n_frames: int, seed: int, size: int = 224) -> np.ndarray:
    """Deterministic uint8 frames [T, size, size, 3] from integer hashing (no RNG stream to drift)."""
    idx = np.arange(n_frames * size * size * 3, dtype=np.uint64) + np.uint64(seed) * np.uint64(1_000_003)
    with np.errstate(over="ignore"):
        h = idx * _HASH_MUL
        h ^= h >> _HASH_SHIFT
        h *= _HASH_MUL
    return (h >> np.uint64(56)).astype(np.uint8).reshape(n_frames, size, size, 3)


def reference_synchformer(arch):
    """MMAudio's Synchformer with `arch`'s width/depth/heads patched into its MotionFormer YAML."""
    from mmaudio.ext.synchformer import motionformer
    from mmaudio.ext.synchformer.synchformer import Synchformer

    real_load = motionformer.OmegaConf.load

    def patched_load(path):
        cfg = real_load(path)
        cfg.VIT.EMBED_DIM, cfg.VIT.DEPTH, cfg.VIT.NUM_HEADS = arch.embed_dim, arch.depth, arch.num_heads
        cfg.VIT.MLP_RATIO, cfg.VIT.PATCH_SIZE = arch.mlp_ratio, arch.patch_size
        return cfg

    motionformer.OmegaConf.load = patched_load
    try:
        return Synchformer()
    finally:
        motionformer.OmegaConf.load = real_load


def reference_encode(model, frames: np.ndarray):
    """MMAudio's preprocessing and FeaturesUtils.encode_video_with_sync, on one clip."""
    import torch
    from einops import rearrange

    x = torch.from_numpy(frames).permute(0, 3, 1, 2)  # ToImage: [T, C, H, W]
    x = x.to(torch.float32).mul_(1.0 / 255)  # ToDtype(float32, scale=True)
    x = x.sub_(0.5).div_(0.5)  # Normalize(mean=0.5, std=0.5)
    x = x[None]  # [B=1, T, C, H, W]
    b, t = x.shape[:2]
    segment_size, step_size = 16, 8
    num_segments = (t - segment_size) // step_size + 1
    x = torch.stack([x[:, i * step_size:i * step_size + segment_size] for i in range(num_segments)], 1)
    x = rearrange(x, 'b s t c h w -> (b s) 1 t c h w')
    with torch.inference_mode():
        out = torch.cat([model(x[i:i + 1]) for i in range(b * num_segments)], 0)
    return rearrange(out, '(b s) 1 t d -> b (s t) d', b=b)[0]


def main() -> None:
    import torch

    sys.path.insert(0, str(ROOT))
    from model.encoders.synchformer import CONFIGS, SynchformerEncoder, build_random_checkpoint

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default=GOLDEN_ARCH, choices=sorted(CONFIGS))
    ap.add_argument("--frames", type=int, default=GOLDEN_FRAMES)
    ap.add_argument("--seed", type=int, default=GOLDEN_WEIGHTS_SEED)
    ap.add_argument("--write", action="store_true", help=f"write {GOLDEN.relative_to(ROOT)} (tiny arch only)")
    args = ap.parse_args()
    torch.set_num_threads(1)

    frames = hash_frames(args.frames, GOLDEN_FRAMES_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        path = build_random_checkpoint(args.arch, Path(tmp) / "synchformer_state_dict.pth", seed=args.seed)
        ours = SynchformerEncoder.load(args.arch, str(path))
        t0 = time.perf_counter()
        feats, _ = ours.encode(frames)
        t_ours = time.perf_counter() - t0
        ref = reference_synchformer(ours.arch).eval()
        ref.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
        t0 = time.perf_counter()
        want = reference_encode(ref, frames)
        t_ref = time.perf_counter() - t0
    diff = (feats - want).abs()
    print(f"{args.arch}: {args.frames} frames -> ours {tuple(feats.shape)} reference {tuple(want.shape)}; "
          f"max |diff| {diff.max().item():.3e}, mean |diff| {diff.mean().item():.3e}, "
          f"max |ref| {want.abs().max().item():.3f}, std(ref) {want.std().item():.3f}; "
          f"time ours {t_ours:.2f} s, reference {t_ref:.2f} s")
    if args.write:
        if args.arch != GOLDEN_ARCH or args.frames != GOLDEN_FRAMES or args.seed != GOLDEN_WEIGHTS_SEED:
            raise SystemExit(f"--write is for the golden set-up only: {GOLDEN_ARCH}, {GOLDEN_FRAMES} frames, "
                             f"seed {GOLDEN_WEIGHTS_SEED}")
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        np.savez(GOLDEN, features=want.numpy().astype(np.float32), weights_seed=GOLDEN_WEIGHTS_SEED,
                 frames_seed=GOLDEN_FRAMES_SEED, n_frames=GOLDEN_FRAMES, reference="hkchengrex/MMAudio@974010a")
        print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
