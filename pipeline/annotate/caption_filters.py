"""Checks on a generated caption: empty, refusing, or repeating itself → `Filtered`.

Reasons (the row ends as `filtered:<reason>`):
- `caption_empty`       nothing (or only punctuation) came out
- `caption_too_short`   fewer characters than `min_chars`
- `caption_refusal`     the model declined or talked about itself ("I'm sorry, I can't ...")
- `caption_repetitive`  the same n-gram over and over (a decoding loop)
"""
from __future__ import annotations

import re
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from ..errors import Filtered

REFUSAL_PATTERNS = (
    r"\bi(?:'m| am) sorry\b",
    r"\bi (?:can ?not|can't|cannot|am unable to|'m unable to|am not able to)\b",
    r"\bas an ai\b",
    r"\b(?:language|ai) model\b",
    r"\bi (?:do not|don't) have (?:the ability|access)\b",
    r"\bunable to (?:listen|hear|play|process|analy[sz]e|access)\b",
    r"\b(?:no|without) (?:audio|sound) (?:was |is )?(?:provided|attached|available)\b",
    r"\bplease (?:provide|upload|share)\b",
)
_REFUSAL = re.compile("|".join(REFUSAL_PATTERNS), re.IGNORECASE)
_WORD = re.compile(r"\w+", re.UNICODE)
_SPACES = re.compile(r"\s+")
_SENTENCE_END = re.compile(r"[.!?。！？](?=\s|$)")


class CaptionFilterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_chars: int = Field(8, ge=1, description="shorter captions are filtered as too short")
    ngram: int = Field(3, ge=1, description="n of the n-grams checked for repetition")
    max_repeated_ngram_ratio: float = Field(
        0.35, gt=0, le=1, description="share of n-grams that repeat an earlier one above which a caption loops")
    max_token_share: float = Field(
        0.4, gt=0, le=1, description="share of all tokens a single token may take (captions of 8+ tokens)")
    min_tokens_for_share: int = Field(8, ge=1)


def normalize_caption(text: str) -> str:
    return _SPACES.sub(" ", text or "").strip().strip('"').strip()


def trim_to_sentence(text: str) -> str:
    """Cut a caption that ran into the token limit back to its last complete sentence."""
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]].strip() if ends else text


def caption_tokens(text: str) -> list[str]:
    """Words; for text written without spaces (CJK, gibberish) single characters."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) <= 1 and len(text) > 1:
        return [c for c in text if not c.isspace()]
    return words


def repeated_ngram_ratio(tokens: list[str], n: int) -> float:
    """Share of the n-grams of `tokens` that already occurred earlier in the text."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    if not grams:
        return 0.0
    counts = Counter(grams)
    return sum(c - 1 for c in counts.values()) / len(grams)


def check_caption(text: str, options: CaptionFilterOptions | None = None) -> str:
    """The cleaned caption, or `Filtered` with the reason it cannot be used."""
    opts = options or CaptionFilterOptions()
    caption = normalize_caption(text)
    if not _WORD.search(caption):
        raise Filtered("caption_empty", f"caption has no words: {caption!r}")
    if len(caption) < opts.min_chars:
        raise Filtered("caption_too_short", f"{len(caption)} chars < {opts.min_chars}: {caption!r}")
    refusal = _REFUSAL.search(caption)
    if refusal:
        raise Filtered("caption_refusal", f"refusal phrase {refusal.group(0)!r} in {caption[:120]!r}")
    tokens = caption_tokens(caption)
    ratio = repeated_ngram_ratio(tokens, opts.ngram)
    if ratio > opts.max_repeated_ngram_ratio:
        raise Filtered("caption_repetitive", f"{ratio:.0%} of {opts.ngram}-grams repeat: {caption[:120]!r}")
    if len(tokens) >= opts.min_tokens_for_share:
        token, count = Counter(tokens).most_common(1)[0]
        if count / len(tokens) > opts.max_token_share:
            raise Filtered("caption_repetitive",
                           f"{token!r} is {count} of {len(tokens)} tokens: {caption[:120]!r}")
    return caption
