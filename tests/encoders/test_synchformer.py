"""Synchformer visual encoder: shapes and token times, the reference's parameter names, strict
loading of the released file format, and a golden output produced by MMAudio's own code."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.encoders.registry import feature_spec, load_encoder, sync_token_count, sync_token_times
from model.encoders.synchformer import (
    CONFIGS,
    RELEASE_URL,
    MotionFormer,
    SynchformerEncoder,
    build_random_checkpoint,
    file_sha256,
    random_state_dict,
)
from tests.encoders.make_synchformer_golden import GOLDEN, hash_frames

TINY = "synchformer-tiny-random"
FPS = 25


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return build_random_checkpoint(TINY, tmp_path_factory.mktemp("sync") / "synchformer_state_dict.pth", seed=3)


@pytest.fixture(scope="module")
def tiny(tiny_ckpt):
    return SynchformerEncoder.load(TINY, str(tiny_ckpt))


# --- what the released file holds (names and shapes dumped from MMAudio's Synchformer().state_dict())
_REAL_TOP = {
    "cls_token": (1, 1, 768), "pos_embed": (1, 197, 768), "temp_embed": (1, 8, 768),
    "patch_embed.proj.weight": (768, 3, 16, 16), "patch_embed.proj.bias": (768,),
    "patch_embed_3d.proj.weight": (768, 3, 2, 16, 16), "patch_embed_3d.proj.bias": (768,),
    "norm.weight": (768,), "norm.bias": (768,),
    "spatial_attn_agg.cls_token": (1, 1, 768),
    "spatial_attn_agg.self_attn.in_proj_weight": (2304, 768), "spatial_attn_agg.self_attn.in_proj_bias": (2304,),
    "spatial_attn_agg.self_attn.out_proj.weight": (768, 768), "spatial_attn_agg.self_attn.out_proj.bias": (768,),
    "spatial_attn_agg.linear1.weight": (3072, 768), "spatial_attn_agg.linear1.bias": (3072,),
    "spatial_attn_agg.linear2.weight": (768, 3072), "spatial_attn_agg.linear2.bias": (768,),
    "spatial_attn_agg.norm1.weight": (768,), "spatial_attn_agg.norm1.bias": (768,),
    "spatial_attn_agg.norm2.weight": (768,), "spatial_attn_agg.norm2.bias": (768,),
}
_REAL_BLOCK = {
    "norm1.weight": (768,), "norm1.bias": (768,), "norm2.weight": (768,), "norm2.bias": (768,),
    "norm3.weight": (768,), "norm3.bias": (768,),
    "attn.qkv.weight": (2304, 768), "attn.qkv.bias": (2304,), "attn.proj.weight": (768, 768), "attn.proj.bias": (768,),
    "timeattn.qkv.weight": (2304, 768), "timeattn.qkv.bias": (2304,),
    "timeattn.proj.weight": (768, 768), "timeattn.proj.bias": (768,),
    "mlp.fc1.weight": (3072, 768), "mlp.fc1.bias": (3072,), "mlp.fc2.weight": (768, 3072), "mlp.fc2.bias": (768,),
}


def test_real_architecture_has_the_released_names_and_shapes():
    with torch.device("meta"):
        net = MotionFormer(CONFIGS["synchformer"])
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    want = dict(_REAL_TOP)
    for i in range(12):
        want.update({f"blocks.{i}.{k}": s for k, s in _REAL_BLOCK.items()})
    assert got == want
    assert len(got) == 238


def test_registry_entries_fit_their_architectures():
    for name, arch in CONFIGS.items():
        spec = feature_spec(name)
        assert (spec.kind, spec.dim, spec.frame_size, spec.frame_fps) == ("sync", arch.embed_dim, 224, 25.0)
        assert (spec.window_frames, spec.window_stride, spec.tokens_per_window) == (16, 8, arch.temporal_resolution)
    real = CONFIGS["synchformer"]
    assert (real.embed_dim, real.depth, real.num_heads, real.tubelet, real.patch_size) == (768, 12, 12, 2, 16)


@pytest.mark.parametrize("seconds", [1, 2, 8, 10])
def test_shapes_counts_and_times(tiny, seconds):
    frames = np.tile(hash_frames(FPS, seed=seconds), (seconds, 1, 1, 1))  # content does not matter here
    feats, times = tiny.encode(frames)
    n_tokens = 8 * (math.floor((25 * seconds - 16) / 8) + 1)
    assert n_tokens == sync_token_count(seconds, tiny.spec) == {1: 16, 2: 40, 8: 192, 10: 240}[seconds]
    assert feats.shape == (n_tokens, 64) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
    assert times.shape == (n_tokens,) and times.dtype == np.float32
    np.testing.assert_array_equal(times, sync_token_times(n_tokens // 8, tiny.spec))
    # token k of window w is the tubelet of frames 8w + 2k, 8w + 2k + 1: its centre is (8w + 2k + 1) / 25 s
    w, k = np.divmod(np.arange(n_tokens), 8)
    np.testing.assert_allclose(times, (8 * w + 2 * k + 1) / FPS, rtol=0, atol=1e-6)
    assert times.max() < seconds


def test_matches_reference_golden():
    """The reference's output (MMAudio code, same random weights and frames; see make_synchformer_golden.py)."""
    golden = np.load(GOLDEN)
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        path = build_random_checkpoint(TINY, Path(tmp) / "w.pth", seed=int(golden["weights_seed"]))
        enc = SynchformerEncoder.load(TINY, str(path))
    feats, _ = enc.encode(hash_frames(int(golden["n_frames"]), int(golden["frames_seed"])))
    want = torch.from_numpy(golden["features"])
    assert want.shape == feats.shape == (16, 64)
    assert want.std() > 0.5  # a real signal, not a degenerate one
    torch.testing.assert_close(feats, want, rtol=0, atol=2e-5)


