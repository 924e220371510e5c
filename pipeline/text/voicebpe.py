"""VoiceBPE: one multilingual BPE vocabulary over the romanised/phonetic text of the front end.

    tok = VoiceBPETokenizer.load()                    # the versioned pipeline/text/voicebpe.json
    enc = tok.encode("你好 world", language="zh")      # ids, normalized "ni3 hao3 world", unknown chars
    tok.decode(enc.ids) == enc.normalized
    timed = tok.encode_words([{"text": "你好", "start": 0.0, "end": 0.6}, ...], language="zh")
    timed.starts / timed.ends                           # one interval per token, inside its word's

The vocabulary (HF `tokenizers` BPE, Metaspace pre-tokenizer) is built by
pipeline/text/build_voicebpe.py. Each character the vocabulary lacks becomes one `[UNK]`
id and is counted in `unknown_chars`.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .romanize import romanize

VOCAB_PATH = Path(__file__).with_name("voicebpe.json")
PAD_TOKEN, UNK_TOKEN = "[PAD]", "[UNK]"
SPECIAL_TOKENS = (PAD_TOKEN, UNK_TOKEN)
WORD_MARK = "▁"  # Metaspace replacement of the space before each word
FRONT_END_VERSION = "v1"  # bump when romanize() changes its output for the same text
HASH_CHARS = 12


@dataclass
class Encoded:
    ids: list[int]
    normalized: str  # the romanised text the ids spell (decode(ids) gives it back)
    unknown_chars: Counter = field(default_factory=Counter)  # characters that became [UNK]
    starts: list[float] | None = None  # per-token times (seconds), when words were timed
    ends: list[float] | None = None

    @property
    def n_unknown(self) -> int:
        return sum(self.unknown_chars.values())


class VoiceBPETokenizer:
    def __init__(self, tokenizer, source: str = "<memory>"):
        from tokenizers import Tokenizer

        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"{source}: expected a tokenizers.Tokenizer, got {type(tokenizer).__name__}")
        self.tok = tokenizer
        self.source = source
        unk = tokenizer.token_to_id(UNK_TOKEN)
        pad = tokenizer.token_to_id(PAD_TOKEN)
        if unk is None or pad is None:
            raise ValueError(f"{source}: vocabulary lacks the special tokens {SPECIAL_TOKENS}")
        self.unk_id, self.pad_id = unk, pad
        digest = hashlib.sha256(tokenizer.to_str().encode("utf-8")).hexdigest()[:HASH_CHARS]
        self.version = f"voicebpe-{FRONT_END_VERSION}@sha256:{digest}"

    @classmethod
    def load(cls, path: str | Path = VOCAB_PATH) -> VoiceBPETokenizer:
        from tokenizers import Tokenizer

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"VoiceBPE vocabulary {path}: file not found "
                                    "(build it with python -m pipeline.text.build_voicebpe)")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception on bad JSON
            raise ValueError(f"VoiceBPE vocabulary {path}: not a tokenizers JSON file: {exc}") from None
        return cls(tok, str(path))

    @property
    def vocab_size(self) -> int:
        return self.tok.get_vocab_size()

    # -- encoding --------------------------------------------------------------------------------
    def _ids_of_normalized(self, normalized: str) -> tuple[list[int], Counter]:
        if not normalized:
            return [], Counter()
        enc = self.tok.encode(normalized, add_special_tokens=False)
        unknown: Counter = Counter()
        for token_id, (a, b) in zip(enc.ids, enc.offsets):
            if token_id == self.unk_id:
                unknown.update(normalized[a:b] or "?")
        return list(enc.ids), unknown

    def encode(self, text: str, language: str | None = None) -> Encoded:
        normalized = romanize(text, language).text
        ids, unknown = self._ids_of_normalized(normalized)
        return Encoded(ids, normalized, unknown)

    def encode_words(self, words: list[dict], language: str | None = None) -> Encoded:
        """Timed words ({text, start, end}) → ids with one [start, end] per token.

        Each word is romanised on its own; its interval is shared by its tokens in
        proportion to the characters each token spells.
        """
        if language is None:
            language = romanize("".join(str(w.get("text") or "") for w in words)).language
        ids: list[int] = []
        starts: list[float] = []
        ends: list[float] = []
        parts: list[str] = []
        unknown: Counter = Counter()
        for n, w in enumerate(words):
            try:
                start, end = float(w["start"]), float(w["end"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"word {n} {w!r}: needs numeric 'start' and 'end'") from None
            if end < start:
                raise ValueError(f"word {n} {w.get('text')!r}: end {end} before start {start}")
            normalized = romanize(str(w.get("text") or ""), language).text
            if not normalized:
                continue
            w_ids, w_unknown = self._ids_of_normalized(normalized)
            unknown += w_unknown
            lengths = [max(1, len(self.token_text(i))) for i in w_ids]
            total = sum(lengths)
            pos = 0
            for token_id, length in zip(w_ids, lengths):
                ids.append(token_id)
                starts.append(start + (end - start) * pos / total)
                pos += length
                ends.append(start + (end - start) * pos / total)
            parts.append(normalized)
        return Encoded(ids, " ".join(parts), unknown, starts, ends)

    # -- decoding --------------------------------------------------------------------------------
    def token_text(self, token_id: int) -> str:
        """The characters a token spells (its word mark removed)."""
        return (self.tok.id_to_token(token_id) or "").replace(WORD_MARK, "")

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=False)
