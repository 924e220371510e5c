"""Caption stage: a detailed caption of each clip's acoustic content, mood and its changes.

Backends (`backend` option):
- `transformers`  Qwen2.5-Omni thinker in-process (`pipeline.annotate.qwen_omni`), fed the
                  clip's 16 kHz audio and, for video clips, `frames_per_clip` of its frames
- `openai`        an OpenAI-compatible server (vLLM serving Qwen2.5-Omni), same inputs
- `template`      captions from corpus metadata (`pipeline.annotate.template`)
- `none`          no captioning: rows pass through untouched

When a model backend cannot be loaded and `fallback_to_template` is on, the template
captioner runs instead and every record says so (`caption_model = "template:<corpus>"`,
`fallback_reason` in `caption_settings`). Generated captions go through the caption
filters (empty / refusal / repetitive → `filtered:<reason>`).

Writes `caption`, `caption_model` (`<name>@<revision>` or `template:<corpus>`) and
`caption_settings` (JSON: backend, prompt version, generation settings, frames fed).
"""
from __future__ import annotations

import json
import logging
import time
from typing import Literal

import numpy as np
from pydantic import Field

from ..annotate.caption_filters import CaptionFilterOptions, check_caption, trim_to_sentence
from ..annotate.prompts import PROMPT_VERSION, CaptionRequest
from ..annotate.template import TemplateCaptioner
from ..errors import Filtered, PermanentError, StageError
from ..media.audio import RATE_ASR, decode_audio_blob
from ..media.frames import decode_frames
from ..stage import ModelStage, ModelStageOptions

log = logging.getLogger(__name__)

DEFAULT_MODEL = "Qwen/Qwen2.5-Omni-7B"
CORPUS_CAPTION_PREFIX = "metadata:"


class CaptionOptions(ModelStageOptions):
    backend: Literal["transformers", "openai", "template", "none"] = "transformers"
    model: str = Field(DEFAULT_MODEL, description="hub id or local directory (transformers); served name (openai)")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit) to load and record")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    local_files_only: bool = Field(False, description="never reach the hub (transformers backend)")
    max_new_tokens: int = Field(160, ge=1, le=1024, description="bound on the caption length in tokens")
    do_sample: bool = Field(False, description="sample instead of greedy decoding")
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    repetition_penalty: float = Field(1.05, ge=1)
    seed: int = 0
    frames_per_clip: int = Field(4, ge=0, le=64, description="video frames fed per clip (0: audio only)")
    server_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible base URL (openai backend)")
    api_key_env: str | None = Field("OPENAI_API_KEY", description="environment variable holding the API key")
    timeout_s: float = Field(120.0, gt=0, description="read timeout per request (openai backend)")
    connect_timeout_s: float = Field(10.0, gt=0)
    max_concurrency: int = Field(8, ge=1, description="parallel requests per batch (openai backend)")
    fallback_to_template: bool = Field(True, description="use the template captioner when the model cannot load")
    keep_corpus_captions: bool = Field(
        False, description="rows whose caption came from the corpus (caption_model 'metadata:*') pass through")
    filters: CaptionFilterOptions = Field(default_factory=CaptionFilterOptions)


def pick_frame_indices(total: int, wanted: int) -> list[int]:
    """`wanted` indices spread evenly over `total` frames (each the centre of its span)."""
    if total <= 0 or wanted <= 0:
        return []
    if wanted >= total:
        return list(range(total))
    return [int((i + 0.5) * total / wanted) for i in range(wanted)]


