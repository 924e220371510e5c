"""CLIP image pre-processing written out in full: resize, centre crop, rescale, normalise.

It reproduces transformers' `CLIPImageProcessor` (the PIL backend, which is what runs without
torchvision) step by step, so the numbers are the same to the last bit:

1. resize so the shorter side is `size` (the longer side becomes int(size · long / short)),
   with PIL's bicubic filter on the uint8 picture (PIL rounds the result back to uint8);
2. crop the centre `size`×`size` (top = (h − size) // 2, left = (w − size) // 2);
3. rescale to [0, 1]: uint8 → float64 × (1/255) → float32;
4. normalise per channel in float32: (x − mean) / std.

A frame that is already `size`×`size` (what the media stage stores: a squashed square JPEG)
passes steps 1–2 unchanged, so for those frames this also equals open_clip's "squash" transform
and MMAudio's (Resize to a square, ToDtype(scale=True), Normalize).

    pixels = clip_preprocess(frames, size=224, mean=OPENAI_CLIP_MEAN, std=OPENAI_CLIP_STD)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

# The OpenAI CLIP normalisation (open_clip's OPENAI_DATASET_MEAN/STD); DFN5B and MetaCLIP use it.
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
RESCALE = 1.0 / 255.0  # uint8 → [0, 1]
RESAMPLE = Image.Resampling.BICUBIC  # CLIP's resize filter (open_clip: interpolation="bicubic")


def shortest_edge_size(height: int, width: int, size: int) -> tuple[int, int]:
    """(h, w) after resizing the shorter side to `size`, as transformers computes it."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def resize_shortest_edge(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] → uint8 [H', W', 3] with min(H', W') = size (PIL bicubic)."""
    h, w = frame.shape[:2]
    new_h, new_w = shortest_edge_size(h, w, size)
    # PIL takes (width, height); a same-size resize is a copy, as in transformers.
    return np.asarray(Image.fromarray(frame).resize((new_w, new_h), resample=RESAMPLE))


def center_crop(frame: np.ndarray, size: int) -> np.ndarray:
    """[H, W, C] → [size, size, C] from the centre (both sides ≥ size after the resize)."""
    h, w = frame.shape[:2]
    top, left = (h - size) // 2, (w - size) // 2
    return frame[top:top + size, left:left + size]


def check_frames(frames: np.ndarray) -> None:
    """Refuse anything but uint8 [T, H, W, 3] (T = 0 allowed: a clip without frames)."""
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a numpy array, got {type(frames).__name__}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    if frames.shape[0] and min(frames.shape[1:3]) < 1:
        raise ValueError(f"frames have an empty side: {tuple(frames.shape)}")


def clip_preprocess(frames: np.ndarray, size: int, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 [T, H, W, 3] → float32 [T, 3, size, size], equal to CLIPImageProcessor's pixel_values."""
    check_frames(frames)
    if frames.shape[0] == 0:
        return torch.zeros((0, 3, size, size), dtype=torch.float32)
    if frames.shape[1:3] == (size, size):
        squares = frames  # the resize is a copy and the crop takes all: skip both
    else:
        squares = np.stack([center_crop(resize_shortest_edge(np.ascontiguousarray(f), size), size) for f in frames])
    table = normalise_table(mean, std)  # [256, 3]
    out = np.empty((squares.shape[0], 3, size, size), dtype=np.float32)
    for c in range(3):
        out[:, c] = table[:, c][squares[..., c]]
    return torch.from_numpy(out)


def normalise_table(mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """float32 [256, 3]: steps 3–4 for every uint8 value and channel, computed with the same
    operations in the same precisions as transformers (so a lookup equals the arithmetic)."""
    rescaled = (np.arange(256, dtype=np.float64) * RESCALE).astype(np.float32)[:, None]  # [256, 1]
    return (rescaled - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
