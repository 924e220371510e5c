"""yt-dlp error classification on real messages (copied from public yt-dlp/youtube-dl issue reports)."""
from __future__ import annotations

import pytest

from pipeline.errors import PermanentError, TransientError
from pipeline.fetch import classes
from pipeline.fetch.ytdlp import classify_exception, classify_message, ytdlp_error

REAL_MESSAGES = [
    # yt-dlp/yt-dlp#2027, ytdl-org/youtube-dl#30146
    ("ERROR: [youtube] JgUADI7axC8: Private video. Sign in if you've been granted access to this video",
     classes.PRIVATE),
    # vididataset/VIDI#1
    ("ERROR: Video unavailable\nThis video has been removed by the uploader.", classes.REMOVED),
    (("ERROR: Video unavailable\nThis video is no longer available because the YouTube account associated with "
     "this video has been terminated."), classes.REMOVED),
    # jely2002/youtube-dl-gui#554
    ("ERROR: [youtube] This video has been removed for violating YouTube's Terms of Service", classes.REMOVED),
    # KurtBestor/Hitomi-Downloader#4948
    (("yt_dlp.utils.ExtractorError: [youtube] ltcd1B8WyTM: Video unavailable. The uploader has not made this "
     "video available in your country"), classes.GEO_BLOCKED),
    # yt-dlp/yt-dlp#10577, yt-dlp/yt-dlp#11086
    ("ERROR: [youtube] mJgC9LEBTuQ: Sign in to confirm your age. This video may be inappropriate for some users.",
     classes.AGE_GATED),
    # yt-dlp/yt-dlp#10707 (typographic apostrophe), yt-dlp/yt-dlp#12175 (mangled one)
    (("ERROR: [youtube] tJ51nR4-tLs: Sign in to confirm you\u2019re not a bot. This helps protect our community. "
     "Learn more"), classes.BOT_CHECK),
    (("yt_dlp.utils.DownloadError: ERROR: [youtube] rVXeIRY6H9c: Sign in to confirm you\ufffdre not a bot. "
     "This helps protect our community. Learn more"), classes.BOT_CHECK),
    # ytdl-org/youtube-dl#32765, yt-dlp/yt-dlp#14949
    (("ERROR: [youtube] h7aSM88pUv8: Join this channel to get access to members-only content like this video, "
     "and other exclusive perks."), classes.MEMBERS_ONLY),
    (("ERROR: [youtube] 9iVcXphPVaM: This video is available to this channel's members on level: Assistant "
     "(or any higher level). Join this channel to get access to members-only content and other exclusive perks."),
     classes.MEMBERS_ONLY),
    # yt-dlp/yt-dlp#7888
    (("ERROR: [generic] None: Unable to download webpage: HTTP Error 404: Not Found (caused by <HTTPError 404: "
     "'Not Found'>); please report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the "
     "appropriate issue template. Confirm you are on the latest version using  yt-dlp -U"), classes.NOT_FOUND),
    # ytdl-org/youtube-dl#25174
    (("ERROR: Unable to download webpage: HTTP Error 429: Too Many Requests (caused by <HTTPError 429: "
     "'Too Many Requests'>);"), classes.RATE_LIMITED),
    # chelaxian/tg-ytdlp-bot#176
    (("ERROR: [youtube] 9rdJJMAd-PA: Requested format is not available. Use --list-formats for a list of "
     "available formats"), classes.FORMAT_UNAVAILABLE),
    # messages of this yt-dlp version against the local test server
    (("ERROR: [generic] slow: Unable to download webpage: HTTPConnectionPool(host='127.0.0.1', port=45011): "
     "Read timed out. (read timeout=0.5) (caused by TransportError(\"HTTPConnectionPool(host='127.0.0.1', "
     "port=45011): Read timed out. (read timeout=0.5)\"))"), classes.TIMEOUT),
    ("ERROR: \r[download] Got error: 100000 bytes read, 50000 more expected", classes.TRUNCATED),
    ("ERROR: Unable to download webpage: HTTP Error 503: Service Unavailable", classes.SERVER_ERROR),
    ("ERROR: [generic] Unsupported URL: https://example.com/page", classes.NOT_MEDIA),
    ("ERROR: [youtube] abc: Video unavailable", classes.UNAVAILABLE),
    ("ERROR: something nobody has seen before", classes.DOWNLOAD_ERROR),
]


@pytest.mark.parametrize("message,expected", REAL_MESSAGES)
def test_real_messages(message, expected):
    assert classify_message(message) == expected


@pytest.mark.parametrize("message,transient", [
    ("ERROR: [youtube] x: Private video. Sign in if you've been granted access to this video", False),
    ("ERROR: Unable to download webpage: HTTP Error 429: Too Many Requests", True),
    ("ERROR: Unable to download webpage: HTTP Error 410: Gone", False),
    ("ERROR: [download] Got error: 10 bytes read, 5 more expected", True),
])
def test_permanent_and_transient(message, transient):
    err = ytdlp_error(Exception(message), "https://x")
    assert isinstance(err, TransientError if transient else PermanentError)
    assert err.message.startswith("https://x: ERROR")


def test_typed_causes_win_over_the_message():
    import io

    from yt_dlp.networking.common import Response
    from yt_dlp.networking.exceptions import HTTPError
    from yt_dlp.utils import DownloadError, ExtractorError, GeoRestrictedError

    http = HTTPError(Response(io.BytesIO(b""), "http://h/x", {}, status=410, reason="Gone"))
    try:
        raise ExtractorError("Unable to download webpage", cause=http, expected=True)
    except ExtractorError as inner:
        outer = DownloadError("ERROR: Unable to download webpage", exc_info=(type(inner), inner, None))
    assert classify_exception(outer) == classes.NOT_FOUND
    geo = GeoRestrictedError("This video is not available", countries=["DE"])
    assert classify_exception(DownloadError("ERROR: x", exc_info=(type(geo), geo, None))) == classes.GEO_BLOCKED
