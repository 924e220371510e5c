"""Video frames as stored in stage parquet: a list of JPEG bytes per clip."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

JPEG_QUALITY = 95
# Pixel format of the scaled picture before its conversion to RGB: 4:2:0 like most decoded
# video (and like the JPEG chroma that stores it); measured unbiased against a PIL bicubic
# resize of the full RGB picture.
SCALE_FORMAT = "yuv420p"


def encode_frame(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_frames(blobs: list[bytes]) -> np.ndarray:
    """JPEG list → uint8 array [T, H, W, 3] (T = 0 gives shape [0, 0, 0, 3])."""
    if not blobs:
        return np.zeros((0, 0, 0, 3), dtype=np.uint8)
    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])



class FrameConverter:
    """Scales PyAV video frames to the model's frame formats in libswscale.

    Scaling runs in the decoder's YUV format first and the colour conversion to RGB on
    the small picture after (2-3× cheaper than converting the full-size picture). One
    converter per decode: its reformatters keep their scaler contexts between frames.
    `threads` is libswscale's thread count (0: automatic).
    """

    def __init__(self, clip_size: int, sync_size: int, interpolation: str = "BICUBIC", threads: int = 1):
        from av.video.reformatter import VideoReformatter

        self.clip_size, self.sync_size = clip_size, sync_size
        self.interpolation, self.threads = interpolation, threads
        self._scalers = {kind: (VideoReformatter(), VideoReformatter()) for kind in ("clip", "sync")}

    def _rgb(self, kind: str, frame, width: int, height: int) -> np.ndarray:
        scale, to_rgb = self._scalers[kind]
        small = scale.reformat(frame, width=width, height=height, format=SCALE_FORMAT,
                               interpolation=self.interpolation, threads=self.threads)
        return to_rgb.reformat(small, format="rgb24", threads=self.threads).to_ndarray()

    def clip_rgb(self, frame) -> np.ndarray:
        """uint8 [size, size, 3], squashed (aspect ratio not kept), like MMAudio's CLIP
        transform `Resize((size, size), bicubic)`."""
        return self._rgb("clip", frame, self.clip_size, self.clip_size)

    def sync_rgb(self, frame) -> np.ndarray:
        """uint8 [size, size, 3]: shortest side scaled to `size`, then the centre crop
        (MMAudio's Synchformer transform `Resize(size)` + `CenterCrop(size)`)."""
        size = self.sync_size
        w, h = frame.width, frame.height
        scale = size / min(w, h)
        sw, sh = max(size, round(w * scale)), max(size, round(h * scale))
        rgb = self._rgb("sync", frame, sw, sh)
        top, left = (sh - size) // 2, (sw - size) // 2
        return np.ascontiguousarray(rgb[top: top + size, left: left + size])
