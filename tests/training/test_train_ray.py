"""The same training loop on a local Ray cluster: Ray Train's TorchTrainer with 2 CPU workers (gloo)."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from tests.training.train_helpers import (
    PYTHON,
    REPO,
    make_deterministic_run,
    read_jsonl,
    subprocess_env,
    tiny_config,
)


@pytest.mark.slow
@pytest.mark.ray
def test_ray_train_two_cpu_workers_run_the_training_loop(tmp_path):
    run = make_deterministic_run(tmp_path, (4, 4))
    cfg = tiny_config(run, tmp_path / "out", steps=2, checkpoint_every=2, debug_rank_log=True)
    cfg["data"]["val_split"] = None
    cfg["data"]["resampled"] = False
    cfg_path = tmp_path / "ray.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    env = subprocess_env()
    env.update(RAY_ENABLE_UV_RUN_RUNTIME_ENV="0", RAY_USAGE_STATS_ENABLED="0")
    r = subprocess.run([PYTHON, "-m", "jobs.train", str(cfg_path), "--ray-workers", "2"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=500, check=False)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-4000:])
    assert "trained on 2 Ray workers" in r.stdout
    ranks = [read_jsonl(tmp_path / "out" / "ranks" / f"rank-{k}.jsonl") for k in (0, 1)]
    assert [x["step"] for x in ranks[0]] == [x["step"] for x in ranks[1]] == [1, 2]
    assert [x["params"] for x in ranks[0]] == [x["params"] for x in ranks[1]]  # DDP kept them in sync
    keys = [set(x["keys"]) for x in ranks[0]], [set(x["keys"]) for x in ranks[1]]
    assert all(not (a & b) for a, b in zip(*keys))  # each rank its own clips
    assert (tmp_path / "out" / "checkpoints" / "step-0000002" / "meta.json").is_file()
    meta = (tmp_path / "out" / "checkpoints" / "step-0000002" / "meta.json").read_text()
    assert '"world_size": 2' in meta
