"""A generation request and its inputs, made ready on CPU before any model runs.

    req = GenerationRequest(video="clip.mp4", caption="a dog barks", lyrics="song.lrc", seed=0)
    inputs = prepare_inputs(req, settings)   # windows of ≤ max_duration_s with frames and VoiceBPE ids

Everything here is made the way the training data was made:

- video: decoded by the media stage's decoder (`pipeline.media.decode.decode_source`), CLIP
  frames at the CLIP encoder's size and rate, sync frames at 25 fps with the 224 centre crop,
  both JPEG-encoded and decoded again exactly as the media stage stores them;
- transcript / lyrics: the tokenize stage's VoiceBPE front end; LRC files through the lyrics
  corpus parser (`pipeline.corpora.lyrics.parse_lrc`), keeping their line (and word) times.

Long videos are cut into windows of the network's `max_duration_s` (the media stage's
windowing); each window is generated on its own and the audio joined (see README "Generating").
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.generation.errors import GenerationError

# Languages the VoiceBPE front end knows: Chinese, Cantonese, Japanese and Korean get their own
# romanisation, the rest are written in Latin script (diacritics removed). A region suffix
# ("en-US") is allowed.
KNOWN_LANGUAGES = (
    "zh", "yue", "ja", "ko",
    "en", "fr", "de", "es", "it", "pt", "nl", "pl", "sv", "da", "no", "fi", "cs", "sk", "sl", "hr",
    "ro", "hu", "tr", "id", "ms", "vi", "tl", "ca", "eu", "gl", "et", "lv", "lt", "sq", "sw",
)
# LRC files: a line that opens with a tag whose content starts with a digit is a time tag.
_LEADING_TAGS = re.compile(r"^\s*((?:\[[^\[\]]*\]\s*)+)")
_TAG = re.compile(r"\[([^\[\]]*)\]")
LYRICS_FILE_SUFFIXES = (".lrc", ".txt")
# An LRC line without a closing time is sung for at most this long (the lyrics adapter's default).
MAX_LINE_S = 10.0


@dataclass(frozen=True)
class GenerationRequest:
    """One clip to generate. Any subset of {video, caption, transcript, lyrics}; none is also fine
    (then `duration` is required). `lyrics` is a path to an .lrc/.txt file or the text itself."""

    video: str | Path | None = None
    caption: str | None = None
    transcript: str | None = None
    lyrics: str | Path | None = None
    language: str | None = None
    duration: float | None = None  # seconds; default: the video's length
    seed: int = 0
    id: str | None = None

    def modalities(self) -> list[str]:
        return [m for m in ("video", "caption", "transcript", "lyrics") if _given(getattr(self, m))]


def _given(value) -> bool:
    return value is not None and str(value).strip() != ""


@dataclass
class VoiceTokens:
    """VoiceBPE ids of the transcript or lyrics; times in seconds from the request start (or None)."""

    source: str  # "transcript" | "lyrics"
    ids: np.ndarray  # int32 [L]
    starts: np.ndarray | None = None  # float32 [L]
    ends: np.ndarray | None = None
    normalized: str = ""
    tokenizer: str = ""
    unknown_chars: int = 0
    timed_by: str = "none"  # "words" | "lines" | "none"


@dataclass
class WindowInputs:
    """What one window of a request feeds the encoders and the network (CPU, model-free)."""

    index: int
    start_s: float  # on the request's timeline (the video's)
    duration_s: float
    clip_frames: np.ndarray | None = None  # uint8 [Tc, S, S, 3] at the CLIP encoder's fps
    sync_frames: np.ndarray | None = None  # uint8 [Ts, 224, 224, 3] at 25 fps
    voice_ids: np.ndarray | None = None  # int32 [L]
    voice_starts: np.ndarray | None = None  # seconds from the window start
    voice_ends: np.ndarray | None = None
    caption: str | None = None


@dataclass
class PreparedInputs:
    request: GenerationRequest
    duration_s: float
    windows: list[WindowInputs]
    video_info: dict | None = None
    voice: VoiceTokens | None = None
    notes: list[str] = field(default_factory=list)  # what the user should know (e.g. an ignored input)
    seconds: float = 0.0  # wall time spent here


@dataclass(frozen=True)
class InputSettings:
    """Where frames and tokens come from; taken from the checkpoint's encoders and network."""

    max_duration_s: float  # the network's longest clip = the window length
    latent_rate: float
    clip_size: int | None = None
    clip_fps: float | None = None
    sync_size: int | None = None
    sync_fps: float | None = None
    min_window_s: float = 0.0  # shorter tails are dropped by the decoder (and padded in the output)
    vocab: str | None = None  # VoiceBPE vocabulary; None: the versioned one
    max_video_s: float | None = None  # longer videos are refused; None: any length (window by window)


