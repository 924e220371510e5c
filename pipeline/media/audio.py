"""Audio blobs as stored in stage parquet: FLAC, mono, 24-bit (shard `flac` members reuse the bytes).

Columns written by the media stage (DESIGN §5):
  audio_44k   FLAC bytes, 44.1 kHz mono    (model waveform)
  audio_16k   FLAC bytes, 16 kHz mono      (ASR, VAD)
  clip_frames list of JPEG bytes, 8 fps, 384×384   (CLIP image encoder)
  sync_frames list of JPEG bytes, 25 fps, 224×224 center crop (Synchformer)
"""
from __future__ import annotations

import io

import numpy as np
import soundfile as sf

RATE_MODEL = 44100
RATE_ASR = 16000
FLAC_SUBTYPE = "PCM_24"


def encode_audio_blob(samples: np.ndarray, rate: int, subtype: str = FLAC_SUBTYPE) -> bytes:
    """float32 mono samples in [-1, 1] → FLAC bytes (clipped to the FLAC range)."""
    x = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, x, rate, format="FLAC", subtype=subtype)
    return buf.getvalue()


def decode_audio_blob(blob: bytes) -> tuple[np.ndarray, int]:
    """FLAC bytes → (float32 mono samples, rate)."""
    x, rate = sf.read(io.BytesIO(blob), dtype="float32", always_2d=False)
    if x.ndim > 1:
        x = x.mean(axis=1)
    return x, rate
