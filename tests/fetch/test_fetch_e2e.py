"""Fetch end to end against a local HTTP server: direct download and yt-dlp's generic extractor."""
from __future__ import annotations

import os
from pathlib import Path

import av
import pytest

from pipeline.stage import run_stage_on_rows
from pipeline.stages.fetch import FetchStage

from .conftest import fetch_row
from .media_server import Route

SLOW_DELAY_S = 1.5
TIMEOUT_S = 0.4


def _add_cases(server, good: bytes, prefix: str) -> dict[str, str]:
    """One URL per case; returns case → path on the server."""
    paths = {
        "good": f"/{prefix}/good.mp4",
        "missing": f"/{prefix}/missing.mp4",
        "busy": f"/{prefix}/busy.mp4",
        "slow": f"/{prefix}/slow.mp4",
        "truncated": f"/{prefix}/truncated.mp4",
        "not_media": f"/{prefix}/notmedia.mp4",
    }
    server.add(paths["good"], Route(body=good))
    server.add(paths["missing"], Route(status=404))
    server.add(paths["busy"], Route(body=good, fail_first=1, fail_status=429))
    server.add(paths["slow"], Route(body=good, delay_s=SLOW_DELAY_S))
    server.add(paths["truncated"], Route(body=good[: len(good) // 3], announce_extra=len(good)))
    server.add(paths["not_media"], Route(body=b"<html>this is not a video</html>" * 40, content_type="video/mp4"))
    return paths


EXPECTED = {
    "good": "ok",
    "missing": "failed:fetch:not_found",
    "busy": "ok",
    "slow": "failed:fetch:timeout",
    "truncated": "failed:fetch:truncated",
    "not_media": "failed:fetch:not_media",
}


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("scheme", ["direct", pytest.param("ytdlp", marks=pytest.mark.slow)])
def test_every_case_ends_in_its_terminal_state(scheme, server, good_mp4, tmp_path, sandbox, fast_retry):
    home, cwd = sandbox
    paths = _add_cases(server, good_mp4, scheme)
    prefix = "ytdlp:" if scheme == "ytdlp" else ""
    cases = list(paths)
    rows = [fetch_row("web", case, prefix + server.url(paths[case])) for case in cases]
    run_dir = tmp_path / "run"
    outcomes, counts = run_stage_on_rows(
        FetchStage, {"timeout_s": TIMEOUT_S, "max_concurrency": 3}, rows, run_dir, retry=fast_retry)

    assert [o.key for o in outcomes] == [r["key"] for r in rows]  # one outcome per row, input order
    got = {case: o for case, o in zip(cases, outcomes)}
    assert {c: o.status for c, o in got.items()} == EXPECTED

    # 404 is permanent: asked once, never retried
    assert server.requests[paths["missing"]] == 1
    assert got["missing"].attempts == 1
    # 429 is transient: the second attempt succeeds
    assert got["busy"].attempts == 2
    # timeouts and truncated bodies are retried up to the policy's limit
    assert got["slow"].attempts == fast_retry.max_attempts
    assert got["truncated"].attempts == fast_retry.max_attempts
    assert got["not_media"].attempts == 1

    for case in ("good", "busy"):
        media = Path(got[case].rows[0]["media_path"])
        assert media.is_absolute()
        assert media.parent == (run_dir / "work" / "fetch" / "web").resolve()
        assert media.name == f"{rows[cases.index(case)]['key']}.mp4"
        assert media.read_bytes() == good_mp4
        assert got[case].rows[0]["media_offset_s"] == 0.0
    assert counts["files_downloaded"] == 2
    assert counts["bytes_downloaded"] == 2 * len(good_mp4)
    assert counts["retries"] == 1 + 2 * (fast_retry.max_attempts - 1)

    # nothing but the two verified files is left in the run dir, nothing at all outside it
    run_files = _files_under(run_dir)
    assert [p.name for p in run_files] == sorted(f"{rows[cases.index(c)]['key']}.mp4" for c in ("good", "busy"))
    assert _files_under(home) == [] and _files_under(cwd) == []


def test_rerun_reuses_verified_files_and_removes_leftovers(server, good_mp4, tmp_path, sandbox, fast_retry):
    url = server.add("/clip.mp4", Route(body=good_mp4))
    rows = [fetch_row("web", "a", url), fetch_row("web", "b", url), fetch_row("web", "c", url)]
    run_dir = tmp_path / "run"
    outcomes, counts = run_stage_on_rows(FetchStage, {}, rows, run_dir, retry=fast_retry)
    assert [o.status for o in outcomes] == ["ok"] * 3 and counts["files_downloaded"] == 3
    folder = run_dir / "work" / "fetch" / "web"

    # a killed crawl: row b's file was in flight (temp files), row c's final file is corrupt
    b_final = Path(outcomes[1].rows[0]["media_path"])
    b_final.unlink()
    (folder / f"{rows[1]['key']}.fetching.mp4.part").write_bytes(good_mp4[:1000])
    (folder / f"{rows[1]['key']}.fetching.part").write_bytes(b"x")
    Path(outcomes[2].rows[0]["media_path"]).write_bytes(b"garbage")
    before = server.requests["/clip.mp4"]

    outcomes2, counts2 = run_stage_on_rows(FetchStage, {}, rows, run_dir, retry=fast_retry)
    assert [o.status for o in outcomes2] == ["ok"] * 3
    assert counts2["files_reused"] == 1
    assert counts2["files_downloaded"] == 2
    assert counts2["leftovers_removed"] == 2
    assert counts2["reused_files_rejected"] == 1
    assert server.requests["/clip.mp4"] - before == 2
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{r['key']}.mp4" for r in rows)
    assert all(Path(o.rows[0]["media_path"]).read_bytes() == good_mp4 for o in outcomes2)


@pytest.mark.parametrize("prefix", ["", "ytdlp:"])
def test_too_large_is_permanent(prefix, server, good_mp4, tmp_path, fast_retry):
    url = server.add("/big.mp4", Route(body=good_mp4))
    outcomes, _ = run_stage_on_rows(FetchStage, {"max_bytes": 1000}, [fetch_row("web", "big", prefix + url)],
                                    tmp_path / "run", retry=fast_retry)
    assert outcomes[0].status == "failed:fetch:too_large" and outcomes[0].attempts == 1
    assert "1000" in outcomes[0].message
    assert list((tmp_path / "run" / "work" / "fetch" / "web").iterdir()) == []


def test_server_error_then_success_and_retry_after_pauses_host(server, good_mp4, tmp_path, fast_retry):
    url = server.add("/flaky.mp4", Route(body=good_mp4, fail_first=2, fail_status=503))
    outcomes, counts = run_stage_on_rows(FetchStage, {}, [fetch_row("web", "flaky", url)],
                                         tmp_path / "run", retry=fast_retry)
    assert outcomes[0].status == "ok" and outcomes[0].attempts == 3 and counts["retries"] == 2
    url = server.add("/down.mp4", Route(status=503))
    outcomes, _ = run_stage_on_rows(FetchStage, {}, [fetch_row("web", "down", url)],
                                    tmp_path / "run", retry=fast_retry)
    assert outcomes[0].status == "failed:fetch:server_error"
    assert server.requests["/down.mp4"] == fast_retry.max_attempts


def test_retry_after_pauses_the_host(server, good_mp4, tmp_path, fast_retry):
    url = server.add("/later.mp4", Route(body=good_mp4, fail_first=1, fail_status=429, retry_after_s=1))
    outcomes, counts = run_stage_on_rows(FetchStage, {}, [fetch_row("web", "later", url)], tmp_path / "run",
                                         retry=fast_retry)
    assert outcomes[0].status == "ok" and outcomes[0].attempts == 2
    assert counts["rate_limit_wait_s"] >= 0.9  # the backoff alone is 10-50 ms


def test_local_mirror_files_are_verified_in_place(tmp_path, good_mp4):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "abc_000030.mp4").write_bytes(good_mp4)
    (mirror / "junk.mp4").write_bytes(os.urandom(4000))
    (mirror / "empty.wav").write_bytes(b"")
    rows = [
        fetch_row("vggsound", "abc", str(mirror / "abc_000030.mp4"), 30.0, 10.0),
        fetch_row("vggsound", "gone", str(mirror / "gone_000000.mp4")),
        fetch_row("vggsound", "junk", str(mirror / "junk.mp4")),
        fetch_row("vggsound", "empty", str(mirror / "empty.wav")),
        fetch_row("vggsound", "rel", "mirror/abc_000030.mp4"),
        fetch_row("vggsound", "uri", (mirror / "abc_000030.mp4").as_uri()),
    ]
    outcomes, counts = run_stage_on_rows(FetchStage, {}, rows, tmp_path / "run")
    assert [o.status for o in outcomes] == [
        "ok", "failed:fetch:missing_file", "failed:fetch:not_media", "failed:fetch:empty_file",
        "failed:fetch:bad_uri", "ok"]
    assert outcomes[0].rows[0] == {"media_path": str(mirror / "abc_000030.mp4"), "media_offset_s": 0.0}
    assert outcomes[5].rows[0]["media_path"] == str(mirror / "abc_000030.mp4")
    assert counts["local_files_verified"] == 2 and counts["files_downloaded"] == 0
    assert not (tmp_path / "run" / "work" / "fetch" / "vggsound").exists()


def test_ytdlp_downloads_only_the_clip_span(server, av_mp4_path, tmp_path, sandbox, fast_retry, monkeypatch):
    """download_ranges through yt-dlp + ffmpeg: [start - margin, start + duration + margin].

    `youtube:<id>` rows are pointed at the local server (the watch URL template is the only
    change), so the YouTube path runs end to end through yt-dlp without the internet.
    """
    home, cwd = sandbox
    body = av_mp4_path.read_bytes()
    url = server.add("/long.mp4", Route(body=body))
    server.add("/yt/vid_0000001.mp4", Route(body=body))
    monkeypatch.setattr("pipeline.fetch.sources.YOUTUBE_WATCH_URL", server.url("/yt/{id}.mp4"))
    rows = [fetch_row("web", "span", "ytdlp:" + url, start_s=2.0, duration_s=1.0),
            fetch_row("vggsound", "vid_0000001", "youtube:vid_0000001", start_s=1.0, duration_s=2.0),
            fetch_row("web", "whole", "ytdlp:" + url, start_s=2.0, duration_s=None)]
    opts = {"clip_span_generic": True, "margin_s": 0.5, "timeout_s": 5}
    outcomes, _counts = run_stage_on_rows(FetchStage, opts, rows, tmp_path / "run", retry=fast_retry)
    assert [o.status for o in outcomes] == ["ok"] * 3, [o.message for o in outcomes]
    expected = [(1.5, 2.0), (0.5, 3.0), (0.0, 5.3)]  # (offset, span seconds)
    for o, (offset, span) in zip(outcomes, expected):
        out = o.rows[0]
        assert out["media_offset_s"] == pytest.approx(offset)
        with av.open(out["media_path"]) as c:
            seconds = c.duration / 1e6
            assert c.streams.audio and c.streams.video
        assert span - 0.1 <= seconds <= span + 1.0  # keyframe slack; spans are not the whole source
    assert _files_under(home) == [] and _files_under(cwd) == []
    assert sorted(p.name for p in _files_under(tmp_path / "run")) == sorted(f"{r['key']}.mp4" for r in rows)