# ---- validation -----------------------------------------------------------------------------

def check_language(language: str | None) -> str | None:
    if language is None or not str(language).strip():
        return None
    lang = str(language).strip()
    base = lang.split("-")[0].split("_")[0].lower()
    if base not in KNOWN_LANGUAGES:
        raise GenerationError("unknown_language", f"unknown language {language!r}; the VoiceBPE front end "
                                                  f"knows: {', '.join(KNOWN_LANGUAGES)}")
    return base


def check_duration(duration: float | None, max_s: float, what: str = "duration") -> float | None:
    if duration is None:
        return None
    try:
        d = float(duration)
    except (TypeError, ValueError):
        raise GenerationError("bad_duration", f"{what} {duration!r} is not a number of seconds") from None
    if not math.isfinite(d) or d <= 0:
        raise GenerationError("bad_duration", f"{what} must be > 0 s, got {duration!r}")
    if d > max_s + 1e-9:
        raise GenerationError("bad_duration", f"{what} {d:g} s is over the maximum of {max_s:g} s")
    return d


# ---- text -----------------------------------------------------------------------------------

def check_lrc_times(text: str, path: str) -> None:
    """Refuse LRC time tags that do not parse, and lines whose times go backwards."""
    from pipeline.corpora.timefmt import TimeFormatError, parse_time

    previous: tuple[float, int, str] | None = None
    for n, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        m = _LEADING_TAGS.match(raw)
        if m is None:
            continue
        first = None
        for inner in _TAG.findall(m.group(1)):
            inner = inner.strip()
            if not inner or not inner[0].isdigit() and not inner[0] in "+-":
                continue  # an id tag ([ar:], [offset:], ...)
            if ":" in inner and inner.split(":", 1)[0].isalpha():
                continue
            try:
                t = parse_time(inner.lstrip("+"))
            except TimeFormatError as exc:
                raise GenerationError("bad_lrc", f"{path}: line {n}: bad time tag [{inner}]: {exc}") from None
            if inner.startswith("-"):
                raise GenerationError("bad_lrc", f"{path}: line {n}: negative time tag [{inner}]")
            first = t if first is None else first
        if first is None:
            continue
        if previous is not None and first < previous[0]:
            raise GenerationError("bad_lrc", f"{path}: line {n}: time [{m.group(1).strip()}] = {first:.2f} s is "
                                             f"before line {previous[1]}'s {previous[0]:.2f} s (times must not decrease)")
        previous = (first, n, "")


