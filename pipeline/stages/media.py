"""MediaStage: decode each source file once and write every clip window's media and quality.

A fan-out stage: one input row (a clip span, or a whole source when `duration_s` is
None) becomes one output record per window of at most `max_clip_s` (the last, shorter
window is kept when it lasts at least `min_clip_s`). Rows of a partition that name the
same file share ONE decode pass. Each output is a full clip record: the input's record
fields, then what this stage sets:

- `key` = make_key(corpus, source_id, window start), `start_s`, `duration_s` (the window,
  clamped to the end of the media), `true_duration_s` (the seconds of real media the
  window covers: equal to `duration_s`, which never extends past the source's end)
- `audio_44k`, `audio_16k`: FLAC mono, exactly round(duration × rate) samples
- `clip_frames` (8 fps, 384×384 squash), `sync_frames` (25 fps, short side 224, centre
  crop 224×224); sizes and rates come from the clip/sync stage's encoder when one is configured: JPEG lists of ⌊duration × fps⌋ frames (see pipeline/media/windows.py)
- `has_audio`, `has_video`, `loudness_lufs` (BS.1770-4; None for silence), `peak_dbfs`
  (None for digital silence), `clipping_ratio`, `silence_ratio`
- `words`/`lines` re-timed to the window; when a row is cut into several windows its
  `transcript`/`lyrics` are rebuilt from the timed items of each window, or cleared
  (and counted) when the row has no timings to cut them by
- `extra.media`: what the source was (rates, channels, fps, size, window index)

Filters, each with a named reason: no_audio, no_video, too_short, start_past_end, silent,
clipped, nonfinite_audio. Errors: missing_file, empty_file, not_fetched, invalid_span,
undecodable (PermanentError → failed:media:<class>).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ..errors import Filtered, PermanentError
from ..media import metrics
from ..media.audio import RATE_ASR, RATE_MODEL, encode_audio_blob
from ..media.decode import DecodedWindow, DecodeSettings, SourceInfo, SpanRequest, SpanResult, decode_source
from ..media.windows import retime_items
from ..record import BLOB_COLUMNS, RECORD_FIELDS, make_key
from ..stage import Outcome, Stage, StageOptions

FILE_SCHEME = "file://"
# frame sizes/rates when no clip/sync feature stage is configured (MMAudio's DFN5B CLIP, Synchformer)
DEFAULT_CLIP_SIZE, DEFAULT_CLIP_FPS = 384, 8.0
DEFAULT_SYNC_SIZE, DEFAULT_SYNC_FPS = 224, 25.0


class MediaOptions(StageOptions):
    max_clip_s: float = Field(10.0, gt=0, description="longer spans are cut into windows of this length")
    min_clip_s: float = Field(0.5, ge=0, description="shorter clips are filtered (too_short); shorter tail windows dropped")
    decode_frames: bool = Field(True, description="decode video frames (False: audio only, no frame columns)")
    # None: the configured clip/sync stage's encoder decides (FeatureSpec.frame_size/frame_fps; resolved
    # and written into the canonical config by pipeline/config.py), else the DEFAULT_* below
    clip_fps: float | None = Field(None, gt=0, description="CLIP frame rate (None: the clip encoder's)")
    clip_size: int | None = Field(None, ge=1, description="CLIP frame side, squashed to a square (None: the clip encoder's)")
    sync_fps: float | None = Field(None, gt=0, description="Synchformer frame rate (None: the sync encoder's)")
    sync_size: int | None = Field(None, ge=1, description="sync frame side, short side scaled + centre crop "
                                                          "(None: the sync encoder's)")
    jpeg_quality: int = Field(95, ge=1, le=100, description="JPEG quality of stored frames")
    resize_interpolation: Literal["BICUBIC", "BILINEAR", "AREA", "LANCZOS", "POINT"] = Field(
        "BICUBIC", description="libswscale scaler used for frame resizing")
    decode_threads: int = Field(1, ge=0, description="video decoder threads per task (0: libav chooses); "
                                                     "Ray gives parallelism across tasks")
    frame_convert_threads: int = Field(0, ge=0, description="threads scaling and JPEG-encoding frames while the "
                                                            "decoder runs (0: inline, for 1-CPU tasks)")
    soxr_quality: Literal["VHQ", "HQ", "MQ", "LQ", "QQ"] = Field("HQ", description="soxr resampling quality")
    resample_margin_s: float = Field(0.05, ge=0, description="audio context each side of a window for the resampler")
    seek_min_s: float = Field(30.0, ge=0, description="seek before decoding when the first span starts later than this")
    seek_preroll_s: float = Field(1.0, ge=0, description="seek this far before the first span")
    audio_gap_tolerance_s: float = Field(0.1, ge=0, description="larger audio timestamp jumps are filled with silence")
    require_audio: bool = Field(True, description="filter sources without an audio stream (no_audio)")
    require_video: bool = Field(False, description="filter sources without a video stream (no_video)")
    silence_threshold_dbfs: float = Field(-60.0, le=0, description="frames below this RMS level count as silent")
    silence_frame_s: float = Field(0.05, gt=0, description="frame length of the silence measure")
    max_silence_ratio: float | None = Field(0.95, ge=0, le=1, description="filter windows more silent (silent)")
    clipping_threshold: float = Field(0.999, gt=0, le=1, description="|sample| at or above this counts as clipped")
    max_clipping_ratio: float | None = Field(0.05, ge=0, le=1, description="filter windows with more clipped samples (clipped)")

    @model_validator(mode="after")
    def _check(self):
        if self.min_clip_s > self.max_clip_s:
            raise ValueError(f"min_clip_s ({self.min_clip_s}) must not exceed max_clip_s ({self.max_clip_s})")
        return self

    def decode_settings(self) -> DecodeSettings:
        return DecodeSettings(
            rates=(RATE_MODEL, RATE_ASR), max_clip_s=self.max_clip_s, min_clip_s=self.min_clip_s,
            decode_frames=self.decode_frames, clip_fps=self.clip_fps or DEFAULT_CLIP_FPS,
            clip_size=self.clip_size or DEFAULT_CLIP_SIZE, sync_fps=self.sync_fps or DEFAULT_SYNC_FPS,
            sync_size=self.sync_size or DEFAULT_SYNC_SIZE, jpeg_quality=self.jpeg_quality,
            interpolation=self.resize_interpolation, clipping_threshold=self.clipping_threshold,
            resample_margin_s=self.resample_margin_s, soxr_quality=self.soxr_quality, threads=self.decode_threads,
            convert_workers=self.frame_convert_threads,
            seek_min_s=self.seek_min_s, seek_preroll_s=self.seek_preroll_s,
            audio_gap_tolerance_s=self.audio_gap_tolerance_s, skip_without_audio=self.require_audio)


def source_path(row: dict) -> Path:
    """The local file of a row: `media_path` (after fetch) else a local `media_uri`."""
    raw = row.get("media_path") or row.get("media_uri")
    if not raw:
        raise PermanentError("missing_file", "row has neither media_path nor media_uri")
    raw = str(raw)
    if raw.startswith(FILE_SCHEME):
        raw = raw[len(FILE_SCHEME):]
    elif "://" in raw or raw.startswith("youtube:"):
        raise PermanentError("not_fetched", f"{raw}: remote media; run the fetch stage first")
    return Path(raw)


def media_offset(row: dict) -> float:
    """Where the local file starts in the source: >0 for clip-span downloads (fetch stage)."""
    return float(row.get("media_offset_s") or 0.0)


def span_of(row: dict) -> SpanRequest:
    """The span to decode, in the local file's time (source time minus `media_offset_s`)."""
    start = (0.0 if row.get("start_s") is None else float(row["start_s"])) - media_offset(row)
    dur = row.get("duration_s")
    if not math.isfinite(start) or start < 0:
        raise PermanentError("invalid_span", f"start_s must be a finite number ≥ 0, got {row.get('start_s')!r}")
    if dur is not None:
        dur = float(dur)
        if not math.isfinite(dur):
            raise PermanentError("invalid_span", f"duration_s must be finite, got {dur!r}")
        if dur <= 0:
            raise Filtered("too_short", f"duration_s is {dur}")
    return SpanRequest(start, None if dur is None else start + dur)


