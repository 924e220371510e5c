"""TokenizeStage: transcript/lyrics (+ word or line times) → VoiceBPE ids with per-token times."""
from __future__ import annotations

import pyarrow as pa
import pytest

from pipeline.record import new_record, records_to_table
from pipeline.stage import run_stage_on_rows
from pipeline.stages.tokenize import TokenizeStage
from pipeline.text.voicebpe import VoiceBPETokenizer


def rec(source_id: str, **fields) -> dict:
    return new_record("test", source_id, None, **fields)


@pytest.fixture(scope="module")
def tok():
    return VoiceBPETokenizer.load()


def run(rows, tmp_path, options=None):
    outcomes, counts = run_stage_on_rows(TokenizeStage, options, rows, tmp_path)
    assert all(o.ok for o in outcomes), [(o.key, o.status, o.message) for o in outcomes]
    return [o.rows[0] for o in outcomes], counts


def test_timed_transcript_gets_token_times(tmp_path, tok):
    words = [{"text": "Hello", "start": 0.1, "end": 0.5}, {"text": "world.", "start": 0.6, "end": 1.2}]
    (out,), counts = run([rec("a", kind="speech", transcript="Hello world.", words=words, language="en")], tmp_path)
    assert tok.decode(out["tokens"].tolist()) == "hello world"
    assert out["tokens"].dtype.name == "int32"
    assert len(out["token_starts"]) == len(out["token_ends"]) == len(out["tokens"])
    assert out["token_starts"][0] == pytest.approx(0.1) and out["token_ends"][-1] == pytest.approx(1.2)
    assert out["tokens_source"] == "transcript" and out["tokenizer"] == tok.version
    assert counts["rows_timed_by_words"] == 1 and counts["tokens_written"] == len(out["tokens"])


def test_song_lyrics_win_and_lines_time_them(tmp_path, tok):
    lines = [{"text": "我爱你", "start": 1.0, "end": 2.5}, {"text": "爱着你", "start": 3.0, "end": 4.0}]
    row = rec("song", kind="song", lyrics="我爱你\n爱着你", transcript="something else", lines=lines)
    (out,), counts = run([row], tmp_path)
    assert out["tokens_source"] == "lyrics"
    assert tok.decode(out["tokens"].tolist()) == "wo3 ai4 ni3 ai4 zhe5 ni3"
    assert out["token_starts"][0] == pytest.approx(1.0) and out["token_ends"][-1] == pytest.approx(4.0)
    assert counts["rows_timed_by_lines"] == 1


def test_untimed_and_mismatched_timings_and_no_text(tmp_path, tok):
    rows = [
        rec("ja", kind="speech", transcript="東京タワー", language="ja"),
        rec("ko", kind="speech", transcript="사랑해", words=[{"text": "different", "start": 0.0, "end": 1.0}]),
        rec("silent", kind="audio"),
    ]
    outs, counts = run(rows, tmp_path)
    assert tok.decode(outs[0]["tokens"].tolist()) == "toukyou tawaa" and outs[0]["token_starts"] is None
    assert tok.decode(outs[1]["tokens"].tolist()) == "saranghae" and outs[1]["token_starts"] is None
    assert outs[2] == {}
    assert counts["rows_untimed"] == 2 and counts["timings_not_matching_text"] == 1
    assert counts["rows_without_text"] == 1


def test_unknown_characters_are_counted(tmp_path, tok):
    (out,), counts = run([rec("ru", kind="speech", transcript="Привет ok")], tmp_path)
    assert counts["unknown_chars"] == 6
    assert out["tokens"].tolist().count(tok.unk_id) == 6


def test_written_columns_keep_their_arrow_types(tmp_path):
    words = [{"text": "hi", "start": 0.0, "end": 0.3}]
    outs, _ = run([rec("a", kind="speech", transcript="hi", words=words), rec("b", kind="speech", transcript="yo")],
                  tmp_path)
    table = records_to_table([{"key": "a", **outs[0]}, {"key": "b", **outs[1]}])
    assert table.schema.field("tokens").type == pa.list_(pa.int32())
    assert table.schema.field("token_starts").type == pa.list_(pa.float64())


def test_missing_vocab_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        run_stage_on_rows(TokenizeStage, {"vocab": str(tmp_path / "nope.json")}, [], tmp_path)
