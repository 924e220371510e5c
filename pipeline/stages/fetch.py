"""Fetch stage: media_uri → a verified local file (`media_path`).

Sources (see `pipeline.fetch.sources`): YouTube ids and other yt-dlp URLs, direct
http(s) files and archives, and local mirror files verified in place. Downloads land
in `<run>/work/fetch/<corpus>/<key>.<ext>`: written under a temporary name, fsynced,
renamed, then verified (size, PyAV opens the container, one frame decodes) before
the row is ok. A rerun reuses final files that verify and removes leftover temp files,
so a killed crawl loses at most the files in flight.

Rows of a partition are fetched by a bounded thread pool (`max_concurrency`), each
host through a token bucket (`per_host_rate`). Transient errors (429, 5xx, timeouts,
resets, truncated bodies) are retried with the run's RetryPolicy (exponential backoff
with jitter, Retry-After honoured per host); permanent ones end as
`failed:fetch:<class>` at once.

`media_offset_s` is the time in the source at which the fetched file starts: the clip
span download of a YouTube video starts at `start_s - margin_s`, everything else at 0.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import StageError
from ..fetch import classes
from ..fetch import http as direct_http
from ..fetch.archive import MEDIA_SUFFIXES, extract_member
from ..fetch.landing import TEMP_MARK, Landing, fsync_file, safe_ext
from ..fetch.ratelimit import HostRateLimiter
from ..fetch.sources import HttpSource, LocalSource, YtdlpSource, archive_suffix, parse_media_uri
from ..fetch.verify import check_size, verify_media
from ..fetch.ytdlp import PROTECTED_PARAMS, YtdlpDownloader, YtdlpSettings
from ..stage import Outcome, Stage, StageOptions

# video up to 480p with the best audio: enough for 384 px CLIP and 224 px sync frames
DEFAULT_YTDLP_FORMAT = "bv*[height<=480]+ba/b[height<=480]/b"
DEFAULT_USER_AGENT = "agomni-fetch/0.1 (+https://github.com/agomni)"
ARCHIVE_FOLDER = "_archives"
ARCHIVE_NAME_HASH_CHARS = 24
UNKNOWN_EXT = "bin"


class YtdlpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str | None = Field(DEFAULT_YTDLP_FORMAT, description="yt-dlp format selector (None: yt-dlp's default)")
    cookies_file: Path | None = Field(None, description="Netscape cookies file (used through a private copy)")
    proxy: str | None = Field(None, description="proxy URL for yt-dlp, e.g. socks5://host:1080")
    force_keyframes_at_cuts: bool = Field(False, description="re-encode at the clip-span cuts for exact starts")
    extra: dict[str, Any] = Field(default_factory=dict, description="further YoutubeDL params, passed through")

    @field_validator("extra")
    @classmethod
    def _not_protected(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = sorted(PROTECTED_PARAMS & set(v))
        if bad:
            raise ValueError(f"may not set {bad}: the fetch stage owns these yt-dlp params")
        return v


class FetchOptions(StageOptions):
    timeout_s: float = Field(30.0, gt=0, description="connect / read inactivity limit per request")
    max_download_s: float = Field(900.0, gt=0, description="whole-body limit of a direct download")
    max_concurrency: int = Field(4, ge=1, description="downloads in flight per partition")
    per_host_rate: float | None = Field(None, gt=0, description="requests per second per host (None: unlimited)")
    per_host_burst: float = Field(1.0, ge=1, description="token bucket size per host")
    max_retry_after_s: float = Field(120.0, ge=0, description="cap on a server's Retry-After pause")
    margin_s: float = Field(1.0, ge=0, description="extra seconds each side of the clip span (download_ranges)")
    clip_span_generic: bool = Field(False, description="also download only the clip span for ytdlp:<url> sources")
    max_bytes: int | None = Field(2_000_000_000, ge=1, description="refuse files larger than this")
    verify: bool = Field(True, description="decode-check every file before the row is ok")
    user_agent: str = Field(DEFAULT_USER_AGENT, min_length=1)
    http_proxy: str | None = Field(None, description="proxy URL for direct http(s) downloads")
    ytdlp: YtdlpOptions = Field(default_factory=YtdlpOptions)


class FetchStage(Stage):
    name = "fetch"
    Options: ClassVar[type[StageOptions]] = FetchOptions
    reads = ("key", "corpus", "source_id", "media_uri", "start_s", "duration_s")
    writes = ("media_path", "media_offset_s")
    counters = (
        "files_downloaded", "bytes_downloaded", "files_reused", "local_files_verified", "retries",
        "archives_downloaded", "archives_reused", "leftovers_removed", "reused_files_rejected",
        "rate_limit_wait_s",
    )
    options: FetchOptions

    def setup(self) -> None:
        o = self.options
        self._lock = threading.Lock()
        self._archive_locks: dict[str, threading.Lock] = {}
        self.limiter = HostRateLimiter(o.per_host_rate, o.per_host_burst)
        self.http = direct_http.HttpOptions(timeout_s=o.timeout_s, max_download_s=o.max_download_s,
                                            max_bytes=o.max_bytes, user_agent=o.user_agent, proxy=o.http_proxy)
        self._ytdlp: YtdlpDownloader | None = None

    # -- driver: bounded thread pool, output order = input order --------------------------------
    def process_partition(self, rows: list[dict]) -> list[Outcome]:
        if not hasattr(self, "limiter"):
            self.setup()
        if not rows:
            return []
        workers = min(self.options.max_concurrency, len(rows))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
            return list(pool.map(self._run_row, rows))

    def _run_row(self, row: dict) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                return Outcome(row["key"], "ok", [self.process_row(row)], attempts=attempt)
            except Exception as exc:  # noqa: BLE001 - every exception becomes a terminal state
                if isinstance(exc, StageError) and exc.transient and attempt < self.ctx.retry.max_attempts:
                    self.count("retries")
                    self._honour_retry_after(row, exc)
                    with self._lock:
                        delay = self.ctx.retry.delay(attempt, self._rng)
                    time.sleep(delay)
                    continue
                return self.outcome_for(row["key"], exc, attempt)

    def count(self, name: str, n: float = 1) -> None:
        with self._lock:
            super().count(name, n)

    def _honour_retry_after(self, row: dict, exc: StageError) -> None:
        seconds = getattr(exc, "retry_after_s", None)
        if seconds:
            host = urlsplit(str(row.get("media_uri") or "")).hostname or ""
            self.limiter.pause(host, min(seconds, self.options.max_retry_after_s))

    # -- one row -------------------------------------------------------------------------------
    def process_row(self, row: dict) -> dict:
        source = parse_media_uri(row.get("media_uri"))
        if isinstance(source, LocalSource):
            return {"media_path": str(self._check_local(source.path)), "media_offset_s": 0.0}
        span = self._clip_span(source, row)
        offset = span[0] if span else 0.0
        landing = Landing(self.ctx.work_dir, str(row.get("corpus") or ""), str(row.get("key") or ""))
        landing.ensure_folder()
        removed = landing.remove_leftovers()
        if removed:
            self.count("leftovers_removed", removed)
        reused = self._reusable(landing)
        if reused is not None:
            self.count("files_reused")
            return {"media_path": str(reused), "media_offset_s": offset}
        try:
            if isinstance(source, YtdlpSource):
                temp = self._download_ytdlp(source, landing, span)
                ext, network_bytes = temp.suffix, None
            elif source.is_archive:
                temp, ext = self._download_from_archive(source, landing)
                network_bytes = 0  # counted once, when the archive itself came in
            else:
                temp, ext = self._download_http(source, landing)
                network_bytes = None
            size = self._check(temp, label=f"{row['media_uri']} (downloaded)")
            final = landing.commit(temp, ext)
        finally:
            landing.remove_leftovers()
        self.count("files_downloaded")
        self.count("bytes_downloaded", size if network_bytes is None else network_bytes)
        return {"media_path": str(final), "media_offset_s": offset}

    def _clip_span(self, source, row: dict) -> tuple[float, float] | None:
        if not isinstance(source, YtdlpSource) or not (source.clip_span or self.options.clip_span_generic):
            return None
        start, duration = row.get("start_s"), row.get("duration_s")
        if start is None or duration is None or duration <= 0:
            return None
        margin = self.options.margin_s
        return max(0.0, float(start) - margin), float(start) + float(duration) + margin

    def _check(self, path: Path, label: str | None = None) -> int:
        if self.options.verify:
            return verify_media(path, label=label).size
        return check_size(path, label=label)

    def _check_local(self, path: Path) -> Path:
        if not path.exists():
            raise classes.fetch_error(classes.MISSING_FILE, f"{path}: local media file does not exist")
        self._check(path)
        self.count("local_files_verified")
        return path

    def _reusable(self, landing: Landing) -> Path | None:
        """A final file from an earlier run that still verifies; ones that do not are deleted."""
        for path in landing.existing_final():
            try:
                self._check(path)
                return path
            except StageError:
                path.unlink(missing_ok=True)
                self.count("reused_files_rejected")
        return None

    def _wait_for_host(self, host: str) -> None:
        waited = self.limiter.acquire(host)
        if waited:
            self.count("rate_limit_wait_s", waited)

    # -- sources -------------------------------------------------------------------------------
    def _downloader(self) -> YtdlpDownloader:
        with self._lock:
            if self._ytdlp is None:
                y = self.options.ytdlp
                self._ytdlp = YtdlpDownloader(YtdlpSettings(
                    timeout_s=self.options.timeout_s, max_bytes=self.options.max_bytes, format=y.format,
                    cookies_file=y.cookies_file, proxy=y.proxy, force_keyframes_at_cuts=y.force_keyframes_at_cuts,
                    extra=dict(y.extra)))
            return self._ytdlp

    def _download_ytdlp(self, source: YtdlpSource, landing: Landing, span) -> Path:
        downloader = self._downloader()
        self._wait_for_host(source.host)
        return downloader.download(source, landing, span)

    def _download_http(self, source: HttpSource, landing: Landing) -> tuple[Path, str]:
        ext = _media_ext(PurePosixPath(urlsplit(source.url).path).suffix)
        temp = landing.temp_path(ext)
        self._wait_for_host(source.host)
        direct_http.download(source.url, temp, self.http)
        return temp, ext

    def _download_from_archive(self, source: HttpSource, landing: Landing) -> tuple[Path, str]:
        suffix = archive_suffix(urlsplit(source.url).path) or ""
        archive = self._fetch_archive(source, suffix)
        temp = landing.temp_path("part")
        member, _ = extract_member(archive, suffix, source.member, temp, self.options.max_bytes)
        return temp, _media_ext(PurePosixPath(member).suffix)

    def _fetch_archive(self, source: HttpSource, suffix: str) -> Path:
        """Archives are fetched once per run and shared by the rows that point into them."""
        digest = hashlib.sha256(source.url.encode("utf-8")).hexdigest()[:ARCHIVE_NAME_HASH_CHARS]
        folder = self.ctx.work_dir / ARCHIVE_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{digest}{suffix}"
        with self._lock:
            lock = self._archive_locks.setdefault(digest, threading.Lock())
        with lock:
            if final.is_file():
                self.count("archives_reused")
                return final
            temp = folder / f"{digest}{TEMP_MARK}-{os.getpid()}-{threading.get_ident()}{suffix}"
            try:
                self._wait_for_host(source.host)
                got = direct_http.download(source.url, temp, self.http)
                fsync_file(temp)
                os.replace(temp, final)
            finally:
                temp.unlink(missing_ok=True)
            self.count("archives_downloaded")
            self.count("bytes_downloaded", got.nbytes)
            return final


def _media_ext(suffix: str) -> str:
    """The file extension to keep: a known media suffix, else `bin` (PyAV probes content)."""
    suffix = suffix.lower()
    return safe_ext(suffix) if suffix in MEDIA_SUFFIXES else UNKNOWN_EXT
