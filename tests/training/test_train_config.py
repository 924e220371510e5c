"""Training config validation, the schedule, the EMA, the random T5, and refusals with clear messages."""
from __future__ import annotations

import math

import pytest
import torch

from model.training.config import load_train_config, parse_train_config
from model.training.ema import EMA
from model.training.schedule import InverseLR, inverse_lr_factor
from pipeline.errors import ConfigError
from tests.training.train_helpers import REPO, make_runs, tiny_config


def test_shipped_configs_validate_and_give_the_papers_optimisation():
    paper = load_train_config(REPO / "datasets_cfg/train/paper.yaml")
    assert paper.network == "paper" and paper.optim.lr == 1e-5 and paper.optim.weight_decay == 1e-3
    assert paper.batch.effective_batch == 128 and paper.batch.accumulation(8) == 1
    assert paper.batch.accumulation(4) == 2
    assert paper.resolved_encoders() == {"clip": "metaclip-bigg14-quickgelu", "sync": "synchformer",
                                         "latent": "mel-vae-44k"}
    demo = load_train_config(REPO / "datasets_cfg/train/demo.yaml", ["steps=20", "optim.lr=0.01"])
    assert demo.steps == 20 and demo.optim.lr == 0.01 and demo.network == "tiny"


def test_errors_name_the_file_and_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {sources: [{run: r}]}\nsteps: 0\noptim: {lr: -1}\nout: o\nnetwork: huge\n")
    with pytest.raises(ConfigError) as e:
        load_train_config(bad)
    msg = str(e.value)
    assert f"{bad}: steps:" in msg and f"{bad}: optim.lr:" in msg and f"{bad}: network:" in msg
    with pytest.raises(ConfigError, match="bogus"):
        parse_train_config({"data": {"sources": [{"run": "r"}]}, "steps": 1, "out": "o", "bogus": 1}, "x.yaml")
    with pytest.raises(ConfigError, match=r"x.yaml: data.sources\[0\].weight"):
        parse_train_config({"data": {"sources": [{"run": "r", "weight": 0}]}, "steps": 1, "out": "o"}, "x.yaml")
    with pytest.raises(ConfigError, match="training config not found"):
        load_train_config(tmp_path / "none.yaml")
    cfg = parse_train_config({"data": {"sources": [{"run": "r"}]}, "steps": 1, "out": "o",
                              "batch": {"max_batch": 16, "effective_batch": 100}}, "x.yaml")
    with pytest.raises(ConfigError, match="effective_batch=100 is not a multiple of batch.max_batch"):
        cfg.batch.accumulation(1)


def test_inverse_lr_warms_up_exponentially_then_decays():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=1e-5)
    sched = InverseLR(opt, inv_gamma=100.0, power=0.5, warmup=0.9)
    lrs = []
    for _ in range(200):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-5 * 0.1)
    assert lrs[1] == pytest.approx(1e-5 * (1 - 0.9**2) * (1 + 1 / 100) ** -0.5)
    peak = max(range(200), key=lambda i: lrs[i])
    assert 10 < peak < 100 and lrs[-1] < lrs[peak]
    assert lrs[199] == pytest.approx(1e-5 * (1 - 0.9**200) * (1 + 199 / 100) ** -0.5)
    assert inverse_lr_factor(0, 1e6, 0.5, 0.0) == 1.0
    state = sched.state_dict()
    sched2 = InverseLR(torch.optim.AdamW([p], lr=1e-5), inv_gamma=100.0, power=0.5, warmup=0.9)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_ema_averages_and_copies():
    m = torch.nn.Linear(2, 1)
    with torch.no_grad():
        m.weight.fill_(0.0)
    ema = EMA(m, decay=0.5, start_step=1)
    with torch.no_grad():
        m.weight.fill_(4.0)
    ema.update(m, step=0)  # before start_step: copy
    assert torch.equal(ema.shadow["weight"], torch.full((1, 2), 4.0))
    with torch.no_grad():
        m.weight.fill_(8.0)
    ema.update(m, step=1)
    assert torch.equal(ema.shadow["weight"], torch.full((1, 2), 6.0))
    other = EMA(m, decay=0.5)
    other.load_state_dict(ema.state_dict())
    other.copy_to(m)
    assert torch.equal(m.weight, torch.full((1, 2), 6.0))
    with pytest.raises(KeyError, match="missing"):
        other.load_state_dict({})


