"""Generation benchmark: seconds per 8 s clip (25 Euler steps, CFG 4.5) with a breakdown
(encoders, caption encoder, the steps, latent decoder + vocoder), alone and for a batch.

    .venv/bin/python bench/bench_generate.py                      # small config, CPU
    .venv/bin/python bench/bench_generate.py --device cuda --config paper --batch 8
        # bf16, SDPA attention, torch.compile of the velocity function with CUDA graphs,
        # CFG as one batch of 2; target: 8 s of audio in ≤ 0.5 s on one H100

Weights are random (no downloads): every timing is of the real architectures. The encoders
are the registry's (`--clip/--sync/--latent`), built from random checkpoints in their real
formats; an encoder whose module cannot build one here is reported as not measured.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from model.config import get_config
from model.encoders.registry import DEMO_ENCODERS, PAPER_ENCODERS
from model.generation.sampler import GuidedEuler, SamplerOptions
from model.mmdit import MMDiT
from model.synthetic import synthetic_conditions

CLIP_SECONDS = 8.0
CAPTION = "a man sings softly while the rain falls on the roof and a dog barks"
TARGET_CUDA_S = 0.5  # paper config, 8 s of audio, one H100
FLAN_T5_BASE = {"d_model": 768, "d_kv": 64, "d_ff": 2048, "num_layers": 12, "num_heads": 12,
                "feed_forward_proj": "gated-gelu", "vocab_size": 32128}
SMALL_T5 = {"d_model": 768, "d_kv": 64, "d_ff": 2048, "num_layers": 2, "num_heads": 12, "vocab_size": 32128}
ENCODERS = {"cpu": DEMO_ENCODERS, "cuda": PAPER_ENCODERS}  # the paper's on GPU (random weights)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeats: int, warmup: int = 1) -> tuple[float, object]:
    out = None
    for _ in range(warmup):
        out = fn()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def load_random_encoder(name: str, device, workdir: Path):
    """A registry encoder from a random checkpoint in its real format (weight-free ones as they are)."""
    import importlib

    from model.encoders.registry import encoder_class, feature_spec, load_encoder

    weights = None
    if not feature_spec(name).weight_free:
        module = importlib.import_module(encoder_class(name).__module__)
        weights = workdir / f"{name}.pt"
        module.build_random_checkpoint(name, weights, seed=0)
    return load_encoder(name, str(weights) if weights else None, device=device)


def bench_encoders(names: dict, device, dtype, repeats: int, workdir: Path) -> dict:
    from model.encoders.registry import feature_spec

    out = {}
    g = np.random.default_rng(0)
    for kind in ("clip", "sync"):
        spec = feature_spec(names[kind])
        try:
            enc = load_random_encoder(names[kind], device, workdir)
            n = int(CLIP_SECONDS * spec.frame_fps)
            frames = g.integers(0, 256, (n, spec.frame_size, spec.frame_size, 3), dtype=np.uint8)
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                out[kind], _ = timed(lambda enc=enc, frames=frames: enc.encode(frames), device, repeats)
        except Exception as exc:  # noqa: BLE001 - a benchmark reports what it could not measure
            out[kind] = f"not measured ({type(exc).__name__}: {str(exc)[:80]})"
    return out


def bench_text(t5_shape: dict, device, dtype, repeats: int, batch: int) -> float:
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(0)
    model = T5EncoderModel(T5Config(**t5_shape)).to(device).eval()
    ids = torch.randint(0, t5_shape["vocab_size"], (batch, len(CAPTION.split()) + 1), device=device)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
        s, _ = timed(lambda: model(input_ids=ids).last_hidden_state, device, repeats)
    return s


def bench_decoder(name: str, cfg, device, repeats: int, batch: int, workdir: Path):
    from model.config import frames_for_duration

    try:
        codec = load_random_encoder(name, device, workdir)
        T = frames_for_duration(CLIP_SECONDS, cfg.latent_rate)
        z = torch.randn(batch, T, cfg.latent_dim, device=device)
        with torch.no_grad():
            s, wave = timed(lambda: codec.decode(z), device, repeats)
        parts = {}
        for part in ("decode_mel", "vocode"):  # codecs that expose their two halves
            if hasattr(codec, part):
                parts[part] = True
        return s, tuple(torch.as_tensor(wave).shape), parts
    except Exception as exc:  # noqa: BLE001
        return f"not measured ({type(exc).__name__}: {str(exc)[:80]})", None, {}


def bench_sampling(cfg, device, dtype, steps: int, cfg_scale: float, batch: int, repeats: int, compile_: bool,
                   cuda_graphs: bool) -> float:
    torch.manual_seed(0)
    model = MMDiT(cfg).to(device).eval()
    g = torch.Generator().manual_seed(0)
    cond = synthetic_conditions(cfg, [CLIP_SECONDS] * batch, generator=g).to(device)
    x0 = torch.randn(*cond.latent_mask.shape, cfg.latent_dim, generator=g).to(device)
    sampler = GuidedEuler(model, SamplerOptions(steps=steps, cfg_scale=cfg_scale, dtype=dtype, compile=compile_,
                                                cuda_graphs=cuda_graphs))
    warmup = 2 if compile_ else 1
    s, _ = timed(lambda: sampler.sample(cond, x0), device, repeats, warmup=warmup)
    return s


def fmt(v) -> str:
    return f"{v:.3f} s" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--config", default=None, help="network config (default: small on CPU, paper on CUDA)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--cfg", type=float, default=4.5)
    ap.add_argument("--batch", type=int, default=4, help="clips in the batch figure")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    ap.add_argument("--no-compile", action="store_true", help="CUDA: skip torch.compile / CUDA graphs")
    ap.add_argument("--fp32", action="store_true", help="CUDA: no bf16")
    ap.add_argument("--clip"), ap.add_argument("--sync"), ap.add_argument("--latent")
    a = ap.parse_args()

    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here (not measured)")
    if a.threads:
        torch.set_num_threads(a.threads)
    on_gpu = device.type == "cuda"
    name = a.config or ("paper" if on_gpu else "small")
    cfg = get_config(name)
    dtype = torch.bfloat16 if on_gpu and not a.fp32 else torch.float32
    compile_ = on_gpu and not a.no_compile
    names = dict(ENCODERS["cuda" if on_gpu else "cpu"])
    names.update({k: v for k, v in (("clip", a.clip), ("sync", a.sync), ("latent", a.latent)) if v})
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    print(f"config {name} on {device} ({dtype}, compile={compile_}, cuda_graphs={compile_}), {a.steps} steps, "
          f"CFG {a.cfg} as one batch of 2, {CLIP_SECONDS:g} s clips, threads={torch.get_num_threads()}")
    print(f"encoders: {names}  (network widths come from config {name!r}: clip {cfg.clip_dim}, "
          f"sync {cfg.sync_dim}, latent {cfg.latent_dim})")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        enc = bench_encoders(names, device, dtype, a.repeats, work)
        text = bench_text(FLAN_T5_BASE if name == "paper" else SMALL_T5, device, dtype, a.repeats, 1)
        for batch in (1, a.batch):
            steps_s = bench_sampling(cfg, device, dtype, a.steps, a.cfg, batch, a.repeats, compile_, compile_)
            dec_s, _, parts = bench_decoder(names["latent"], cfg, device, a.repeats, batch, work)
            per_clip = sum(v for v in (enc.get("clip"), enc.get("sync"), text) if isinstance(v, float))
            total = batch * per_clip + steps_s + (dec_s if isinstance(dec_s, float) else 0.0)
            print(f"\nbatch {batch}:")
            print(f"  encoders   CLIP {fmt(enc['clip'])} / Synchformer {fmt(enc['sync'])} per clip")
            print(f"  caption    T5 {fmt(text)} per clip")
            print(f"  {a.steps} steps  {fmt(steps_s)} ({steps_s / a.steps * 1e3:.1f} ms/step)")
            print(f"  decoder+vocoder ({names['latent']}) {fmt(dec_s)}"
                  f"{'' if not parts else ' (halves exposed: ' + ', '.join(parts) + ')'}")
            print(f"  total      {total:.3f} s for {batch} clip(s) = {total / batch:.3f} s per 8 s clip")
            if on_gpu and name == "paper" and batch == 1:
                ok = total <= TARGET_CUDA_S
                print(f"  target ≤ {TARGET_CUDA_S} s on one H100: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
