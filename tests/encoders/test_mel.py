"""Mel front end (model/encoders/mel.py): filterbank = librosa's, frames and values = MMAudio's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from model.encoders.mel import MMAUDIO_44K, MelConfig, MelFrontEnd, slaney_mel_filterbank
from tests.encoders.make_mel_vae_golden import GOLDEN, golden_wave


@pytest.mark.parametrize("sr,n_fft,n_mels,fmin,fmax", [
    (44100, 2048, 128, 0, None),  # MMAudio 44k / BigVGAN-v2 44 kHz 128-band
    (44100, 2048, 128, 0, 22050.0),  # MMAudio passes fmax = 44100 / 2 explicitly
    (44100, 2048, 40, 0, None),  # the log-mel codec
    (16000, 1024, 80, 0, 8000),  # MMAudio 16k
    (22050, 1024, 80, 50, 11000),  # a non-zero fmin
])
def test_filterbank_equals_librosa(sr, n_fft, n_mels, fmin, fmax):
    librosa = pytest.importorskip("librosa")
    ours = slaney_mel_filterbank(sr, n_fft, n_mels, fmin, fmax)
    ref = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.dtype == ref.dtype == np.float32 and ours.shape == ref.shape == (n_mels, n_fft // 2 + 1)
    assert np.array_equal(ours, ref)


@pytest.mark.parametrize("seconds", [1, 2, 8, 10])
def test_frames_are_samples_over_hop(seconds):
    mel = MelFrontEnd()
    s = seconds * 44100 // 1024 * 1024
    out = mel(torch.zeros(2, s).uniform_(-0.5, 0.5))
    assert out.shape == (2, 128, s // MMAUDIO_44K.hop)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_matches_mmaudio_reference_golden():
    """MMAudio's get_mel_converter('44k') on the golden wave (tests/encoders/make_mel_vae_golden.py:
    bitwise equal on the machine that wrote it)."""
    g = np.load(GOLDEN)
    ours = MelFrontEnd()(golden_wave(float(g["seconds"]))).numpy()
    np.testing.assert_allclose(ours, g["mel"], rtol=0, atol=1e-5)


def test_log_floor_and_clamp():
    """Silence sits at log(1e-5) plus the eps inside the magnitude; input beyond ±1 is clamped."""
    mel = MelFrontEnd()
    silent = mel(torch.zeros(1, 4096))
    assert torch.allclose(silent, torch.full_like(silent, float(np.log(MMAUDIO_44K.log_floor))), atol=1e-3)
    loud = torch.randn(1, 8192, generator=torch.Generator().manual_seed(0)) * 5
    assert torch.equal(mel(loud), mel(loud.clamp(-1, 1)))


def test_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"wave \[B, S\]"):
        MelFrontEnd(MelConfig())(torch.zeros(4096))
