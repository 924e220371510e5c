"""Configs, flow-matching loss, timestep sampling, time resampling, seconds embeddings, VoiceBPE collation."""
import pytest
import torch
from pydantic import ValidationError

from model.conditioning import SecondsEmbedding, resample_by_time
from model.config import LATENT_RATE, FlowConfig, get_config
from model.flow import FlowMatching, masked_mse
from model.inputs import latent_mask_for_durations
from model.lyrics_encoder import LyricsEncoder, pad_voice_ids
from model.mmdit import MMDiT


def count_params(cfg):
    with torch.device("meta"):
        return sum(p.numel() for p in MMDiT(cfg).parameters())


def test_named_configs_and_paper_size():
    tiny, small, paper = (get_config(n) for n in ("tiny", "small", "paper"))
    assert count_params(tiny) < count_params(small) < count_params(paper)
    assert paper.joint_depth + paper.single_depth == 24
    assert abs(count_params(paper) / 1.55e9 - 1) < 0.05  # the paper's ≈1.55 B, with temporal convolutions
    assert get_config("tiny", joint_depth=3).joint_depth == 3


def test_config_errors_name_the_field():
    with pytest.raises(KeyError, match="unknown model config 'huge'"):
        get_config("huge")
    with pytest.raises(ValidationError, match="joint_depth"):
        get_config("tiny", joint_depth=0)
    with pytest.raises(ValidationError, match="not divisible by num_heads"):
        get_config("tiny", num_heads=5)
    with pytest.raises(ValidationError, match="timestep_sampling"):
        FlowConfig(timestep_sampling="beta")


def test_loss_counts_only_real_frames():
    pred, target = torch.zeros(2, 5, 3), torch.ones(2, 5, 3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    pred_garbage = pred.clone()
    pred_garbage[0, 3:] = 100.0
    assert masked_mse(pred, target, mask) == masked_mse(pred_garbage, target, mask) == 1.0


def test_linear_path_and_velocity_target():
    flow = FlowMatching()
    x0, x1 = torch.randn(3, 4, 2), torch.randn(3, 4, 2)
    t = torch.tensor([0.0, 0.25, 1.0])
    xt = flow.interpolate(x0, x1, t)
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[2], x1[2])
    assert torch.allclose(xt[1], 0.75 * x0[1] + 0.25 * x1[1])

    class Exact:  # a model that predicts x1 - x0 exactly has zero loss
        def __call__(self, x_t, t, cond):
            return x1 - x0

    class Cond:
        latent_mask = torch.ones(3, 4, dtype=torch.bool)

    assert flow.loss(Exact(), x1, Cond(), t=t, x0=x0, dropout=False) == 0


def test_timestep_sampling_distributions():
    g = torch.Generator().manual_seed(0)
    uni = FlowMatching(FlowConfig(timestep_sampling="uniform")).sample_timesteps(20000, g)
    ln = FlowMatching(FlowConfig(timestep_sampling="logit_normal")).sample_timesteps(20000, g)
    assert 0 <= uni.min() and uni.max() <= 1 and 0 < ln.min() and ln.max() < 1
    assert abs(uni.mean() - 0.5) < 0.01 and abs(uni.std() - (1 / 12) ** 0.5) < 0.01
    # logit-normal(0, 1) concentrates around the middle: fewer draws in the outer tenths than uniform
    outer = lambda x: ((x < 0.1) | (x > 0.9)).float().mean()
    assert abs(outer(uni) - 0.2) < 0.02 and outer(ln) < 0.05
    assert torch.allclose(torch.logit(ln).mean(), torch.tensor(0.0), atol=0.03)


UNIFORM_RATE = 24.0  # a uniformly spaced source (real sync times: test_model_contract.py)


def test_uniform_source_resampled_onto_latent_frames_by_time():
    # 8 s of 192 uniformly spaced tokens -> 345 latent frames; a feature equal to each token's time
    sync_times = (torch.arange(192) + 0.5) / UNIFORM_RATE
    out = resample_by_time(sync_times[None, :, None], torch.tensor([192]), UNIFORM_RATE, LATENT_RATE, 345)
    latent_times = (torch.arange(345) + 0.5) / LATENT_RATE
    inner = (latent_times > sync_times[0]) & (latent_times < sync_times[-1])
    assert out.shape == (1, 345, 1)
    assert torch.allclose(out[0, inner, 0], latent_times[inner], atol=1e-5)
    # a step at 4 s lands on the latent frame at 4 s (frame 172), not at index 96 -> frame 96
    step = (sync_times >= 4.0).float()
    onto = resample_by_time(step[None, :, None], torch.tensor([192]), UNIFORM_RATE, LATENT_RATE, 345)[0, :, 0]
    assert onto[:170].max() == 0 and onto[174:].min() == 1


