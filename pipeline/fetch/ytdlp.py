"""yt-dlp wrapper: one download per call, everything inside the run directory, typed errors.

yt-dlp's own retries are switched off (the stage retries transient errors with backoff),
its cache is disabled, a cookies file is used through a private copy (yt-dlp writes
cookies back on exit), and the output template points into the landing folder.
"""
from __future__ import annotations

import re
import shutil
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import StageError
from . import classes
from .landing import Landing
from .sources import YtdlpSource

LOG_LINES_KEPT = 20
LOG_LINES_IN_MESSAGE = 3

# yt-dlp params the stage owns: passing them through `extra` would break atomic landing,
# write outside the run directory or silence the error classification.
PROTECTED_PARAMS = frozenset({
    "outtmpl", "paths", "cachedir", "cookiefile", "cookiesfrombrowser", "logger", "download_ranges",
    "progress_hooks", "postprocessor_hooks", "ignoreerrors", "download_archive", "batchfile",
    "load_info_filename", "writeinfojson", "overwrites", "retries", "fragment_retries", "extractor_retries",
    "max_filesize", "socket_timeout", "proxy", "format", "force_keyframes_at_cuts", "noplaylist",
})

# (pattern, error class), first match wins; patterns are yt-dlp / YouTube messages
_MESSAGE_CLASSES: tuple[tuple[re.Pattern, str], ...] = tuple((re.compile(p, re.IGNORECASE), c) for p, c in (
    (r"not (made this video )?available in your country|from your location|geo[- ]?restrict", classes.GEO_BLOCKED),
    (r"confirm you.{0,3}re not a bot", classes.BOT_CHECK),
    (r"confirm your age|age[- ]restricted|inappropriate for some users|age[- ]gated", classes.AGE_GATED),
    (r"members[- ]only|join this channel", classes.MEMBERS_ONLY),
    (r"private video|video is private", classes.PRIVATE),
    ((r"has been removed|account associated with this video has been terminated|removed for violating"
     r"|no longer available because|copyright claim"), classes.REMOVED),
    (r"HTTP Error (?P<status>\d{3})", ""),  # class from the status
    (r"too many requests|rate[- ]limit|try again later", classes.RATE_LIMITED),
    (r"timed out|timeout", classes.TIMEOUT),
    ((r"bytes read, \d+ more expected|downloaded \d+ bytes, expected \d+|did not get any data blocks"
     r"|incompleteread|content too short"), classes.TRUNCATED),
    ((r"connection (reset|refused|aborted|broken)|remote end closed|errno 104|errno 111"
     r"|temporary failure in name resolution|name or service not known|network is unreachable"),
     classes.CONNECTION),
    (r"larger than max-filesize", classes.TOO_LARGE),
    (r"requested format is not available", classes.FORMAT_UNAVAILABLE),
    (r"unsupported url|no video formats found|no formats found", classes.NOT_MEDIA),
    ((r"video unavailable|video is unavailable|is not available|live event will begin|premieres in"
     r"|content isn.t available"), classes.UNAVAILABLE),
))


def classify_message(message: str) -> str:
    """Error class of a yt-dlp error message (`download_error` when nothing matches)."""
    for pattern, cls in _MESSAGE_CLASSES:
        m = pattern.search(message)
        if m:
            return cls or classes.http_status_class(int(m.group("status")))
    return classes.DOWNLOAD_ERROR


def _cause_chain(exc: BaseException | None):
    """The exception, then what caused it (yt-dlp's exc_info and cause, Python's chain)."""
    seen: set[int] = set()
    queue = [exc]
    while queue:
        e = queue.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        info = getattr(e, "exc_info", None)
        if isinstance(info, tuple) and len(info) > 1:
            queue.append(info[1])
        queue.extend((getattr(e, "cause", None), e.__cause__, e.__context__))


def classify_exception(exc: BaseException) -> str:
    """Error class of an exception raised by yt-dlp: typed causes first, then the message."""
    from yt_dlp.networking import exceptions as net
    from yt_dlp.utils import ContentTooShortError, GeoRestrictedError

    for e in _cause_chain(exc):
        if isinstance(e, GeoRestrictedError):
            return classes.GEO_BLOCKED
        if isinstance(e, net.HTTPError):
            return classes.http_status_class(e.status)
        if isinstance(e, (ContentTooShortError, net.IncompleteRead)):
            return classes.TRUNCATED
    return classify_message(str(exc))


