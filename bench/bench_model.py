"""Model benchmark: parameters and FLOPs per 8 s sample (tiny/small/paper), small-config CPU training
throughput and 8 s sampling time, and on CUDA (when present) the paper config in bf16.

    .venv/bin/python bench/bench_model.py [--train-batch 4] [--train-iters 3] [--threads N] [--skip-cuda]
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.config import FlowConfig, get_config
from model.flow import EulerSampler, FlowMatching
from model.mmdit import MMDiT
from model.synthetic import synthetic_conditions

CLIP_SECONDS = 8.0
CAPTION_TOKENS = 32  # caption length assumed for the FLOP count
PAPER_SAMPLING_SECONDS = 1.91  # the paper's time to generate 8 s of audio
FLAN_T5_BASE = {  # google/flan-t5-base encoder shape, for its parameter count (no download)
    "vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 2048, "num_layers": 12, "num_heads": 12,
    "feed_forward_proj": "gated-gelu",
}


def eight_second_batch(cfg, batch: int, seed: int = 0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    cond = synthetic_conditions(cfg, [CLIP_SECONDS] * batch, generator=g, caption_tokens=CAPTION_TOKENS)
    # worst case for the FLOP count: full-length caption
    cond = cond.to(device)
    x = torch.randn(*cond.latent_mask.shape, cfg.latent_dim, generator=g).to(device)
    return cond, x


def params_and_flops(name: str) -> tuple[int, int, int]:
    cfg = get_config(name)
    with torch.device("meta"):
        model = MMDiT(cfg)
    total = sum(p.numel() for p in model.parameters())
    lyrics = sum(p.numel() for p in model.lyrics_encoder.parameters())
    cond, x = eight_second_batch(cfg, 1)
    cond, x = cond.to("meta"), x.to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, torch.zeros(1, device="meta"), cond)
    return total, lyrics, counter.get_total_flops()


def t5_base_params() -> int:
    from transformers import T5Config, T5EncoderModel

    with torch.device("meta"):
        return sum(p.numel() for p in T5EncoderModel(T5Config(**FLAN_T5_BASE)).parameters())


def training_throughput(cfg, batch: int, iters: int, device: str, dtype=None) -> float:
    model = MMDiT(cfg).to(device).train()
    flow = FlowMatching(FlowConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cond, x1 = eight_second_batch(cfg, batch, device=device)
    g = torch.Generator().manual_seed(0)

    def step():
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            loss = flow.loss(model, x1, cond, generator=g)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch / _seconds_per_call(step, device, iters)


def _seconds_per_call(fn, device: str, repeats: int) -> float:
    """Wall seconds per call of fn after one warm-up call, device work included."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def sampling_seconds(cfg, device: str, dtype=None, repeats: int = 1) -> float:
    model = MMDiT(cfg).to(device).eval()
    cond, _ = eight_second_batch(cfg, 1, device=device)
    sampler = EulerSampler(FlowConfig())  # 25 steps, CFG 4.5

    def run():
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            sampler.sample(model, cond, cfg.latent_dim, torch.Generator().manual_seed(0))

    return _seconds_per_call(run, device, repeats)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-batch", type=int, default=4)
    parser.add_argument("--train-iters", type=int, default=3)
    parser.add_argument("--skip-cuda", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    steps = FlowConfig().num_steps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"per {CLIP_SECONDS:.0f} s sample: latent 345, CLIP 64, sync 192, caption {CAPTION_TOKENS}, voice 345 tokens")
    print(f"{'config':8} {'params':>10} {'lyrics enc':>11} {'GFLOP/fwd':>10} {'TFLOP/train':>12} {'TFLOP/sample':>13}")
    for name in ("tiny", "small", "paper"):
        total, lyrics, flops = params_and_flops(name)
        # training = forward + backward ≈ 3 forwards; sampling = 25 Euler steps × 2 (CFG)
        print(
            f"{name:8} {total / 1e6:9.2f}M {lyrics / 1e6:10.2f}M {flops / 1e9:10.2f} "
            f"{3 * flops / 1e12:12.4f} {2 * steps * flops / 1e12:13.4f}"
        )
    print(f"text encoder (flan-t5-base shape, trained with the model): {t5_base_params() / 1e6:.1f}M params")

    small = get_config("small")
    sps = training_throughput(small, args.train_batch, args.train_iters, "cpu")
    print(f"small, CPU fp32: training {sps:.2f} samples/s (batch {args.train_batch}, forward+backward+AdamW)")
    print(f"small, CPU fp32: sampling 8 s, {steps} steps, CFG {FlowConfig().cfg_scale}: "
          f"{sampling_seconds(small, 'cpu'):.2f} s")

    if args.skip_cuda or not torch.cuda.is_available():
        print("paper, CUDA bf16: not measured (no CUDA device)")
        return
    paper = get_config("paper")
    sec = sampling_seconds(paper, "cuda", torch.bfloat16, repeats=3)
    print(f"paper, CUDA bf16 ({torch.cuda.get_device_name()}): sampling 8 s in {sec:.2f} s "
          f"(paper: {PAPER_SAMPLING_SECONDS} s)")
    sps = training_throughput(paper, 8, 5, "cuda", torch.bfloat16)
    print(f"paper, CUDA bf16: training {sps:.1f} samples/s (batch 8, autocast bf16, AdamW fp32 master)")


if __name__ == "__main__":
    main()