def test_window_layout_and_batching(tiny):
    frames = hash_frames(40, seed=7)  # 4 windows
    feats, _ = tiny.encode(frames)
    # the reference layout: stack the windows, run each through the MotionFormer
    video = tiny.preprocess(frames)  # [T, 3, H, W]
    windows = torch.stack([video[8 * w:8 * w + 16] for w in range(4)]).transpose(1, 2)  # [4, 3, 16, H, W]
    with torch.no_grad():
        per_window = tiny.vfeat_extractor(windows).reshape(32, 64)
    torch.testing.assert_close(feats, per_window, rtol=0, atol=1e-5)
    # windows do not see each other: dropping the first 8 frames drops exactly the first window
    shifted, _ = tiny.encode(frames[8:])
    torch.testing.assert_close(shifted, feats[8:], rtol=0, atol=1e-5)
    # the batch size changes nothing; frames past the last window are ignored
    one_by_one, _ = tiny.encode(np.concatenate([frames, frames[:7]]), batch_windows=1)
    torch.testing.assert_close(one_by_one, feats, rtol=0, atol=1e-5)


def test_deterministic_and_identity(tiny_ckpt, tiny):
    frames = hash_frames(24, seed=1)
    again = SynchformerEncoder.load(TINY, str(tiny_ckpt))
    assert torch.equal(tiny.encode(frames)[0], again.encode(frames)[0])
    assert tiny.identity == f"{TINY}@sha256:{file_sha256(tiny_ckpt)[:12]}"
    other = build_random_checkpoint(TINY, tiny_ckpt.parent / "other.pth", seed=4)
    assert SynchformerEncoder.load(TINY, str(other)).identity != tiny.identity
    assert not torch.equal(SynchformerEncoder.load(TINY, str(other)).encode(frames)[0], tiny.encode(frames)[0])


