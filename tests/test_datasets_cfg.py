"""Every shipped config validates in full (corpora and stages) before anything runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import load_config

CFG_DIR = Path(__file__).resolve().parents[1] / "datasets_cfg"


@pytest.mark.parametrize("path", sorted(CFG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_validates(path):
    cfg = load_config(path)
    assert cfg.corpora and [s.name for s in cfg.stages][:2] == ["fetch", "media"]
