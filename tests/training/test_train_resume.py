"""A run killed (SIGKILL) after its checkpoint at step k and resumed reaches step 2k with parameters,
EMA, optimiser state and per-step losses bit-identical to an uninterrupted run (CPU)."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.training.train_helpers import PYTHON, REPO, make_runs, subprocess_env, tiny_config

K = 3
KILL_TIMEOUT_S = 240


def _write_cfg(path, run, out):
    cfg = tiny_config(run, out, steps=2 * K, checkpoint_every=K, debug_rank_log=True)
    cfg["data"]["val_split"] = None
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(cfg_path, *extra):
    return subprocess.run([PYTHON, "-m", "jobs.train", str(cfg_path), *extra], cwd=REPO, env=subprocess_env(),
                          capture_output=True, text=True, timeout=KILL_TIMEOUT_S, check=False)


def _log(out):
    return [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_kill9_after_checkpoint_then_resume_is_bit_identical(tmp_path):
    run = make_runs(tmp_path)
    # the uninterrupted run, and beside it the same run killed with SIGKILL as soon as its step-K
    # checkpoint is committed
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    cfg_a = _write_cfg(tmp_path / "a.yaml", run, out_a)
    cfg_b = _write_cfg(tmp_path / "b.yaml", run, out_b)
    proc_a = subprocess.Popen([PYTHON, "-m", "jobs.train", str(cfg_a)], cwd=REPO, env=subprocess_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen([PYTHON, "-m", "jobs.train", str(cfg_b)], cwd=REPO, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marker = out_b / "checkpoints" / f"step-{K:07d}" / "meta.json"
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while not marker.exists():
        assert proc.poll() is None, f"trainer ended before its step-{K} checkpoint: {proc.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out_b / "checkpoints" / f"step-{2 * K:07d}").exists(), "killed too late: the run had finished"
    # resume from the newest valid checkpoint
    r = _train(cfg_b, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    _, err_a = proc_a.communicate(timeout=KILL_TIMEOUT_S)
    assert proc_a.returncode == 0, err_a[-3000:]

    log_a, log_b = _log(out_a), _log(out_b)
    assert [x["step"] for x in log_a] == [x["step"] for x in log_b] == list(range(1, 2 * K + 1))
    assert [x["loss"] for x in log_a] == [x["loss"] for x in log_b]
    assert [x["grad_norm"] for x in log_a] == [x["grad_norm"] for x in log_b]
    ranks_a = [json.loads(x) for x in (out_a / "ranks" / "rank-0.jsonl").read_text().splitlines()]
    ranks_b = [json.loads(x) for x in (out_b / "ranks" / "rank-0.jsonl").read_text().splitlines()]
    assert [x["keys"] for x in ranks_a] == [x["keys"] for x in ranks_b]  # the same clips after the resume
    last = f"step-{2 * K:07d}"
    for name in ("model.safetensors", "ema.safetensors"):
        a = load_file(str(out_a / "checkpoints" / last / name))
        b = load_file(str(out_b / "checkpoints" / last / name))
        assert a.keys() == b.keys()
        diff = [k for k in a if not torch.equal(a[k], b[k])]
        assert not diff, f"{name}: {len(diff)} tensors differ, e.g. {diff[:3]}"
    opt_a = torch.load(out_a / "checkpoints" / last / "optimizer.pt", weights_only=True)
    opt_b = torch.load(out_b / "checkpoints" / last / "optimizer.pt", weights_only=True)
    for i, sa in opt_a["state"].items():
        for key, va in sa.items():
            assert torch.equal(va, opt_b["state"][i][key]), (i, key)
    # the run moved: an unchanged loss would make this test meaningless
    assert len({x["loss"] for x in log_a}) == 2 * K
