"""Quality metrics against their definitions (BS.1770-4 reference values)."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.media import metrics

# BS.1770-4 Table 1 and 2: the K-weighting filter at 48 kHz.
SHELF_48K = ([1.53512485958697, -2.69169618940638, 1.19839281085285], [1.0, -1.69065929318241, 0.73248077421585])
HIGHPASS_48K = ([1.0, -2.0, 1.0], [1.0, -1.99004745483398, 0.99007225036621])


def sine(freq, seconds, rate, amplitude):
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq * t)


def test_k_weighting_matches_the_standard_at_48k():
    (sb, sa), (hb, ha) = metrics.k_weighting(48000)
    np.testing.assert_allclose(sb, SHELF_48K[0], atol=1e-8)
    np.testing.assert_allclose(sa, SHELF_48K[1], atol=1e-8)
    np.testing.assert_allclose(hb, HIGHPASS_48K[0], atol=1e-8)
    np.testing.assert_allclose(ha, HIGHPASS_48K[1], atol=1e-8)


@pytest.mark.parametrize("rate", [48000, 44100, 16000])
def test_loudness_of_a_997_hz_sine(rate):
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS; at amplitude 0.1, -23.01.
    assert metrics.loudness_lufs(sine(997, 5, rate, 0.1), rate) == pytest.approx(-23.01, abs=0.05)
    assert metrics.loudness_lufs(sine(997, 5, rate, 1.0), rate) == pytest.approx(-3.01, abs=0.05)


def test_loudness_gating_ignores_silence():
    rate = 48000
    x = np.concatenate([sine(997, 3, rate, 0.1), np.zeros(rate * 10)])
    # 400 ms blocks every 100 ms: 27 inside the tone, three partial ones (75, 50, 25 % of its power) pass
    # the relative gate, the silent ones do not: mean power 28.5/30 of the tone's.
    assert metrics.loudness_lufs(x, rate) == pytest.approx(-23.01 + 10 * np.log10(28.5 / 30), abs=0.02)
    assert metrics.loudness_lufs(np.zeros(rate), rate) is None
    assert metrics.loudness_lufs(sine(997, 0.2, rate, 0.1), rate) == pytest.approx(-23.0, abs=0.3)


def test_peak_clipping_silence():
    rate = 16000
    x = np.concatenate([sine(440, 1, rate, 0.5), np.zeros(rate)])
    assert metrics.peak_dbfs(x) == pytest.approx(20 * np.log10(0.5), abs=0.01)
    assert metrics.peak_dbfs(np.zeros(10)) is None
    assert metrics.silence_ratio(x, rate, -60.0, 0.05) == pytest.approx(0.5)
    assert metrics.silence_ratio(x[: rate + 100], rate, -60.0, 0.05) == pytest.approx(1 / 21)  # 20 tone frames and a short silent one
    y = np.clip(2 * sine(440, 1, rate, 1.0), -1, 1)
    assert 0.5 < metrics.clipping_ratio(y, 0.999) < 0.8
    assert metrics.clipping_ratio(x, 0.999) == 0.0
