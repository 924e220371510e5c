"""Hallucination guards (pure functions)."""
from __future__ import annotations

from pipeline.annotate.guards import (
    GuardInput,
    GuardOptions,
    compression_ratio,
    first_failed_guard,
    lexical_words,
    max_consecutive_ngram_repeats,
)

OPTS = GuardOptions()


def judge(text: str, no_speech_prob: float = 0.1, avg_logprob: float = -0.3, seconds: float = 3.0):
    return first_failed_guard(GuardInput(text, no_speech_prob, avg_logprob, seconds), OPTS)


def test_sound_text_passes_every_guard():
    assert judge("The quick brown fox jumps over the lazy dog.") is None
    assert judge("Thank you.", seconds=1.0) is None


def test_ngram_loops_are_caught():
    assert max_consecutive_ngram_repeats(["a", "b", "a", "b", "a", "b", "c"], 2) == 3
    assert max_consecutive_ngram_repeats(["x", "a", "b", "a", "b", "a", "b"], 2) == 3  # loop at an odd offset
    assert max_consecutive_ngram_repeats(["one", "two", "three"], 1) == 1
    assert max_consecutive_ngram_repeats([], 2) == 0
    name, detail = judge("thank you " * 5, seconds=5.0)
    assert name == "repeated_ngrams" and "2-gram repeats 5 times" in detail
    assert judge("no no no", seconds=2.0) is None  # three in a row is speech


def test_compression_ratio_catches_regular_text_not_short_text():
    loop = "I'm going to go to the store. " * 4
    assert compression_ratio(loop) > OPTS.compression_ratio_max
    assert compression_ratio("") == 0.0
    opts = GuardOptions(max_ngram_repeats=None)
    assert first_failed_guard(GuardInput(loop, 0.1, -0.3, 30.0), opts)[0] == "compression_ratio"


def test_no_speech_probability_needs_low_confidence_too():
    assert judge("Hello there.", no_speech_prob=0.9, avg_logprob=-1.5)[0] == "no_speech_prob"
    assert judge("Hello there.", no_speech_prob=0.9, avg_logprob=-0.2) is None
    assert judge("Hello there.", no_speech_prob=0.3, avg_logprob=-1.5) is None


def test_words_per_second_outliers():
    many = ("cats dogs birds fish frogs mice owls bats bees ants yaks elk emus seals whales "
            "crabs newts toads moles voles wolves bears deer foxes hares")
    assert judge(many, seconds=2.0)[0] == "words_per_second"
    assert judge("hello", seconds=20.0)[0] == "words_per_second"  # one word over 20 s of speech
    assert judge("hello", seconds=2.0) is None  # short speech is never too slow


def test_non_lexical_output_is_no_speech():
    for text in ("Mmm.", "Mm-hmm.", "[Music]", "(upbeat music) ♪", "Uh, um."):
        assert lexical_words(text) == [], text
        assert judge(text)[0] == "non_lexical", text
    assert lexical_words("Oh, my god") == ["my", "god"]
    assert lexical_words("A dog.") == ["a", "dog"]


def test_disabled_guards_do_not_fire():
    opts = GuardOptions(max_ngram_repeats=None, compression_ratio_max=None, no_speech_prob_max=None,
                        max_words_per_second=None, min_words_per_second=None, reject_non_lexical=False)
    assert first_failed_guard(GuardInput("Mmm. " * 40, 0.99, -3.0, 0.5), opts) is None
