"""PAAPI: RoPE rotates latent, CLIP and voice queries/keys on one audio timeline, never caption tokens.

The tests hook the rotation modules of a real forward pass and check what they did to q and k.
"""
import math

import pytest
import torch

from model.config import CLIP_FPS, LATENT_RATE, get_config
from model.mmdit import MMDiT
from model.synthetic import synthetic_conditions


def expected_rotation(x: torch.Tensor, positions: torch.Tensor, base: float) -> torch.Tensor:
    """Rotate pairs (x_j, x_{j+d/2}) of x [B, h, L, d] by positions[L] * base^(-2j/d), in float64."""
    d = x.shape[-1]
    freqs = torch.tensor([base ** (-2 * j / d) for j in range(d // 2)], dtype=torch.float64)
    ang = positions.double()[:, None] * freqs[None]
    x = x.double()
    a, b = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([a * ang.cos() - b * ang.sin(), a * ang.sin() + b * ang.cos()], dim=-1)


@pytest.fixture(scope="module")
def rotations():
    torch.manual_seed(0)
    cfg = get_config("tiny")
    model = MMDiT(cfg).eval()
    cond = synthetic_conditions(cfg, [1.5, 1.0], generator=torch.Generator().manual_seed(0))
    calls = {}
    hooks = []
    for bi, block in enumerate([*model.joint_blocks, *model.single_blocks]):
        for name, layer in block.streams.items():
            key = (bi, name)
            calls[key] = []
            hooks.append(layer.rope.register_forward_hook(lambda m, i, o, key=key: calls[key].append((i[0], o))))
    with torch.no_grad():
        model(torch.randn(*cond.latent_mask.shape, cfg.latent_dim), torch.rand(2), cond)
    for h in hooks:
        h.remove()
    Lc = cond.caption.shape[1]
    return cfg, calls, Lc


def test_every_stream_of_every_block_goes_through_rope_for_q_and_k(rotations):
    cfg, calls, _ = rotations
    assert len(calls) == 3 * cfg.joint_depth + cfg.single_depth
    last_joint = cfg.joint_depth - 1
    for (block, name), qk in calls.items():
        # queries and keys; the context streams of the last joint block are only attended to (keys)
        want = 1 if (block == last_joint and name != "latent") else 2
        assert len(qk) == want, (block, name, len(qk))


def test_caption_tokens_are_not_rotated(rotations):
    _cfg, calls, Lc = rotations
    for (block, name), qk in calls.items():
        if name != "text":
            continue
        for before, after in qk:
            assert torch.equal(after[:, :, :Lc], before[:, :, :Lc])


@pytest.mark.parametrize("stream,rate", [("latent", LATENT_RATE), ("clip", CLIP_FPS), ("voice", LATENT_RATE)])
def test_temporal_streams_are_rotated_by_their_time_on_the_audio_timeline(rotations, stream, rate):
    cfg, calls, Lc = rotations
    checked = 0
    for (block, name), qk in calls.items():
        if name != ("text" if stream == "voice" else stream):
            continue
        for before, after in qk:
            if stream == "voice":
                before, after = before[:, :, Lc:], after[:, :, Lc:]
            L = before.shape[2]
            seconds = torch.arange(L, dtype=torch.float64) / rate
            positions = seconds * (44100 / 1024)  # in latent frames
            want = expected_rotation(before, positions, cfg.rope_base)
            assert torch.allclose(after.double(), want, atol=1e-4), (after.double() - want).abs().max()
            # a genuine rotation: norms kept, vectors moved (beyond the first position)
            assert torch.allclose(after.norm(dim=-1), before.norm(dim=-1), atol=1e-4)
            assert (after[:, :, 1:] - before[:, :, 1:]).abs().max() > 1e-2
            checked += 1
    assert checked >= 2


def test_clip_frame_and_latent_frame_at_the_same_second_share_a_rotation(rotations):
    """CLIP frame 8 (1.0 s) and latent frame 44100/1024 (1.0 s): one timeline, not one index."""
    _cfg, calls, _ = rotations
    (before, after), _ = calls[(0, "clip")]
    d = before.shape[-1]
    x1, x2 = before[0, 0, 8, 0].item(), before[0, 0, 8, d // 2].item()
    y1, y2 = after[0, 0, 8, 0].item(), after[0, 0, 8, d // 2].item()
    clip_angle = math.atan2(x1 * y2 - x2 * y1, x1 * y1 + x2 * y2)  # angle of the first pair (frequency 1)
    latent_position_at_1s = LATENT_RATE * 1.0
    assert abs(math.remainder(clip_angle - latent_position_at_1s, 2 * math.pi)) < 1e-3
    # and it is not the angle of latent INDEX 8
    assert abs(math.remainder(clip_angle - 8.0, 2 * math.pi)) > 0.1


def test_aligned_voice_tokens_are_rotated_by_their_start_times():
    """With `voice_times` (Whisper/LRC/FunASR alignment) token i sits at its time, per sample."""
    from dataclasses import replace

    torch.manual_seed(0)
    cfg = get_config("tiny")
    model = MMDiT(cfg).eval()
    cond = synthetic_conditions(cfg, [1.5, 1.0], generator=torch.Generator().manual_seed(0))
    Lv = cond.voice_ids.shape[1]
    g = torch.Generator().manual_seed(1)
    times = torch.sort(torch.rand(2, Lv, generator=g) * 1.4, dim=1).values
    times[~cond.voice_mask] = float("nan")  # padding: never read
    cond = replace(cond, voice_times=times)
    seen = []
    hook = model.joint_blocks[0].streams["text"].rope.register_forward_hook(lambda m, i, o: seen.append((i[0], o)))
    with torch.no_grad():
        v = model(torch.randn(*cond.latent_mask.shape, cfg.latent_dim), torch.rand(2), cond)
    hook.remove()
    assert torch.isfinite(v).all()
    Lc = cond.caption.shape[1]
    before, after = seen[0]
    for b in range(2):
        real = cond.voice_mask[b]
        positions = torch.where(real, times[b], torch.zeros(())).double() * LATENT_RATE
        want = expected_rotation(before[b : b + 1, :, Lc:], positions, cfg.rope_base)
        got = after[b : b + 1, :, Lc:].double()
        assert torch.allclose(got[:, :, real], want[:, :, real], atol=1e-4)
    # the caption part is still untouched
    assert torch.equal(after[:, :, :Lc], before[:, :, :Lc])


def test_samples_without_alignment_keep_the_paper_layout():
    """NaN times mark a row without alignment: that sample's tokens sit at latent frame i."""
    from dataclasses import replace

    cfg = get_config("tiny")
    model = MMDiT(cfg).eval()
    cond = synthetic_conditions(cfg, [1.0, 1.0], generator=torch.Generator().manual_seed(0))
    times = torch.rand(2, cond.voice_ids.shape[1]) * 0.9
    Lc = cond.caption.shape[1]
    prep_layout = model.prepare(replace(cond, voice_times=None))
    cos_layout = prep_layout.ropes["text"].cos
    # sample 1 without alignment: NaN times, or zero-filled times (every token at one instant)
    for untimed in (float("nan"), 0.0):
        times[1] = untimed
        cos = model.prepare(replace(cond, voice_times=times)).ropes["text"].cos
        assert cos.ndim == 3 and torch.isfinite(cos).all()
        assert torch.equal(cos[1, Lc:], cos_layout[Lc:])
        assert not torch.allclose(cos[0, Lc:][cond.voice_mask[0]], cos_layout[Lc:][cond.voice_mask[0]])
    # the switch turns alignment off
    off = MMDiT(get_config("tiny", voice_alignment=False)).prepare(replace(cond, voice_times=times))
    assert off.ropes["text"].cos.ndim == 2
