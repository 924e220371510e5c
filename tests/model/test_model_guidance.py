"""Missing inputs, CFG dropout and guidance; sampling determinism and mixed durations."""
from dataclasses import replace

import pytest
import torch

from model.config import FlowConfig, get_config
from model.flow import EulerSampler, FlowMatching
from model.inputs import Conditions, latent_mask_for_durations
from model.mmdit import MMDiT
from model.synthetic import synthetic_conditions

ATOL = 1e-5


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = get_config("tiny")
    model = MMDiT(cfg).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # adaLN-zero output is 0; act like a trained model
        for p in model.parameters():
            if bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    cond = synthetic_conditions(cfg, [1.0, 0.8, 0.5], generator=g)
    x = torch.randn(*cond.latent_mask.shape, cfg.latent_dim, generator=g)
    t = torch.tensor([0.1, 0.5, 0.8])
    return cfg, model, cond, x, t


def velocity(model, x, t, cond):
    with torch.no_grad():
        return model(x, t, cond)


def test_dropping_video_equals_passing_its_empty_tokens(setup):
    _cfg, model, cond, x, t = setup
    dropped = cond.drop(["video"])
    B = cond.batch_size
    explicit = replace(
        cond,
        clip=model.empty_clip.detach().expand(B, 1, -1), clip_mask=torch.ones(B, 1, dtype=torch.bool),
        sync=model.empty_sync.detach().expand(B, 1, -1), sync_mask=torch.ones(B, 1, dtype=torch.bool),
        sync_times=None,
    )
    v_drop, v_empty, v_full = (velocity(model, x, t, c) for c in (dropped, explicit, cond))
    assert torch.allclose(v_drop, v_empty, atol=ATOL)
    assert (v_drop - v_full).abs().max() > 1e-3  # video did matter


def test_dropping_caption_equals_passing_its_empty_token(setup):
    _cfg, model, cond, x, t = setup
    B = cond.batch_size
    explicit = replace(cond, caption=model.empty_caption.detach().expand(B, 1, -1), caption_mask=torch.ones(B, 1, dtype=torch.bool))
    v_drop, v_empty, v_full = (velocity(model, x, t, c) for c in (cond.drop(["caption"]), explicit, cond))
    assert torch.allclose(v_drop, v_empty, atol=ATOL)
    assert (v_drop - v_full).abs().max() > 1e-3


def test_dropping_voice_equals_its_empty_token(setup):
    """The empty voice token lives after the lyrics encoder: dropping ids == passing no ids at all."""
    _cfg, model, cond, x, t = setup
    no_ids = replace(cond, voice_ids=None, voice_mask=None)
    v_drop, v_none, v_full = (velocity(model, x, t, c) for c in (cond.drop(["lyrics"]), no_ids, cond))
    assert torch.allclose(v_drop, v_none, atol=ATOL)
    assert (v_drop - v_full).abs().max() > 1e-3


def test_dropping_some_samples_leaves_the_others(setup):
    _cfg, model, cond, x, t = setup
    which = torch.tensor([False, True, False])
    v_part, v_all, v_full = (velocity(model, x, t, c) for c in (cond.drop(["caption"], which), cond.drop(["caption"]), cond))
    assert torch.allclose(v_part[1], v_all[1], atol=ATOL)
    assert torch.allclose(v_part[0], v_full[0], atol=ATOL) and torch.allclose(v_part[2], v_full[2], atol=ATOL)


def test_cfg_dropout_is_independent_per_modality():
    cfg = get_config("tiny")
    cond = synthetic_conditions(cfg, [0.3] * 2000, generator=torch.Generator().manual_seed(0))
    dropped = FlowMatching(FlowConfig(cfg_dropout=0.3, cfg_drop_all=0.0)).cfg_dropout(cond, torch.Generator().manual_seed(1))
    gone = {m: ~dropped.present(m) for m in ("video", "caption", "voice")}
    for m, flags in gone.items():
        assert abs(flags.float().mean().item() - 0.3) < 0.04, m
    both = (gone["video"] & gone["caption"]).float().mean().item()
    assert abs(both - 0.09) < 0.03  # independent: p * p


def _unconditional_share(flow_cfg, n=20000):
    cond = synthetic_conditions(get_config("tiny"), [0.3] * n, generator=torch.Generator().manual_seed(0))
    dropped = FlowMatching(flow_cfg).cfg_dropout(cond, torch.Generator().manual_seed(2))
    gone = [~dropped.present(m) for m in ("video", "caption", "voice")]
    return (gone[0] & gone[1] & gone[2]).float().mean().item(), gone


def test_cfg_dropout_trains_the_unconditional_branch():
    """CFG's unconditional input (all modalities dropped) must be common in training, not 0.1%."""
    share, gone = _unconditional_share(FlowConfig())
    assert share >= 0.05
    assert abs(share - (0.1 + 0.9 * 0.1**3)) < 0.01
    for flags in gone:  # each modality: drop-all or its own 10% drop
        assert abs(flags.float().mean().item() - (0.1 + 0.9 * 0.1)) < 0.015
    # three independent 10% drops alone give ~0.1%
    alone, _ = _unconditional_share(FlowConfig(cfg_drop_all=0.0))
    assert alone < 0.003


