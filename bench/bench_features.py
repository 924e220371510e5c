"""Feature stage benchmark (prints figures; not a test): clips/s per encoder.

CPU (default): the small random-weight configs the demo and tests use (clip-tiny-random,
synchformer-tiny-random, mel-vae-44k-tiny-random, logmel-codec), each run through its
pipeline stage (`process_batch`: JPEG / FLAC decode of the media stage's columns + encode),
on 8 s clips. `--device cuda`: the paper encoders' architectures (MetaCLIP ViT-bigG-14,
Synchformer, MMAudio's 44.1 kHz VAE) with random weights (nothing is downloaded), bf16,
encoder only (the inputs are already decoded arrays on the host, as the stage hands them over).

    .venv/bin/python bench/bench_features.py [--seconds 8] [--clips 4] [--repeats 2] [--threads 1]
    .venv/bin/python bench/bench_features.py --device cuda --clips 16
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from model.encoders.registry import PAPER_ENCODERS, feature_spec, load_encoder
from pipeline.media.audio import RATE_MODEL, encode_audio_blob
from pipeline.media.frames import encode_frame

CPU_ENCODERS = ("clip-tiny-random", "synchformer-tiny-random", "mel-vae-44k-tiny-random", "logmel-codec")
JPEG_QUALITY = 95


def synthetic_frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    """uint8 [n, size, size, 3]: a moving colour gradient with noise (JPEG-compressible like video)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        t = i / max(1, n)
        img = np.stack([x + t, y - t, (x + y) * 0.5 + t], axis=-1) % 1.0
        out[i] = np.clip(img * 255 + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    return out


def synthetic_audio(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE_MODEL)) / RATE_MODEL
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.shape)).astype(np.float32)


def media_row(kind: str, seconds: float, frame_size: int, fps: float, i: int) -> dict:
    """A row as the media stage writes it (JPEG list or FLAC bytes)."""
    if kind == "latent":
        return {"key": f"k{i}", "audio_44k": encode_audio_blob(synthetic_audio(seconds, i), RATE_MODEL),
                "duration_s": seconds}
    col = "clip_frames" if kind == "clip" else "sync_frames"
    frames = synthetic_frames(int(seconds * fps), frame_size, i)
    return {"key": f"k{i}", col: [encode_frame(f, JPEG_QUALITY) for f in frames], "duration_s": seconds}


def stage_for(kind: str, name: str, weights: str | None):
    from pipeline.stage import StageContext
    from pipeline.stages.features import ClipFeatureStage, LatentStage, SyncFeatureStage

    cls = {"clip": ClipFeatureStage, "sync": SyncFeatureStage, "latent": LatentStage}[kind]
    stage = cls({"encoder": name, "weights": weights, "max_batch_items": 1024, "batch_seconds": 1e6},
                StageContext(Path(tempfile.gettempdir()), kind))
    stage.setup()
    return stage


def bench_cpu(args) -> dict:
    from model.encoders import mel_vae

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CPU_ENCODERS:
            spec = feature_spec(name)
            weights = None
            if name == "mel-vae-44k-tiny-random":  # no built-in weights: a random checkpoint on disk
                weights = str(mel_vae.build_random_checkpoint(name, Path(tmp) / "vae.pth", seed=0))
            t0 = time.perf_counter()
            stage = stage_for(spec.kind, name, weights)
            load_s = time.perf_counter() - t0
            rows = [media_row(spec.kind, args.seconds, spec.frame_size or 0, spec.frame_fps or 0, i)
                    for i in range(args.clips)]
            stage.process_batch(rows[:1])  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                out = stage.process_batch(rows)
                best = min(best, time.perf_counter() - t0)
            assert all(isinstance(o, dict) and o for o in out), out
            results[name] = {"clips_per_s": round(args.clips / best, 3), "s_per_clip": round(best / args.clips, 3),
                             "load_s": round(load_s, 2)}
            print(f"{name:28s} {args.clips / best:8.2f} clips/s  ({best / args.clips:.3f} s per {args.seconds:g} s "
                  f"clip, load {load_s:.1f} s)", flush=True)
    return results


def random_paper_encoder(kind: str, device: str, tmp: Path):
    """The paper encoder of `kind` with random weights (its real architecture; nothing downloaded)."""
    name = PAPER_ENCODERS[kind]
    dtype = torch.bfloat16
    if kind == "clip":
        from model.encoders.clip import ClipImageEncoder

        model = ClipImageEncoder(name)
    elif kind == "sync":
        from model.encoders.synchformer import SynchformerEncoder

        model = SynchformerEncoder(name)
    else:
        from model.encoders import mel_vae

        path = mel_vae.build_random_checkpoint(name, tmp / "v1-44.pth", seed=0)
        return load_encoder(name, str(path), device=device, dtype=dtype)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.02)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def bench_cuda(args) -> dict:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("clip", "sync", "latent"):
            name = PAPER_ENCODERS[kind]
            spec = feature_spec(name)
            enc = random_paper_encoder(kind, args.device, Path(tmp))
            if kind == "latent":
                inputs = [torch.from_numpy(synthetic_audio(args.seconds, i))[None] for i in range(args.clips)]
            else:
                frames = synthetic_frames(int(args.seconds * spec.frame_fps), spec.frame_size)
                inputs = [frames] * args.clips
            enc.encode(inputs[0])  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for x in inputs:
                    enc.encode(x)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            results[name] = {"clips_per_s": round(args.clips / best, 3)}
            print(f"{name:28s} {args.clips / best:8.2f} clips/s  ({args.seconds:g} s clips, bf16, "
                  f"{torch.cuda.get_device_name()})", flush=True)
            del enc
            torch.cuda.empty_cache()
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--seconds", type=float, default=8.0, help="clip length")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    res = bench_cpu(args) if args.device == "cpu" else bench_cuda(args)
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "seconds": args.seconds, "results": res}, indent=1))


if __name__ == "__main__":
    main()
