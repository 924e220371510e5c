"""Error classes of the fetch stage: the `<class>` in `failed:fetch:<class>`.

Permanent classes are properties of the source (gone, private, not media) and are
never retried; transient ones (rate limits, server errors, timeouts, cut-off bodies)
are retried with backoff by the stage.
"""
from __future__ import annotations

from ..errors import PermanentError, StageError, TransientError

# permanent
BAD_URI = "bad_uri"
NOT_FOUND = "not_found"
FORBIDDEN = "forbidden"
UNAVAILABLE = "unavailable"
PRIVATE = "private"
MEMBERS_ONLY = "members_only"
REMOVED = "removed"
GEO_BLOCKED = "geo_blocked"
AGE_GATED = "age_gated"
NOT_MEDIA = "not_media"
UNDECODABLE = "undecodable"
EMPTY_FILE = "empty_file"
TOO_LARGE = "too_large"
MISSING_FILE = "missing_file"
FORMAT_UNAVAILABLE = "format_unavailable"
UNSAFE_ARCHIVE = "unsafe_archive"
ARCHIVE_MEMBER = "archive_member"
CLIENT_ERROR = "client_error"
DOWNLOAD_ERROR = "download_error"

# transient
RATE_LIMITED = "rate_limited"
BOT_CHECK = "bot_check"
SERVER_ERROR = "server_error"
TIMEOUT = "timeout"
TRUNCATED = "truncated"
CONNECTION = "connection_error"

TRANSIENT_CLASSES = frozenset({RATE_LIMITED, BOT_CHECK, SERVER_ERROR, TIMEOUT, TRUNCATED, CONNECTION})

HTTP_NOT_FOUND = frozenset({404, 410})
HTTP_FORBIDDEN = frozenset({401, 403, 451})
HTTP_TOO_MANY_REQUESTS = 429
HTTP_REQUEST_TIMEOUT = 408


def fetch_error(error_class: str, message: str) -> StageError:
    """The typed exception for an error class (transient classes are retried)."""
    cls = TransientError if error_class in TRANSIENT_CLASSES else PermanentError
    return cls(error_class, message)


def http_status_class(status: int) -> str:
    """Error class of an HTTP status that is not a success."""
    if status in HTTP_NOT_FOUND:
        return NOT_FOUND
    if status in HTTP_FORBIDDEN:
        return FORBIDDEN
    if status == HTTP_TOO_MANY_REQUESTS:
        return RATE_LIMITED
    if status == HTTP_REQUEST_TIMEOUT:
        return TIMEOUT
    if 500 <= status <= 599:
        return SERVER_ERROR
    return CLIENT_ERROR