def test_resampling_clamps_to_each_samples_real_length():
    feats = torch.stack([torch.arange(10.0), torch.arange(10.0)])[..., None]
    feats[1, 4:] = 1e6  # padding of sample 1
    out = resample_by_time(feats, torch.tensor([10, 4]), 2.0, 4.0, 20)
    assert out[1].max() == 3.0  # holds its last real value
    with pytest.raises(ValueError, match="source lengths"):
        resample_by_time(feats, torch.tensor([0, 4]), 2.0, 4.0, 20)


def test_seconds_embedding_is_per_second_and_interpolates():
    emb = SecondsEmbedding(11, 4)
    e = emb(torch.tensor([3.0, 3.5, 4.0, 42.0, 10.0]))
    assert torch.allclose(e[0], emb.table.weight[3]) and torch.allclose(e[2], emb.table.weight[4])
    assert torch.allclose(e[1], (emb.table.weight[3] + emb.table.weight[4]) / 2)
    assert torch.allclose(e[3], e[4])  # clamped to the last second


def test_voice_ids_padded_to_latent_frames():
    frames = latent_mask_for_durations([1.0, 0.5], LATENT_RATE, 10.0).sum(1).tolist()
    ids, mask = pad_voice_ids([torch.tensor([5, 6, 7]), None], frames)
    assert ids.shape == (2, 44) and mask.sum(1).tolist() == [3, 0]
    with pytest.raises(ValueError, match="sample 1: 30 VoiceBPE ids exceed its 22 latent frames"):
        pad_voice_ids([torch.tensor([1]), torch.ones(30, dtype=torch.long)], frames)


def test_lyrics_encoder_refuses_bad_ids():
    enc = LyricsEncoder(get_config("tiny").lyrics)
    mask = torch.ones(1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"VoiceBPE id out of range \[0, 512\)"):
        enc(torch.tensor([[1, 2, 600]]), mask)
    with pytest.raises(ValueError, match="exceed the encoder's table of 4000"):
        enc(torch.ones(1, 4001, dtype=torch.long), torch.ones(1, 4001, dtype=torch.bool))


def test_temporal_convolutions_default_on_and_respect_padding():
    from model.blocks import TemporalConv
    from model.config import POINTWISE

    paper = get_config("paper")
    assert (paper.stream_kernel_size, paper.input_kernel_size, paper.final_kernel_size) == (3, 7, 7)
    model = MMDiT(get_config("tiny"))
    block = model.joint_blocks[0]
    assert block.streams["latent"].ffn.gate_proj.conv.kernel_size == (3,)
    assert block.streams["clip"].out_proj.conv.kernel_size == (3,)
    assert block.streams["text"].ffn.gate_proj.kernel_size == 1  # text stays pointwise
    assert model.final.proj.conv.kernel_size == (7,) and model.latent_in.conv.conv.kernel_size == (7,)
    flat = MMDiT(get_config("tiny", **POINTWISE))
    assert flat.final.proj.kernel_size == 1 and count_params(get_config("tiny", **POINTWISE)) < count_params(get_config("tiny"))
    with pytest.raises(ValidationError, match="stream_kernel_size must be odd"):
        get_config("tiny", stream_kernel_size=4)

    conv = TemporalConv(2, 3, 5)
    x = torch.randn(1, 10, 2)
    mask = torch.arange(10)[None] < 6
    dirty = x.clone()
    dirty[0, 6:] = float("nan")
    out_clean = conv(torch.where(mask[..., None], x, 0.0))
    out_dirty = conv(dirty, mask)
    assert torch.allclose(out_dirty[0, :6], out_clean[0, :6])
    # a real frame sees its neighbours (receptive field of 5)
    bumped = x.clone()
    bumped[0, 2] += 1
    diff = (conv(bumped, mask) - conv(x, mask)).abs().sum(-1)[0]
    assert (diff[:5] > 0).all() and (diff[5:] == 0).all()
