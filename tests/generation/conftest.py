"""Generation fixtures: a tiny T5, the demo encoders, an in-memory bundle and a trainer checkpoint."""
from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from tests.generation.helpers import save_tiny_t5


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory):
    return save_tiny_t5(tmp_path_factory.mktemp("tiny_t5"))


@dataclass
class LatentStats:
    mean: np.ndarray
    std: np.ndarray


@dataclass
class FakeBundle:
    """The shape of `load_for_inference`'s InferenceBundle, for tests that build the model in memory."""

    model: object
    network_name: str
    network_cfg: object
    text_cfg: object
    flow_cfg: object
    encoders: dict
    latent_stats: LatentStats
    step: int = 0


def randomize_zero_init(model: torch.nn.Module, seed: int = 0, std: float = 0.05) -> None:
    """adaLN-zero makes a fresh network's velocity exactly 0 (output = noise whatever the inputs):
    give the zero-initialised weights small random values so that conditions matter."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.network.parameters():
            if p.ndim >= 1 and not bool(p.abs().sum()):
                p.copy_(torch.randn(p.shape, generator=g) * std)


def build_bundle(t5_dir, network_name="tiny", encoders=None, seed=0, **overrides) -> FakeBundle:
    from model.config import FlowConfig, get_config
    from model.encoders.registry import DEMO_ENCODERS
    from model.omni import AudioGenOmni
    from model.text_encoder import TextEncoderConfig
    from tests.generation.helpers import tiny_overrides

    cfg = get_config(network_name, **{**tiny_overrides(), **overrides})
    text_cfg = TextEncoderConfig(name_or_path=str(t5_dir), local_files_only=True)
    torch.manual_seed(seed)
    model = AudioGenOmni.build(cfg, text_cfg).eval()
    randomize_zero_init(model, seed)
    if encoders is None:
        encoders = {kind: {"name": name, "id": None} for kind, name in DEMO_ENCODERS.items()}
    g = torch.Generator().manual_seed(seed)
    stats = LatentStats(mean=(torch.randn(cfg.latent_dim, generator=g) * 0.1).numpy(),
                        std=(torch.rand(cfg.latent_dim, generator=g) + 0.5).numpy())
    return FakeBundle(model, network_name, cfg, text_cfg, FlowConfig(), encoders, stats, step=0)


@pytest.fixture(scope="session")
def demo_encoders(tmp_path_factory):
    """The demo encoders (clip-tiny-random, synchformer-tiny-random, logmel-codec) loaded through the
    registry from random checkpoints saved in their real formats."""
    from model.encoders.registry import DEMO_ENCODERS, encoder_class, feature_spec, load_encoder

    root = tmp_path_factory.mktemp("encoder_weights")
    weights, loaded = {}, {}
    for kind, name in DEMO_ENCODERS.items():
        spec = feature_spec(name)
        path = None
        if not spec.weight_free:
            module = importlib.import_module(encoder_class(name).__module__)
            path = root / f"{name}.pt"
            module.build_random_checkpoint(name, path, seed=0)
        weights[kind] = None if path is None else str(path)
        loaded[kind] = load_encoder(name, weights[kind], device="cpu")
    return weights, loaded


@pytest.fixture(scope="session")
def generator(tiny_t5_dir, demo_encoders):
    from model.generation import Generator

    weights, loaded = demo_encoders
    bundle = build_bundle(tiny_t5_dir, encoders={k: {"name": e.spec.name, "id": e.identity}
                                                 for k, e in loaded.items()})
    return Generator(bundle, dict(loaded), encoder_weights=weights, checkpoint="<memory>")


@pytest.fixture(scope="session")
def checkpoint(demo_encoders, tmp_path_factory):
    """A checkpoint of the trainer itself: 2 steps of `tiny` (jobs.train.train) on synthetic shards whose
    features declare the demo encoders' real identities (so generation can load matching encoders)."""
    import json

    from jobs.train import train
    from model.training.config import parse_train_config
    from tests.training.shard_fixtures import make_sample, write_run
    from tests.training.train_helpers import tiny_config

    _, loaded = demo_encoders
    ids = {kind: enc.identity for kind, enc in loaded.items()}

    def sample(key: str, duration_s: float, seed: int) -> dict:
        s = make_sample(key, duration_s=duration_s, seed=seed)
        meta = json.loads(s["json"])
        for kind, declared in meta["features"].items():
            declared["id"] = ids[kind]
        s["json"] = json.dumps(meta, sort_keys=True).encode()
        return s

    root = tmp_path_factory.mktemp("train")
    run = root / "run"
    write_run(run, "train", [[sample(f"tr{i}", 1.0 + i % 2, i) for i in range(6)]])
    write_run(run, "test", [[sample(f"te{i}", 1.0, 100 + i) for i in range(2)]])
    # the lyrics encoder covers the VoiceBPE vocabulary, so transcripts and lyrics can be generated
    cfg = tiny_config(run, root / "out", steps=2, checkpoint_every=2,
                      **{"network_overrides.lyrics.vocab_size": 4096})
    result = train(parse_train_config(cfg))
    assert result.last_checkpoint is not None
    return result.last_checkpoint