def read_lyrics(lyrics: str | Path, duration_s: float | None) -> tuple[str, list[dict] | None, list[dict] | None, str]:
    """(text, timed lines, timed words, where) from an .lrc/.txt file or the lyrics text itself."""
    from pipeline.corpora.lyrics import LrcError, finish_lines, parse_lrc

    value = str(lyrics)
    is_file = isinstance(lyrics, Path) or value.lower().endswith(LYRICS_FILE_SUFFIXES)
    if not is_file:
        return value.strip(), None, None, "text"
    path = Path(value)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise GenerationError("missing_file", f"{path}: lyrics file not found") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GenerationError("bad_lrc", f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() == ".txt":
        return text.strip(), None, None, str(path)
    check_lrc_times(text, str(path))
    try:
        doc = parse_lrc(text)
        lines = finish_lines(doc.lines, duration_s, MAX_LINE_S) if doc.lines else []
    except (LrcError, ValueError) as exc:
        raise GenerationError("bad_lrc", f"{path}: {exc}") from None
    if not doc.lines:
        if not (doc.unsynced_text or "").strip():
            raise GenerationError("bad_lrc", f"{path}: no lyrics in the file")
        return doc.unsynced_text.strip(), None, None, str(path)
    if not lines:
        raise GenerationError("bad_lrc", f"{path}: every lyric line starts after the clip's {duration_s:g} s")
    timed = [{"text": ln.text, "start": ln.start, "end": ln.end} for ln in lines]
    words = [{"text": w.text, "start": w.start, "end": w.end} for ln in lines for w in ln.words]
    all_words = all(ln.words for ln in lines)
    return " ".join(ln.text for ln in lines), timed, (words if all_words else None), str(path)


def tokenize_voice(source: str, text: str, lines: list[dict] | None, words: list[dict] | None,
                   language: str | None, vocab: str | None = None) -> VoiceTokens:
    """The tokenize stage's rule: word times when they spell the text, else line times, else none."""
    from pipeline.text.romanize import romanize
    from pipeline.text.voicebpe import VOCAB_PATH

    tok = _tokenizer(vocab or str(VOCAB_PATH))
    plain = tok.encode(text, language)
    if not plain.ids:
        raise GenerationError("empty_text", f"{source} {text[:60]!r} gives no VoiceBPE token")
    lang = language or romanize(text).language
    enc, timed_by = plain, "none"
    for timed, name in ((words, "words"), (lines, "lines")):
        if timed:
            cand = tok.encode_words(list(timed), lang)
            if cand.normalized.split() == plain.normalized.split():
                enc, timed_by = cand, name
                break
    return VoiceTokens(
        source=source, ids=np.asarray(enc.ids, np.int32),
        starts=None if enc.starts is None else np.asarray(enc.starts, np.float32),
        ends=None if enc.ends is None else np.asarray(enc.ends, np.float32),
        normalized=enc.normalized, tokenizer=tok.version, unknown_chars=enc.n_unknown, timed_by=timed_by,
    )


_TOKENIZERS: dict = {}


def _tokenizer(path: str):
    from pipeline.text.voicebpe import VoiceBPETokenizer

    if path not in _TOKENIZERS:
        _TOKENIZERS[path] = VoiceBPETokenizer.load(path)
    return _TOKENIZERS[path]


# ---- video ----------------------------------------------------------------------------------

def probe_video(path: Path) -> dict:
    """Video stream facts, or a GenerationError naming the file (missing, corrupt, no video)."""
    import av

    if not path.is_file():
        raise GenerationError("missing_file", f"{path}: video file not found")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise GenerationError("undecodable", f"{path}: cannot open as a media file: {exc}") from None
    try:
        streams = [s for s in container.streams.video if av.stream.Disposition.attached_pic not in s.disposition]
        if not streams:
            raise GenerationError("no_video_stream", f"{path}: has no video stream "
                                                     f"({len(container.streams.audio)} audio stream(s) only)")
        vs = streams[0]
        length = None
        if vs.duration is not None and vs.time_base is not None:
            length = float(vs.duration * vs.time_base)
        elif container.duration is not None:
            length = container.duration / av.time_base
        rate = vs.average_rate or vs.guessed_rate
        return {"path": str(path), "duration_s": length, "fps": float(rate) if rate else None,
                "width": vs.codec_context.width, "height": vs.codec_context.height,
                "codec": vs.codec_context.name, "has_audio": bool(container.streams.audio)}
    finally:
        container.close()


def decode_video_windows(path: Path, duration_s: float, settings: InputSettings) -> tuple[list, dict]:
    """Windows [(start, duration, clip uint8 frames, sync uint8 frames)] of the first `duration_s`."""
    from pipeline.errors import PermanentError
    from pipeline.media.decode import DecodeSettings, SpanRequest, decode_source
    from pipeline.media.frames import decode_frames

    ds = DecodeSettings(rates=(), max_clip_s=settings.max_duration_s, min_clip_s=settings.min_window_s,
                        decode_frames=True, clip_fps=settings.clip_fps, clip_size=settings.clip_size,
                        sync_fps=settings.sync_fps, sync_size=settings.sync_size)
    try:
        info, results = decode_source(path, [SpanRequest(0.0, duration_s)], ds)
    except PermanentError as exc:
        raise GenerationError("undecodable", exc.message or str(exc)) from None
    result = results[0]
    if info.truncated or not result.windows:
        why = "the file is truncated or corrupt" if info.truncated else (result.problem or "no frames")
        raise GenerationError("undecodable", f"{path}: could not decode {duration_s:g} s of video: {why}")
    windows = []
    for w in result.windows:
        if w.clip_frames is None:
            raise GenerationError("no_video_stream", f"{path}: no video frame could be decoded")
        windows.append((w.window.start, w.window.duration, decode_frames(w.clip_frames),
                        decode_frames(w.sync_frames)))
    covered = sum(w[1] for w in windows)
    tolerance = settings.min_window_s + (1.0 / info.video_fps if info.video_fps else 0.0)
    if covered < duration_s - tolerance:
        raise GenerationError("undecodable", f"{path}: the file is truncated or corrupt: only {covered:.2f} s of "
                                             f"the {duration_s:g} s its header announces could be decoded")
    facts = {"frames_decoded": info.frames_decoded, "packets_undecodable": info.packets_undecodable,
             "decoded_s": round(covered, 4)}
    return windows, facts


# ---- all of it ------------------------------------------------------------------------------

def window_spans(duration_s: float, max_s: float) -> list[tuple[float, float]]:
    """[(start, duration)] of consecutive windows of at most max_s covering duration_s."""
    from pipeline.media.windows import cut_span

    return [(w.start, w.duration) for w in cut_span(0.0, duration_s, max_s, 0.0)]


def _split_voice(voice: VoiceTokens, spans: list[tuple[float, float]], duration_s: float) -> list[tuple]:
    """Per window: (ids, starts, ends) with times relative to the window start (None when untimed)."""
    if len(spans) == 1:
        return [(voice.ids, voice.starts, voice.ends)]
    n = len(voice.ids)
    if voice.starts is None:  # untimed text over several windows: spread evenly over the duration
        starts = (np.arange(n, dtype=np.float32) / n) * duration_s
        ends = (np.arange(1, n + 1, dtype=np.float32) / n) * duration_s
        timed = False
    else:
        starts, ends, timed = voice.starts, voice.ends, True
    out = []
    for i, (s, d) in enumerate(spans):
        last = i == len(spans) - 1
        pick = (starts >= s) & ((starts < s + d) | last)
        ids = voice.ids[pick]
        if not timed:
            out.append((ids if len(ids) else None, None, None))
        else:
            out.append((ids if len(ids) else None, np.clip(starts[pick] - s, 0, d), np.clip(ends[pick] - s, 0, d)))
    return out


def prepare_inputs(req: GenerationRequest, settings: InputSettings) -> PreparedInputs:
    """Validate a request and make its per-window inputs (raises GenerationError on bad input)."""
    import time

    from model.config import frames_for_duration

    t0 = time.perf_counter()
    language = check_language(req.language)
    notes: list[str] = []
    video_info = None
    if _given(req.video):
        video = Path(req.video)
        video_info = probe_video(video)
        length = video_info["duration_s"]
        if length is None or length <= 0:
            raise GenerationError("undecodable", f"{video}: the video stream's length is unknown or 0 s")
        if settings.max_video_s is not None and length > settings.max_video_s + 1e-9:
            raise GenerationError("video_too_long", f"{video}: {length:g} s is over the {settings.max_video_s:g} s "
                                                    "this generator accepts")
        duration = check_duration(req.duration, length, what=f"duration (video {video} is {length:g} s long)")
        duration = length if duration is None else duration
    else:
        if req.duration is None:
            raise GenerationError("bad_duration", "duration is required when no video is given")
        duration = check_duration(req.duration, settings.max_duration_s)

    voice = None
    if _given(req.lyrics):
        text, lines, words, _ = read_lyrics(req.lyrics, duration)
        voice = tokenize_voice("lyrics", text, lines, words, language, settings.vocab)
        if _given(req.transcript):
            notes.append("both transcript and lyrics were given; the model has one voice slot: the lyrics are "
                         "used (the training rule for songs), the transcript is not")
    elif _given(req.transcript):
        voice = tokenize_voice("transcript", str(req.transcript).strip(), None, None, language, settings.vocab)

    if video_info is not None:
        decoded, facts = decode_video_windows(Path(req.video), duration, settings)
        video_info.update(facts)
        spans = [(s, d) for s, d, _, _ in decoded]
        # The decoder drops a tail shorter than min_window_s; the output is padded to `duration`.
    else:
        decoded = None
        spans = window_spans(duration, settings.max_duration_s)

    voice_parts = _split_voice(voice, spans, duration) if voice is not None else [(None, None, None)] * len(spans)
    caption = str(req.caption).strip() if _given(req.caption) else None
    windows = []
    for i, ((start, dur), (ids, vs, ve)) in enumerate(zip(spans, voice_parts)):
        frames = frames_for_duration(dur, settings.latent_rate)
        if ids is not None and len(ids) > frames:
            raise GenerationError(
                "too_much_text",
                f"{voice.source}: {len(ids)} VoiceBPE tokens do not fit the {frames} latent frames of "
                f"{dur:g} s (at most one token per frame); shorten the text or lengthen the clip")
        w = WindowInputs(index=i, start_s=start, duration_s=dur, voice_ids=ids, voice_starts=vs, voice_ends=ve,
                         caption=caption)
        if decoded is not None:
            w.clip_frames, w.sync_frames = decoded[i][2], decoded[i][3]
        windows.append(w)
    return PreparedInputs(req, duration, windows, video_info, voice, notes, time.perf_counter() - t0)
