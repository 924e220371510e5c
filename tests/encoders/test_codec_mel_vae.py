"""Mel-VAE codec (MMAudio v1-44.pth layout + BigVGAN-v2): reference equality, shapes, strict loading.

Every test loads random weights written in the released on-disk formats (a plain VAE state dict
like v1-44.pth; a BigVGAN folder with config.json + bigvgan_generator.pt = {"generator": ...})
through the same `MelVAECodec.load` a user's real files go through.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from model.encoders.mel import MMAUDIO_44K
from model.encoders.mel_vae import VAE, VAE_44K, MelVAECodec, build_random_checkpoint, build_random_vocoder
from model.encoders.registry import AUDIO_SAMPLE_RATE, LATENT_HOP, feature_spec, load_encoder
from model.encoders.vocoder import BIGVGAN_44K_CONFIG, BIGVGAN_TINY_CONFIG, build_bigvgan, load_bigvgan
from tests.encoders.make_mel_vae_golden import GOLDEN, GOLDEN_SEED, VOCODE_FRAMES, golden_wave

TINY = "mel-vae-44k-tiny-random"
TOL = 1e-5  # the golden is bitwise equal on the machine that wrote it; allow other CPUs' rounding


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    return build_random_checkpoint(TINY, tmp_path_factory.mktemp("melvae") / "v1-44.pth", seed=GOLDEN_SEED)


@pytest.fixture(scope="module")
def codec(tiny_ckpt):
    return MelVAECodec.load(TINY, str(tiny_ckpt))


def test_equals_mmaudio_reference_golden(codec):
    """Same random weights and wave through MMAudio's code (make_mel_vae_golden.py) and ours."""
    g = np.load(GOLDEN)
    wave = golden_wave(float(g["seconds"]))
    mean, std = codec.encode(wave)
    dec = codec.decode_mel(mean)
    out = codec.vocode(dec[..., :VOCODE_FRAMES])
    for ours, key in ((mean, "mean"), (std, "std"), (dec, "decoded_mel"), (out, "wave")):
        assert tuple(ours.shape) == g[key].shape, key
        np.testing.assert_allclose(ours.numpy(), g[key], rtol=TOL, atol=TOL, err_msg=key)


@pytest.mark.parametrize("seconds", [1, 2, 8, 10])
def test_encode_shapes_and_rate(codec, seconds):
    s = seconds * AUDIO_SAMPLE_RATE
    mean, std = codec.encode(torch.randn(2, s) * 0.1)
    t = math.ceil(s / LATENT_HOP)
    assert mean.shape == std.shape == (2, t, 40)
    assert (std > 0).all() and torch.isfinite(mean).all()
    spec = codec.spec
    assert (spec.kind, spec.dim, spec.sample_rate) == ("latent", 40, 44100)
    assert spec.rate == pytest.approx(44100 / 1024) and t == math.ceil(seconds * spec.rate)


@pytest.mark.parametrize("seconds", [1, 2])
def test_decode_shapes(codec, seconds):
    mean, _ = codec.encode(torch.randn(1, seconds * AUDIO_SAMPLE_RATE) * 0.1)
    wave = codec.decode(mean)
    assert wave.shape == (1, mean.shape[1] * LATENT_HOP) and wave.dtype == torch.float32
    assert torch.isfinite(wave).all() and wave.abs().max() <= 1.0 and wave.std() > 0


def test_one_frame(codec):
    """The shortest clip: S ≤ 1024 samples is one latent frame, decoded to 1024 samples."""
    mean, std = codec.encode(torch.randn(1, 300) * 0.1)
    assert mean.shape == std.shape == (1, 1, 40)
    assert codec.decode(mean).shape == (1, LATENT_HOP)


@pytest.mark.slow
@pytest.mark.parametrize("seconds", [8, 10])
def test_decode_shapes_long(codec, seconds):
    latent = torch.randn(1, math.ceil(seconds * AUDIO_SAMPLE_RATE / LATENT_HOP), 40)
    assert codec.decode(latent).shape == (1, latent.shape[1] * LATENT_HOP)


