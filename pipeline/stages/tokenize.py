"""tokenize: transcript or lyrics → VoiceBPE ids (+ per-token times when the text is timed).

Which text: a song's lyrics, otherwise the transcript (otherwise lyrics). Which times: the
word timings (`words`) when they spell the chosen text, else the line timings (`lines`),
else none. A clip without either text passes through with nothing written (audio-only).

Writes `tokens` (int32 ids), `token_starts`/`token_ends` (seconds from the clip start, one
per token, or None), `tokens_source` ("lyrics"/"transcript") and `tokenizer` (the vocabulary
version). Characters the vocabulary lacks become [UNK] ids and are counted.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from ..stage import Stage, StageOptions
from ..text.romanize import romanize
from ..text.voicebpe import VOCAB_PATH, Encoded, VoiceBPETokenizer


class TokenizeOptions(StageOptions):
    vocab: str | None = Field(None, description="VoiceBPE tokenizers JSON; None: the versioned voicebpe.json")
    use_line_times: bool = Field(True, description="time tokens by `lines` when there are no word times")


class TokenizeStage(Stage):
    name = "tokenize"
    Options: ClassVar = TokenizeOptions
    reads = ("key", "kind", "transcript", "lyrics", "words", "lines", "language")
    writes = ("tokens", "token_starts", "token_ends", "tokens_source", "tokenizer")
    counters = ("rows_tokenized", "rows_timed_by_words", "rows_timed_by_lines", "rows_untimed", "rows_without_text",
                "timings_not_matching_text", "tokens_written", "unknown_chars")

    options: TokenizeOptions

    def setup(self) -> None:
        self.tokenizer = VoiceBPETokenizer.load(self.options.vocab or VOCAB_PATH)

    def model_id(self) -> str:
        return self.tokenizer.version

    @staticmethod
    def choose_text(row: dict) -> tuple[str, str] | None:
        """(source column, text) to tokenize, or None when the clip has no text."""
        lyrics, transcript = (row.get("lyrics") or "").strip(), (row.get("transcript") or "").strip()
        if lyrics and (row.get("kind") == "song" or not transcript):
            return "lyrics", lyrics
        if transcript:
            return "transcript", transcript
        return None

    def _timed(self, timed: list[dict] | None, text_normalized: str, language: str | None) -> Encoded | None:
        if not timed:
            return None
        enc = self.tokenizer.encode_words(list(timed), language)
        if enc.normalized.split() != text_normalized.split():
            self.count("timings_not_matching_text")
            return None
        return enc

    def process_row(self, row: dict) -> dict:
        chosen = self.choose_text(row)
        if chosen is None:
            self.count("rows_without_text")
            return {}
        source, text = chosen
        language = row.get("language") or None
        plain = self.tokenizer.encode(text, language)
        language = language or romanize(text).language
        enc = self._timed(row.get("words"), plain.normalized, language)
        if enc is not None:
            self.count("rows_timed_by_words")
        elif self.options.use_line_times and (enc := self._timed(row.get("lines"), plain.normalized, language)):
            self.count("rows_timed_by_lines")
        else:
            enc = plain
            self.count("rows_untimed")
        self.count("rows_tokenized")
        self.count("tokens_written", len(enc.ids))
        self.count("unknown_chars", enc.n_unknown)
        return {
            "tokens": np.asarray(enc.ids, dtype=np.int32),
            "token_starts": None if enc.starts is None else [round(t, 4) for t in enc.starts],
            "token_ends": None if enc.ends is None else [round(t, 4) for t in enc.ends],
            "tokens_source": source,
            "tokenizer": self.tokenizer.version,
        }
