"""Hallucination guards for ASR output, as pure functions.

Each guard looks at one clip's transcript (and the decoder's own scores) and returns
None when the text looks sound, or a short reason string when it does not. The
transcribe stage turns a reason into `Filtered("hallucination_<guard>", detail)`.

The guards target the classic Whisper failure modes:
- looping output ("thank you thank you thank you ...")     → repeated_ngrams
- text that is too regular to be speech (gzip-compresses too well) → compression_ratio
- text decoded from a window the model itself thinks is silence   → no_speech_prob
- more (or, over long speech, far fewer) words than a person can say in the time → words_per_second
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# Whisper's own defaults (openai/whisper transcribe.py) for the same two tests.
DEFAULT_COMPRESSION_RATIO_MAX = 2.4
DEFAULT_NO_SPEECH_PROB_MAX = 0.6
DEFAULT_LOGPROB_MIN = -1.0

_WORD = re.compile(r"[\w']+", re.UNICODE)
# Sounds, not words: what Whisper writes for hums, breaths and music ("Mmm.", "Mm-hmm", "Uh").
_FILLER = re.compile(r"^(?:m+|h*m+h*|mm+h+m+|u+h+|u+m+|a+h+|o+h+|e+r+m*|h+u+h+|a{2,}|o{2,}|e{2,}|h{2,})$")
# Non-speech annotations: [Music], (applause), *laughs*, ♪ ... ♪
_TAG = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫♬]")


class GuardOptions(BaseModel):
    """Thresholds of the hallucination guards (a field set to None disables that test)."""

    model_config = ConfigDict(extra="forbid")
    max_ngram: int = Field(4, ge=1, description="longest n-gram checked for back-to-back repeats")
    max_ngram_repeats: int | None = Field(
        3, ge=1, description="an n-gram repeated back to back more than this many times is a loop")
    compression_ratio_max: float | None = Field(DEFAULT_COMPRESSION_RATIO_MAX, gt=0)
    compression_min_chars: int = Field(
        40, ge=0, description="texts shorter than this are not judged by compression ratio")
    no_speech_prob_max: float | None = Field(DEFAULT_NO_SPEECH_PROB_MAX, ge=0, le=1)
    logprob_min: float = Field(
        DEFAULT_LOGPROB_MIN,
        description="a window is silent only when no_speech_prob is high AND avg logprob below this")
    max_words_per_second: float | None = Field(6.0, gt=0, description="faster than any human speaker")
    min_words_per_second: float | None = Field(0.2, ge=0, description="judged only over long speech")
    min_seconds_for_min_wps: float = Field(
        8.0, ge=0, description="speech shorter than this is never judged too slow")
    reject_non_lexical: bool = Field(True, description="text of only fillers/tags ('Mmm.', '[Music]') is no speech")


@dataclass(frozen=True)
class GuardInput:
    """What the guards look at for one clip."""

    text: str
    no_speech_prob: float  # highest over the clip's decoded windows
    avg_logprob: float  # lowest over the clip's decoded windows
    speech_seconds: float  # voiced duration the text was decoded from


def words_of(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def max_consecutive_ngram_repeats(words: list[str], n: int) -> int:
    """Longest run of the same n-gram repeated back to back (1 when nothing repeats, 0 for too few words)."""
    if len(words) < n:
        return 0
    best = 1
    for start in range(n):
        run = 1
        prev = None
        for i in range(start, len(words) - n + 1, n):
            gram = tuple(words[i:i + n])
            run = run + 1 if gram == prev else 1
            best = max(best, run)
            prev = gram
    return best


def compression_ratio(text: str) -> float:
    """len(utf-8 bytes) / len(zlib-compressed bytes); looping text compresses well (high ratio)."""
    data = text.encode("utf-8")
    if not data:
        return 0.0
    return len(data) / len(zlib.compress(data))


def lexical_words(text: str) -> list[str]:
    """The words of a transcript that are neither fillers nor non-speech annotations."""
    return [w for w in words_of(_TAG.sub(" ", text)) if not _FILLER.match(w.replace("'", ""))]


def non_lexical(inp: GuardInput, opts: GuardOptions) -> str | None:
    """Text made only of hums, fillers or tags ("Mmm.", "[Music]") is no speech at all."""
    if not opts.reject_non_lexical or not inp.text.strip():
        return None
    if not lexical_words(inp.text):
        return f"only non-lexical sounds: {inp.text.strip()[:80]!r}"
    return None


def repeated_ngrams(inp: GuardInput, opts: GuardOptions) -> str | None:
    if opts.max_ngram_repeats is None:
        return None
    words = words_of(inp.text)
    for n in range(1, opts.max_ngram + 1):
        reps = max_consecutive_ngram_repeats(words, n)
        if reps > opts.max_ngram_repeats:
            return f"a {n}-gram repeats {reps} times in a row (limit {opts.max_ngram_repeats})"
    return None


def compression(inp: GuardInput, opts: GuardOptions) -> str | None:
    if opts.compression_ratio_max is None or len(inp.text) < opts.compression_min_chars:
        return None
    ratio = compression_ratio(inp.text)
    if ratio > opts.compression_ratio_max:
        return f"compression ratio {ratio:.2f} > {opts.compression_ratio_max}"
    return None


def no_speech(inp: GuardInput, opts: GuardOptions) -> str | None:
    if opts.no_speech_prob_max is None:
        return None
    if inp.no_speech_prob > opts.no_speech_prob_max and inp.avg_logprob < opts.logprob_min:
        return (f"no_speech_prob {inp.no_speech_prob:.2f} > {opts.no_speech_prob_max} "
                f"with avg_logprob {inp.avg_logprob:.2f} < {opts.logprob_min}")
    return None


def words_per_second(inp: GuardInput, opts: GuardOptions) -> str | None:
    n = len(words_of(inp.text))
    secs = max(inp.speech_seconds, 1e-6)
    wps = n / secs
    if opts.max_words_per_second is not None and wps > opts.max_words_per_second:
        return f"{wps:.1f} words/s over {inp.speech_seconds:.2f} s > {opts.max_words_per_second}"
    if (opts.min_words_per_second is not None and inp.speech_seconds >= opts.min_seconds_for_min_wps
            and wps < opts.min_words_per_second):
        return f"{wps:.2f} words/s over {inp.speech_seconds:.2f} s < {opts.min_words_per_second}"
    return None


# Order matters only for which reason is reported when several guards fire.
GUARDS = {
    "non_lexical": non_lexical,
    "no_speech_prob": no_speech,
    "repeated_ngrams": repeated_ngrams,
    "compression_ratio": compression,
    "words_per_second": words_per_second,
}


def first_failed_guard(inp: GuardInput, opts: GuardOptions) -> tuple[str, str] | None:
    """(guard name, detail) of the first guard that rejects the text, or None."""
    for name, guard in GUARDS.items():
        detail = guard(inp, opts)
        if detail is not None:
            return name, detail
    return None
