"""Two processes (`accelerate launch --multi_gpu --num_processes 2` on CPU: torchrun + gloo) train like one:
one pass covers every clip exactly once across ranks, the ranks hold identical parameters after every
step, and the global loss equals the single-process loss of the same clips."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import yaml

from model.training.config import parse_train_config
from tests.training.train_helpers import (
    PYTHON,
    REPO,
    make_deterministic_run,
    read_jsonl,
    subprocess_env,
    tiny_config,
)

SIZES = (6, 6, 6, 6)
LATENT_C = 40


def _cfg(run, out, **over):
    cfg = tiny_config(run, out, **{"steps": 8, "checkpoint_every": 100, "debug_rank_log": True, **over})
    cfg["data"]["val_split"] = None
    cfg["data"]["resampled"] = False  # passes: each clip once per epoch
    return cfg


@pytest.mark.slow
def test_two_processes_cover_the_pass_stay_in_sync_and_match_one_process(tmp_path):
    from jobs.train import train

    run = make_deterministic_run(tmp_path, SIZES)
    all_keys = {f"tr{s}-{i:04d}" for s, n in enumerate(SIZES) for i in range(n)}

    cfg_path = tmp_path / "ddp.yaml"
    cfg_path.write_text(yaml.safe_dump(_cfg(run, tmp_path / "ddp")))
    launch = [PYTHON, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "-m", "jobs.train", str(cfg_path)]
    r = subprocess.run(launch, cwd=REPO, env=subprocess_env(), capture_output=True, text=True, timeout=400,
                       check=False)
    assert r.returncode == 0, r.stderr[-4000:]
    ranks = [read_jsonl(tmp_path / "ddp" / "ranks" / f"rank-{k}.jsonl") for k in (0, 1)]
    assert [x["step"] for x in ranks[0]] == [x["step"] for x in ranks[1]] == list(range(1, 9))

    # every clip of the first pass exactly once across the two ranks
    seen = [k for recs in ranks for x in recs if x["epochs"] == [0] for k in x["keys"]]
    assert sorted(seen) == sorted(all_keys)
    assert ranks[1][-1]["epochs"] == [1]  # and the loader went on into the next epoch
    # the ranks' parameters are identical after every step (and they move)
    assert [x["params"] for x in ranks[0]] == [x["params"] for x in ranks[1]]
    assert len({x["params"] for x in ranks[0]}) == 8
    assert [x["loss"] for x in ranks[0]] == [x["loss"] for x in ranks[1]]

    # one process, lr 0 (the weights stay those of step 1): every clip's loss in the same pass
    ref = train(parse_train_config(_cfg(run, tmp_path / "one", **{"optim.lr": 0.0, "steps": 6}), "ref"))
    one = read_jsonl(ref.out_dir / "ranks" / "rank-0.jsonl")
    table = {k: loss for x in one for k, epoch, loss, _ in x["clips"] if epoch == 0}
    frames = {k: n for x in one for k, _, _, n in x["clips"]}
    assert set(table) == all_keys
    # step 1 of the two-process run: the same weights, so the same per-clip losses ...
    for recs in ranks:
        for k, _, loss, _ in recs[0]["clips"]:
            assert loss == pytest.approx(table[k], rel=1e-5, abs=1e-6), k
    # ... and its global loss is the one-process loss of the same global batch (mean of the ranks'
    # frame-weighted means, as DDP averages the ranks' gradients)
    per_rank = []
    for recs in ranks:
        keys = recs[0]["keys"]
        w = np.array([frames[k] * LATENT_C for k in keys], dtype=np.float64)
        per_rank.append(float((np.array([table[k] for k in keys]) * w).sum() / w.sum()))
    assert ranks[0][0]["loss"] == pytest.approx(float(np.mean(per_rank)), rel=1e-5)
