"""Lyrics stage: timed lyrics for songs (`kind == "song"`) with FunASR.

Lyrics the corpus provides (LRC, DALI, JamendoLyrics: `lyrics_model` starting with
`metadata:`) win: such rows, and every non-song row, pass through untouched with their
timings. The others are transcribed by `FunASRLyricsTranscriber` — Paraformer (+ fsmn-vad,
ct-punc, timestamps) when the row's language (or `default_language`) is Chinese, SenseVoice
otherwise — and get `lyrics`, `lyrics_model`, `lines`, `words` (seconds from the clip
start) and `language`.
"""
from __future__ import annotations

from dataclasses import asdict

from pydantic import Field

from ..annotate.funasr_lyrics import FunASRLyricsTranscriber, FunASRModel
from ..errors import Filtered, PermanentError
from ..media.audio import RATE_ASR, decode_audio_blob
from ..stage import ModelStage, ModelStageOptions

CORPUS_LYRICS_PREFIX = "metadata:"


class LyricsOptions(ModelStageOptions):
    model: str = Field("paraformer-zh", description="Chinese ASR: FunASR alias, hub id or local directory")
    model_revision: str | None = None
    vad_model: str | None = Field("fsmn-vad", description="VAD model (None: whole clip in one pass)")
    vad_revision: str | None = None
    punc_model: str | None = Field("ct-punc", description="punctuation model for the Chinese ASR (None: off)")
    punc_revision: str | None = None
    multilingual_model: str | None = Field(
        "iic/SenseVoiceSmall", description="ASR for non-Chinese songs (None: Paraformer for every song)")
    multilingual_revision: str | None = None
    hub: str = Field("ms", description="FunASR hub for names that are not local paths: ms | hf")
    device: str = Field("cpu", description="cpu | cuda | cuda:N")
    default_language: str | None = Field(
        None, description="language assumed for rows without one (None: SenseVoice detects it)")
    chinese_codes: list[str] = Field(default_factory=lambda: ["zh", "cmn", "zh-cn", "zh-tw", "chinese"])
    vad_batch_seconds: int = Field(300, ge=1, description="FunASR batch_size_s over VAD segments")
    filter_empty: bool = Field(True, description="songs where no lyrics are heard end as filtered:no_lyrics_heard")


class LyricsStage(ModelStage):
    name = "lyrics"
    Options = LyricsOptions
    reads = ("key", "kind", "language", "duration_s", "true_duration_s", "audio_16k", "lyrics", "lyrics_model",
             "lines", "words")
    writes = ("lyrics", "lyrics_model", "lines", "words", "language")
    counters = ("songs_transcribed", "corpus_lyrics_kept", "chinese_model_runs", "multilingual_model_runs",
                "timed_words", "untimed_songs", "no_lyrics_heard", "oom_halvings")

    options: LyricsOptions

    def setup(self) -> None:
        o = self.options
        zh = FunASRModel(o.model, vad_model=o.vad_model, punc_model=o.punc_model, device=o.device, hub=o.hub,
                         model_revision=o.model_revision, vad_revision=o.vad_revision,
                         punc_revision=o.punc_revision, batch_size_s=o.vad_batch_seconds)
        multi = None
        if o.multilingual_model:
            multi = FunASRModel(o.multilingual_model, vad_model=o.vad_model, punc_model=None, device=o.device,
                                hub=o.hub, model_revision=o.multilingual_revision, vad_revision=o.vad_revision,
                                batch_size_s=o.vad_batch_seconds)
        self.transcriber = FunASRLyricsTranscriber(zh, multi, tuple(o.chinese_codes))
        # Load the model the configured default language needs now (one load per actor).
        self.transcriber._ensure_loaded(self.transcriber.model_for(o.default_language))

    def select(self, row: dict) -> bool:
        if row.get("kind") != "song":
            return False
        if row.get("lyrics") and str(row.get("lyrics_model") or "").startswith(CORPUS_LYRICS_PREFIX):
            self.count("corpus_lyrics_kept")
            return False
        return True

    def process_batch(self, rows: list[dict]) -> list[dict | BaseException]:
        return [self._one(row) for row in rows]

    def _one(self, row: dict) -> dict | BaseException:
        key = row["key"]
        if not row.get("audio_16k"):
            return PermanentError("NoAudio", f"{key}: song without audio_16k")
        try:
            audio, rate = decode_audio_blob(row["audio_16k"])
        except Exception as exc:  # noqa: BLE001
            return PermanentError("UndecodableAudio", f"{key}: audio_16k: {exc}")
        if rate != RATE_ASR:
            return PermanentError("WrongSampleRate", f"{key}: audio_16k is {rate} Hz, expected {RATE_ASR}")
        language = row.get("language") or self.options.default_language
        result, model_id = self.transcriber.transcribe(audio, language)
        self.count("chinese_model_runs" if self.transcriber.model_for(language) is self.transcriber.zh
                   else "multilingual_model_runs")
        if not result.text:
            self.count("no_lyrics_heard")
            if self.options.filter_empty:
                return Filtered("no_lyrics_heard", f"{key}: {model_id} heard no lyrics")
        self.count("songs_transcribed")
        self.count("timed_words", len(result.words))
        if not result.timestamps_matched:
            self.count("untimed_songs")
        return {
            "lyrics": result.text or None,
            "lyrics_model": model_id,
            "lines": [asdict(t) for t in result.lines] or None,
            "words": [asdict(t) for t in result.words] or None,
            "language": result.language,
        }