def ytdlp_error(exc: BaseException, url: str) -> StageError:
    message = re.sub(r"\s+", " ", str(exc).replace("\r", " ")).strip()
    return classes.fetch_error(classify_exception(exc), f"{url}: {message}")


class _CollectingLogger:
    """Keeps yt-dlp's messages off stdout; the last few are kept to explain a missing file."""

    def __init__(self, keep: int = LOG_LINES_KEPT):
        self.lines: deque[str] = deque(maxlen=keep)

    def debug(self, msg: str) -> None:  # yt-dlp's screen messages arrive here when a logger is set,
        self.lines.append(msg.strip())  # e.g. "File is larger than max-filesize (...). Aborting."

    def info(self, msg: str) -> None:
        self.lines.append(msg.strip())

    def warning(self, msg: str) -> None:
        self.lines.append(msg)

    def error(self, msg: str) -> None:
        self.lines.append(msg)


@dataclass(frozen=True)
class YtdlpSettings:
    timeout_s: float
    max_bytes: int | None
    format: str | None = None
    cookies_file: Path | None = None
    proxy: str | None = None
    force_keyframes_at_cuts: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


_import_lock = threading.Lock()


class YtdlpDownloader:
    def __init__(self, settings: YtdlpSettings):
        bad = PROTECTED_PARAMS & set(settings.extra)
        if bad:
            raise ValueError(f"ytdlp extra options may not set {sorted(bad)} (the fetch stage owns them)")
        if settings.cookies_file is not None and not Path(settings.cookies_file).is_file():
            raise ValueError(f"ytdlp cookies file not found: {settings.cookies_file}")
        self.settings = settings
        with _import_lock:  # yt-dlp's lazy extractor import is not thread-safe
            import yt_dlp  # noqa: F401

    def params(self, landing: Landing, span: tuple[float, float] | None, logger, cookies_copy: Path | None) -> dict:
        from yt_dlp.utils import download_range_func

        s = self.settings
        template = str(landing.temp_stem()).replace("%", "%%") + ".%(ext)s"
        params: dict[str, Any] = {
            **s.extra,
            "outtmpl": {"default": template},
            "cachedir": False,
            "noplaylist": True,
            "overwrites": True,
            "retries": 0,
            "fragment_retries": 0,
            "extractor_retries": 0,
            "socket_timeout": s.timeout_s,
            "logger": logger,
            "quiet": True,
            "noprogress": True,
            "updatetime": False,
        }
        if s.format:
            params["format"] = s.format
        if s.proxy:
            params["proxy"] = s.proxy
        if s.max_bytes is not None:
            params["max_filesize"] = s.max_bytes
        if cookies_copy is not None:
            params["cookiefile"] = str(cookies_copy)
        if span is not None:
            params["download_ranges"] = download_range_func(None, [span])
            params["force_keyframes_at_cuts"] = s.force_keyframes_at_cuts
        return params

    def download(self, source: YtdlpSource, landing: Landing, span: tuple[float, float] | None) -> Path:
        """Download into the landing folder under a temporary name; returns that file."""
        import yt_dlp

        logger = _CollectingLogger()
        cookies_copy = None
        if self.settings.cookies_file is not None:
            cookies_copy = landing.temp_path("cookies")
            shutil.copyfile(self.settings.cookies_file, cookies_copy)
        try:
            with yt_dlp.YoutubeDL(self.params(landing, span, logger, cookies_copy)) as ydl:
                info = ydl.extract_info(source.url, download=True)
        except yt_dlp.utils.YoutubeDLError as exc:
            raise ytdlp_error(exc, source.url) from None
        finally:
            if cookies_copy is not None:
                cookies_copy.unlink(missing_ok=True)
        return self._result_file(info, landing, logger, source.url)

    @staticmethod
    def _result_file(info: dict | None, landing: Landing, logger: _CollectingLogger, url: str) -> Path:
        downloads = (info or {}).get("requested_downloads") or []
        paths = [Path(d["filepath"]) for d in downloads if d.get("filepath")]
        folder = landing.folder.resolve()
        stem = landing.temp_stem().name
        for p in paths:
            p = p.resolve()
            if p.parent == folder and p.name.startswith(stem) and p.is_file():
                return p
        lines = list(logger.lines)
        error_class = classify_message(" | ".join(lines))
        notes = " | ".join(lines[-LOG_LINES_IN_MESSAGE:]) or "yt-dlp returned without a file"
        raise classes.fetch_error(error_class, f"{url}: no file downloaded ({notes})")
