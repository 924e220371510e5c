"""Video frames as stored in stage parquet: a list of JPEG bytes per clip."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

JPEG_QUALITY = 95


def encode_frame(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_frames(blobs: list[bytes]) -> np.ndarray:
    """JPEG list → uint8 array [T, H, W, 3] (T = 0 gives shape [0, 0, 0, 3])."""
    if not blobs:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])
