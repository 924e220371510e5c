import pytest

from pipeline.annotate.caption_filters import (
    CaptionFilterOptions,
    caption_tokens,
    check_caption,
    repeated_ngram_ratio,
    trim_to_sentence,
)
from pipeline.errors import Filtered

GOOD = ("A dog barks twice in a reverberant hallway while rain patters on a window; "
        "the mood turns tense as the barking grows louder and closer.")


def reason(text, **opts):
    with pytest.raises(Filtered) as exc:
        check_caption(text, CaptionFilterOptions(**opts))
    return exc.value.reason


def test_good_caption_passes_cleaned():
    assert check_caption("  " + GOOD.replace(" ", "  ") + "\n") == GOOD


@pytest.mark.parametrize("text", ["", "   ", "...", "\n\t", "!?"])
def test_empty(text):
    assert reason(text) == "caption_empty"


def test_too_short():
    assert reason("Dog.") == "caption_too_short"
    assert check_caption("Dog barks.", CaptionFilterOptions(min_chars=4)) == "Dog barks."


@pytest.mark.parametrize("text", [
    "I'm sorry, but I cannot listen to audio files.",
    "As an AI, I am unable to process the recording you sent.",
    "I can't help with that request, it is beyond what I do.",
    "Unfortunately I am unable to hear anything; please provide an audio file.",
    "No audio was provided with this message, so nothing can be said.",
])
def test_refusals(text):
    assert reason(text) == "caption_refusal"


def test_refusal_words_inside_a_real_caption_are_fine():
    # "sorry" and "cannot" alone are not refusals
    text = "A man says he is sorry in a soft voice; the crowd cannot be heard over the wind."
    assert check_caption(text) == text


def test_looping_ngrams():
    loop = "A bird sings in the forest " * 6
    assert reason(loop) == "caption_repetitive"
    assert repeated_ngram_ratio(caption_tokens(loop), 3) > 0.7
    assert repeated_ngram_ratio(caption_tokens(GOOD), 3) == 0.0


def test_one_token_dominates():
    assert reason("beep beep beep beep beep beep and a car horn beep beep") == "caption_repetitive"


def test_text_without_spaces_is_judged_by_characters():
    assert caption_tokens("狗叫狗叫狗叫狗叫狗叫") == list("狗叫狗叫狗叫狗叫狗叫")
    assert reason("狗叫狗叫狗叫狗叫狗叫狗叫狗叫狗叫") == "caption_repetitive"


def test_trim_to_sentence():
    assert trim_to_sentence("A dog barks. Then a car passes and the") == "A dog barks."
    assert trim_to_sentence("no sentence end here") == "no sentence end here"
