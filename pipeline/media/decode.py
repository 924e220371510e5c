"""One decode pass per source file, producing every requested window (PyAV, no ffmpeg binary).

`decode_source(path, spans, settings)` opens the container once, seeks near the earliest
span when that is far into the file, and demuxes audio and video together. Each span
(one input row: `[start, end)`, or `[start, end of file)` when its end is unknown) is cut
into windows (see `windows.py`); each window is emitted as soon as both streams have
decoded past its end, so memory holds only the windows in progress, never a whole
long source.

Per window:
- audio: channels averaged to mono at the native rate, then one soxr call per output
  rate on the window plus `resample_margin_s` of context each side, the chunk starting on
  both sample grids so that the output lies on the grid of a whole-stream resampling; the
  output is cut by time (`round(duration × rate)` samples, zero-padded where the source
  has no audio); NaN/inf inside a window marks it `nonfinite_audio`;
- frames: for each target time `start + i / fps` the picture on screen then (the last
  frame whose presentation time is ≤ t; before the first frame, the first frame; after
  the last, the last one held). Only frames that some target picks are converted
  (scaled in libswscale) and JPEG-encoded, each at most once per kind, inline or on
  `convert_workers` threads beside the decoder.

A source that fails to open, or yields no frame at all, raises PermanentError("undecodable");
an error after some media ends the stream there (`SourceInfo.truncated`).

Times are on the source's timeline: presentation time minus the container's start
time (when that is positive).
"""
from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import soxr

from ..errors import PermanentError
from .frames import FrameConverter, encode_frame
from .windows import Window, cut_span, frame_count, frame_times, sample_count

# A frame shown at t counts for a target time t' when t ≤ t' + TIME_EPS_S (float noise in
# `start + i / fps` must not pick the previous frame).
TIME_EPS_S = 1e-6
# Integer sample formats → the divisor that maps them onto [-1, 1).
_INT_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0, np.dtype(np.int64): 2.0 ** 63}
_U8_OFFSET = 128.0


@dataclass(frozen=True)
class DecodeSettings:
    rates: tuple[int, ...] = (44100, 16000)
    max_clip_s: float = 10.0
    min_clip_s: float = 0.5
    decode_frames: bool = True
    clip_fps: float = 8.0
    clip_size: int = 384
    sync_fps: float = 25.0
    sync_size: int = 224
    jpeg_quality: int = 95
    interpolation: str = "BICUBIC"
    clipping_threshold: float = 0.999
    resample_margin_s: float = 0.05
    soxr_quality: str = "HQ"
    threads: int = 1  # video decoder (and scaler) threads; 0 lets libav choose
    convert_workers: int = 0  # threads converting frames to JPEG beside the decoder; 0: inline
    seek_min_s: float = 30.0  # seek first when the earliest span starts this far in
    seek_preroll_s: float = 1.0
    audio_gap_tolerance_s: float = 0.1  # a pts jump larger than this is filled with silence
    skip_without_audio: bool = False  # do not decode a source that has no audio stream


@dataclass(frozen=True)
class SpanRequest:
    start: float
    end: float | None  # None: to the end of the source


@dataclass
class DecodedWindow:
    window: Window
    audio: dict[int, np.ndarray] | None  # rate → float32 mono samples; None: no audio stream
    clipping_ratio: float | None  # at the native rate, over all channels
    nonfinite_audio: bool
    clip_frames: list[bytes] | None  # None: no video (or frames not decoded)
    sync_frames: list[bytes] | None


@dataclass
class SpanResult:
    windows: list[DecodedWindow] = field(default_factory=list)
    problem: str | None = None  # "start_past_end" | "too_short" when the span gives no window
    windows_dropped_short: int = 0  # tail windows shorter than min_clip_s (not the first)


@dataclass
class SourceInfo:
    path: Path
    has_audio: bool = False
    has_video: bool = False
    audio_rate: int | None = None
    audio_channels: int | None = None
    video_fps: float | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float = 0.0  # the end of the decoded media
    truncated: bool = False  # decoding stopped at an error after some media
    packets_undecodable: int = 0
    audio_gaps_filled: int = 0
    frames_decoded: int = 0
    audio_frames_decoded: int = 0
    frames_converted: int = 0


