"""URI parsing, clip spans handed to yt-dlp, and archives fetched over http."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from pipeline.errors import PermanentError
from pipeline.fetch import classes
from pipeline.fetch.archive import is_safe_member_name
from pipeline.fetch.landing import Landing
from pipeline.fetch.sources import HttpSource, LocalSource, YtdlpSource, parse_media_uri
from pipeline.fetch.ytdlp import YtdlpDownloader, YtdlpSettings
from pipeline.stage import StageContext, run_stage_on_rows
from pipeline.stages.fetch import FetchStage

from .conftest import fetch_row
from .media_server import Route


def test_parse_media_uri():
    assert parse_media_uri("youtube:--0PQM4-hqg") == YtdlpSource("https://www.youtube.com/watch?v=--0PQM4-hqg", True)
    assert parse_media_uri("ytdlp:https://vimeo.com/1") == YtdlpSource("https://vimeo.com/1", False)
    assert parse_media_uri("https://h/a.zip#dir/x y.wav") == HttpSource("https://h/a.zip", "dir/x y.wav")
    assert parse_media_uri("https://h/a.tar.gz").is_archive and not parse_media_uri("https://h/a.mp4").is_archive
    assert parse_media_uri("/data/v/abc_000030.mp4") == LocalSource(Path("/data/v/abc_000030.mp4"))
    assert parse_media_uri("file:///data/a%20b.wav") == LocalSource(Path("/data/a b.wav"))


@pytest.mark.parametrize("uri", [None, "", "youtube:", "youtube:a/b", "ytdlp:ftp://x/y", "ytdlp:notaurl",
                                 "relative/path.wav", "file://otherhost/x.wav", "https:///nohost.mp4"])
def test_bad_uris_are_permanent(uri):
    with pytest.raises(PermanentError) as exc:
        parse_media_uri(uri)
    assert exc.value.error_class == classes.BAD_URI


def test_youtube_rows_ask_ytdlp_for_the_clip_span_only(tmp_path):
    stage = FetchStage({"margin_s": 1.5}, StageContext(tmp_path, "fetch"))
    stage.setup()
    src = parse_media_uri("youtube:abcdefghijk")
    assert stage._clip_span(src, {"start_s": 30.0, "duration_s": 10.0}) == (28.5, 41.5)
    assert stage._clip_span(src, {"start_s": 0.5, "duration_s": 10.0}) == (0.0, 12.0)  # clamped at 0
    assert stage._clip_span(src, {"start_s": 30.0, "duration_s": None}) is None  # unknown length: whole video
    assert stage._clip_span(parse_media_uri("ytdlp:http://h/v"), {"start_s": 3.0, "duration_s": 1.0}) is None

    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n")
    dl = YtdlpDownloader(YtdlpSettings(timeout_s=5, max_bytes=10**6, format="ba", cookies_file=cookies,
                                       proxy="socks5://127.0.0.1:9", extra={"sleep_interval_requests": 1}))
    landing = Landing(tmp_path / "work", "vggsound", "vggsound-abcdefghijk-000030000")
    params = dl.params(landing, (28.5, 41.5), logger=None, cookies_copy=tmp_path / "copy.txt")
    assert list(params["download_ranges"]({"id": "x"}, None)) == [{"start_time": 28.5, "end_time": 41.5}]
    assert params["cachedir"] is False
    assert params["outtmpl"]["default"] == str(landing.temp_stem()) + ".%(ext)s"
    assert params["cookiefile"] == str(tmp_path / "copy.txt")  # never the user's own file
    assert (params["format"], params["proxy"], params["max_filesize"]) == ("ba", "socks5://127.0.0.1:9", 10**6)
    assert params["sleep_interval_requests"] == 1 and params["retries"] == 0


def test_ytdlp_extra_may_not_take_over_landing(tmp_path):
    with pytest.raises(ValueError, match="outtmpl"):
        FetchStage({"ytdlp": {"extra": {"outtmpl": "/tmp/%(id)s"}}}, StageContext(tmp_path, "fetch"))


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tgz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_archives_are_fetched_once_and_members_extracted_safely(server, good_mp4, tmp_path, sandbox, fast_retry):
    home, cwd = sandbox
    single = server.add("/single.zip", Route(body=_zip({"clip/a clip.mp4": good_mp4, "README.txt": b"hi"}),
                                             content_type="application/zip"))
    multi = server.add("/multi.tar.gz", Route(body=_tgz({"x/one.mp4": good_mp4, "x/two.mp4": good_mp4}),
                                              content_type="application/gzip"))
    evil = server.add("/evil.zip", Route(body=_zip({"../../escape.mp4": good_mp4}),
                                         content_type="application/zip"))
    rows = [
        fetch_row("clotho", "single", single),
        fetch_row("clotho", "one", multi + "#x/one.mp4"),
        fetch_row("clotho", "two", multi + "#x/two.mp4"),
        fetch_row("clotho", "ambiguous", multi),
        fetch_row("clotho", "nomember", multi + "#x/three.mp4"),
        fetch_row("clotho", "evil", evil),
        fetch_row("clotho", "evil2", multi + "#../x/one.mp4"),
    ]
    outcomes, counts = run_stage_on_rows(FetchStage, {"max_concurrency": 3}, rows, tmp_path / "run",
                                         retry=fast_retry)
    assert [o.status for o in outcomes] == [
        "ok", "ok", "ok", "failed:fetch:archive_member", "failed:fetch:archive_member",
        "failed:fetch:unsafe_archive", "failed:fetch:unsafe_archive"]
    for o, row in zip(outcomes[:3], rows[:3]):
        media = Path(o.rows[0]["media_path"])
        assert media.name == f"{row['key']}.mp4" and media.read_bytes() == good_mp4
    assert server.requests["/multi.tar.gz"] == 1 and server.requests["/single.zip"] == 1
    assert counts["archives_downloaded"] == 3
    assert counts["archives_reused"] == 4
    assert not list(tmp_path.rglob("escape.mp4"))
    assert list(home.rglob("*")) == [] and list(cwd.rglob("*")) == []


@pytest.mark.parametrize("name,safe", [("a/b.wav", True), ("x y/ü.flac", True), ("../a.wav", False),
                                       ("/etc/passwd", False), ("a/../../b", False), ("C:/x.wav", False),
                                       ("a\\..\\b.wav", False), ("", False)])
def test_member_names(name, safe):
    assert is_safe_member_name(name) is safe


def test_rate_limit_and_concurrency_keep_order(server, good_mp4, tmp_path, fast_retry):
    """Slow and fast rows finish out of order; outcomes still come back in input order."""
    slow = server.add("/s.mp4", Route(body=good_mp4, delay_s=0.3))
    fast = server.add("/f.mp4", Route(body=good_mp4))
    rows = [fetch_row("web", f"r{i}", slow if i % 2 == 0 else fast) for i in range(6)]
    outcomes, counts = run_stage_on_rows(FetchStage, {"max_concurrency": 6, "per_host_rate": 20.0}, rows,
                                         tmp_path / "run", retry=fast_retry)
    assert [o.key for o in outcomes] == [r["key"] for r in rows]
    assert all(o.ok for o in outcomes)
    assert [Path(o.rows[0]["media_path"]).name for o in outcomes] == [f"{r['key']}.mp4" for r in rows]
    assert counts["rate_limit_wait_s"] >= 5 / 20.0 - 0.01  # 6 requests to one host at 20/s
