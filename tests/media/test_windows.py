"""Long sources are cut into windows; keys, spans, timings and texts follow the windows."""
from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf

from pipeline.media.audio import decode_audio_blob
from pipeline.media.windows import Window, cut_span, frame_count, retime_items, sample_count
from pipeline.record import extra, make_key
from tests.media.helpers import row, run_media
from tests.media_fixtures import encode_video, tone_wav


def test_cut_span_rules():
    assert list(cut_span(0, 23.4, 10, 0.5)) == [Window(0, 0, 10), Window(1, 10, 20), Window(2, 20, 23.4)]
    assert list(cut_span(0, 20.3, 10, 0.5)) == [Window(0, 0, 10), Window(1, 10, 20)]
    assert list(cut_span(5, 15, 10, 0.5)) == [Window(0, 5, 15)]
    assert list(cut_span(0, 0.2, 10, 0.5)) == [Window(0, 0, 0.2)]  # the first is judged by the caller
    lazy = cut_span(0, math.inf, 10, 0.5)
    assert [next(lazy) for _ in range(3)] == [Window(0, 0, 10), Window(1, 10, 20), Window(2, 20, 30)]


def test_counts():
    assert sample_count(8.0, 44100) == 352800 and sample_count(5.312, 16000) == 84992
    assert frame_count(8.0, 8) == 64 and frame_count(8.0, 25) == 200
    assert frame_count(0.3, 10) == 3 and frame_count(5.312, 25) == 132 and frame_count(0.1, 8) == 0


def test_retime_items():
    words = [{"text": "a", "start": 1.0, "end": 2.0}, {"text": "b", "start": 9.5, "end": 10.5},
             {"text": "c", "start": 15.0, "end": 16.0}, {"text": "d", "start": 25.0, "end": 26.0}]
    assert retime_items(words, 10.0, 10.0) == [{"text": "b", "start": 0.0, "end": 0.5},
                                               {"text": "c", "start": 5.0, "end": 6.0}]
    assert retime_items(None, 0, 10) is None


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory):
    return tone_wav(tmp_path_factory.mktemp("long") / "long.wav", 23.4, 16000)


def test_long_source_is_windowed(tmp_path, long_wav):
    words = [{"text": "one", "start": 1.0, "end": 2.0}, {"text": "two", "start": 9.5, "end": 10.5},
             {"text": "three", "start": 21.0, "end": 22.0}]
    src = row("long.src", long_wav, corpus="loc", transcript="one two three", words=words,
              lyrics="untimed lyrics", extra={"corpus_field": 1})
    outcomes, counts = run_media([src], tmp_path)
    (o,) = outcomes
    assert o.status == "ok" and o.key == src["key"]
    recs = o.rows
    assert [r["key"] for r in recs] == [make_key("loc", "long.src", s) for s in (0, 10, 20)]
    assert [r["key"] for r in recs] == ["loc-long_src-000000000", "loc-long_src-000010000", "loc-long_src-000020000"]
    assert [r["start_s"] for r in recs] == [0, 10, 20]
    assert [r["duration_s"] for r in recs] == pytest.approx([10, 10, 3.4])
    for r in recs:
        x, _rate = decode_audio_blob(r["audio_44k"])
        assert abs(x.size - r["duration_s"] * 44100) <= 1
        assert r["source_id"] == "long.src" and r["corpus"] == "loc"
        assert extra(r)["corpus_field"] == 1
        assert r["lyrics"] is None  # untimed text cannot be cut
    assert [r["transcript"] for r in recs] == ["one two", "two", "three"]
    assert recs[1]["words"] == [{"text": "two", "start": 0.0, "end": 0.5}]
    assert recs[2]["words"] == [{"text": "three", "start": 1.0, "end": 2.0}]
    assert [extra(r)["media"]["window_index"] for r in recs] == [0, 1, 2]
    assert counts["windows_out"] == 3 and counts["sources_decoded"] == 1
    assert counts["texts_dropped_untimed"] == 3
    assert counts["audio_seconds_out"] == pytest.approx(23.4)


