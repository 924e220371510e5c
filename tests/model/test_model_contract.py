"""The network side of the feature contract: sync tokens placed by their real times, widths and
rates from the encoder registry, and a bf16 network."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from model.conditioning import (
    interpolation_weights,
    latent_frame_times,
    layout_token_times,
    resample_at_times,
)
from model.config import LATENT_RATE, config_for_encoders, get_config
from model.encoders.registry import (
    DEMO_ENCODERS,
    PAPER_ENCODERS,
    feature_spec,
    sync_token_count,
    sync_token_times,
)
from model.mmdit import MMDiT
from model.synthetic import synthetic_conditions


def _trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """adaLN-zero (and zero window positions) make a fresh model trivial; give them weights."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


# ---- sync token counts and times --------------------------------------------------------------


@pytest.mark.parametrize("duration,tokens", [(2.0, 40), (8.0, 192), (10.0, 240), (0.6, 0), (0.64, 8)])
def test_sync_token_counts_match_the_synchformer(duration, tokens):
    assert sync_token_count(duration) == tokens
    cfg = get_config("tiny")
    assert sync_token_count(duration, cfg.sync_spec()) == tokens
    cond = synthetic_conditions(cfg, [duration, 10.0], generator=torch.Generator().manual_seed(0))
    assert cond.sync_mask.sum(1).tolist() == [tokens, 240]
    n = max(tokens, 1)
    # synthetic inputs carry the encoder's real token times
    assert np.allclose(cond.sync_times[0, :tokens].numpy(), sync_token_times(n // 8 or 1)[:tokens])


def test_layout_times_are_the_registry_times():
    cfg = get_config("paper")
    times = layout_token_times(240, cfg)
    assert torch.allclose(times, torch.from_numpy(sync_token_times(30)))
    # hand-computed: token k of window w is centred on frame 8w + 2k + 1 at 25 fps
    assert times[:3].tolist() == pytest.approx([1 / 25, 3 / 25, 5 / 25])
    assert times[8].item() == pytest.approx(9 / 25)  # window 1 starts 8 frames later
    assert times[4].item() == times[8].item()  # windows overlap: same instant


def test_a_step_at_a_known_token_lands_on_the_nearest_latent_frame():
    # 8 s: 24 windows, 192 tokens, at odd multiples of 1/25 s; step between 3.96 s and 4.04 s
    times = torch.from_numpy(sync_token_times(24))
    step = (times >= 101 / 25).float()
    frames = 345
    out = resample_at_times(step[None, :, None], times[None], torch.ones(1, 192, dtype=torch.bool),
                            latent_frame_times(frames, LATENT_RATE))[0, :, 0]
    centres = (np.arange(frames) + 0.5) / LATENT_RATE
    unique = np.unique(times.numpy())
    expected = np.interp(centres, unique, (unique >= 101 / 25 - 1e-6).astype(np.float64))
    assert np.allclose(out.numpy(), expected, atol=1e-5)
    # the step's midpoint (4.0 s) is nearest to the centre of latent frame 172 (4.0054 s)
    nearest = int(np.argmin(np.abs(centres - 4.0)))
    assert nearest == 172 and int(torch.nonzero(out >= 0.5)[0]) == nearest
    assert out[:170].max() == 0 and out[175:].min() == 1
    # a uniform 24 tokens/s reading would have put token 100 (the first 1) at 4.19 s, frame 180
    assert out[176:].min() == 1 and out[171] < 0.5


def test_tokens_sharing_a_time_are_averaged_and_padding_is_never_read():
    times = layout_token_times(16, get_config("tiny"))  # two windows; tokens 4-7 and 8-11 coincide
    feats = torch.cat([torch.zeros(8), torch.ones(8)])  # window index
    w = interpolation_weights(times[None], torch.ones(1, 16, dtype=torch.bool), torch.tensor([9 / 25]))[0, 0]
    assert w[4].item() == pytest.approx(0.5) and w[8].item() == pytest.approx(0.5) and w.sum().item() == pytest.approx(1)
    assert (w @ feats).item() == pytest.approx(0.5)
    # sample 2 has 8 real tokens; its padding holds NaN features and NaN times
    f = torch.stack([feats, feats])[..., None].clone()
    t = torch.stack([times, times]).clone()
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[1, 8:] = False
    f[1, 8:], t[1, 8:] = float("nan"), float("nan")
    out = resample_at_times(f, t, mask, latent_frame_times(40, LATENT_RATE))
    assert torch.isfinite(out).all()
    assert (out[1] == 0).all()  # only window 0 is real: clamped to it
    assert out[0, -1, 0] == 1.0  # beyond the last token: its value


def test_real_sync_times_move_the_condition():
    cfg = get_config("tiny")
    model = _trained_like(MMDiT(cfg).eval())
    cond = synthetic_conditions(cfg, [3.0, 2.0], generator=torch.Generator().manual_seed(0))
    x, t = torch.randn(*cond.latent_mask.shape, cfg.latent_dim), torch.tensor([0.3, 0.6])
    with torch.no_grad():
        v_given = model(x, t, cond)
        v_layout = model(x, t, replace(cond, sync_times=None))  # None means the same layout
        v_shifted = model(x, t, replace(cond, sync_times=cond.sync_times + 0.5))
    assert torch.allclose(v_given, v_layout, atol=1e-6)
    assert (v_given - v_shifted).abs().max() > 1e-3


def test_window_position_embedding_distinguishes_tokens_of_a_window():
    cfg = get_config("tiny")
    model = MMDiT(cfg).eval()
    assert model.sync_cond.window_pos.shape == (8, cfg.sync_dim)
    sync = torch.zeros(1, 16, cfg.sync_dim)
    mask = torch.ones(1, 16, dtype=torch.bool)
    with torch.no_grad():
        before = model.sync_cond(sync, mask, 40)
        model.sync_cond.window_pos.normal_()
        after = model.sync_cond(sync, mask, 40)
    assert torch.allclose(before, before[:, :1].expand_as(before))  # constant input, constant output
    assert not torch.allclose(after, after[:, :1].expand_as(after))


# ---- widths and rates from the registry --------------------------------------------------------


def test_paper_config_takes_the_paper_encoders_widths():
    paper = get_config("paper")
    assert paper.clip_dim == feature_spec(PAPER_ENCODERS["clip"]).dim == 1280
    assert paper.sync_dim == 768 and paper.latent_dim == 40
    assert paper.clip_rate == 8.0 and paper.sync_rate == 25.0
    assert config_for_encoders("paper", None) == config_for_encoders("paper", PAPER_ENCODERS) == paper


def test_config_for_encoders_sets_widths_and_refuses_contradictions():
    demo = config_for_encoders("tiny", DEMO_ENCODERS)
    assert (demo.clip_dim, demo.sync_dim, demo.latent_dim) == (64, 64, 40)
    assert demo.hidden_dim == get_config("tiny").hidden_dim
    mmaudio = config_for_encoders("paper", {**PAPER_ENCODERS, "clip": "dfn5b-h14-384"})
    assert mmaudio.clip_dim == 1024
    with pytest.raises(ValueError, match=r"clip_dim=1024 .*'metaclip-bigg14-quickgelu' gives 1280-d"):
        config_for_encoders("paper", PAPER_ENCODERS, clip_dim=1024)
    with pytest.raises(ValueError, match="sync encoder 'dfn5b-h14-384' is a clip encoder"):
        config_for_encoders("paper", {"sync": "dfn5b-h14-384"})
    with pytest.raises(ValueError, match="clip_rate=4.0 but the encoders give 8.0"):
        config_for_encoders("paper", PAPER_ENCODERS, clip_rate=4.0)
    with pytest.raises(KeyError, match="unknown encoder 'nope'"):
        config_for_encoders("paper", {"clip": "nope"})


def test_old_sync_rate_field_is_still_read():
    old = get_config("tiny").model_dump()
    old["sync_rate"] = 24.0  # configs saved before the layout carried this field
    from model.config import MMDiTConfig

    assert MMDiTConfig.model_validate(old).sync_rate == 25.0


# ---- bf16 ---------------------------------------------------------------------------------------


def test_bf16_model_forward_runs_and_is_close_to_fp32():
    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = _trained_like(MMDiT(cfg).eval())
    cond = synthetic_conditions(cfg, [1.5, 0.8], generator=torch.Generator().manual_seed(1))
    x, t = torch.randn(*cond.latent_mask.shape, cfg.latent_dim), torch.tensor([0.2, 0.7])
    with torch.no_grad():
        v32 = model(x, t, cond)
        low = model.to(torch.bfloat16)
        assert low.dtype == torch.bfloat16
        v16 = low(x, t, cond)  # fp32 inputs into a bf16 network
        table = low.rotary.table(10, cfg.clip_rate)
    assert v16.dtype == x.dtype and torch.isfinite(v16).all()
    rel = (v16 - v32).norm() / v32.norm()
    assert rel < 0.05, rel
    # RoPE tables stay fp32 and exact in a bf16 network
    assert table.cos.dtype == torch.float32
    angle = 9 * LATENT_RATE / cfg.clip_rate  # token 9 at frequency 0
    assert table.cos[9, 0].item() == pytest.approx(np.cos(angle), abs=1e-6)


# ---- torch.compile ------------------------------------------------------------------------------


@pytest.mark.slow
def test_prepare_and_a_training_step_compile_as_one_graph():
    """No data-dependent check inside: `prepare`, and drop + loss, trace with fullgraph=True."""
    from model.flow import FlowMatching
    from model.inputs import MODALITIES

    cfg = get_config("tiny")
    torch.manual_seed(0)
    model = _trained_like(MMDiT(cfg))
    cond = synthetic_conditions(cfg, [1.0, 0.7], generator=torch.Generator().manual_seed(0))
    cond = replace(cond, voice_times=torch.rand(cond.voice_ids.shape))  # aligned voice tokens too
    prepare = torch.compile(model.prepare, fullgraph=True, backend="eager")
    compiled, eager = prepare(cond), model.prepare(cond)
    assert torch.allclose(compiled.sync_frames, eager.sync_frames, atol=1e-6)
    assert torch.allclose(compiled.text_tokens, eager.text_tokens, atol=1e-6)

    flow = FlowMatching()
    x1 = torch.randn(*cond.latent_mask.shape, cfg.latent_dim)
    x0, t = torch.randn_like(x1), torch.tensor([0.3, 0.8])
    dropped = flow.draw_modality_drops(2, torch.Generator().manual_seed(0))

    def step(x1, x0, t, cond, dropped):
        for j, modality in enumerate(MODALITIES):
            cond = cond.drop([modality], dropped[:, j])
        return flow.loss(model, x1, cond, t=t, x0=x0, dropout=False)

    loss = torch.compile(step, fullgraph=True, backend="eager")(x1, x0, t, cond, dropped)
    assert torch.allclose(loss, step(x1, x0, t, cond, dropped), atol=1e-6)
    loss.backward()
    assert model.sync_cond.window_pos.grad is not None


def test_value_checks_run_in_eager_and_on_demand():
    from model.inputs import Conditions, value_checks

    bad = {"latent_mask": torch.tensor([[True, False], [False, False]]), "start_s": torch.zeros(2),
           "duration_s": torch.ones(2)}
    with pytest.raises(ValueError, match="at least one real latent frame"):
        Conditions(**bad)
    with value_checks(False):  # e.g. a trainer that checked its batches at collate time
        cond = Conditions(**bad)
    with pytest.raises(ValueError, match="at least one real latent frame"):
        cond.check_values()