class CaptionStage(ModelStage):
    name = "caption"
    Options = CaptionOptions
    reads = ("key", "corpus", "kind", "has_video", "has_audio", "duration_s", "true_duration_s", "audio_16k",
             "clip_frames", "label", "caption", "caption_model", "captions", "extra")
    writes = ("caption", "caption_model", "caption_settings")
    counters = ("model_captions", "template_captions", "clips_with_frames", "frames_fed", "captions_filtered",
                "transient_retries", "backend_fallbacks", "oom_halvings")

    options: CaptionOptions

    def setup(self) -> None:
        o = self.options
        self.template = TemplateCaptioner()
        self.backend = None
        self.fallback_reason: str | None = None
        if o.backend in ("template", "none"):
            return
        try:
            self.backend = self._make_backend()
            self.backend.load()
        except Exception as exc:
            if not o.fallback_to_template:
                raise
            self.backend = None
            self.fallback_reason = f"{o.backend} backend for {o.model!r} unusable: {type(exc).__name__}: {exc}"[:500]
            self.count("backend_fallbacks")
            log.warning("caption: %s; using the template captioner", self.fallback_reason)

    def _make_backend(self):
        o = self.options
        if o.backend == "transformers":
            from ..annotate.qwen_omni import QwenOmniCaptioner

            return QwenOmniCaptioner(o.model, revision=o.revision, device=o.device, dtype=o.dtype,
                                     max_new_tokens=o.max_new_tokens, do_sample=o.do_sample,
                                     temperature=o.temperature, top_p=o.top_p,
                                     repetition_penalty=o.repetition_penalty,
                                     local_files_only=o.local_files_only, seed=o.seed)
        from ..annotate.openai_backend import OpenAICompatibleCaptioner

        return OpenAICompatibleCaptioner(o.server_url, o.model, api_key_env=o.api_key_env, timeout_s=o.timeout_s,
                                         connect_timeout_s=o.connect_timeout_s, max_new_tokens=o.max_new_tokens,
                                         temperature=o.temperature if o.do_sample else 0.0,
                                         top_p=o.top_p if o.do_sample else 1.0, seed=o.seed,
                                         max_concurrency=o.max_concurrency, revision=o.revision)

    def model_id(self) -> str:
        return self.backend.model_id() if self.backend is not None else "template"

    def select(self, row: dict) -> bool:
        if self.options.backend == "none":
            return False
        corpus_caption = bool(row.get("caption")) and str(row.get("caption_model") or "").startswith(
            CORPUS_CAPTION_PREFIX)
        return not (self.options.keep_corpus_captions and corpus_caption)

    # -- per batch --------------------------------------------------------------------------------
    def process_batch(self, rows: list[dict]) -> list[dict | BaseException]:
        if self.backend is None:
            return [self._template_row(row) for row in rows]
        results: list[dict | BaseException | None] = [None] * len(rows)
        requests, slots = [], []
        for i, row in enumerate(rows):
            try:
                requests.append(self._request(row))
                slots.append(i)
            except StageError as exc:
                results[i] = exc
        texts = self._caption_with_retries(requests) if requests else []
        for i, req, text in zip(slots, requests, texts):
            results[i] = text if isinstance(text, BaseException) else self._model_row(req, text)
        return results

    def _caption_with_retries(self, requests: list[CaptionRequest]) -> list[str | BaseException]:
        """Runs the backend; per-clip transient errors are retried with the run's backoff policy."""
        out: list[str | BaseException] = list(self.backend.caption_batch(requests))
        retry = self.ctx.retry
        for attempt in range(1, retry.max_attempts):
            pending = [i for i, r in enumerate(out) if isinstance(r, StageError) and r.transient]
            if not pending:
                break
            self.count("transient_retries", len(pending))
            time.sleep(retry.delay(attempt, self._rng))
            again = self.backend.caption_batch([requests[i] for i in pending])
            for i, r in zip(pending, again):
                out[i] = r
        return out

    def _request(self, row: dict) -> CaptionRequest:
        key = row["key"]
        audio = None
        if row.get("audio_16k"):
            try:
                audio, rate = decode_audio_blob(row["audio_16k"])
            except Exception as exc:  # noqa: BLE001 - a bad blob is this row's permanent failure
                raise PermanentError("UndecodableAudio", f"{key}: audio_16k: {exc}") from None
            if rate != RATE_ASR:
                raise PermanentError("WrongSampleRate", f"{key}: audio_16k is {rate} Hz, expected {RATE_ASR}")
        frames: list[np.ndarray] = []
        blobs = row.get("clip_frames") or []
        if row.get("has_video") and blobs and self.options.frames_per_clip > 0:
            chosen = [blobs[i] for i in pick_frame_indices(len(blobs), self.options.frames_per_clip)]
            try:
                frames = list(decode_frames(chosen))
            except Exception as exc:  # noqa: BLE001
                raise PermanentError("UndecodableFrames", f"{key}: clip_frames: {exc}") from None
        if audio is None and not frames:
            raise PermanentError("NoMedia", f"{key}: neither audio_16k nor clip_frames to caption")
        return CaptionRequest(key=key, audio=audio, rate=RATE_ASR, frames=frames)

    def _settings(self, **extra) -> str:
        o = self.options
        s = {"backend": o.backend if self.backend is not None else "template", "prompt_version": PROMPT_VERSION}
        if self.backend is not None:
            s.update(self.backend.settings())
        else:
            s["template_version"] = self.template.version
        if self.fallback_reason:
            s["fallback_reason"] = self.fallback_reason
        s.update(extra)
        return json.dumps(s, sort_keys=True, ensure_ascii=False)

    def _model_row(self, req: CaptionRequest, text: str) -> dict | BaseException:
        try:
            caption = check_caption(trim_to_sentence(text.strip()), self.options.filters)
        except Filtered as exc:
            self.count("captions_filtered")
            return exc
        self.count("model_captions")
        if req.has_frames:
            self.count("clips_with_frames")
            self.count("frames_fed", len(req.frames))
        return {"caption": caption, "caption_model": self.backend.model_id(),
                "caption_settings": self._settings(frames=len(req.frames), audio=req.audio is not None)}

    def _template_row(self, row: dict) -> dict | BaseException:
        try:
            caption = self.template.caption(row)
        except Filtered as exc:
            return exc
        self.count("template_captions")
        return {"caption": caption, "caption_model": self.template.model_id(row.get("corpus")),
                "caption_settings": self._settings()}
