"""kill -9 while a feature stage is appended to a finished run: the rerun ends with shards
byte-identical to an uninterrupted run that had the stage from the start (tests/test_kill9.py's
method; that test covers kills at random commits of a whole run)."""
from __future__ import annotations

import copy
import random

import pytest
import yaml

from pipeline.config import parse_config
from pipeline.runner import run
from pipeline.shards import stream_shards
from tests.runner_fixtures import make_tone_corpus, tone_config
from tests.test_kill9 import kill_group_after, markers, preprocess_cmd, run_to_end, shard_files

pytestmark = [pytest.mark.slow, pytest.mark.ray]
LATENT = {"name": "latent", "options": {"encoder": "logmel-codec", "batch_seconds": 2.0},
          "resources": {"actors": 1, "num_cpus": 1}}


def test_kill9_while_appending_a_feature_stage(tmp_path, ray_local):
    corpus = make_tone_corpus(tmp_path / "corpus", n=8, missing=(4,))
    base = tone_config(corpus, sleep_s=0.1, model_stage=False)
    base["stages"].insert(1, {"name": "media", "options": {"decode_frames": False}})
    full = copy.deepcopy(base)
    full["stages"].append(LATENT)
    base_path, full_path = tmp_path / "base.yaml", tmp_path / "full.yaml"
    base_path.write_text(yaml.safe_dump(base))
    full_path.write_text(yaml.safe_dump(full))

    baseline = tmp_path / "baseline"  # uninterrupted, in this process (the session's Ray)
    run(parse_config(copy.deepcopy(full)), baseline)
    expected = shard_files(baseline)
    samples = [s for split in ("train", "test") for s in stream_shards(baseline, split)]
    assert len(samples) == 7 and all(s["latent.npy"].shape[1] == 80 for s in samples)

    # a finished run without the stage, then the append killed at a random commit of the new stage
    out = tmp_path / "appended"
    run(parse_config(copy.deepcopy(base)), out)
    before = markers(out)
    nparts = len(list((out / "stages" / "ingest").glob("*.done.json")))
    rng = random.Random(7)
    killed = kill_group_after(preprocess_cmd(full_path, out), out, before + rng.randrange(0, nparts),
                              rng.uniform(0, 0.3))
    run_to_end(full_path, out)
    assert shard_files(out) == expected
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert killed, "the kill landed after the run had finished: nothing was tested"
