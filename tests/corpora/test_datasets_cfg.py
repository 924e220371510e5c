"""Every YAML under datasets_cfg/ has a valid corpora section (stage classes are validated
elsewhere: their modules belong to other parts of the pipeline)."""
from pathlib import Path

import pytest
import yaml

from pipeline.config import CorpusSpec, parse_config

CFG_DIR = Path(__file__).resolve().parents[2] / "datasets_cfg"
PER_CORPUS = ["vggsound", "audiocaps", "clotho", "wavcaps", "panda70m", "internvid", "libritts", "ljspeech", "lrs",
              "lrc_songs", "jamendo", "dali"]
PAPER_CORPORA = {"vggsound", "panda70m", "internvid", "audiocaps", "clotho", "libritts", "ljspeech", "wavcaps",
                 "lrc_songs"}


def _load(name: str) -> dict:
    return yaml.safe_load((CFG_DIR / f"{name}.yaml").read_text(encoding="utf-8"))


def _validate_corpora(data: dict) -> list[CorpusSpec]:
    return [CorpusSpec.model_validate(c) for c in data["corpora"]]


@pytest.mark.parametrize("name", PER_CORPUS)
def test_per_corpus_yaml(name):
    data = _load(name)
    specs = _validate_corpora(data)
    assert [s.adapter for s in specs] == [name]
    assert data["name"] == name and [s["name"] for s in data["stages"]][:2] == ["fetch", "media"]
    # the whole run config validates, with roots resolved next to the file
    cfg = parse_config(data, str(CFG_DIR / f"{name}.yaml"), base_dir=CFG_DIR)
    assert Path(cfg.corpora[0].options["root"]).is_absolute()
    mirror = cfg.corpora[0].options.get("mirror")
    assert mirror is None or (not Path(mirror).is_absolute() and ".." not in Path(mirror).parts)  # under root
    # feature stages with the paper's encoders; the media stage's frames come from them
    from model.encoders.registry import PAPER_ENCODERS

    feats = {s.name: s.options["encoder"] for s in cfg.stages if s.name in PAPER_ENCODERS}
    assert feats.get("latent") == PAPER_ENCODERS["latent"] and all(PAPER_ENCODERS[k] == v for k, v in feats.items())
    if "clip" in feats:
        assert cfg.stage("media").options["clip_size"] == 224 and cfg.stage("media").options["sync_size"] == 224


def test_paper_mix_has_the_paper_corpora_with_weights():
    data = _load("paper_mix")
    specs = _validate_corpora(data)
    assert {s.adapter for s in specs} == PAPER_CORPORA
    assert all(s.weight > 0 for s in specs)
    assert sum(s.weight for s in specs) == pytest.approx(1.0)
    cfg = parse_config(data, str(CFG_DIR / "paper_mix.yaml"), base_dir=CFG_DIR)  # stages validate too
    assert {"caption", "transcribe", "lyrics", "tokenize"} <= {s.name for s in cfg.stages}


def test_yaml_points_at_fixture_works_end_to_end(tmp_path):
    """A per-corpus YAML with its root pointed at the fixture reads real records."""
    data = _load("vggsound")
    data["corpora"][0]["options"]["root"] = str(Path(__file__).resolve().parents[1] / "fixtures/corpora/vggsound")
    data["corpora"][0]["options"]["mirror"] = str(tmp_path)
    cfg = parse_config({**data, "stages": []}, "vggsound.yaml")
    from pipeline.registry import adapter_class

    recs = list(adapter_class("vggsound")(cfg.corpora[0].options).records())
    assert len(recs) == 7