def test_unknown_modality_is_refused(setup):
    with pytest.raises(ValueError, match="unknown modality 'audio'"):
        setup[2].keep_only(["audio"])


def test_cfg_scale_one_equals_the_conditional_prediction(setup):
    cfg, model, cond, x, t = setup
    sampler = EulerSampler()
    prep_c, prep_u = model.prepare(cond), model.prepare(cond.unconditional())
    with torch.no_grad():
        guided = sampler.guided_velocity(model, x, t, prep_c, prep_u, 1.0)
        conditional = model.velocity(x, t, prep_c)
        unconditional = model.velocity(x, t, prep_u)
        strong = sampler.guided_velocity(model, x, t, prep_c, prep_u, 4.5)
    assert torch.allclose(guided, conditional, atol=ATOL)
    assert (conditional - unconditional).abs().max() > 1e-3
    assert torch.allclose(strong, unconditional + 4.5 * (conditional - unconditional), atol=ATOL)
    # whole sampling runs too
    s1 = sampler.sample(model, cond, cfg.latent_dim, torch.Generator().manual_seed(3), num_steps=4, cfg_scale=1.0)
    s0 = sampler.sample(model, cond, cfg.latent_dim, torch.Generator().manual_seed(3), num_steps=4, cfg_scale=None)
    assert torch.allclose(s1, s0, atol=1e-4)


@pytest.mark.parametrize("subset", [[], ["video"], ["caption"], ["transcript"], ["lyrics", "video"], ["video", "caption", "lyrics"]])
def test_sampling_over_any_subset_of_modalities(setup, subset):
    cfg, model, cond, _x, _t = setup
    sub = cond.keep_only(subset)
    out = EulerSampler().sample(model, sub, cfg.latent_dim, torch.Generator().manual_seed(0), num_steps=2)
    assert out.shape == (*cond.latent_mask.shape, cfg.latent_dim) and torch.isfinite(out).all()
    present = {m: bool(sub.present(m).any()) for m in ("video", "caption", "voice")}
    names = {"transcript": "voice", "lyrics": "voice"}
    assert present == {m: m in {names.get(s, s) for s in subset} for m in present}


def test_fixed_seed_gives_identical_samples_and_mixed_durations(setup):
    cfg, model, _, _, _ = setup
    durations = [10.0, 2.5, 0.4]
    cond = synthetic_conditions(cfg, durations, generator=torch.Generator().manual_seed(5))
    assert cond.latent_mask.sum(1).tolist() == [431, 108, 18]
    sample = lambda seed: EulerSampler().sample(model, cond, cfg.latent_dim, torch.Generator().manual_seed(seed), num_steps=3)
    a, b, c = sample(11), sample(11), sample(12)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert (a[~cond.latent_mask] == 0).all() and (a[cond.latent_mask].abs().sum(-1) > 0).all()


def test_latent_frames_for_durations():
    cfg = get_config("tiny")
    mask = latent_mask_for_durations([8.0, 10.0], cfg.latent_rate, cfg.max_duration_s)
    assert mask.sum(1).tolist() == [345, 431]
    with pytest.raises(ValueError, match="durations must be in"):
        latent_mask_for_durations([10.5], cfg.latent_rate, cfg.max_duration_s)


def test_conditions_validate_shapes():
    with pytest.raises(ValueError, match="clip mask shape"):
        Conditions(
            latent_mask=torch.ones(1, 4, dtype=torch.bool), start_s=torch.zeros(1), duration_s=torch.ones(1),
            clip=torch.zeros(1, 3, 8), clip_mask=torch.ones(1, 2, dtype=torch.bool),
        )


def test_sampling_schedule_can_start_at_the_papers_t():
    """FlowConfig.t_start (the paper's "t = 0.05", our reading): Euler grid from t_start to 1."""
    from model.config import PAPER_T_START

    seen = []

    class Recorder:
        def prepare(self, cond):
            return cond

        def velocity(self, x, t, prepared):
            seen.append(float(t[0]))
            return torch.ones_like(x)

    cond = synthetic_conditions(get_config("tiny"), [0.2], generator=torch.Generator().manual_seed(0))
    sampler = EulerSampler(FlowConfig(num_steps=5, t_start=PAPER_T_START))
    out = sampler.sample(Recorder(), cond, 4, torch.Generator().manual_seed(0), cfg_scale=None)
    assert seen[0] == pytest.approx(0.05) and seen[-1] == pytest.approx(0.05 + 4 * 0.19)
    noise = torch.randn((1, cond.latent_mask.shape[1], 4), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, noise + 0.95)  # velocity 1 integrated over [0.05, 1]
    assert EulerSampler().schedule(25)[0] == 0.0  # default: the whole path
    with pytest.raises(ValueError, match="t_start"):
        EulerSampler().sample(Recorder(), cond, 4, t_start=1.0)