def test_padding_and_batch_independence(codec):
    """S not a multiple of 1024 is zero-padded; batch items do not see each other."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(1, 5000, generator=g) * 0.2, torch.randn(1, 5000, generator=g) * 0.2
    mean_ab, _ = codec.encode(torch.cat([a, b]))
    mean_a, _ = codec.encode(a)
    padded, _ = codec.encode(torch.nn.functional.pad(a, (0, 5 * 1024 - 5000)))
    assert mean_ab.shape == (2, 5, 40)  # ceil(5000 / 1024)
    torch.testing.assert_close(mean_ab[:1], mean_a, rtol=1e-5, atol=1e-5)
    assert torch.equal(mean_a, padded)  # the codec pads with zeros up to 5 · 1024


def test_identity_and_registry(tiny_ckpt, codec):
    assert re.fullmatch(rf"{TINY}@sha256:[0-9a-f]{{12}}\+bigvgan-tiny-random@sha256:[0-9a-f]{{12}}", codec.identity)
    via_registry = load_encoder(TINY, str(tiny_ckpt))
    assert isinstance(via_registry, MelVAECodec) and via_registry.identity == codec.identity
    assert via_registry.spec == feature_spec(TINY)
    other = build_random_checkpoint(TINY, tiny_ckpt.parent / "other" / "v1-44.pth", seed=GOLDEN_SEED + 1)
    assert MelVAECodec.load(TINY, str(other)).identity.split("+")[0] != codec.identity.split("+")[0]


def test_explicit_vocoder_folder(tmp_path, tiny_ckpt, codec):
    voc = build_random_vocoder(tmp_path / "my-vocoder", TINY, seed=GOLDEN_SEED)
    c = MelVAECodec.load(TINY, str(tiny_ckpt), vocoder_weights=str(voc))
    assert c.identity.endswith("+my-vocoder@sha256:" + codec.identity.rsplit(":", 1)[1])
    latent = torch.randn(1, 4, 40)
    torch.testing.assert_close(c.decode(latent), codec.decode(latent))


def test_state_dict_layout_is_v1_44(tiny_ckpt):
    """The file is a flat state dict with MMAudio's VAE key names (data_mean/std [1, 128, 1])."""
    state = torch.load(tiny_ckpt, weights_only=True)
    assert state["data_mean"].shape == state["data_std"].shape == (1, 128, 1)
    for key in ("encoder.conv_in.weight", "encoder.down.0.block.0.conv1.weight", "encoder.down.0.downsample.conv1.weight",
                "encoder.mid.attn_1.qkv.weight", "encoder.conv_out.weight", "encoder.learnable_gain",
                "decoder.up.1.upsample.conv.weight", "decoder.up.0.block.0.nin_shortcut.weight",
                "decoder.mid.attn_1.proj_out.weight", "decoder.conv_out.weight", "decoder.learnable_gain"):
        assert key in state, key
    assert state["encoder.conv_out.weight"].shape[0] == 80 and state["decoder.conv_in.weight"].shape[1] == 40


def test_full_config_matches_mmaudio_vae_44k():
    """get_my_vae('44k'): hidden 512, ch_mult (1, 2, 4); key order, shapes and count as MMAudio's own."""
    with torch.device("meta"):  # shapes only: 305 M parameters are not allocated
        vae = VAE(VAE_44K)
    state = vae.state_dict()
    assert len(state) == 57
    assert state["encoder.mid.attn_1.qkv.weight"].shape == (6144, 2048, 1)
    assert state["decoder.conv_out.weight"].shape == (128, 512, 3)
    assert sum(p.numel() for p in vae.parameters()) == 305_479_682


@pytest.mark.slow
def test_full_bigvgan_config_builds():
    """The real bigvgan_v2_44khz_128band_512x config gives NVIDIA's 122 M-parameter generator, ×512."""
    net = build_bigvgan(BIGVGAN_44K_CONFIG)
    assert round(sum(p.numel() for p in net.parameters()) / 1e6, 1) == 122.2
    assert math.prod(BIGVGAN_44K_CONFIG["upsample_rates"]) == BIGVGAN_44K_CONFIG["hop_size"] == MMAUDIO_44K.hop


