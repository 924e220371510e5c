"""A tiny model memorises 8 fixed (conditions, latent) pairs and regenerates each from its conditions."""
import time

import pytest
import torch

from model.config import FlowConfig, get_config
from model.flow import EulerSampler, FlowMatching
from model.mmdit import MMDiT
from model.synthetic import synthetic_conditions

NUM_SAMPLES = 8
TRAIN_STEPS = 400
LEARNING_RATE = 3e-3
EVAL_DRAWS = 4  # fixed (t, noise) draws the loss is measured on, before and after


def fixed_eval_loss(flow, model, x1, cond, draws):
    with torch.no_grad():
        return sum(flow.loss(model, x1, cond, t=t, x0=x0, dropout=False).item() for t, x0 in draws) / len(draws)


@pytest.mark.slow
def test_tiny_model_overfits_eight_samples_and_retrieves_them():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    cfg = get_config("tiny")
    model = MMDiT(cfg)
    # mixed durations and a song/speech/video mix, every sample with its own conditions
    durations = [0.5, 0.4, 0.5, 0.3, 0.5, 0.45, 0.35, 0.5]
    cond = synthetic_conditions(
        cfg, durations, generator=g,
        has_video=[True, True, False, True, False, True, True, False],
        has_voice=[True, False, True, True, True, False, True, True],
    )
    mask = cond.latent_mask[..., None]
    x1 = torch.randn(*cond.latent_mask.shape, cfg.latent_dim, generator=g) * mask

    flow = FlowMatching(FlowConfig(timestep_sampling="uniform", cfg_dropout=0.0))
    draws = [(flow.sample_timesteps(NUM_SAMPLES, g), torch.randn(x1.shape, generator=g)) for _ in range(EVAL_DRAWS)]
    before = fixed_eval_loss(flow, model, x1, cond, draws)

    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, TRAIN_STEPS)
    start = time.perf_counter()
    for _ in range(TRAIN_STEPS):
        loss = flow.loss(model, x1, cond, generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    train_s = time.perf_counter() - start
    after = fixed_eval_loss(flow, model, x1, cond, draws)

    model.eval()
    samples = EulerSampler().sample(model, cond, cfg.latent_dim, torch.Generator().manual_seed(1), cfg_scale=None)
    # distance of each generated sample to each target, over the frames both have
    frames = cond.latent_mask.float()
    dist = torch.zeros(NUM_SAMPLES, NUM_SAMPLES)
    for i in range(NUM_SAMPLES):
        for j in range(NUM_SAMPLES):
            both = frames[i] * frames[j]
            dist[i, j] = (((samples[i] - x1[j]) ** 2).sum(-1) * both).sum() / both.sum()
    retrieved = dist.argmin(1)
    accuracy = (retrieved == torch.arange(NUM_SAMPLES)).float().mean().item()
    print(
        f"\noverfit: loss {before:.4f} -> {after:.4f} ({before / after:.1f}x) in {TRAIN_STEPS} steps, "
        f"{train_s:.1f} s; retrieval accuracy {accuracy:.3f}; own-target distance "
        f"{dist.diag().mean():.4f} vs others {dist[~torch.eye(NUM_SAMPLES, dtype=torch.bool)].mean():.4f}"
    )
    assert before / after >= 10
    assert accuracy == 1.0, dist
