"""Timed lyrics from FunASR `AutoModel`.

Chinese songs: Paraformer (`paraformer-zh`, SeACo-Paraformer) with `fsmn-vad` segmentation,
`ct-punc` punctuation and per-character timestamps. Other languages: SenseVoice
(`iic/SenseVoiceSmall`) with the same VAD. Every model name is a FunASR hub alias, a hub
id, or a local directory in the hub layout (`config.yaml` + `model.pt` + tokens file);
local directories load without any download. Version checks are off (`disable_update`).

Output per clip: text, the detected/used language, timed units (Chinese characters or
words, seconds from the clip start) and timed lines (VAD/punctuation sentences).
"""
from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MS_PER_S = 1000.0
LOCAL_REVISION_HASH_CHARS = 12
# One timed unit: a CJK character, or a run of other non-space, non-punctuation characters.
_UNIT = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\s\u3400-\u9fff\uf900-\ufaff\W]+(?:'[^\s\W]+)?", re.UNICODE)
_RICH_TAG = re.compile(r"<\|([^|]*)\|>")
SENSEVOICE_LANGUAGES = ("zh", "en", "yue", "ja", "ko")


@dataclass
class TimedText:
    text: str
    start: float
    end: float


@dataclass
class LyricsResult:
    text: str
    language: str | None
    words: list[TimedText] = field(default_factory=list)
    lines: list[TimedText] = field(default_factory=list)
    timestamps_matched: bool = True


def model_ref(name: str, revision: str | None) -> str:
    """name@revision for a hub model, dirname@local-<config hash> for a local directory."""
    path = Path(name)
    if path.is_dir():
        cfg = path / "config.yaml"
        digest = hashlib.sha256(cfg.read_bytes()).hexdigest() if cfg.exists() else "noconfig"
        return f"{path.name}@{revision or 'local-' + digest[:LOCAL_REVISION_HASH_CHARS]}"
    return f"{name}@{revision or 'master'}"


def timed_units(text: str, stamps_ms: list | None, offset_s: float = 0.0) -> tuple[list[TimedText], bool]:
    """Pairs the text's units with FunASR's per-token [start_ms, end_ms]; False when they do not match."""
    units = _UNIT.findall(text)
    if not stamps_ms or len(units) != len(stamps_ms):
        return [], not units
    return [TimedText(u, offset_s + s / MS_PER_S, offset_s + e / MS_PER_S) for u, (s, e) in zip(units, stamps_ms)], True


def strip_rich_tags(text: str) -> tuple[str, str | None]:
    """SenseVoice output `<|en|><|NEUTRAL|><|Speech|><|withitn|>text` → (text, 'en')."""
    tags = _RICH_TAG.findall(text)
    language = next((t for t in tags if t in SENSEVOICE_LANGUAGES), None)
    return _RICH_TAG.sub("", text).strip(), language


class FunASRModel:
    """One FunASR AutoModel (ASR, optionally with VAD and punctuation) and the names it records."""

    def __init__(self, model: str, *, vad_model: str | None, punc_model: str | None, device: str, hub: str,
                 model_revision: str | None = None, vad_revision: str | None = None,
                 punc_revision: str | None = None, batch_size_s: int = 300, generate_kwargs: dict | None = None):
        self.model = model
        self.vad_model = vad_model
        self.punc_model = punc_model
        self.device = device
        self.hub = hub
        self.revisions = {"model": model_revision, "vad": vad_revision, "punc": punc_revision}
        self.batch_size_s = batch_size_s
        self.generate_kwargs = dict(generate_kwargs or {})
        self.auto = None

    def load(self) -> None:
        from funasr import AutoModel

        kw = {"model": self.model, "device": self.device, "hub": self.hub, "disable_update": True,
              "disable_pbar": True, "log_level": "ERROR"}
        if self.revisions["model"]:
            kw["model_revision"] = self.revisions["model"]
        if self.vad_model:
            kw["vad_model"] = self.vad_model
            kw["vad_kwargs"] = {"max_single_segment_time": 30000}
            if self.revisions["vad"]:
                kw["vad_model_revision"] = self.revisions["vad"]
        if self.punc_model:
            kw["punc_model"] = self.punc_model
            if self.revisions["punc"]:
                kw["punc_model_revision"] = self.revisions["punc"]
        self.auto = AutoModel(**kw)

    def model_id(self) -> str:
        parts = [model_ref(self.model, self.revisions["model"])]
        if self.vad_model:
            parts.append(model_ref(self.vad_model, self.revisions["vad"]))
        if self.punc_model:
            parts.append(model_ref(self.punc_model, self.revisions["punc"]))
        return "+".join(parts)

    def run(self, audio: np.ndarray, **extra) -> dict:
        if self.auto is None:
            raise RuntimeError("FunASRModel.load() was not called")
        kw = {"batch_size_s": self.batch_size_s, "output_timestamp": True, **self.generate_kwargs, **extra}
        if self.vad_model:
            kw["sentence_timestamp"] = True
        res = self.auto.generate(input=np.asarray(audio, dtype=np.float32), **kw)
        if not res:
            return {"text": ""}
        return res[0]


def parse_result(res: dict, language: str | None) -> LyricsResult:
    """A FunASR result dict → LyricsResult (units timed when the token stamps line up)."""
    text, tagged_language = strip_rich_tags(str(res.get("text") or ""))
    language = tagged_language or language
    words: list[TimedText] = []
    lines: list[TimedText] = []
    matched = True
    sentences = res.get("sentence_info") or []
    if sentences:
        for sent in sentences:
            s_text, _ = strip_rich_tags(str(sent.get("text") or ""))
            if not s_text:
                continue
            lines.append(TimedText(s_text, sent["start"] / MS_PER_S, sent["end"] / MS_PER_S))
            units, ok = timed_units(s_text, sent.get("timestamp"))
            words.extend(units)
            matched = matched and ok
    else:
        words, matched = timed_units(text, res.get("timestamp"))
        if words:
            lines.append(TimedText(text, words[0].start, words[-1].end))
    return LyricsResult(text=text, language=language, words=words, lines=lines, timestamps_matched=matched)


class FunASRLyricsTranscriber:
    """Paraformer for Chinese, SenseVoice for the rest; each loaded on first need."""

    def __init__(self, zh: FunASRModel, multilingual: FunASRModel | None, chinese_codes: tuple[str, ...]):
        self.zh = zh
        self.multilingual = multilingual
        self.chinese_codes = tuple(c.lower() for c in chinese_codes)
        self._loaded: set[int] = set()

    def is_chinese(self, language: str | None) -> bool:
        return bool(language) and language.lower() in self.chinese_codes

    def model_for(self, language: str | None) -> FunASRModel:
        if self.is_chinese(language) or self.multilingual is None:
            return self.zh
        return self.multilingual

    def _ensure_loaded(self, model: FunASRModel) -> None:
        if id(model) not in self._loaded:
            model.load()
            self._loaded.add(id(model))

    def transcribe(self, audio: np.ndarray, language: str | None) -> tuple[LyricsResult, str]:
        model = self.model_for(language)
        self._ensure_loaded(model)
        extra = {}
        if model is self.multilingual:
            extra = {"language": language if language in SENSEVOICE_LANGUAGES else "auto", "use_itn": True}
        result = parse_result(model.run(audio, **extra), language or ("zh" if model is self.zh else None))
        return result, model.model_id()
