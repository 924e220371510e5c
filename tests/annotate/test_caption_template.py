import json

import numpy as np

from pipeline.annotate.template import TemplateCaptioner
from pipeline.media.audio import RATE_ASR, encode_audio_blob
from pipeline.record import new_record
from pipeline.registry import stage_class
from pipeline.stage import run_stage_on_rows
from pipeline.stages.caption import CaptionOptions, CaptionStage, pick_frame_indices


def row(corpus, sid, **fields):
    rec = new_record(corpus, sid, f"/media/{sid}.mp4", duration_s=1.0, **fields)
    rec["audio_16k"] = encode_audio_blob(np.zeros(RATE_ASR, dtype=np.float32), RATE_ASR)
    return rec


def test_registry_names_the_stage():
    assert stage_class("caption") is CaptionStage


def test_template_from_label_captions_and_extra_labels():
    t = TemplateCaptioner()
    assert t.caption(row("vggsound", "a", label="bee, wasp, etc. buzzing")) == "The sound of bee, wasp, etc. buzzing."
    assert t.caption(row("panda70m", "b", captions=["", "A woman is standing on a black background."])) \
        == "A woman is standing on a black background."
    assert t.caption(row("audiocaps", "c", caption="a woman talks nearby as water pours")) \
        == "A woman talks nearby as water pours."
    multi = row("x", "d", label="dog barking", extra={"labels": ["rain", "dog barking", "thunder"]})
    assert t.caption(multi) == "The sounds of dog barking, rain and thunder."
    assert t.model_id("vggsound") == "template:vggsound"


def test_template_stage_records_where_captions_came_from(tmp_path):
    rows = [row("vggsound", "a", label="people marching"), row("vggsound", "b")]
    outcomes, counts = run_stage_on_rows(CaptionStage, {"backend": "template"}, rows, tmp_path)
    assert outcomes[0].status == "ok"
    out = outcomes[0].rows[0]
    assert out["caption"] == "The sound of people marching."
    assert out["caption_model"] == "template:vggsound"
    settings = json.loads(out["caption_settings"])
    assert settings["backend"] == "template" and settings["prompt_version"]
    assert outcomes[1].status == "filtered:no_caption_metadata"
    assert counts["template_captions"] == 1


def test_backend_none_passes_rows_through(tmp_path):
    outcomes, _ = run_stage_on_rows(CaptionStage, {"backend": "none"}, [row("vggsound", "a", label="x")], tmp_path)
    assert outcomes[0].status == "ok" and outcomes[0].rows == [{}]


def test_unloadable_model_falls_back_to_template_and_says_so(tmp_path):
    opts = {"backend": "transformers", "model": str(tmp_path / "no-such-model"), "local_files_only": True}
    outcomes, counts = run_stage_on_rows(CaptionStage, opts, [row("vggsound", "a", label="waterfall burbling")],
                                         tmp_path)
    out = outcomes[0].rows[0]
    assert out["caption_model"] == "template:vggsound"
    assert "no-such-model" in json.loads(out["caption_settings"])["fallback_reason"]
    assert counts["backend_fallbacks"] == 1


def test_without_fallback_a_bad_model_fails_setup(tmp_path):
    import pytest

    opts = {"backend": "transformers", "model": str(tmp_path / "missing"), "local_files_only": True,
            "fallback_to_template": False}
    with pytest.raises(OSError, match="missing"):
        run_stage_on_rows(CaptionStage, opts, [row("vggsound", "a", label="x")], tmp_path)


def test_keep_corpus_captions(tmp_path):
    kept = row("audiocaps", "a", caption="A woman talks", caption_model="metadata:audiocaps")
    outcomes, _ = run_stage_on_rows(CaptionStage, {"backend": "template", "keep_corpus_captions": True},
                                    [kept], tmp_path)
    assert outcomes[0].rows == [{}]


def test_options_errors_name_the_field():
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="max_new_tokens"):
        CaptionOptions(max_new_tokens=0)
    with pytest.raises(pydantic.ValidationError, match="backend"):
        CaptionOptions(backend="gpt")


def test_pick_frame_indices():
    assert pick_frame_indices(64, 4) == [8, 24, 40, 56]
    assert pick_frame_indices(3, 8) == [0, 1, 2]
    assert pick_frame_indices(0, 4) == [] and pick_frame_indices(10, 0) == []


def test_speech_and_song_without_metadata_get_a_kind_caption():
    from pipeline.annotate.template import KIND_CAPTIONS, TemplateCaptioner

    t = TemplateCaptioner()
    assert t.caption(row("local", "s", kind="speech")) == KIND_CAPTIONS["speech"]
    assert t.caption(row("local", "s", kind="song")) == KIND_CAPTIONS["song"]
