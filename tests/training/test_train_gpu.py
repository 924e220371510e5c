"""The trainer on CUDA: bf16 autocast (no GradScaler), fp32 master weights and EMA; skipped without a GPU."""
from __future__ import annotations

import math

import pytest
import torch

from model.training.config import parse_train_config
from tests.training.train_helpers import make_runs, tiny_config

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_training_on_cuda_and_checkpoint_loads(tmp_path):
    from jobs.train import train
    from model.training.checkpoint import load_for_inference

    run = make_runs(tmp_path)
    cfg = parse_train_config(tiny_config(run, tmp_path / "out", device="cuda", steps=4, eval_every=2,
                                         sample_every=4), "gpu")
    result = train(cfg)
    assert len(result.losses) == 4 and all(math.isfinite(x) for x in result.losses)
    bundle = load_for_inference(result.out_dir, device="cuda")
    assert all(p.dtype == torch.float32 and p.is_cuda for p in bundle.model.parameters())
    assert (tmp_path / "out" / "samples" / "step-0000004").is_dir()
