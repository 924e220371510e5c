"""Checkpoints: layout, weights_only / safetensors loading, latest-valid selection, load_for_inference."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from model.training import checkpoint as ckpt
from model.training.config import parse_train_config
from tests.training.train_helpers import make_runs, tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """4 steps of the tiny network: checkpoints at 2 and 4, validation, one audio sample, TensorBoard."""
    from jobs.train import train

    root = tmp_path_factory.mktemp("ckpt")
    run = make_runs(root)
    cfg = parse_train_config(tiny_config(run, root / "out", eval_every=2, sample_every=4, tensorboard=True,
                                         log_every=1), "test")
    result = train(cfg)
    return result


def test_checkpoint_layout_is_complete_and_loads_with_weights_only(trained):
    out = trained.out_dir
    steps = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert steps == ["step-0000002", "step-0000004"]
    assert trained.last_checkpoint == out / "checkpoints" / "step-0000004"
    d = trained.last_checkpoint
    for name in ("optimizer.pt", "scheduler.pt", "rng.pt", "data.pt"):
        obj = torch.load(d / name, map_location="cpu", weights_only=True)
        assert obj, name
    rng = torch.load(d / "rng.pt", weights_only=True)
    assert rng["world_size"] == 1 and set(rng["ranks"][0]) >= {"torch", "python", "numpy"}
    data = torch.load(d / "data.pt", weights_only=True)
    assert data["ranks"][0]["batches"] > 0 or data["ranks"][0]["epoch"] > 0
    assert torch.load(d / "scheduler.pt", weights_only=True)["last_epoch"] == 4
    meta = json.loads((d / "meta.json").read_text())
    assert meta["step"] == 4 and meta["network"] == "tiny"
    assert meta["encoders"]["latent"] == {"name": "logmel-codec", "id": "logmel-codec@x"}
    assert meta["encoders"]["clip"]["id"] == "clip-tiny-random@x"
    assert len(meta["latent_stats"]["mean"]) == meta["network_cfg"]["latent_dim"] == 40
    assert meta["config"]["steps"] == 4 and meta["flow"]["cfg_dropout"] == 0.1
    assert set(meta["files"]) >= {"model.safetensors", "ema.safetensors", "text_encoder/config.json"}
    live, ema = load_file(str(d / "model.safetensors")), load_file(str(d / "ema.safetensors"))
    assert any(k.startswith("text_encoder.") for k in ema)
    assert any(not torch.equal(live[k], ema[k]) for k in ema if k in live)  # the EMA lags the live weights
    assert not list((out / "checkpoints").glob("*.tmp-*"))


def test_load_for_inference_gives_the_ema_or_live_weights(trained):
    bundle = ckpt.load_for_inference(trained.out_dir)  # OUT dir -> newest valid checkpoint
    d = trained.last_checkpoint
    assert bundle.step == 4 and bundle.network_name == "tiny" and not bundle.model.training
    assert bundle.network_cfg.latent_dim == 40 and bundle.network_cfg.clip_dim == 64
    assert bundle.encoders["sync"] == {"name": "synchformer-tiny-random", "id": "synchformer-tiny-random@x"}
    assert bundle.latent_stats.mean.shape == (40,) and bool((bundle.latent_stats.std > 0).all())
    ema = load_file(str(d / "ema.safetensors"))
    for name, p in bundle.model.named_parameters():
        assert torch.equal(p, ema[name]), name
    live = ckpt.load_for_inference(d, use_ema=False)
    saved = load_file(str(d / "model.safetensors"))
    state = live.model.state_dict()
    for name, t in saved.items():
        assert torch.equal(state[name], t), name
    # the bundle's model runs: T5 from the checkpoint's own text_encoder/, then the MMDiT
    from model.synthetic import synthetic_conditions

    cond = synthetic_conditions(bundle.network_cfg, [1.0, 0.5], generator=torch.Generator().manual_seed(0))
    cond = bundle.model.with_captions(cond, ["a dog barks", None])
    v = bundle.model(torch.randn(2, cond.latent_mask.shape[1], 40), torch.tensor([0.3, 0.7]), cond)
    assert v.shape == (2, cond.latent_mask.shape[1], 40) and bool(torch.isfinite(v).all())


def test_latest_checkpoint_skips_damaged_partial_and_temporary(trained, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(trained.out_dir / "checkpoints", out / "checkpoints")
    assert ckpt.latest_checkpoint(out).name == "step-0000004"
    (out / "checkpoints" / "step-0000009.tmp-123").mkdir()  # an interrupted write
    (out / "checkpoints" / "step-0000008").mkdir()  # renamed dir without meta.json
    assert ckpt.latest_checkpoint(out).name == "step-0000004"
    f = out / "checkpoints" / "step-0000004" / "optimizer.pt"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # same size, other bytes
    f.write_bytes(bytes(raw))
    with pytest.raises(ckpt.CheckpointError, match="optimizer.pt does not match its sha256"):
        ckpt.read_meta(out / "checkpoints" / "step-0000004")
    assert ckpt.latest_checkpoint(out).name == "step-0000002"
    (out / "checkpoints" / "step-0000002" / "ema.safetensors").unlink()
    assert ckpt.latest_checkpoint(out) is None
    with pytest.raises(ckpt.CheckpointError, match="no valid checkpoint"):
        ckpt.load_for_inference(out)
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load_for_inference(tmp_path / "nowhere")


def test_validation_tensorboard_and_audio_samples_are_logged(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = trained.out_dir
    val = [json.loads(x) for x in (out / "val.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [2, 4] and all(v["val/loss"] > 0 for v in val)
    assert {"val/loss_t0.10", "val/loss_t0.90"} <= set(val[0])
    wavs = list((out / "samples" / "step-0000004").glob("*.wav"))
    assert len(wavs) == 1
    import soundfile as sf

    audio, rate = sf.read(str(wavs[0]))
    assert rate == 44100 and len(audio) > 1000 and abs(audio).max() > 0
    acc = EventAccumulator(str(out / "tb"), size_guidance={"scalars": 0, "audio": 0})
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "train/lr", "train/grad_norm", "perf/samples_per_s", "perf/data_wait_fraction",
            "val/loss"} <= set(tags["scalars"])
    assert any(t.startswith("train/loss_t") for t in tags["scalars"])
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert tags["audio"]
    log = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["loss"] for r in log] == trained.losses
    # exponential warm-up: lr rises step by step
    assert log[0]["lr"] < log[1]["lr"] < log[2]["lr"]
