"""URI schemes of `media_uri` → what to fetch.

- `youtube:<id>`       yt-dlp on the watch URL, only the clip span (+ margin) downloaded
- `ytdlp:<url>`        yt-dlp on any http(s) URL (generic or site extractor)
- `http(s)://...`      direct download; archives (.zip, .tar, .tar.gz, .tgz) are fetched once
                       and their single media member extracted; `#<member path>` picks one
- `/absolute/path`     a local file (mirror), verified in place, nothing downloaded
- `file:///abs/path`   the same, as a URI
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from . import classes

YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
YOUTUBE_WATCH_URL = "https://www.youtube.com/watch?v={id}"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclass(frozen=True)
class YtdlpSource:
    url: str
    clip_span: bool  # download only [start - margin, end + margin]

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""


@dataclass(frozen=True)
class HttpSource:
    url: str
    member: str | None = None  # archive member chosen with a `#fragment`

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def is_archive(self) -> bool:
        return archive_suffix(urlsplit(self.url).path) is not None


@dataclass(frozen=True)
class LocalSource:
    path: Path


Source = YtdlpSource | HttpSource | LocalSource


def archive_suffix(name: str) -> str | None:
    low = name.lower()
    for suffix in sorted(ARCHIVE_SUFFIXES, key=len, reverse=True):
        if low.endswith(suffix):
            return suffix
    return None


def _http_url(url: str, uri: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise classes.fetch_error(classes.BAD_URI, f"not an http(s) URL: {uri!r}")
    return url


def parse_media_uri(uri: str | None) -> Source:
    """Parse a media URI; a malformed one raises a permanent `bad_uri` error naming it."""
    if not uri or not isinstance(uri, str):
        raise classes.fetch_error(classes.BAD_URI, f"empty media_uri: {uri!r}")
    uri = uri.strip()
    if uri.startswith("youtube:"):
        vid = uri[len("youtube:"):]
        if not YOUTUBE_ID.match(vid):
            raise classes.fetch_error(classes.BAD_URI, f"not a YouTube video id: {uri!r}")
        return YtdlpSource(YOUTUBE_WATCH_URL.format(id=vid), clip_span=True)
    if uri.startswith("ytdlp:"):
        return YtdlpSource(_http_url(uri[len("ytdlp:"):], uri), clip_span=False)
    if uri.startswith(("http://", "https://")):
        base, _, fragment = uri.partition("#")
        return HttpSource(_http_url(base, uri), unquote(fragment) or None)
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise classes.fetch_error(classes.BAD_URI, f"file URI on another host: {uri!r}")
        uri = unquote(parts.path)
    path = Path(uri)
    if not path.is_absolute():
        raise classes.fetch_error(classes.BAD_URI, f"local media path must be absolute: {uri!r}")
    return LocalSource(path)
