"""Cross-stage validation: the media stage's frames come from the clip/sync encoders (one source
of truth); a config whose frames and encoders do not fit is refused before anything runs."""
from __future__ import annotations

import pytest

from pipeline.config import config_from_plan, parse_config
from pipeline.errors import ConfigError


def cfg(*stages) -> dict:
    return {"corpora": [{"adapter": "local", "options": {"root": "/tmp", "csv": "c.csv"}}], "stages": list(stages)}


def media_options(c) -> dict:
    return {k: c.stage("media").options[k] for k in ("clip_size", "clip_fps", "sync_size", "sync_fps")}


def test_media_frames_default_to_the_encoders():
    c = parse_config(cfg({"name": "media"}, {"name": "clip"}, {"name": "sync"}))  # the paper's encoders
    assert media_options(c) == {"clip_size": 224, "clip_fps": 8.0, "sync_size": 224, "sync_fps": 25.0}
    c = parse_config(cfg({"name": "media"}, {"name": "clip", "options": {"encoder": "dfn5b-h14-384"}}))
    assert media_options(c)["clip_size"] == 384
    c = parse_config(cfg({"name": "media"}))  # no feature stage: MMAudio's sizes
    assert media_options(c) == {"clip_size": 384, "clip_fps": 8.0, "sync_size": 224, "sync_fps": 25.0}
    # resolved values are explicit in the canonical config: the same hash when written out
    again = parse_config(c.canonical())
    assert again.hash() == c.hash()


def test_an_explicit_frame_option_that_does_not_fit_is_refused_naming_both():
    with pytest.raises(ConfigError, match=r"stages\.media\.options\.clip_size=384 but stages\.clip encoder "
                                          r"metaclip-bigg14-quickgelu takes 224 px frames"):
        parse_config(cfg({"name": "media", "options": {"clip_size": 384}}, {"name": "clip"}))
    with pytest.raises(ConfigError, match=r"sync_fps=30 but stages\.sync encoder synchformer takes 25 fps"):
        parse_config(cfg({"name": "media", "options": {"sync_fps": 30}}, {"name": "sync"}))
    ok = parse_config(cfg({"name": "media", "options": {"clip_size": 224}}, {"name": "clip"}))
    assert ok.stage("media").options["clip_size"] == 224


def test_feature_stages_need_the_media_stage_before_them():
    with pytest.raises(ConfigError, match="list `media` before `clip`"):
        parse_config(cfg({"name": "clip"}, {"name": "media"}))
    with pytest.raises(ConfigError, match="list `media` before `latent`"):
        parse_config(cfg({"name": "latent"}))
    with pytest.raises(ConfigError, match=r"stages\.sync needs video frames but stages\.media\.options\.decode_frames"):
        parse_config(cfg({"name": "media", "options": {"decode_frames": False}}, {"name": "sync"}))


def test_wrong_encoder_kind_is_refused():
    with pytest.raises(ConfigError, match="'synchformer' is a sync encoder; stage 'clip' needs a clip encoder"):
        parse_config(cfg({"name": "media"}, {"name": "clip", "options": {"encoder": "synchformer"}}))


def test_a_plan_config_may_keep_larger_clip_frames_than_an_appended_encoder():
    c = parse_config(cfg({"name": "media"}, {"name": "clip", "options": {"encoder": "clip-tiny-random"}}))
    d = c.canonical()
    d["stages"][0]["options"]["clip_size"] = 384  # what adopt_finished_media_frames keeps
    assert config_from_plan({"config": d}).stage("media").options["clip_size"] == 384
    d["stages"][0]["options"]["clip_size"] = 160  # smaller: never
    with pytest.raises(ValueError, match="clip_size=160"):
        config_from_plan({"config": d})


def test_appending_to_a_run_with_smaller_frames_is_refused_naming_both():
    from pipeline.config import adopt_finished_media_frames

    old = parse_config(cfg({"name": "media"}, {"name": "clip", "options": {"encoder": "clip-tiny-random"}})).canonical()
    new = parse_config(cfg({"name": "media"}, {"name": "clip", "options": {"encoder": "dfn5b-h14-384"}}))
    with pytest.raises(ConfigError, match="finished run's stages.media.options.clip_size=224 but stages.clip "
                                          "encoder dfn5b-h14-384 takes 384 px"):
        adopt_finished_media_frames(new, old)
    old = parse_config(cfg({"name": "media"})).canonical()  # 384 px: larger than metaclip's 224, kept
    new = parse_config(cfg({"name": "media"}, {"name": "clip"}))
    adopt_finished_media_frames(new, old)
    assert new.stage("media").options["clip_size"] == 384
