from __future__ import annotations

import pytest

from tests.media_fixtures import espeak_wav, make_bad_inputs

SPEECH_TEXT = "The quick brown fox jumps over the lazy dog. Media stage test speech."


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad_inputs"))


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory):
    return espeak_wav(SPEECH_TEXT, tmp_path_factory.mktemp("speech") / "speech.wav")