def _resave(src, dst, edit):
    state = torch.load(src, weights_only=True)
    edit(state)
    torch.save(state, dst)
    return dst


def test_strict_vae_loading_names_tensors(tmp_path, tiny_ckpt):
    bad = tmp_path / "bad.pth"

    def edit(state):
        del state["encoder.conv_in.weight"]
        state["encoder.extra.weight"] = torch.zeros(1)

    _resave(tiny_ckpt, bad, edit)
    with pytest.raises(ValueError) as err:
        MelVAECodec.load(TINY, str(bad), vocoder_weights=str(tiny_ckpt.parent / "bigvgan-tiny-random"))
    msg = str(err.value)
    assert str(bad) in msg and "missing: encoder.conv_in.weight" in msg and "unexpected: encoder.extra.weight" in msg


def test_full_size_file_into_tiny_names_shapes(tmp_path, tiny_ckpt):
    bad = _resave(tiny_ckpt, tmp_path / "wide.pth",
                  lambda s: s.__setitem__("decoder.conv_out.weight", torch.zeros(128, 512, 3)))
    with pytest.raises(ValueError, match=r"wrong shape: decoder\.conv_out\.weight \(file \(128, 512, 3\), "
                                         r"network \(128, 16, 3\)\)"):
        MelVAECodec.load(TINY, str(bad), vocoder_weights=str(tiny_ckpt.parent / "bigvgan-tiny-random"))


def test_not_a_state_dict(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        MelVAECodec.load(TINY, str(junk))
    with pytest.raises(FileNotFoundError, match="v1-44.pth"):
        MelVAECodec.load("mel-vae-44k", None)
    with pytest.raises(FileNotFoundError, match="no such file"):
        MelVAECodec.load(TINY, str(tmp_path / "absent.pth"))


def test_strict_vocoder_loading_names_tensors(tmp_path):
    voc = build_random_vocoder(tmp_path / "voc", TINY)
    ckpt = torch.load(voc / "bigvgan_generator.pt", weights_only=True)
    del ckpt["generator"]["conv_pre.weight_v"]
    torch.save(ckpt, voc / "bigvgan_generator.pt")
    with pytest.raises(ValueError, match=r"bigvgan_generator\.pt does not fit the network: 1 missing: conv_pre\.weight_v"):
        load_bigvgan(voc)
    torch.save({"state": {}}, voc / "bigvgan_generator.pt")
    with pytest.raises(ValueError, match="'generator'"):
        load_bigvgan(voc)


def test_vocoder_config_must_fit_the_mel(tmp_path, tiny_ckpt):
    voc = build_random_vocoder(tmp_path / "voc", TINY)
    cfg = json.loads((voc / "config.json").read_text())
    (voc / "config.json").write_text(json.dumps({**cfg, "num_mels": 100}))
    with pytest.raises(ValueError, match="num_mels=100, this codec needs 128"):
        MelVAECodec.load(TINY, str(tiny_ckpt), vocoder_weights=str(voc))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_bigvgan(tmp_path)  # a folder without the files


def test_vocoder_file_without_weight_norm_loads(tmp_path):
    """A generator saved after remove_weight_norm (plain .weight keys) loads too (the package allows it)."""
    voc = build_random_vocoder(tmp_path / "voc", TINY, seed=5)
    net, _ = load_bigvgan(voc)
    folded = tmp_path / "folded"
    folded.mkdir()
    torch.save({"generator": net.state_dict()}, folded / "bigvgan_generator.pt")
    (folded / "config.json").write_text(json.dumps(BIGVGAN_TINY_CONFIG))
    net2, _ = load_bigvgan(folded)
    mel = torch.randn(1, 128, 4)
    torch.testing.assert_close(net2(mel), net(mel))
