"""The command line: --help, --dry-run, config errors, refusals and `status`."""
from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from jobs.cli import EXIT_CONFIG, EXIT_REFUSED, app
from tests.runner_fixtures import make_tone_corpus, tone_config

runner = CliRunner()


@pytest.mark.parametrize("cmd", [[], ["preprocess"], ["status"], ["demo"]])
def test_help_says_what_each_command_does(cmd):
    r = runner.invoke(app, [*cmd, "--help"])
    assert r.exit_code == 0 and "Usage" in r.output


def test_dry_run_prints_per_corpus_figures_and_writes_nothing(tmp_path):
    corpus = make_tone_corpus(tmp_path / "c", n=8)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(tone_config(corpus)))
    out = tmp_path / "run"
    r = runner.invoke(app, ["preprocess", str(cfg), "--out", str(out), "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "local" in r.output and "test=2" in r.output and "train=6" in r.output
    assert not out.exists()


def test_bad_config_exits_with_the_field_named(tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(tone_config(tmp_path, partition_size=0)))
    r = runner.invoke(app, ["preprocess", str(cfg), "--out", str(tmp_path / "run")])
    assert r.exit_code == EXIT_CONFIG and "partition_size" in r.output and "run.yaml" in r.output
    assert not (tmp_path / "run").exists()


@pytest.mark.ray
def test_status_and_refusal_on_a_real_run(ray_local, tmp_path):
    corpus = make_tone_corpus(tmp_path / "c", n=6, missing=(1,))
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(tone_config(corpus, model_stage=False)))
    out = tmp_path / "run"
    r = runner.invoke(app, ["preprocess", str(cfg), "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["status", str(out)])
    assert r.exit_code == 0 and "failed:probe:missing_file" in r.output and "2/2" in r.output
    r = runner.invoke(app, ["status", str(out), "--json"])
    stats = json.loads(r.stdout)
    assert stats["stages"]["ingest"]["in"] == 6 and stats["shards"]["train"]["samples"] == 4
    r = runner.invoke(app, ["preprocess", str(cfg), "--out", str(out), "--set", "partition_size=2"])
    assert r.exit_code == EXIT_REFUSED and "partition_size" in r.output
    r = runner.invoke(app, ["status", str(tmp_path)])
    assert r.exit_code == EXIT_CONFIG and "not a run directory" in r.output
