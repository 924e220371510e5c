"""Shared pieces of the trainer tests: synthetic demo-encoder shards and a tiny training config."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.training.shard_fixtures import simple_run

REPO = Path(__file__).resolve().parents[2]


def make_runs(root: Path, train_sizes=(6, 6, 6), test_sizes=(4,)) -> Path:
    """A run with train and test splits of synthetic shards (demo encoders, 1-4 s clips)."""
    run = root / "run"
    simple_run(run, list(train_sizes), corpus="toy", split="train", prefix="tr")
    simple_run(run, list(test_sizes), corpus="toy", split="test", prefix="te")
    return run


def tiny_config(run: Path, out: Path, **over) -> dict:
    """The tiny network, a random 32-d T5 (no dropout), small batches: a few steps in seconds."""
    cfg = {
        "data": {"sources": [{"run": str(run), "split": "train"}], "val_split": "test", "shuffle_buffer": 8,
                 "latent_stats_samples": 50, "val_batches": 1},
        "network": "tiny",
        "network_overrides": {"lyrics": {"vocab_size": 64}},
        "random_text_encoder": {"width": 32, "dropout": 0.0},
        "optim": {"lr": 1e-3},
        "schedule": {"warmup": 0.5},
        "batch": {"batch_frames": 512, "max_batch": 4, "max_duration_s": 4.0, "effective_batch": 8},
        "ema": {"decay": 0.9},
        "samples": {"count": 1, "num_steps": 2},
        "steps": 4,
        "checkpoint_every": 2,
        "out": str(out),
        "tensorboard": False,
        "progress": False,
        "seed": 3,
    }
    for k, v in over.items():
        cur = cfg
        parts = k.split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = v
    return cfg


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error")
    return env


PYTHON = sys.executable


def make_deterministic_run(root: Path, train_sizes=(6, 6, 6, 6)) -> Path:
    """Like make_runs, but posterior std 0: x1 is the normalised mean whatever the loader's ε, so a
    clip's loss depends only on the weights and its keyed flow draws (not on the process layout)."""
    import io

    import numpy as np

    from tests.training.shard_fixtures import make_sample, write_run

    def det(sample: dict) -> dict:
        lat = np.load(io.BytesIO(sample["latent.npy"]))
        C = lat.shape[1] // 2
        lat[:, C:] = 0
        buf = io.BytesIO()
        np.save(buf, lat, allow_pickle=False)
        return {**sample, "latent.npy": buf.getvalue()}

    run = root / "run"
    shards = [[det(make_sample(f"tr{si}-{i:04d}", "toy", duration_s=1.0 + (i % 4), seed=si * 1000 + i))
               for i in range(n)] for si, n in enumerate(train_sizes)]
    write_run(run, "train", shards)
    return run


def read_jsonl(path: Path) -> list[dict]:
    import json

    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]
