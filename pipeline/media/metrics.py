"""Per-clip audio quality metrics: loudness (ITU-R BS.1770-4), peak, clipping and silence.

All functions take float mono samples in [-1, 1]. Values that do not exist for a
signal (the loudness or peak of digital silence) are None, never -inf: records go
into JSON shard members, and JSON has no infinities.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

# BS.1770-4 K-weighting: a high-shelf (head effects) then a high-pass (RLB), given in the
# standard for 48 kHz; the analog prototypes below reproduce those coefficients at any rate.
SHELF_F0_HZ = 1681.974450955533
SHELF_GAIN_DB = 3.999843853973347
SHELF_Q = 0.7071752369554196
HIGHPASS_F0_HZ = 38.13547087602444
HIGHPASS_Q = 0.5003270373238773
LOUDNESS_OFFSET_DB = -0.691
GATE_BLOCK_S = 0.4
GATE_OVERLAP = 0.75
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


def k_weighting(rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two biquads (b, a) of the K-weighting filter at `rate`."""
    k = math.tan(math.pi * SHELF_F0_HZ / rate)
    vh = 10 ** (SHELF_GAIN_DB / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / SHELF_Q + k * k
    shelf_b = np.array([vh + vb * k / SHELF_Q + k * k, 2 * (k * k - vh), vh - vb * k / SHELF_Q + k * k]) / a0
    shelf_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / SHELF_Q + k * k) / a0])
    k = math.tan(math.pi * HIGHPASS_F0_HZ / rate)
    a0 = 1 + k / HIGHPASS_Q + k * k
    hp_b = np.array([1.0, -2.0, 1.0])
    hp_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / HIGHPASS_Q + k * k) / a0])
    return [(shelf_b, shelf_a), (hp_b, hp_a)]


def _lufs(mean_square: float) -> float:
    return LOUDNESS_OFFSET_DB + 10 * math.log10(mean_square)


def loudness_lufs(x: np.ndarray, rate: int) -> float | None:
    """Integrated loudness of a mono signal (gated, BS.1770-4); None when every block is below the gate.

    A clip shorter than one 400 ms gating block is measured as a single block.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return None
    y = x
    for b, a in k_weighting(rate):
        y = lfilter(b, a, y)
    block = round(GATE_BLOCK_S * rate)
    step = max(1, round(block * (1 - GATE_OVERLAP)))
    if y.size <= block:
        powers = np.array([np.mean(y * y)])
    else:
        csum = np.concatenate([[0.0], np.cumsum(y * y)])
        starts = np.arange(0, y.size - block + 1, step)
        powers = (csum[starts + block] - csum[starts]) / block
    with np.errstate(divide="ignore"):
        block_lufs = LOUDNESS_OFFSET_DB + 10 * np.log10(powers)
    above_abs = powers[block_lufs > ABSOLUTE_GATE_LUFS]
    if above_abs.size == 0:
        return None
    relative_gate = _lufs(float(np.mean(above_abs))) + RELATIVE_GATE_LU
    gated = above_abs[LOUDNESS_OFFSET_DB + 10 * np.log10(above_abs) > relative_gate]
    if gated.size == 0:
        return None
    return _lufs(float(np.mean(gated)))


def peak_dbfs(x: np.ndarray) -> float | None:
    peak = float(np.max(np.abs(x))) if np.size(x) else 0.0
    return 20 * math.log10(peak) if peak > 0 else None


def clipping_ratio(x: np.ndarray, threshold: float) -> float:
    """Fraction of samples whose magnitude reaches `threshold` (full scale is 1.0)."""
    return float(np.mean(np.abs(x) >= threshold)) if np.size(x) else 0.0


def silence_ratio(x: np.ndarray, rate: int, threshold_dbfs: float, frame_s: float) -> float:
    """Fraction of `frame_s` frames whose RMS level is below `threshold_dbfs` (a short tail is a frame too)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size == 0:
        return 1.0
    n = max(1, round(frame_s * rate))
    n_frames = -(-x.size // n)
    padded = np.zeros(n_frames * n)
    padded[: x.size] = x
    sq = (padded * padded).reshape(n_frames, n)
    lengths = np.full(n_frames, n, dtype=np.float64)
    lengths[-1] = x.size - (n_frames - 1) * n
    ms = sq.sum(axis=1) / lengths
    threshold_ms = 10 ** (threshold_dbfs / 10)
    return float(np.mean(ms < threshold_ms))