def _planar_float(frame: av.AudioFrame) -> np.ndarray:
    """An audio frame → float32 [channels, samples] in [-1, 1] (any sample format)."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        arr = arr.reshape(-1, channels).T
    if arr.dtype == np.uint8:
        return (arr.astype(np.float32) - _U8_OFFSET) / _U8_OFFSET
    scale = _INT_SCALE.get(arr.dtype)
    if scale is not None:
        return (arr / scale).astype(np.float32)
    return arr.astype(np.float32, copy=False)


class _AudioBuffer:
    """Mono native-rate samples (and per-sample clipping flags) addressed by a global index.

    Global sample i is at time `t0 + i / rate`; chunks before the oldest window still in
    progress are dropped.
    """

    def __init__(self, rate: int, t0: float):
        self.rate = rate
        self.t0 = t0
        self.total = 0  # global index one past the last sample
        self._chunks: list[tuple[int, np.ndarray, np.ndarray]] = []  # (first index, mono, clipped)

    @property
    def end_time(self) -> float:
        return self.t0 + self.total / self.rate

    def index(self, t: float) -> int:
        return round((t - self.t0) * self.rate)

    def append(self, mono: np.ndarray, clipped: np.ndarray) -> None:
        self._chunks.append((self.total, mono, clipped))
        self.total += mono.size

    def pad_to(self, t: float) -> bool:
        """Silence up to time t (a gap in the stream's timestamps); True when something was added."""
        n = self.index(t) - self.total
        if n <= 0:
            return False
        self.append(np.zeros(n, np.float32), np.zeros(n, bool))
        return True

    def slice(self, i0: int, i1: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples and clipping flags for global [i0, i1); zeros where nothing was decoded."""
        out = np.zeros(max(0, i1 - i0), np.float32)
        flags = np.zeros(out.size, bool)
        for first, mono, clipped in self._chunks:
            lo, hi = max(i0, first), min(i1, first + mono.size)
            if lo < hi:
                out[lo - i0: hi - i0] = mono[lo - first: hi - first]
                flags[lo - i0: hi - i0] = clipped[lo - first: hi - first]
        return out, flags

    def trim_before(self, i: int) -> None:
        self._chunks = [c for c in self._chunks if c[0] + c[1].size > i]


class _JpegMaker:
    """Frames → JPEG bytes, inline or on `convert_workers` threads.

    libswscale and the JPEG encoder release the GIL, so with workers the conversion of one
    frame overlaps the decoding of the next. Results are bytes, or Futures of bytes
    (`resolved` turns a list of either into bytes). Scalers are per thread.
    """

    def __init__(self, settings: DecodeSettings):
        self._s = settings
        self._local = threading.local()
        workers = settings.convert_workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="jpeg") if workers > 0 else None

    def _make(self, frame: av.VideoFrame, kind: str) -> bytes:
        conv = getattr(self._local, "converter", None)
        if conv is None:
            s = self._s
            conv = self._local.converter = FrameConverter(s.clip_size, s.sync_size, s.interpolation, s.threads)
        rgb = conv.clip_rgb(frame) if kind == "clip" else conv.sync_rgb(frame)
        return encode_frame(rgb, self._s.jpeg_quality)

    def submit(self, frame: av.VideoFrame, kind: str) -> bytes | Future:
        if self._pool is None:
            return self._make(frame, kind)
        return self._pool.submit(self._make, frame, kind)

    @staticmethod
    def resolved(items: list[bytes | Future]) -> list[bytes]:
        return [x.result() if isinstance(x, Future) else x for x in items]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


class _HeldFrame:
    """A decoded picture and its converted forms, made on first use only."""

    def __init__(self, frame: av.VideoFrame, time: float, maker: _JpegMaker, info: SourceInfo):
        self.frame, self.time = frame, time
        self._maker, self._info = maker, info
        self._jpeg: dict[str, bytes | Future] = {}

    def jpeg(self, kind: str) -> bytes | Future:
        if kind not in self._jpeg:
            self._jpeg[kind] = self._maker.submit(self.frame, kind)
            self._info.frames_converted += 1
        return self._jpeg[kind]


class _WindowInProgress:
    def __init__(self, span: int, window: Window, settings: DecodeSettings, with_frames: bool):
        self.span, self.window = span, window
        self.targets: dict[str, list[float]] = {}
        self.frames: dict[str, list[bytes | Future]] = {}
        if with_frames:
            for kind, fps in (("clip", settings.clip_fps), ("sync", settings.sync_fps)):
                self.targets[kind] = frame_times(window.start, window.duration, fps)
                self.frames[kind] = []

    def frames_complete(self) -> bool:
        return all(len(self.frames[k]) == len(self.targets[k]) for k in self.targets)

    def assign_before(self, t: float, chosen: _HeldFrame) -> None:
        """Targets earlier than t get `chosen` (the frame on screen until t)."""
        for kind, targets in self.targets.items():
            out = self.frames[kind]
            while len(out) < len(targets) and targets[len(out)] < t - TIME_EPS_S:
                out.append(chosen.jpeg(kind))

    def assign_rest(self, chosen: _HeldFrame) -> None:
        for kind, targets in self.targets.items():
            out = self.frames[kind]
            while len(out) < len(targets):
                out.append(chosen.jpeg(kind))


def _pick_video_stream(container: av.container.InputContainer):
    for stream in container.streams.video:
        if av.stream.Disposition.attached_pic not in stream.disposition:  # cover art is no video
            return stream
    return None


class SourceDecoder:
    """Decodes one source file once for a list of spans; see the module docstring."""

    def __init__(self, path: Path, spans: list[SpanRequest], settings: DecodeSettings):
        self.path = Path(path)
        self.spans = spans
        self.s = settings
        self.info = SourceInfo(self.path)
        self.results = [SpanResult() for _ in spans]
        self._cutters: list[Iterator[Window] | None] = []
        self._pending: list[_WindowInProgress] = []
        self._audio: _AudioBuffer | None = None
        self._held: _HeldFrame | None = None
        self._video_end = 0.0
        self._decode_video = False
        self._jpeg = _JpegMaker(settings)

    # -- public --------------------------------------------------------------------------------
    def run(self) -> tuple[SourceInfo, list[SpanResult]]:
        try:
            container = av.open(str(self.path), metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            raise PermanentError("undecodable", f"{self.path}: cannot open media container: {exc}") from None
        try:
            self._decode(container)
        finally:
            container.close()
            self._jpeg.close()
        return self.info, self.results

    # -- decoding ------------------------------------------------------------------------------
    def _decode(self, container) -> None:
        audio_stream = container.streams.audio[0] if container.streams.audio else None
        video_stream = _pick_video_stream(container)
        if audio_stream is None and video_stream is None:
            raise PermanentError("undecodable", f"{self.path}: no audio or video stream in the container")
        origin = max(0.0, (container.start_time or 0) / av.time_base)
        info = self.info
        if audio_stream is not None:
            info.audio_rate = audio_stream.codec_context.sample_rate or audio_stream.rate
            info.audio_channels = audio_stream.codec_context.channels
        if video_stream is not None:
            rate = video_stream.average_rate or video_stream.guessed_rate
            info.video_fps = float(rate) if rate else None
            info.width, info.height = video_stream.codec_context.width, video_stream.codec_context.height
            self._decode_video = self.s.decode_frames
            if self._decode_video:
                cc = video_stream.codec_context
                cc.thread_count = self.s.threads
                if self.s.threads != 1:
                    cc.thread_type = "AUTO"
        if audio_stream is None and self.s.skip_without_audio:
            info.has_video = video_stream is not None
            return  # nothing decoded: the caller filters the source (no audio)
        streams = [s for s in (audio_stream, video_stream if self._decode_video else None) if s is not None]
        if not streams:  # a video-only file whose frames are not wanted: the end comes from metadata
            info.has_video = True
            info.duration_s = self._metadata_duration(container, video_stream, origin)
            self._finish_all_at_eof()
            return

        self._cutters = [cut_span(sp.start, math.inf if sp.end is None else sp.end, self.s.max_clip_s,
                                  self.s.min_clip_s) for sp in self.spans]
        for i in range(len(self.spans)):
            self._open_next(i)
        first_start = min(sp.start for sp in self.spans)
        seeked = False
        if first_start > self.s.seek_min_s:
            target = first_start - self.s.seek_preroll_s + origin
            try:
                container.seek(int(target * av.time_base), backward=True)
                seeked = True
            except av.FFmpegError:  # not seekable: decode from the start
                pass

        decoded_any = False
        try:
            for packet in container.demux(*streams):
                try:
                    frames = packet.decode()
                except av.FFmpegError:
                    info.packets_undecodable += 1
                    continue
                for frame in frames:
                    decoded_any = True
                    if packet.stream is audio_stream:
                        self._on_audio(frame, origin)
                    else:
                        self._on_video(frame, origin, video_stream)
                self._finish_ready(audio_stream is not None)
                if not self._pending:
                    break
        except av.FFmpegError as exc:
            if not decoded_any:
                raise PermanentError("undecodable", f"{self.path}: {exc}") from None
            info.truncated = True
        if not decoded_any and seeked:  # nothing after the seek point: every span starts past the end
            info.has_audio, info.has_video = audio_stream is not None, video_stream is not None
            info.duration_s = self._metadata_duration(container, video_stream or audio_stream, origin)
            self._finish_all_at_eof()
            return
        if not decoded_any:
            raise PermanentError("undecodable", f"{self.path}: no frame could be decoded "
                                                f"({info.packets_undecodable} packets failed)")
        info.has_audio = self._audio is not None
        info.has_video = self._held is not None if self._decode_video else video_stream is not None
        ends = [self._video_end] if self._held is not None else []
        if self._audio is not None:
            ends.append(self._audio.end_time)
        info.duration_s = max(ends)
        self._finish_all_at_eof()

    def _metadata_duration(self, container, stream, origin: float) -> float:
        if stream is not None and stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            return container.duration / av.time_base - origin
        raise PermanentError("undecodable", f"{self.path}: video duration unknown and frames not decoded")

    def _on_audio(self, frame: av.AudioFrame, origin: float) -> None:
        info = self.info
        if frame.sample_rate != info.audio_rate:
            if self._audio is not None:
                raise PermanentError("undecodable", f"{self.path}: audio sample rate changes mid-stream "
                                                    f"({info.audio_rate} → {frame.sample_rate})")
            info.audio_rate = frame.sample_rate
        x = _planar_float(frame)
        info.audio_channels = x.shape[0]
        info.audio_frames_decoded += 1
        t = None if frame.time is None else frame.time - origin
        if self._audio is None:
            self._audio = _AudioBuffer(info.audio_rate, 0.0 if t is None else t)
        elif t is not None and t - self._audio.end_time > self.s.audio_gap_tolerance_s and self._audio.pad_to(t):
            info.audio_gaps_filled += 1
        with np.errstate(invalid="ignore"):
            clipped = (np.abs(x) >= self.s.clipping_threshold).any(axis=0)
        self._audio.append(x.mean(axis=0, dtype=np.float32), clipped)

    def _on_video(self, frame: av.VideoFrame, origin: float, stream) -> None:
        info = self.info
        info.frames_decoded += 1
        if frame.time is not None:
            t = frame.time - origin
        else:  # no timestamp: one frame period after the previous one
            t = self._video_end
        held = _HeldFrame(frame, t, self._jpeg, info)
        for w in self._pending:
            w.assign_before(t, self._held or held)
        self._held = held
        if frame.duration and frame.time_base:
            period = float(frame.duration * frame.time_base)
        else:
            period = 1.0 / info.video_fps if info.video_fps else 0.0
        self._video_end = max(self._video_end, t + period)

    # -- windows -------------------------------------------------------------------------------
    def _open_next(self, span: int) -> None:
        cutter = self._cutters[span]
        if cutter is None:
            return
        window = next(cutter, None)
        if window is None:
            self._cutters[span] = None
            return
        self._pending.append(_WindowInProgress(span, window, self.s, self._decode_video))

    def _finish_ready(self, has_audio_stream: bool) -> None:
        """Emit windows that both streams have decoded past; open the next window of their spans."""
        done = []
        for w in self._pending:
            audio_ok = not has_audio_stream or (
                self._audio is not None and self._audio.end_time >= w.window.end + self.s.resample_margin_s)
            video_ok = not self._decode_video or w.frames_complete()
            if audio_ok and video_ok:
                done.append(w)
        for w in done:
            self._pending.remove(w)
            self.results[w.span].windows.append(self._emit(w, w.window))
            self._open_next(w.span)
        if done and self._audio is not None:
            keep_from = min((w.window.start for w in self._pending), default=self._audio.end_time)
            self._audio.trim_before(self._audio.index(keep_from - self.s.resample_margin_s) - 1)

    def _finish_all_at_eof(self) -> None:
        end = self.info.duration_s
        while self._pending:
            w = self._pending.pop(0)
            result = self.results[w.span]
            clamped = Window(w.window.index, w.window.start, min(w.window.end, end))
            if clamped.duration <= 0 or clamped.duration < self.s.min_clip_s:
                if w.window.index == 0:
                    result.problem = "start_past_end" if clamped.duration <= 0 else "too_short"
                elif clamped.duration > 0:
                    result.windows_dropped_short += 1
                continue
            result.windows.append(self._emit(w, clamped))
            if clamped.end < w.window.end:
                self._cutters[w.span] = None  # the source ended inside this window
            else:
                self._open_next(w.span)
        for span, cutter in enumerate(self._cutters):
            if cutter is not None:  # a window ending exactly at the end of the source
                self._cutters[span] = None

    def _emit(self, w: _WindowInProgress, window: Window) -> DecodedWindow:
        clip = sync = None
        if self._decode_video and self._held is not None:
            w.assign_rest(self._held)
            clip = self._jpeg.resolved(w.frames["clip"][: frame_count(window.duration, self.s.clip_fps)])
            sync = self._jpeg.resolved(w.frames["sync"][: frame_count(window.duration, self.s.sync_fps)])
        audio, clip_ratio, nonfinite = None, None, False
        if self._audio is not None:
            audio, clip_ratio, nonfinite = self._window_audio(window)
        return DecodedWindow(window, audio, clip_ratio, nonfinite, clip, sync)

    def _window_audio(self, window: Window) -> tuple[dict[int, np.ndarray] | None, float, bool]:
        buf, margin = self._audio, self.s.resample_margin_s
        native = buf.rate
        i_start, i_end = buf.index(window.start), buf.index(window.end)
        own, flags = buf.slice(i_start, i_end)
        clip_ratio = float(flags.mean()) if flags.size else 0.0
        if not np.isfinite(own).all():
            return None, clip_ratio, True
        out = {}
        for rate in self.s.rates:
            n = sample_count(window.duration, rate)
            if rate == native:
                out[rate] = own.copy() if own.size == n else buf.slice(i_start, i_start + n)[0]
                continue
            # The chunk starts on both sample grids (native and output, counted from t0), so output
            # sample k of the chunk lies exactly on the grid of a resampling of the whole stream.
            step = native // math.gcd(native, rate)
            c0 = math.floor((window.start - margin - buf.t0) * native / step) * step
            c1 = math.ceil((window.end + margin - buf.t0) * native)
            chunk, _ = buf.slice(c0, c1)
            if not np.isfinite(chunk).all():  # non-finite samples only in the margin: silence them
                chunk = np.nan_to_num(chunk, nan=0.0, posinf=0.0, neginf=0.0)
            y = soxr.resample(chunk, native, rate, quality=self.s.soxr_quality)
            j0 = round((window.start - buf.t0) * rate) - (c0 // step) * (rate // math.gcd(native, rate))
            cut = np.zeros(n, np.float32)
            part = y[max(0, j0): j0 + n]
            cut[: part.size] = part
            out[rate] = cut
        return out, clip_ratio, False


def decode_source(path: Path, spans: list[SpanRequest], settings: DecodeSettings) -> tuple[SourceInfo, list[SpanResult]]:
    """Decode `path` once; one SpanResult (its windows, or why there are none) per span."""
    return SourceDecoder(path, spans, settings).run()
