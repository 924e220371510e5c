"""The one time parser shared by every adapter (Panda-70M, InternVid, LRC lyrics).

Accepted forms (hours and minutes are never bounded by the format, fractions have any
number of digits):

    H:MM:SS.mmm   Panda-70M     "0:01:20.880"
    HH:MM:SS.mmm  InternVid     "00:03:10.567"
    MM:SS.xx      LRC           "01:02.30", "[mm:ss.xxx]" variants, "123:04.5"
    SS.s          plain seconds "12.5"
"""
from __future__ import annotations

import math
import re

SECONDS_PER_MINUTE = 60
MINUTES_PER_HOUR = 60

_CLOCK = re.compile(r"^(?:(?:(?P<h>\d+):)?(?P<m>\d+):)?(?P<s>\d+(?:\.\d*)?|\.\d+)$")


class TimeFormatError(ValueError):
    """A time string that is not one of the accepted forms."""


def parse_time(text: str) -> float:
    """`[H:]MM:SS[.fff]`, `MM:SS[.ff]` or plain seconds → seconds (float, >= 0).

    Minutes and seconds fields of a clock time must be below 60; raises
    TimeFormatError naming the text otherwise.
    """
    if not isinstance(text, str):
        raise TimeFormatError(f"time must be a string, got {type(text).__name__}: {text!r}")
    m = _CLOCK.match(text.strip())
    if m is None:
        raise TimeFormatError(f"not a time (expected [H:]MM:SS.fff or seconds): {text!r}")
    hours = int(m["h"]) if m["h"] is not None else 0
    minutes = int(m["m"]) if m["m"] is not None else 0
    seconds = float(m["s"])
    if m["m"] is not None and seconds >= SECONDS_PER_MINUTE:
        raise TimeFormatError(f"seconds field {m['s']!r} is 60 or more in {text!r}")
    if m["h"] is not None and minutes >= MINUTES_PER_HOUR:
        raise TimeFormatError(f"minutes field {m['m']!r} is 60 or more in {text!r}")
    return (hours * MINUTES_PER_HOUR + minutes) * SECONDS_PER_MINUTE + seconds


def format_hms(seconds: float, *, pad_hours: bool = False, decimals: int = 3) -> str:
    """Seconds → `H:MM:SS.fff` (`HH:` with pad_hours), the inverse of parse_time."""
    if seconds < 0 or not math.isfinite(seconds):
        raise TimeFormatError(f"cannot format time {seconds!r}")
    scale = 10**decimals
    total = round(seconds * scale)
    whole, frac = divmod(total, scale)
    h, rest = divmod(whole, SECONDS_PER_MINUTE * MINUTES_PER_HOUR)
    m, s = divmod(rest, SECONDS_PER_MINUTE)
    hours = f"{h:02d}" if pad_hours else str(h)
    tail = f".{frac:0{decimals}d}" if decimals else ""
    return f"{hours}:{m:02d}:{s:02d}{tail}"


def format_mmss(seconds: float, *, decimals: int = 2) -> str:
    """Seconds → LRC `mm:ss.xx` (minutes grow past 99 when needed)."""
    if seconds < 0 or not math.isfinite(seconds):
        raise TimeFormatError(f"cannot format time {seconds!r}")
    scale = 10**decimals
    total = round(seconds * scale)
    whole, frac = divmod(total, scale)
    m, s = divmod(whole, SECONDS_PER_MINUTE)
    tail = f".{frac:0{decimals}d}" if decimals else ""
    return f"{m:02d}:{s:02d}{tail}"