def test_loads_through_the_registry_and_defaults(tiny_ckpt):
    enc = load_encoder(TINY, str(tiny_ckpt))
    assert isinstance(enc, SynchformerEncoder) and enc.dtype == torch.float32 and not enc.training
    assert enc.spec == feature_spec(TINY)
    # the tiny entry has no released file: its seed-0 random weights are built in memory
    assert SynchformerEncoder.load(TINY).identity == f"{TINY}@random-seed0"
    with pytest.raises(FileNotFoundError, match="synchformer_state_dict.pth") as e:
        SynchformerEncoder.load("synchformer", "/nonexistent/synchformer_state_dict.pth")
    assert RELEASE_URL in str(e.value)


def test_file_holds_the_audio_branch_too(tiny_ckpt):
    state = torch.load(tiny_ckpt, weights_only=True)
    assert {"aproj.weight", "vproj.weight", "transformer.OFF_tok"} <= set(state)
    assert all(k.startswith("vfeat_extractor.") for k in SynchformerEncoder(TINY).state_dict())


def _write(tmp_path, state, name="bad.pth"):
    path = tmp_path / name
    torch.save(state, path)
    return str(path)


def test_strict_loading_names_the_tensors(tmp_path):
    state = random_state_dict(TINY)
    missing = {k: v for k, v in state.items() if "blocks.1.timeattn" not in k}
    with pytest.raises(ValueError, match=r"4 missing: vfeat_extractor\.blocks\.1\.timeattn\.qkv\.weight") as e:
        SynchformerEncoder.load(TINY, _write(tmp_path, missing, "missing.pth"))
    assert "missing.pth" in str(e.value)

    extra = dict(state, **{"vfeat_extractor.head.weight": torch.zeros(3, 64)})
    with pytest.raises(ValueError, match=r"1 unexpected: vfeat_extractor\.head\.weight"):
        SynchformerEncoder.load(TINY, _write(tmp_path, extra))

    wrong = dict(state, **{"vfeat_extractor.temp_embed": torch.zeros(1, 4, 64)})
    with pytest.raises(ValueError, match=r"wrong shape: vfeat_extractor\.temp_embed \(1, 4, 64\) \(expected \(1, 8, 64\)\)"):
        SynchformerEncoder.load(TINY, _write(tmp_path, wrong))

    # the real architecture refuses the tiny file, naming the file and the shape mismatches
    with pytest.raises(ValueError, match=r"does not fit the 'synchformer' Synchformer \(768-d, depth 12\)"):
        SynchformerEncoder.load("synchformer", _write(tmp_path, state, "tiny.pth"))

    with pytest.raises(ValueError, match="no vfeat_extractor"):
        SynchformerEncoder.load(TINY, _write(tmp_path, {"aproj.weight": torch.zeros(2, 2)}))
    with pytest.raises(ValueError, match="expected a state dict"):
        SynchformerEncoder.load(TINY, _write(tmp_path, [torch.zeros(1)]))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth: cannot read"):
        SynchformerEncoder.load(TINY, str(garbage))


def test_bad_frames(tiny):
    with pytest.raises(ValueError, match="too short: 15 frames"):
        tiny.encode(hash_frames(15, seed=0))
    with pytest.raises(ValueError, match=r"\[T, 224, 224, 3\]"):
        tiny.encode(np.zeros((20, 256, 224, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        tiny.encode(np.zeros((20, 224, 224, 3), np.float32))


def test_preprocess_matches_the_reference_normalisation(tiny):
    frames = np.zeros((2, 224, 224, 3), np.uint8)
    frames[0, 0, 0] = (0, 128, 255)
    x = tiny.preprocess(frames)
    assert x.shape == (2, 3, 224, 224) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), [-1.0, 128 / 255 * 2 - 1, 1.0], atol=1e-6)
    assert x[1].eq(-1).all()


def test_bfloat16_path(tiny_ckpt, tiny):
    """dtype=bf16 (the CUDA default) runs the same code in bf16 and still returns float32 features."""
    frames = hash_frames(24, seed=2)
    half = SynchformerEncoder.load(TINY, str(tiny_ckpt), dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.identity == tiny.identity
    got, want = half.encode(frames)[0], tiny.encode(frames)[0]
    assert got.dtype == torch.float32
    assert (got - want).norm() / want.norm() < 0.05
