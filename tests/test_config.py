from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import changed_fields, load_config, parse_config
from pipeline.errors import ConfigError
from tests.runner_fixtures import make_tone_corpus, tone_config


def write(tmp_path: Path, data) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_valid_config_loads_and_hash_is_stable(tmp_path):
    make_tone_corpus(tmp_path, n=2)
    a = load_config(write(tmp_path, tone_config(tmp_path)))
    b = load_config(write(tmp_path, tone_config(tmp_path)))
    assert a.hash() == b.hash()
    assert a.stages[0].options["sleep_s"] == 0.0  # defaults are filled in, so they are hashed too


def test_bad_stage_option_names_file_field_and_problem(tmp_path):
    make_tone_corpus(tmp_path, n=2)
    cfg = tone_config(tmp_path)
    cfg["stages"][0]["options"]["sleep_s"] = -1
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, cfg))
    msg = str(e.value)
    assert "run.yaml" in msg and "stages[0]" in msg and "sleep_s" in msg and "greater than or equal" in msg


def test_unknown_field_and_unknown_stage_are_named(tmp_path):
    make_tone_corpus(tmp_path, n=2)
    cfg = tone_config(tmp_path, partition_sise=3)
    with pytest.raises(ConfigError, match="partition_sise"):
        load_config(write(tmp_path, cfg))
    cfg = tone_config(tmp_path)
    cfg["stages"].append({"name": "no_such_stage"})
    with pytest.raises(ConfigError, match="no_such_stage"):
        load_config(write(tmp_path, cfg))


def test_adapter_options_are_validated(tmp_path):
    cfg = tone_config(tmp_path)
    cfg["corpora"][0]["options"]["limt"] = 3
    with pytest.raises(ConfigError, match=r"corpora\[0\].*limt"):
        load_config(write(tmp_path, cfg))


@pytest.mark.parametrize("text,needle", [("a: [1, 2", "not valid YAML"), ("- 1\n- 2\n", "top level must be a mapping")])
def test_unparseable_yaml(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(write(tmp_path, text))


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_set_overrides_by_stage_name_and_index(tmp_path):
    make_tone_corpus(tmp_path, n=2)
    path = write(tmp_path, tone_config(tmp_path))
    cfg = load_config(path, ["partition_size=7", "stages.1.options.batch_seconds=5",
                             "shards.samples_per_shard=3"])
    assert cfg.partition_size == 7 and cfg.stages[1].options["batch_seconds"] == 5 and cfg.shards.samples_per_shard == 3
    with pytest.raises(ConfigError, match="no list item"):
        load_config(path, ["stages.nope.options.x=1"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(path, ["partition_size"])


def test_changed_fields_names_leaves():
    old = {"partition_size": 3, "stages": [{"name": "media", "options": {"max_clip_s": 10}}]}
    new = {"partition_size": 3, "stages": [{"name": "media", "options": {"max_clip_s": 5}}]}
    assert changed_fields(old, new) == ["stages.media.options.max_clip_s"]


def test_ray_address_is_not_part_of_the_hash(tmp_path):
    make_tone_corpus(tmp_path, n=2)
    a = parse_config(tone_config(tmp_path))
    b = parse_config(tone_config(tmp_path, ray={"address": "ray://head:10001"}))
    assert a.hash() == b.hash()
