"""Direct http(s) download into a temporary file, with typed errors.

Transient: 429 (with its Retry-After), 5xx, 408, timeouts, connection resets and
bodies shorter than their Content-Length. Permanent: 404/410, 401/403/451, other 4xx,
files over `max_bytes`.
"""
from __future__ import annotations

import http.client
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

from ..errors import StageError
from . import classes

CHUNK_BYTES = 1 << 16


@dataclass(frozen=True)
class HttpOptions:
    timeout_s: float  # connect and per-read inactivity limit
    max_download_s: float  # whole-body limit (a server trickling bytes)
    max_bytes: int | None
    user_agent: str
    proxy: str | None = None


@dataclass(frozen=True)
class Downloaded:
    path: Path
    nbytes: int
    content_type: str


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _error(error_class: str, message: str, retry_after_s: float | None = None) -> StageError:
    err = classes.fetch_error(error_class, message)
    err.retry_after_s = retry_after_s  # read by the stage to pause the host
    return err


def _opener(opts: HttpOptions) -> urllib.request.OpenerDirector:
    handlers: list = []
    if opts.proxy:
        handlers.append(urllib.request.ProxyHandler({"http": opts.proxy, "https": opts.proxy}))
    return urllib.request.build_opener(*handlers)


def download(url: str, dest: Path, opts: HttpOptions) -> Downloaded:
    """GET `url` into `dest` (created or truncated). The caller renames it when it verifies."""
    req = urllib.request.Request(url, headers={"User-Agent": opts.user_agent, "Accept-Encoding": "identity"})
    try:
        resp = _opener(opts).open(req, timeout=opts.timeout_s)
    except urllib.error.HTTPError as exc:
        cls = classes.http_status_class(exc.code)
        retry_after = retry_after_seconds(exc.headers.get("Retry-After")) if exc.headers else None
        exc.close()
        raise _error(cls, f"{url}: HTTP {exc.code} {exc.reason}", retry_after) from None
    except urllib.error.URLError as exc:
        raise _network_error(url, exc.reason) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException, OSError) as exc:
        raise _network_error(url, exc) from None
    with resp:
        announced = resp.headers.get("Content-Length")
        announced = int(announced) if announced and announced.isdigit() else None
        if opts.max_bytes is not None and announced is not None and announced > opts.max_bytes:
            raise _error(classes.TOO_LARGE, f"{url}: {announced} bytes announced, max_bytes is {opts.max_bytes}")
        content_type = resp.headers.get("Content-Type", "")
        nbytes = _stream_body(url, resp, dest, opts)
    if announced is not None and nbytes < announced:
        raise _error(classes.TRUNCATED, f"{url}: body ended after {nbytes} of {announced} bytes")
    return Downloaded(dest, nbytes, content_type)


def _stream_body(url: str, resp, dest: Path, opts: HttpOptions) -> int:
    deadline = time.monotonic() + opts.max_download_s
    nbytes = 0
    with open(dest, "wb") as out:
        while True:
            try:
                chunk = resp.read(CHUNK_BYTES)
            except http.client.IncompleteRead as exc:
                raise _error(classes.TRUNCATED,
                             f"{url}: body ended after {nbytes + len(exc.partial)} bytes "
                             f"({exc.expected} more expected)") from None
            except (TimeoutError, ConnectionError, OSError) as exc:
                raise _network_error(url, exc) from None
            if not chunk:
                return nbytes
            nbytes += len(chunk)
            if opts.max_bytes is not None and nbytes > opts.max_bytes:
                raise _error(classes.TOO_LARGE, f"{url}: more than max_bytes={opts.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise _error(classes.TIMEOUT, f"{url}: download took longer than {opts.max_download_s} s")
            out.write(chunk)


def _network_error(url: str, reason) -> StageError:
    if isinstance(reason, (TimeoutError, socket.timeout)) or "timed out" in str(reason):
        return _error(classes.TIMEOUT, f"{url}: timed out ({reason})")
    return _error(classes.CONNECTION, f"{url}: {type(reason).__name__}: {reason}")
