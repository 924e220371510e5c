"""Appending padding to any stream leaves outputs at real positions unchanged."""
from dataclasses import replace

import pytest
import torch

from model.config import get_config
from model.lyrics_encoder import LyricsEncoder
from model.mmdit import MMDiT
from model.synthetic import synthetic_conditions

ATOL = 1e-5


def randomize_zero_init(model: torch.nn.Module, seed: int = 0) -> None:
    """adaLN-zero makes a fresh model output zeros; give those layers weights, as after training."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if bool((p == 0).all()):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def _pad(x, extra, fill):
    """Append `extra` positions along dim 1 filled with `fill` (garbage for features, False for masks)."""
    shape = list(x.shape)
    shape[1] = extra
    if x.dtype == torch.bool:
        return torch.cat([x, torch.zeros(shape, dtype=torch.bool)], dim=1)
    if x.dtype == torch.long:
        return torch.cat([x, torch.full(shape, fill, dtype=torch.long)], dim=1)
    return torch.cat([x, torch.full(shape, float(fill))], dim=1)


def pad_stream(cond, name, extra):
    mask_name = "voice_mask" if name == "voice_ids" else f"{name}_mask"
    garbage = 7 if name == "voice_ids" else 3.0
    changes = {name: _pad(getattr(cond, name), extra, garbage), mask_name: _pad(getattr(cond, mask_name), extra, 0)}
    times_name = {"sync": "sync_times", "voice_ids": "voice_times"}.get(name)
    if times_name and getattr(cond, times_name) is not None:  # garbage times in the padding too
        changes[times_name] = _pad(getattr(cond, times_name), extra, float("nan"))
    return replace(cond, **changes)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cfg = get_config("tiny")
    model = MMDiT(cfg).eval()
    randomize_zero_init(model)
    g = torch.Generator().manual_seed(1)
    cond = synthetic_conditions(cfg, [1.0, 0.6, 0.8], generator=g, has_video=[True, True, False], has_caption=[True, False, True])
    x = torch.randn(*cond.latent_mask.shape, cfg.latent_dim, generator=g)
    t = torch.tensor([0.2, 0.5, 0.9])
    return cfg, model, cond, x, t


def run_with_streams(model, x, t, cond):
    """Velocity and the clip/text streams after the first joint block."""
    captured = {}
    hook = model.joint_blocks[0].register_forward_hook(lambda m, i, o: captured.update(o))
    try:
        with torch.no_grad():
            v = model(x, t, cond)
    finally:
        hook.remove()
    return v, captured


def real(x, mask):
    return [x[b, mask[b]] for b in range(x.shape[0])]


@pytest.mark.parametrize("stream", ["latent", "clip", "sync", "caption", "voice_ids"])
def test_appended_padding_keeps_real_outputs(setup, stream):
    _cfg, model, cond, x, t = setup
    extra = 13
    if stream == "latent":
        padded = replace(cond, latent_mask=_pad(cond.latent_mask, extra, 0))
        x_padded = _pad(x, extra, 5.0)
    else:
        padded, x_padded = pad_stream(cond, stream, extra), x
    v_ref, s_ref = run_with_streams(model, x, t, cond)
    v_pad, s_pad = run_with_streams(model, x_padded, t, padded)

    for a, b in zip(real(v_ref, cond.latent_mask), real(v_pad, padded.latent_mask)):
        assert torch.allclose(a, b, atol=ATOL), (a - b).abs().max()
    assert v_ref.abs().max() > 1e-3  # the comparison is not between zeros
    # padded latent frames give zero velocity
    assert (v_pad[~padded.latent_mask] == 0).all()

    # every stream at its real tokens, after a joint block
    prep_ref, prep_pad = model.prepare(cond), model.prepare(padded)
    for name, m_ref, m_pad in (
        ("latent", prep_ref.latent_mask, prep_pad.latent_mask),
        ("clip", prep_ref.clip_mask, prep_pad.clip_mask),
        ("text", prep_ref.text_mask, prep_pad.text_mask),
    ):
        for a, b in zip(real(s_ref[name], m_ref), real(s_pad[name], m_pad)):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=ATOL), (name, (a - b).abs().max())


def test_lyrics_encoder_keeps_padding_zero_and_ignores_it():
    torch.manual_seed(0)
    cfg = get_config("tiny").lyrics
    enc = LyricsEncoder(cfg).eval()
    with torch.no_grad():
        for block in enc.blocks:  # GRN starts as identity; make it act
            block.grn.gamma.normal_()
            block.grn.beta.normal_()
    ids = torch.randint(1, cfg.vocab_size, (2, 20))
    mask = torch.arange(20)[None] < torch.tensor([[20], [11]])
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append((i[0], o))) for b in enc.blocks]
    with torch.no_grad():
        out = enc(ids, mask)
        out_padded = enc(torch.cat([ids, torch.randint(1, cfg.vocab_size, (2, 9))], 1), torch.cat([mask, torch.zeros(2, 9, dtype=torch.bool)], 1))
    for h in hooks:
        h.remove()
    assert (out[~mask] == 0).all()
    assert len(seen) == 2 * cfg.num_blocks
    for block_in, block_out in seen[: cfg.num_blocks]:  # before and after every block
        assert (block_in[~mask] == 0).all() and (block_out[~mask] == 0).all()
    assert torch.allclose(out[mask], out_padded[:, :20][mask], atol=ATOL)
    assert out[mask].abs().min() > 0


def test_nan_in_padding_never_reaches_real_outputs(setup):
    """Masks select (torch.where), never multiply: NaN/inf in every padded slot stays there."""
    _cfg, model, cond, x, t = setup
    extra = 5
    dirty = cond
    for name in ("clip", "sync", "caption"):
        dirty = pad_stream(dirty, name, extra)
        feats = getattr(dirty, name).clone()
        feats[~getattr(dirty, f"{name}_mask")] = float("nan")
        dirty = replace(dirty, **{name: feats})
    dirty = replace(dirty, latent_mask=_pad(cond.latent_mask, extra, 0))
    x_dirty = _pad(x, extra, float("nan"))
    x_dirty[:, : x.shape[1]][~cond.latent_mask] = float("inf")
    with torch.no_grad():
        v_ref = model(x, t, cond)
        v_dirty = model(x_dirty, t, dirty)
    assert torch.isfinite(v_dirty).all()
    assert (v_dirty[~dirty.latent_mask] == 0).all()
    for a, b in zip(real(v_ref, cond.latent_mask), real(v_dirty, dirty.latent_mask)):
        assert torch.allclose(a, b, atol=ATOL), (a - b).abs().max()

    # training: NaN in the padding of the data latent gives a finite loss and finite gradients
    from model.config import FlowConfig
    from model.flow import FlowMatching

    x1 = torch.where(dirty.latent_mask[..., None], torch.randn_like(x_dirty), torch.full_like(x_dirty, float("nan")))
    model.zero_grad()
    loss = FlowMatching(FlowConfig()).loss(model, x1, dirty, generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.zero_grad()
