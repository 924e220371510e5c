"""Fault injection: kill -9 the whole run at random moments; a rerun must finish with exactly
the shards of an uninterrupted run (same keys, no duplicates, byte-identical tars)."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline.shards import stream_shards
from tests.runner_fixtures import make_tone_corpus, tone_config

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[1]


def preprocess_cmd(cfg: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "preprocess", str(cfg), "--out", str(out)]


def run_to_end(cfg: Path, out: Path) -> None:
    r = subprocess.run(preprocess_cmd(cfg, out), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def shard_files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "shards").rglob("*")) if p.is_file()}


def markers(out: Path) -> int:
    return len(list((out / "stages").rglob("*.done.json"))) if (out / "stages").exists() else 0


def kill_group_after(cmd: list[str], out: Path, target: int, extra_s: float) -> bool:
    """Start cmd in its own process group; SIGKILL the whole group once `target` commit markers
    exist (then `extra_s` later, to land between commits too). True if it was killed mid-run."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if markers(out) >= target:
            time.sleep(extra_s)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            break
        time.sleep(0.02)
    proc.wait()
    return False


def test_kill9_at_random_moments_then_rerun_matches_uninterrupted(tmp_path):
    corpus = make_tone_corpus(tmp_path / "corpus", n=12, missing=(4,))
    cfg_path = tmp_path / "run.yaml"
    cfg = tone_config(corpus, sleep_s=0.2)
    cfg["stages"].insert(1, {"name": "media", "options": {"decode_frames": False}})  # the real decoder too
    cfg["ray"] = {"num_cpus": 2}
    cfg_path.write_text(yaml.safe_dump(cfg))

    baseline = tmp_path / "baseline"
    run_to_end(cfg_path, baseline)
    expected = shard_files(baseline)
    expected_keys = sorted(s["__key__"] for split in ("train", "test") for s in stream_shards(baseline, split))
    assert len(expected_keys) == 11

    total = markers(baseline)
    rng = random.Random(1234)
    kills = 0
    for trial in range(3):
        out = tmp_path / f"trial{trial}"
        # two kills per trial at random points of the commit sequence (start-up included: target 0)
        first = rng.randrange(0, total // 2)
        for target in (first, rng.randrange(first + 1, total)):
            kills += kill_group_after(preprocess_cmd(cfg_path, out), out, target, rng.uniform(0.0, 0.4))
        run_to_end(cfg_path, out)
        assert shard_files(out) == expected, f"trial {trial}: shards differ from the uninterrupted run"
        keys = [s["__key__"] for split in ("train", "test") for s in stream_shards(out, split, verify=True)]
        assert sorted(keys) == expected_keys and len(keys) == len(set(keys))
        leftovers = [p for p in out.rglob("*") if ".tmp-" in p.name]
        assert not leftovers, leftovers
    assert kills >= 3, "the kills landed after the runs had finished: nothing was tested"