class MediaStage(Stage):
    name = "media"
    Options = MediaOptions
    reads = None
    writes = tuple(RECORD_FIELDS) + tuple(BLOB_COLUMNS)
    fans_out = True
    counters = (
        "sources_decoded", "sources_truncated", "rows_sharing_a_decode", "windows_out",
        "windows_filtered_silent", "windows_filtered_clipped", "windows_filtered_nonfinite_audio",
        "windows_dropped_too_short", "audio_seconds_out", "frames_decoded", "frames_converted",
        "clip_frames_out", "sync_frames_out", "packets_undecodable", "audio_gaps_filled",
        "texts_dropped_untimed",
    )

    def process_partition(self, rows: list[dict]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        groups: dict[Path, list[tuple[int, SpanRequest]]] = {}
        for i, row in enumerate(rows):
            try:
                path = source_path(row)
                groups.setdefault(path, []).append((i, span_of(row)))
            except Exception as exc:  # noqa: BLE001 - becomes the row's terminal state
                outcomes[i] = self.outcome_for(row["key"], exc)
        for path, members in groups.items():
            for i, outcome in zip([m[0] for m in members], self._process_source(path, rows, members)):
                outcomes[i] = outcome
        return [outcomes[i] for i in range(len(rows))]

    # -- one source ----------------------------------------------------------------------------
    def _process_source(self, path: Path, rows: list[dict], members: list[tuple[int, SpanRequest]]) -> list[Outcome]:
        try:
            self._check_file(path)
            info, results = decode_source(path, [span for _, span in members], self.options.decode_settings())
        except Exception as exc:  # noqa: BLE001 - every row of the source gets the same terminal state
            return [self.outcome_for(rows[i]["key"], exc) for i, _ in members]
        self._count_source(info, len(members))
        outcomes = []
        for (i, _), result in zip(members, results):
            row = rows[i]
            try:
                outcomes.append(Outcome(row["key"], "ok", self._records(row, info, result)))
            except Exception as exc:  # noqa: BLE001
                outcomes.append(self.outcome_for(row["key"], exc))
        return outcomes

    @staticmethod
    def _check_file(path: Path) -> None:
        if not path.exists():
            raise PermanentError("missing_file", f"{path}: no such file")
        if not path.is_file():
            raise PermanentError("missing_file", f"{path}: not a regular file")
        if path.stat().st_size == 0:
            raise PermanentError("empty_file", f"{path}: zero bytes")

    def _count_source(self, info: SourceInfo, n_rows: int) -> None:
        self.count("sources_decoded")
        if n_rows > 1:
            self.count("rows_sharing_a_decode", n_rows)
        if info.truncated:
            self.count("sources_truncated")
        self.count("frames_decoded", info.frames_decoded)
        self.count("frames_converted", info.frames_converted)
        self.count("packets_undecodable", info.packets_undecodable)
        self.count("audio_gaps_filled", info.audio_gaps_filled)

    def _records(self, row: dict, info: SourceInfo, result: SpanResult) -> list[dict]:
        o = self.options
        if o.require_audio and not info.has_audio:
            raise Filtered("no_audio", f"{info.path}: no decodable audio stream")
        if o.require_video and not info.has_video:
            raise Filtered("no_video", f"{info.path}: no decodable video stream")
        if result.problem is not None:
            raise Filtered(result.problem, f"{info.path}: media ends at {info.duration_s:.3f} s "
                                           f"(span starts at {row.get('start_s') or 0.0} s)")
        self.count("windows_dropped_too_short", result.windows_dropped_short)
        is_cut = len(result.windows) + result.windows_dropped_short > 1
        records, rejected, messages = [], Counter(), {}
        for dw in result.windows:
            problem = self._window_problem(dw)
            if problem is not None:
                reason, message = problem
                self.count(f"windows_filtered_{reason}")
                rejected[reason] += 1
                messages.setdefault(reason, message)
                continue
            records.append(self._record(row, info, dw, is_cut))
        if not records:
            reason = rejected.most_common(1)[0][0]
            raise Filtered(reason, f"{info.path}: {messages[reason]}")
        return records

    def _window_problem(self, dw: DecodedWindow) -> tuple[str, str] | None:
        o = self.options
        if dw.nonfinite_audio:
            return "nonfinite_audio", f"NaN or infinite samples in window at {dw.window.start} s"
        if dw.audio is None:
            return None
        if o.max_clipping_ratio is not None and dw.clipping_ratio > o.max_clipping_ratio:
            return "clipped", f"clipping ratio {dw.clipping_ratio:.3f} > {o.max_clipping_ratio}"
        silence = self._silence(dw)
        if o.max_silence_ratio is not None and silence > o.max_silence_ratio:
            return "silent", f"silence ratio {silence:.3f} > {o.max_silence_ratio}"
        return None

    def _silence(self, dw: DecodedWindow) -> float:
        return metrics.silence_ratio(dw.audio[RATE_MODEL], RATE_MODEL, self.options.silence_threshold_dbfs,
                                     self.options.silence_frame_s)

    def _record(self, row: dict, info: SourceInfo, dw: DecodedWindow, is_cut: bool) -> dict:
        w = dw.window
        rec = {f: row.get(f) for f in RECORD_FIELDS}
        rec.update(row)  # columns earlier stages wrote travel with every window (fan-out contract)
        source_start = w.start + media_offset(row)  # back on the source's timeline
        offset = source_start - (row.get("start_s") or 0.0)
        rec.update(key=make_key(row["corpus"], row["source_id"], source_start), start_s=source_start,
                   duration_s=w.duration, true_duration_s=w.duration,
                   has_audio=info.has_audio, has_video=info.has_video,
                   words=retime_items(row.get("words"), offset, w.duration),
                   lines=retime_items(row.get("lines"), offset, w.duration))
        if is_cut:
            self._cut_texts(rec, row)
        rec["extra"] = self._extra(row, info, w.index)
        if dw.audio is not None:
            x44 = dw.audio[RATE_MODEL]
            rec.update(audio_44k=encode_audio_blob(x44, RATE_MODEL), audio_16k=encode_audio_blob(dw.audio[RATE_ASR], RATE_ASR),
                       loudness_lufs=metrics.loudness_lufs(x44, RATE_MODEL), peak_dbfs=metrics.peak_dbfs(x44),
                       clipping_ratio=dw.clipping_ratio, silence_ratio=self._silence(dw))
            self.count("audio_seconds_out", w.duration)
        else:
            rec.update(audio_44k=None, audio_16k=None, loudness_lufs=None, peak_dbfs=None,
                       clipping_ratio=None, silence_ratio=None)
        rec.update(clip_frames=dw.clip_frames, sync_frames=dw.sync_frames)
        self.count("clip_frames_out", len(dw.clip_frames or ()))
        self.count("sync_frames_out", len(dw.sync_frames or ()))
        self.count("windows_out")
        return rec

    def _cut_texts(self, rec: dict, row: dict) -> None:
        """A window of a cut row holds only its share of the transcript/lyrics."""
        if row.get("transcript") is not None:
            if row.get("words") is not None:
                rec["transcript"] = " ".join(w["text"] for w in rec["words"] if w.get("text"))
            else:
                rec["transcript"] = None
                self.count("texts_dropped_untimed")
        if row.get("lyrics") is not None:
            if row.get("lines") is not None:
                rec["lyrics"] = "\n".join(ln["text"] for ln in rec["lines"] if ln.get("text"))
            else:
                rec["lyrics"] = None
                self.count("texts_dropped_untimed")

    @staticmethod
    def _extra(row: dict, info: SourceInfo, window_index: int) -> str:
        raw = row.get("extra")
        try:
            data = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            data = {"unparsed_extra": raw}
        if not isinstance(data, dict):
            data = {"unparsed_extra": raw}
        data["media"] = {
            "window_index": window_index, "audio_rate_in": info.audio_rate, "audio_channels_in": info.audio_channels,
            "video_fps_in": info.video_fps, "video_size_in": [info.width, info.height] if info.width else None,
            "truncated": info.truncated,
        }
        return json.dumps(data, sort_keys=True, ensure_ascii=False)
