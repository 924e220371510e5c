"""Joining stage outputs back into records (no Ray)."""
from __future__ import annotations

from pipeline.commit import atomic_write_parquet
from pipeline.layout import INGEST, RunLayout
from pipeline.partition import load_input
from pipeline.record import new_record, records_to_table


def test_join_keeps_order_drops_rejected_and_nulls_do_not_erase(tmp_path):
    layout = RunLayout(tmp_path)
    recs = [new_record("c", f"s{i}", f"/m/{i}", transcript="given" if i == 0 else None) for i in range(4)]
    atomic_write_parquet(layout.part(INGEST, 0), records_to_table(recs))
    # stage "vad" kept rows 0, 1, 3 (row 2 rejected); "transcribe" passed row 0 through untouched
    atomic_write_parquet(layout.part("vad", 0), records_to_table(
        [{"key": recs[i]["key"], "speech_ratio": 0.1 * i} for i in (3, 0, 1)]))
    atomic_write_parquet(layout.part("transcribe", 0), records_to_table(
        [{"key": recs[0]["key"], "transcript": None}, {"key": recs[1]["key"], "transcript": "heard"},
         {"key": recs[3]["key"], "transcript": None}]))
    t = load_input(layout, ["vad", "transcribe"], 2, 0, ["transcript", "speech_ratio"])
    rows = t.to_pylist()
    assert [r["key"] for r in rows] == [recs[i]["key"] for i in (0, 1, 3)]  # ingest order
    assert [r["transcript"] for r in rows] == ["given", "heard", None]
    assert [round(r["speech_ratio"], 1) for r in rows] == [0.0, 0.1, 0.3]


def test_retry_merge_puts_windows_back_in_uninterrupted_order():
    import pyarrow as pa

    from pipeline.partition import _merge_retry

    order = ["c-a-000030000", "c-a-000001000", "c-b-000000000"]
    old = pa.table({"key": ["c-a-000030000", "c-a-000040000"]})  # source a@30 cut in two windows
    new = pa.table({"key": ["c-b-000000000", "c-b-000010000", "c-a-000001000"]})  # retried rows
    merged = _merge_retry(old, new, order)["key"].to_pylist()
    assert merged == ["c-a-000030000", "c-a-000040000", "c-a-000001000", "c-b-000000000", "c-b-000010000"]