def test_random_t5_loads_through_the_real_text_encoder(tmp_path):
    from model.text_encoder import T5TextEncoder, TextEncoderConfig
    from model.training.random_t5 import build_random_t5

    path = build_random_t5(tmp_path / "t5", width=16, heads=2, layers=1)
    enc = T5TextEncoder(TextEncoderConfig(name_or_path=str(path), local_files_only=True))
    hidden, mask, present = enc(["A dog BARKS loudly", None])
    assert hidden.shape[0] == 2 and hidden.shape[2] == 16 == enc.dim
    assert mask[0].sum() == 5 and present.tolist() == [True, False]  # 4 known words + </s>
    again = build_random_t5(tmp_path / "t5b", width=16, heads=2, layers=1)
    assert (again / "model.safetensors").read_bytes() == (path / "model.safetensors").read_bytes()


def test_shards_made_with_other_encoders_are_refused_naming_both(tmp_path):
    from jobs.train import train
    from model.training.data import FeatureMismatchError
    from tests.training.shard_fixtures import simple_run

    run = simple_run(tmp_path / "run", [3], encoders={"clip": ("dfn5b-h14-384", 1024)}, clip_d=1024)
    cfg = parse_train_config(tiny_config(run, tmp_path / "out"), "t.yaml")
    with pytest.raises(FeatureMismatchError, match=r"'dfn5b-h14-384'.*'clip-tiny-random'"):
        train(cfg)
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_network_config_takes_widths_from_the_encoders():
    from model.training.trainer import network_config

    cfg = parse_train_config({"data": {"sources": [{"run": "r"}]}, "steps": 1, "out": "o", "network": "tiny",
                              "network_overrides": {"lyrics": {"vocab_size": 4096}}}, "x")
    net = network_config(cfg, text_dim=32)
    assert (net.clip_dim, net.sync_dim, net.latent_dim, net.text_dim) == (64, 64, 40, 32)
    assert net.lyrics.vocab_size == 4096 and net.lyrics.dim == 32  # merged, not replaced
    bad = parse_train_config({"data": {"sources": [{"run": "r"}]}, "steps": 1, "out": "o", "network": "tiny",
                              "network_overrides": {"clip_dim": 99}}, "x")
    with pytest.raises(ConfigError, match="clip_dim=99"):
        network_config(bad, text_dim=32)


def test_the_cli_trains_and_resumes(tmp_path):
    """`agomni train CFG --set ...` then `--resume` with more steps continues from the checkpoint."""
    import yaml
    from typer.testing import CliRunner

    from jobs.cli import app

    run = make_runs(tmp_path, train_sizes=(4,), test_sizes=(2,))
    cfg = tiny_config(run, tmp_path / "out", steps=2, checkpoint_every=2)
    cfg["data"]["val_split"] = None
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    r = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml"), "--set", "steps=1"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "checkpoints" / "step-0000001" / "meta.json").is_file()
    r = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml"), "--resume"])
    assert r.exit_code == 0, r.output
    from tests.training.train_helpers import read_jsonl

    log = read_jsonl(tmp_path / "out" / "log.jsonl")
    assert [x["step"] for x in log] == [1, 2] and all(math.isfinite(x["loss"]) for x in log)
    r = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml"), "--set", "optim.lr=-1"])
    assert r.exit_code == 2
    # a fresh start into an OUT that holds checkpoints is refused (it would mix two runs)
    r = CliRunner().invoke(app, ["train", str(tmp_path / "c.yaml")])
    assert r.exit_code == 2 and "already holds checkpoints" in r.output


def test_param_groups_decay_matrices_only_and_scale_the_text_encoder_lr(tmp_path):
    from model.config import get_config
    from model.mmdit import MMDiT
    from model.omni import AudioGenOmni
    from model.text_encoder import T5TextEncoder, TextEncoderConfig
    from model.training.random_t5 import build_random_t5
    from model.training.trainer import param_groups

    t5 = T5TextEncoder(TextEncoderConfig(name_or_path=str(build_random_t5(tmp_path / "t5", width=32)),
                                         local_files_only=True))
    model = AudioGenOmni(MMDiT(get_config("tiny", text_dim=32)), t5)
    cfg = parse_train_config({"data": {"sources": [{"run": "r"}]}, "steps": 1, "out": "o",
                              "optim": {"lr": 2e-4, "weight_decay": 0.01, "text_encoder_lr_mult": 0.5}}, "x")
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert set(groups) == {"network", "network_no_decay", "text_encoder", "text_encoder_no_decay"}
    assert groups["text_encoder"]["lr"] == 1e-4 and groups["network"]["lr"] == 2e-4
    assert groups["network"]["weight_decay"] == 0.01 and groups["network_no_decay"]["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in groups["network"]["params"])
    shared = model.text_encoder.encoder.shared.weight  # the T5 embedding table: no decay
    assert any(p is shared for p in groups["text_encoder_no_decay"]["params"])
    n = sum(len(g["params"]) for g in groups.values())
    assert n == len([p for p in model.parameters() if p.requires_grad])
