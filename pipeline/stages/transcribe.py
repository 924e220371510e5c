"""transcribe: speech → transcript, language and word timings with faster-whisper (paper §3.1).

Runs on the clips `select` picks (kind in `kinds`, or speech_ratio ≥ `min_speech_ratio`);
a transcript the corpus gave (transcript_model "metadata:<corpus>") wins and passes through.
Clips of one batch are decoded together (see pipeline/annotate/whisper.py). A clip without
voiced audio is `filtered:no_speech`; text that a hallucination guard rejects is
`filtered:hallucination_<guard>`.
"""
from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import soxr
from pydantic import Field, model_validator

from ..annotate.guards import GuardInput, GuardOptions, first_failed_guard
from ..annotate.whisper import SAMPLE_RATE, ClipTranscript, WhisperOptions, WhisperTranscriber
from ..errors import Filtered, PermanentError
from ..media.audio import decode_audio_blob
from ..record import KINDS
from ..stage import ModelStage, ModelStageOptions

METADATA_MODEL_PREFIX = "metadata:"
# Guards whose rejection means "there is no speech here" rather than "the model made text up".
NO_SPEECH_GUARDS = ("non_lexical",)


class TranscribeOptions(WhisperOptions, ModelStageOptions):
    kinds: list[str] = Field(default_factory=lambda: ["speech"], description="clip kinds transcribed")
    min_speech_ratio: float | None = Field(
        None, ge=0, le=1, description="also transcribe clips whose speech_ratio is at least this")
    guards: GuardOptions = Field(default_factory=GuardOptions)

    @model_validator(mode="after")
    def _check_kinds(self):
        bad = [k for k in self.kinds if k not in KINDS]
        if bad:
            raise ValueError(f"kinds: unknown kind(s) {bad}; known: {list(KINDS)}")
        if not self.kinds and self.min_speech_ratio is None:
            raise ValueError("kinds is empty and min_speech_ratio is unset: nothing would be transcribed")
        return self


class TranscribeStage(ModelStage):
    name = "transcribe"
    Options: ClassVar = TranscribeOptions
    reads = ("key", "audio_16k", "duration_s", "true_duration_s", "kind", "speech_ratio", "language",
             "transcript", "transcript_model")
    writes = ("transcript", "transcript_model", "transcript_settings", "language", "words")
    counters = ("clips_transcribed", "clips_no_speech", "clips_hallucination", "clips_language_unsupported",
                "windows_decoded", "speech_seconds", "words_written", "oom_halvings")

    options: TranscribeOptions

    def setup(self) -> None:
        self.transcriber = WhisperTranscriber(self.options)
        self.settings = json.dumps({**self.transcriber.settings(),
                                    "guards": self.options.guards.model_dump()}, sort_keys=True)

    def model_id(self) -> str:
        return self.transcriber.model_id()

    def select(self, row: dict) -> bool:
        if str(row.get("transcript_model") or "").startswith(METADATA_MODEL_PREFIX):
            return False
        if row.get("kind") in self.options.kinds:
            return True
        ratio = row.get("speech_ratio")
        return self.options.min_speech_ratio is not None and ratio is not None \
            and ratio >= self.options.min_speech_ratio

    # -- batch -----------------------------------------------------------------------------------
    def _audio(self, row: dict) -> np.ndarray:
        blob = row.get("audio_16k")
        if not blob:
            raise PermanentError("MissingAudio", f"{row['key']}: no audio_16k column (run the media stage first)")
        try:
            x, rate = decode_audio_blob(blob)
        except Exception as exc:  # noqa: BLE001 - any decoder error means the blob is unusable
            raise PermanentError("UndecodableAudio", f"{row['key']}: audio_16k is not decodable FLAC: {exc}")
        if rate != SAMPLE_RATE:
            x = soxr.resample(x, rate, SAMPLE_RATE)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _language_hint(self, row: dict) -> str | None:
        lang = (row.get("language") or "").split("-")[0].split("_")[0].lower()  # "en-US" → "en"
        if lang and not self.transcriber.multilingual and lang != "en":
            raise Filtered("language_unsupported",
                           f"{row['key']}: language {lang!r} but {self.model_id()} is English-only")
        return lang or None

    def process_batch(self, rows: list[dict]) -> list[dict | BaseException]:
        results: list[dict | BaseException | None] = [None] * len(rows)
        clips, langs, idx = [], [], []
        for i, row in enumerate(rows):
            try:
                audio, lang = self._audio(row), self._language_hint(row)
            except (PermanentError, Filtered) as exc:
                if isinstance(exc, Filtered):
                    self.count("clips_language_unsupported")
                results[i] = exc
                continue
            clips.append(audio)
            langs.append(lang)
            idx.append(i)
        if clips:
            for i, tr in zip(idx, self.transcriber.transcribe(clips, langs)):
                results[i] = self._judge(rows[i], tr)
        return results  # type: ignore[return-value]

    def _judge(self, row: dict, tr: ClipTranscript) -> dict | Filtered:
        self.count("windows_decoded", tr.windows)
        self.count("speech_seconds", tr.speech_seconds)
        if not tr.has_speech or not tr.text.strip():
            self.count("clips_no_speech")
            return Filtered("no_speech", f"{row['key']}: no voiced audio" if not tr.has_speech
                            else f"{row['key']}: the model decoded no text")
        failed = first_failed_guard(GuardInput(tr.text, tr.no_speech_prob, tr.avg_logprob, tr.speech_seconds),
                                    self.options.guards)
        if failed is not None:
            guard, detail = failed
            if guard in NO_SPEECH_GUARDS:
                self.count("clips_no_speech")
                return Filtered("no_speech", f"{row['key']}: {detail}")
            self.count("clips_hallucination")
            return Filtered(f"hallucination_{guard}", f"{row['key']}: {detail}; text {tr.text[:120]!r}")
        self.count("clips_transcribed")
        words = [{"text": w["text"], "start": float(w["start"]), "end": float(w["end"])} for w in tr.words]
        self.count("words_written", len(words))
        return {
            "transcript": tr.text,
            "transcript_model": self.model_id(),
            "transcript_settings": self.settings,
            "language": tr.language,
            "words": words,
        }