def test_windows_join_into_the_whole_signal(tmp_path, long_wav):
    outcomes, _ = run_media([row("w", long_wav)], tmp_path, max_clip_s=4.0)
    joined = np.concatenate([decode_audio_blob(r["audio_16k"])[0] for r in outcomes[0].rows])
    native, _ = sf.read(long_wav, dtype="float32")
    assert abs(joined.size - native.size) <= len(outcomes[0].rows)
    assert np.max(np.abs(joined[: native.size] - native[: joined.size])) < 1e-4  # 16 kHz in, 16 kHz out


def test_short_tail_window_is_dropped_and_counted(tmp_path):
    path = tone_wav(tmp_path / "t.wav", 20.3, 22050)
    outcomes, counts = run_media([row("t", path)], tmp_path)
    assert [r["duration_s"] for r in outcomes[0].rows] == pytest.approx([10, 10])
    assert counts["windows_dropped_too_short"] == 1


def test_span_with_start_is_windowed_from_its_start(tmp_path, long_wav):
    outcomes, _ = run_media([row("s", long_wav, start_s=5.0, duration_s=12.0)], tmp_path)
    assert [(r["start_s"], r["duration_s"]) for r in outcomes[0].rows] == [(5.0, 10.0), (15.0, pytest.approx(2.0))]


def test_span_running_past_the_end_is_clamped(tmp_path, long_wav):
    outcomes, _ = run_media([row("s", long_wav, start_s=20.0, duration_s=10.0)], tmp_path)
    (rec,) = outcomes[0].rows
    assert rec["duration_s"] == pytest.approx(3.4) and rec["true_duration_s"] == pytest.approx(3.4)
    assert abs(decode_audio_blob(rec["audio_16k"])[0].size - 3.4 * 16000) <= 1


def test_video_windows_have_exact_frame_counts(tmp_path):
    path = encode_video(tmp_path / "v.mp4", seconds=5, fps=30, width=64, height=48, audio_rate=48000)
    outcomes, _ = run_media([row("v", path)], tmp_path, max_clip_s=2.0)
    recs = outcomes[0].rows
    assert [r["start_s"] for r in recs] == [0, 2, 4]
    for r in recs:
        assert len(r["clip_frames"]) == frame_count(r["duration_s"], 8)
        assert len(r["sync_frames"]) == frame_count(r["duration_s"], 25)
        assert abs(decode_audio_blob(r["audio_44k"])[0].size - r["duration_s"] * 44100) <= 1


def test_late_span_seeks_and_stays_exact(tmp_path):
    rate = 16000
    t = np.arange(40 * rate) / rate
    x = (0.4 * np.sin(2 * np.pi * 3 * t) * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    sf.write(tmp_path / "late.wav", x, rate, subtype="FLOAT")
    outcomes, _ = run_media([row("late", tmp_path / "late.wav", start_s=33.25, duration_s=2.0)], tmp_path,
                            seek_min_s=30.0)
    (rec,) = outcomes[0].rows
    y = decode_audio_blob(rec["audio_16k"])[0]
    ref = x[int(33.25 * rate): int(35.25 * rate)]
    assert y.size == ref.size
    assert np.max(np.abs(y - ref)) < 1e-5  # 24-bit FLAC quantisation only


def test_audio_timestamp_gap_is_filled_with_silence(tmp_path):
    """A stream whose timestamps jump 0.5 s keeps its timeline: the gap becomes silence, later audio stays in place."""
    from fractions import Fraction

    import av

    rate, hop = 16000, 1600
    path = tmp_path / "gap.mkv"
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(hop) / rate)).astype(np.float32)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("pcm_f32le", rate=rate, layout="mono")
        for k in range(20):  # 2 s of tone in 0.1 s frames; frames 10.. start 0.5 s later
            frame = av.AudioFrame.from_ndarray(tone[None, :], format="flt", layout="mono")
            frame.sample_rate, frame.time_base = rate, Fraction(1, rate)
            frame.pts = k * hop + (rate // 2 if k >= 10 else 0)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    outcomes, counts = run_media([row("gap", path)], tmp_path, max_silence_ratio=None)
    (rec,) = outcomes[0].rows
    assert counts["audio_gaps_filled"] == 1
    assert rec["duration_s"] == pytest.approx(2.5)
    y = decode_audio_blob(rec["audio_16k"])[0]
    assert np.max(np.abs(y[int(1.05 * rate): int(1.45 * rate)])) == 0  # the gap
    assert np.max(np.abs(y[int(1.55 * rate): int(2.45 * rate)])) > 0.25  # the tone after it, in place
