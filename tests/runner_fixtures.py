"""A tiny local corpus of WAV tones and configs over it, for runner tests."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

TEST_STAGES = "tests.stages_for_tests"


def make_tone_corpus(root: Path, n: int = 10, missing: tuple[int, ...] = (), empty: tuple[int, ...] = ()) -> Path:
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = media / f"tone_{i:03d}.wav"
        if i in empty:
            path.write_bytes(b"")
        elif i not in missing:
            t = np.arange(int(0.6 * 8000)) / 8000
            sf.write(path, 0.3 * np.sin(2 * np.pi * (220 + 20 * i) * t).astype(np.float32), 8000)
        rows.append({"path": f"media/{path.name}", "kind": "audio", "split": "test" if i % 4 == 3 else "train",
                     "caption": f"tone number {i}"})
    with open(root / "clips.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "kind", "split", "caption"])
        w.writeheader()
        w.writerows(rows)
    return root


def tone_config(root: Path, *, sleep_s: float = 0.0, model_stage: bool = True, **top) -> dict:
    stages = [{"name": f"{TEST_STAGES}:ProbeStage", "options": {"sleep_s": sleep_s}}]
    if model_stage:
        stages.append({"name": f"{TEST_STAGES}:LoudnessModelStage", "options": {"batch_seconds": 2.0},
                       "resources": {"actors": 1, "num_cpus": 1}})
    cfg = {"name": "tones", "partition_size": 3,
           "corpora": [{"adapter": "local", "options": {"root": str(root), "csv": "clips.csv"}}],
           "stages": stages, "shards": {"samples_per_shard": 2}, "max_failure_rate": 1.0,
           "retry": {"max_attempts": 2, "backoff_s": 0.0}, "ray": {"num_cpus": 2}}
    cfg.update(top)
    return cfg
