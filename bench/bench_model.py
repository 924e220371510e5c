"""Model benchmark: parameters and FLOPs per 8 s sample (tiny/small/paper), small-config CPU training
throughput (eager and `torch.compile`d) and 8 s sampling time, and on CUDA (when present) the paper
config in bf16.

    .venv/bin/python bench/bench_model.py [--train-batch 4] [--train-iters 3] [--threads N] [--skip-cuda]
                                          [--skip-compile] [--only-compile]
    .venv/bin/python bench/bench_model.py --compare all [--threads 1]   # architecture comparisons:
        temporal convolutions vs pointwise (overfit/retrieval, short training on a synced task) and
        aligned voice token times vs the padded layout (short training on an aligned-speech task)
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from model.config import FlowConfig, get_config
from model.flow import EulerSampler, FlowMatching
from model.inputs import MODALITIES
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


def training_throughput(cfg, batch: int, iters: int, device: str, dtype=None, compile: bool = False) -> float:
    """Samples/s of forward + backward + AdamW. With `compile`, the loss (CFG drops, prepare,
    velocity, masked MSE) is one `torch.compile(fullgraph=True)` graph; randomness is drawn outside."""
    model = MMDiT(cfg).to(device).train()
    flow = FlowMatching(FlowConfig())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cond, x1 = eight_second_batch(cfg, batch, device=device)
    g = torch.Generator().manual_seed(0)

    def loss_of(x1, x0, t, cond, dropped):
        for j, modality in enumerate(MODALITIES):
            cond = cond.drop([modality], dropped[:, j])
        return flow.loss(model, x1, cond, t=t, x0=x0, dropout=False)

    loss_fn = torch.compile(loss_of, fullgraph=True) if compile else loss_of

    def step():
        t = flow.sample_timesteps(batch, g).to(device)
        x0 = torch.randn(x1.shape, generator=g).to(device)
        dropped = flow.draw_modality_drops(batch, g).to(device)
        with torch.autocast(device_type=device, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(x1, x0, t, cond, dropped)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return batch / _seconds_per_call(step, device, iters)


# ---- architecture comparisons (tiny config, synthetic tasks; seconds to minutes on CPU) ----------

OVERFIT_SAMPLES, OVERFIT_STEPS, OVERFIT_LR = 8, 400, 3e-3
TASK_CLIP_S = 1.0  # clips of the short-training tasks: 43 latent frames
TASK_TRAIN, TASK_EVAL, TASK_BATCH, TASK_STEPS, TASK_LR = 256, 32, 16, 300, 2e-3
TASK_SMOOTHING = 5  # frames of context in the synced task's target
TASK_VOCAB, TASK_TOKENS = 8, 4  # aligned-speech task: ids and tokens per clip
SPEECH_STEPS = 1000  # the aligned-speech task needs longer than the synced one to leave the marginal


def _fixed_draws(flow, x1, g, draws=4):
    return [(flow.sample_timesteps(x1.shape[0], g), torch.randn(x1.shape, generator=g)) for _ in range(draws)]


def _eval_loss(flow, model, x1, cond, draws) -> float:
    with torch.no_grad():
        return sum(flow.loss(model, x1, cond, t=t, x0=x0, dropout=False).item() for t, x0 in draws) / len(draws)


def overfit_retrieval(cfg, seed: int = 0) -> dict:
    """The overfit test's procedure (tests/model/test_model_overfit.py): memorise 8 pairs, regenerate."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = MMDiT(cfg)
    cond = synthetic_conditions(cfg, [0.5, 0.4, 0.5, 0.3, 0.5, 0.45, 0.35, 0.5], generator=g,
                                has_video=[True, True, False, True, False, True, True, False],
                                has_voice=[True, False, True, True, True, False, True, True])
    x1 = torch.randn(*cond.latent_mask.shape, cfg.latent_dim, generator=g) * cond.latent_mask[..., None]
    flow = FlowMatching(FlowConfig(timestep_sampling="uniform", cfg_dropout=0.0, cfg_drop_all=0.0))
    draws = _fixed_draws(flow, x1, g)
    before = _eval_loss(flow, model, x1, cond, draws)
    opt = torch.optim.AdamW(model.parameters(), lr=OVERFIT_LR, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, OVERFIT_STEPS)
    start = time.perf_counter()
    for _ in range(OVERFIT_STEPS):
        loss = flow.loss(model, x1, cond, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    seconds = time.perf_counter() - start
    after = _eval_loss(flow, model, x1, cond, draws)
    samples = EulerSampler().sample(model.eval(), cond, cfg.latent_dim, torch.Generator().manual_seed(1), cfg_scale=None)
    frames = cond.latent_mask.float()
    n = OVERFIT_SAMPLES
    dist = torch.zeros(n, n)
    for i in range(n):
        for j in range(n):
            both = frames[i] * frames[j]
            dist[i, j] = (((samples[i] - x1[j]) ** 2).sum(-1) * both).sum() / both.sum()
    accuracy = (dist.argmin(1) == torch.arange(n)).float().mean().item()
    others = dist[~torch.eye(n, dtype=torch.bool)].mean().item()
    return {"loss_before": before, "loss_after": after, "accuracy": accuracy,
            "own_distance": dist.diag().mean().item(), "other_distance": others, "seconds": seconds}


def synced_task(cfg, n: int, seed: int):
    """Video-synced targets: x1 on each latent frame is a fixed smooth function of the sync tokens
    around that instant (TASK_SMOOTHING frames of context), so the audio follows the video in time."""
    from model.conditioning import latent_frame_times, resample_at_times

    g = torch.Generator().manual_seed(seed)
    cond = synthetic_conditions(cfg, [TASK_CLIP_S] * n, generator=g)
    fixed = torch.Generator().manual_seed(12345)  # the task itself is the same for train and eval
    mix = torch.randn(cfg.sync_dim, cfg.latent_dim, generator=fixed) / cfg.sync_dim ** 0.5
    smooth = torch.ones(cfg.latent_dim, 1, TASK_SMOOTHING) / TASK_SMOOTHING
    T = cond.latent_mask.shape[1]
    on_latent = resample_at_times(cond.sync, cond.sync_times, cond.sync_mask, latent_frame_times(T, cfg.latent_rate))
    h = (on_latent @ mix).transpose(1, 2)
    h = torch.nn.functional.conv1d(h, smooth, padding=TASK_SMOOTHING // 2, groups=cfg.latent_dim)
    x1 = torch.tanh(2 * h).transpose(1, 2) * cond.latent_mask[..., None]
    return cond.keep_only(["video"]), x1 / x1[cond.latent_mask].std()


def aligned_speech_task(cfg, n: int, seed: int, place: str = "start"):
    """Aligned speech: TASK_TOKENS VoiceBPE ids per clip, each spoken over its own random span;
    x1 on a frame is a fixed embedding of the id spoken then. Returns the conditions with
    `voice_times` (the spans' starts, or their centres with place="centre") and the targets."""
    from dataclasses import replace

    g = torch.Generator().manual_seed(seed)
    cond = synthetic_conditions(cfg, [TASK_CLIP_S] * n, generator=g)
    T = cond.latent_mask.shape[1]
    table = torch.randn(TASK_VOCAB, cfg.latent_dim, generator=torch.Generator().manual_seed(12345))
    ids = torch.randint(1, TASK_VOCAB, (n, TASK_TOKENS), generator=g)
    cuts = torch.sort(torch.rand(n, TASK_TOKENS - 1, generator=g), dim=1).values * TASK_CLIP_S
    starts = torch.cat([torch.zeros(n, 1), cuts], dim=1)  # [n, K]
    frame_t = (torch.arange(T) + 0.5) / cfg.latent_rate
    spoken = (frame_t[None, :, None] >= starts[:, None, :]).sum(-1) - 1  # [n, T] index of the token
    x1 = table[torch.gather(ids, 1, spoken)] * cond.latent_mask[..., None]
    voice_ids = torch.zeros(n, T, dtype=torch.long)
    voice_ids[:, :TASK_TOKENS] = ids
    voice_mask = torch.arange(T)[None] < TASK_TOKENS
    voice_mask = voice_mask.expand(n, -1).clone()
    times = torch.zeros(n, T)
    ends = torch.cat([cuts, torch.full((n, 1), TASK_CLIP_S)], dim=1)
    times[:, :TASK_TOKENS] = starts if place == "start" else (starts + ends) / 2
    cond = replace(cond, voice_ids=voice_ids, voice_mask=voice_mask, voice_times=times, has_voice=None)
    return cond.keep_only(["voice"]), x1


def short_training(cfg, task, use_voice_times: bool = True, seed: int = 0, steps: int | None = None,
                   report_every: int | None = None, label: str = "") -> dict:
    """Train on TASK_TRAIN clips for `steps` (TASK_STEPS) steps; flow loss on TASK_EVAL held-out clips
    (also printed every `report_every` steps)."""
    steps = TASK_STEPS if steps is None else steps
    from dataclasses import replace

    torch.manual_seed(seed)
    train_cond, train_x1 = task(cfg, TASK_TRAIN, seed=1)
    eval_cond, eval_x1 = task(cfg, TASK_EVAL, seed=2)
    if not use_voice_times:
        train_cond, eval_cond = replace(train_cond, voice_times=None), replace(eval_cond, voice_times=None)
    model = MMDiT(cfg)
    flow = FlowMatching(FlowConfig(timestep_sampling="uniform", cfg_dropout=0.0, cfg_drop_all=0.0))
    g = torch.Generator().manual_seed(seed)
    draws = _fixed_draws(flow, eval_x1, torch.Generator().manual_seed(3))
    opt = torch.optim.AdamW(model.parameters(), lr=TASK_LR, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    start = time.perf_counter()
    for _ in range(steps):
        idx = torch.randint(0, TASK_TRAIN, (TASK_BATCH,), generator=g)
        batch = _select(train_cond, idx)
        loss = flow.loss(model, train_x1[idx], batch, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if report_every and (sched.last_epoch % report_every == 0) and sched.last_epoch < steps:
            print(f"  {label} step {sched.last_epoch}: held-out flow loss "
                  f"{_eval_loss(flow, model.eval(), eval_x1, eval_cond, draws):.4f}", flush=True)
            model.train()
    seconds = time.perf_counter() - start
    params = sum(p.numel() for p in model.parameters())
    out = {"eval_loss": _eval_loss(flow, model.eval(), eval_x1, eval_cond, draws), "seconds": seconds,
           "params": params}
    if task in (aligned_speech_task, aligned_speech_centres):
        out["frame_accuracy"] = spoken_token_accuracy(cfg, model, eval_cond, eval_x1)
    return out


def spoken_token_accuracy(cfg, model, cond, x1) -> float:
    """Generate the held-out clips (25 Euler steps, no CFG) and read each real frame as the id whose
    embedding is nearest: the share of frames whose id is the one spoken then. The flow loss alone
    can be lowered by reading the id from the noisy latent; generating from noise cannot."""
    table = torch.randn(TASK_VOCAB, cfg.latent_dim, generator=torch.Generator().manual_seed(12345))
    sample = EulerSampler(FlowConfig()).sample(model.eval(), cond, cfg.latent_dim, torch.Generator().manual_seed(4),
                                               cfg_scale=None)
    nearest = lambda x: torch.cdist(x.reshape(-1, x.shape[-1]), table).argmin(-1).reshape(x.shape[:2])
    right = (nearest(sample) == nearest(x1)) & cond.latent_mask
    return (right.sum() / cond.latent_mask.sum()).item()


def _select(cond, idx):
    from dataclasses import fields, replace

    return replace(cond, **{f.name: getattr(cond, f.name)[idx] for f in fields(cond) if getattr(cond, f.name) is not None})


def compare_architectures(parts: str = "all") -> None:
    from model.config import POINTWISE

    conv, flat = get_config("tiny"), get_config("tiny", **POINTWISE)
    if parts in ("all", "voice"):
        compare_voice_positions(conv)
    if parts == "voice":
        return
    print(f"tiny: {sum(p.numel() for p in MMDiT(conv).parameters()) / 1e6:.2f}M params with temporal convolutions, "
          f"{sum(p.numel() for p in MMDiT(flat).parameters()) / 1e6:.2f}M pointwise")
    for name, cfg in (("conv", conv), ("pointwise", flat)):
        r = overfit_retrieval(cfg)
        print(f"overfit/retrieval {name:9}: loss {r['loss_before']:.4f} -> {r['loss_after']:.4f} "
              f"({r['loss_before'] / r['loss_after']:.1f}x), retrieval {r['accuracy']:.3f}, own-target distance "
              f"{r['own_distance']:.4f} vs others {r['other_distance']:.4f}, {r['seconds']:.0f} s")
    for name, cfg in (("conv", conv), ("pointwise", flat)):
        r = short_training(cfg, synced_task)
        print(f"synced task       {name:9}: held-out flow loss {r['eval_loss']:.4f} after {TASK_STEPS} steps "
              f"(batch {TASK_BATCH}), {r['seconds']:.0f} s")


def aligned_speech_centres(cfg, n: int, seed: int):
    return aligned_speech_task(cfg, n, seed, place="centre")


def compare_voice_positions(cfg) -> None:
    variants = (("aligned", aligned_speech_task, True), ("centres", aligned_speech_centres, True),
                ("layout", aligned_speech_task, False))
    for name, task, aligned in variants:
        r = short_training(cfg, task, use_voice_times=aligned, steps=SPEECH_STEPS,
                           report_every=SPEECH_STEPS // 4, label=name)
        print(f"aligned speech    {name:9}: held-out flow loss {r['eval_loss']:.4f}, generated frames with the "
              f"spoken id {r['frame_accuracy']:.3f}, after {SPEECH_STEPS} steps (batch {TASK_BATCH}), {r['seconds']:.0f} s")


def compare_compiled_training(cfg, batch: int, iters: int) -> None:
    eager = training_throughput(cfg, batch, iters, "cpu")
    start = time.perf_counter()
    compiled = training_throughput(cfg, batch, iters, "cpu", compile=True)
    total = time.perf_counter() - start
    print(f"small, CPU fp32: training {eager:.2f} samples/s eager, {compiled:.2f} samples/s torch.compile "
          f"(x{compiled / eager:.2f}; batch {batch}, forward+backward+AdamW; compile + runs took {total:.0f} s)")


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
    parser.add_argument("--skip-compile", action="store_true", help="no torch.compile'd training step")
    parser.add_argument("--only-compile", action="store_true", help="only the eager vs compiled training step")
    parser.add_argument("--compare", choices=["all", "voice"], default=None,
                        help="architecture comparisons (see the docstring); voice: only the voice positions")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.compare:
        compare_architectures(args.compare)
        return
    if args.only_compile:
        compare_compiled_training(get_config("small"), args.train_batch, args.train_iters)
        return

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
    if args.skip_compile:
        sps = training_throughput(small, args.train_batch, args.train_iters, "cpu")
        print(f"small, CPU fp32: training {sps:.2f} samples/s (batch {args.train_batch}, forward+backward+AdamW)")
    else:
        compare_compiled_training(small, args.train_batch, args.train_iters)
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
