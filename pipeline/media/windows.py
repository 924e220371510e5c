"""Cutting a clip span into windows and counting samples and frames exactly.

Conventions (the decoding contract, DESIGN §5):

- A window is `[start, start + duration)` in seconds on the source's timeline.
- Audio at rate R holds `round(duration × R)` samples; sample j is the source at
  `start + j / R`.
- Video at f fps holds `⌊duration × f⌋` frames (a tolerance of FRAME_COUNT_EPS absorbs
  float error, so 0.3 s × 10 fps gives 3); frame i is the picture on screen at
  `start + i / f`. Floor keeps every frame time inside the window and matches
  MMAudio (`int(duration × fps)`): 8 s gives 64 CLIP frames at 8 fps, 200 sync frames at 25 fps.
- A span longer than `max_clip_s` is cut into windows of `max_clip_s`; the last,
  shorter window is kept when it lasts at least `min_clip_s`.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

FRAME_COUNT_EPS = 1e-6
# Window starts are rounded to this many decimals (microseconds) so that keys and
# timings do not carry float noise from repeated additions.
TIME_DECIMALS = 6


def sample_count(duration_s: float, rate: int) -> int:
    return round(duration_s * rate)


def frame_count(duration_s: float, fps: float) -> int:
    return max(0, math.floor(duration_s * fps + FRAME_COUNT_EPS))


def frame_times(start_s: float, duration_s: float, fps: float) -> list[float]:
    return [start_s + i / fps for i in range(frame_count(duration_s, fps))]


@dataclass(frozen=True)
class Window:
    index: int  # position within its span
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def cut_span(start: float, end: float, max_clip_s: float, min_clip_s: float) -> Iterator[Window]:
    """Windows of `max_clip_s` covering `[start, end)`; a short last window is kept if ≥ `min_clip_s`.

    The first window is always yielded (even when short): judging it is the caller's job,
    so that a too-short clip is reported, not lost.
    """
    k = 0
    while True:
        w_start = round(start + k * max_clip_s, TIME_DECIMALS)
        if k > 0 and w_start >= end:
            return
        w_end = min(round(w_start + max_clip_s, TIME_DECIMALS), end)
        if k > 0 and w_end - w_start < min_clip_s:
            return
        yield Window(k, w_start, w_end)
        if w_end >= end:
            return
        k += 1


def retime_items(items: list[dict] | None, offset_s: float, duration_s: float) -> list[dict] | None:
    """Timed text items (`start`/`end` relative to the span start) → relative to a window.

    `offset_s` is the window start minus the span start. Items that do not overlap the
    window are dropped; items that straddle an edge are clipped to it.
    """
    if items is None:
        return None
    out = []
    for item in items:
        s, e = item.get("start"), item.get("end")
        if s is None or e is None:
            continue
        s, e = float(s) - offset_s, float(e) - offset_s
        if e <= 0 or s >= duration_s:
            continue
        out.append({"text": item.get("text"), "start": round(max(0.0, s), TIME_DECIMALS),
                    "end": round(min(duration_s, e), TIME_DECIMALS)})
    return out
