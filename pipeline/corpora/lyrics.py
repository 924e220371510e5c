"""Timed lyrics: LRC parsing and cutting songs into clips on lyric-line boundaries.

LRC features handled: `[mm:ss.xx]` and `[mm:ss.xxx]` line tags, stacked tags
(`[00:21.10][00:45.10]chorus`), id tags (`[ar:] [al:] [ti:] [length:] [offset:+/-ms]`),
enhanced word tags (`[00:12.00] <00:12.00> word <00:12.50> word <00:13.00>`), and empty
timed lines that mark where the previous line ends. A file without any line tag is
unsynced lyrics: text without timing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from pipeline.record import new_record

from .base import AdapterOptions
from .timefmt import TimeFormatError, parse_time

MS_PER_S = 1000.0
_TAG = re.compile(r"\[([^\[\]]*)\]")
_WORD_TAG = re.compile(r"<(\d+:\d+(?:\.\d+)?)>")
_ID_TAG = re.compile(r"^([A-Za-z#]+)\s*:(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Timed:
    text: str
    start: float
    end: float

    def as_dict(self, origin: float = 0.0) -> dict:
        return {"text": self.text, "start": round(self.start - origin, 3), "end": round(self.end - origin, 3)}


@dataclass
class LyricLine:
    text: str
    start: float
    end: float | None = None  # None until known (next line start, last word, song end)
    words: list[Timed] = field(default_factory=list)
    end_exact: bool = False  # the end comes from the source (closing tag, end marker), not a guess


@dataclass
class LrcDocument:
    tags: dict[str, str]
    lines: list[LyricLine]  # sorted by start, ends filled where the file tells
    unsynced_text: str | None = None  # lyrics of a file without timing tags
    offset_s: float = 0.0

    @property
    def length_s(self) -> float | None:
        raw = self.tags.get("length")
        if not raw:
            return None
        try:
            return parse_time(raw)
        except TimeFormatError:
            return None


class LrcError(ValueError):
    """An LRC file (or line list) that cannot be turned into timed lines."""


def _parse_words(body: str, offset_s: float) -> tuple[str, list[Timed], float | None]:
    """Text of a line with enhanced `<mm:ss.xx>` word tags → (plain text, words, closing time)."""
    parts = _WORD_TAG.split(body)
    if len(parts) == 1:
        return body.strip(), [], None
    # parts = [lead, t0, w0, t1, w1, ..., tn, tail]
    lead, rest = parts[0], parts[1:]
    times = [max(0.0, parse_time(t) - offset_s) for t in rest[0::2]]
    texts = [w.strip() for w in rest[1::2]]
    words: list[Timed] = []
    closing = None
    for i, (t, w) in enumerate(zip(times, texts)):
        nxt = times[i + 1] if i + 1 < len(times) else None
        if w:
            words.append(Timed(w, t, nxt if nxt is not None else t))  # open last word: end filled later
        elif nxt is None:
            closing = t
    text = " ".join(x for x in [lead.strip(), *[w.text for w in words]] if x)
    return text, words, closing


def parse_lrc(text: str) -> LrcDocument:
    """LRC text → LrcDocument; times shifted by `[offset:]` (positive = lyrics sooner)."""
    text = text.lstrip("\ufeff")
    tags: dict[str, str] = {}
    raw_lines: list[tuple[list[str], str]] = []
    plain: list[str] = []
    for raw in text.splitlines():
        s = raw.strip()
        if not s:
            continue
        stamps: list[str] = []
        pos = 0
        while True:
            m = _TAG.match(s, pos)
            if m is None:
                break
            inner = m.group(1).strip()
            try:
                parse_time(inner)
                stamps.append(inner)
            except TimeFormatError:
                idm = _ID_TAG.match(inner)
                if idm is None or stamps:
                    break
                tags[idm.group(1).lower()] = idm.group(2).strip()
            pos = m.end()
            while pos < len(s) and s[pos] == " " and _TAG.match(s, pos + 1) is not None:
                pos += 1
        body = s[pos:]
        if stamps:
            raw_lines.append((stamps, body))
        elif pos == 0:
            plain.append(s)
    offset_s = 0.0
    if tags.get("offset"):
        try:
            offset_s = float(tags["offset"].replace("+", "", 1)) / MS_PER_S
        except ValueError:
            raise LrcError(f"bad [offset:] tag {tags['offset']!r} (expected +/- milliseconds)") from None
    lines: list[LyricLine] = []
    ends: list[float] = []  # empty timed lines: end markers
    for stamps, body in raw_lines:
        text_, words, closing = _parse_words(body, offset_s)
        for st in stamps:
            start = max(0.0, parse_time(st) - offset_s)
            if not text_:
                ends.append(start)
                continue
            line_words = words if len(stamps) == 1 else []
            end = closing if (closing is not None and len(stamps) == 1) else None
            lines.append(LyricLine(text_, start, end, list(line_words), end_exact=end is not None))
    lines.sort(key=lambda ln: ln.start)
    _fill_ends(lines, sorted(ends))
    unsynced = "\n".join(plain) if not lines and plain else None
    return LrcDocument(tags=tags, lines=lines, unsynced_text=unsynced, offset_s=offset_s)


def _fill_ends(lines: list[LyricLine], end_marks: list[float]) -> None:
    """A line without a closing time ends at its next line or end marker (whichever first)."""
    for i, ln in enumerate(lines):
        mark = min((m for m in end_marks if m > ln.start), default=None)
        nxt = lines[i + 1].start if i + 1 < len(lines) and lines[i + 1].start > ln.start else None
        if ln.end is None and (mark is not None or nxt is not None):
            ln.end = min(x for x in (mark, nxt) if x is not None)
            ln.end_exact = mark is not None and ln.end == mark
        if ln.words:
            last = ln.words[-1]
            if last.end <= last.start:
                close = ln.end if ln.end is not None else last.start
                ln.words[-1] = Timed(last.text, last.start, max(close, last.start))
            if ln.end is None:
                ln.end = ln.words[-1].end if ln.words[-1].end > ln.start else None


def finish_lines(lines: list[LyricLine], song_end_s: float | None, max_line_s: float) -> list[LyricLine]:
    """Close every line: a guessed end (next line's start, or none) is capped at `max_line_s`
    after the start (instrumental gaps are not sung), and no line passes the song's end."""
    out = []
    for ln in lines:
        end = ln.end
        if not ln.end_exact:
            cap = ln.start + max_line_s
            if ln.words:
                cap = max(cap, ln.words[-1].start)
            end = cap if end is None else min(end, cap)
        if song_end_s is not None:
            end = min(end, song_end_s)
        if end <= ln.start:
            continue
        words = [Timed(w.text, w.start, min(w.end, end)) for w in ln.words if w.start < end]
        out.append(LyricLine(ln.text, ln.start, end, words, end_exact=True))
    return out


@dataclass
class SongClip:
    start: float
    end: float | None
    lines: list[LyricLine]

    @property
    def duration(self) -> float | None:
        return None if self.end is None else round(self.end - self.start, 3)

    def lyrics(self) -> str:
        return "\n".join(ln.text for ln in self.lines)

    def timed_lines(self) -> list[dict]:
        return [Timed(ln.text, ln.start, ln.end).as_dict(self.start) for ln in self.lines]

    def timed_words(self) -> list[dict]:
        return [w.as_dict(self.start) for ln in self.lines for w in ln.words]


def cut_on_lines(lines: list[LyricLine], max_clip_s: float, song_end_s: float | None = None) -> list[SongClip]:
    """Cut a song into clips of whole lyric lines, each at most `max_clip_s` long.

    A song that is known to fit in `max_clip_s` stays one clip from 0. A single line
    longer than `max_clip_s` becomes a clip of its own (longer than the maximum:
    the media stage windows it). Lines must be closed (see finish_lines).
    """
    if song_end_s is not None and song_end_s <= max_clip_s:
        return [SongClip(0.0, song_end_s, list(lines))]
    clips: list[SongClip] = []
    current: list[LyricLine] = []
    for ln in sorted(lines, key=lambda x: x.start):
        if ln.end is None:
            raise LrcError(f"line at {ln.start:.3f}s has no end; close lines with finish_lines first")
        if current and ln.end - current[0].start > max_clip_s:
            clips.append(SongClip(current[0].start, max(x.end for x in current), current))
            current = []
        current.append(ln)
    if current:
        clips.append(SongClip(current[0].start, max(x.end for x in current), current))
    return clips


def song_clip_records(corpus: str, source_id: str, media_uri: str, clips: list[SongClip],
                      extra: dict | None = None, unsynced_lyrics: str | None = None, **fields) -> list[dict]:
    """One clip record per SongClip: lyrics, lines and words re-timed to the clip start.

    `unsynced_lyrics` (lyrics without timing) goes on a clip that has no timed lines.
    """
    records = []
    for i, clip in enumerate(clips):
        text = clip.lyrics() or (unsynced_lyrics if not clip.lines else None)
        records.append(new_record(
            corpus, source_id, media_uri, start_s=round(clip.start, 3), duration_s=clip.duration,
            lyrics=text or None, lyrics_model=f"metadata:{corpus}" if text else None,
            lines=clip.timed_lines() or None, words=clip.timed_words() or None,
            kind="song", extra={**(extra or {}), "clip_index": i, "clips_in_song": len(clips)}, **fields))
    return records


MAX_CLIP_S = 10.0
MAX_LINE_S = 8.0


class SongOptions(AdapterOptions):
    max_clip_s: float = Field(MAX_CLIP_S, gt=0, description="songs longer than this are cut on lyric lines")
    max_line_s: float = Field(MAX_LINE_S, gt=0,
                              description="a line whose end is only guessed (next line's start) ends at most this late")
    probe_duration: bool = Field(True, description="read each audio file's header for its duration")


def probe_audio_duration(path: Path) -> float | None:
    """Duration from the container header (no decoding); None when unreadable."""
    import av

    try:
        with av.open(str(path)) as container:
            if container.duration is not None:
                return container.duration / av.time_base
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
    except (av.error.FFmpegError, OSError, IndexError, ValueError):
        return None
    return None


def song_clips(lines: list[LyricLine], options: SongOptions, song_end_s: float | None) -> list[SongClip]:
    """Close the lines and cut the song; a song without timed lines stays one whole clip."""
    closed = finish_lines(lines, song_end_s, options.max_line_s)
    if not closed:
        return [SongClip(0.0, song_end_s, [])]
    return cut_on_lines(closed, options.max_clip_s, song_end_s)
