"""The local-media adapter and the ingest step: every row ends in a terminal state."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from pipeline.config import parse_config
from pipeline.errors import ConfigError
from pipeline.ingest import commit_ingest, read_corpora
from pipeline.layout import INGEST, RunLayout


def cfg_for(root, **opts):
    return parse_config({"corpora": [{"adapter": "local", "options": {"root": str(root), **opts}}],
                         "partition_size": 3})


def test_duplicate_keys_non_utf8_and_bad_numbers_end_in_rejects(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"x")
    csv_bytes = (b"path,caption,start_s,kind\n"
                 b"a.wav,first,0,audio\n"
                 b"a.wav,same key again,0,audio\n"
                 b"a.wav,\xff\xfe not utf8,5,audio\n"
                 b"a.wav,bad start,abc,audio\n"
                 b"a.wav,bad kind,7,music\n"
                 b"a.wav,fine,9,speech\n")
    (tmp_path / "clips.csv").write_bytes(csv_bytes)
    records, summaries, fp = read_corpora(cfg_for(tmp_path))
    assert len(records) == 6 and summaries["local"].records == 6 and fp["local"]
    layout = RunLayout(tmp_path / "run")
    markers = commit_ingest(layout, records, 3, "h")
    assert sum(m["in"] for m in markers) == 6
    for m in markers:
        assert m["in"] == m["ok"] + m["filtered"] + m["failed"]
    rej = [r for p in range(2) for r in pq.read_table(layout.rejects(INGEST, p)).to_pylist()]
    statuses = sorted(r["status"] for r in rej)
    assert statuses == ["failed:ingest:bad_kind", "failed:ingest:bad_number", "failed:ingest:non_utf8_text",
                        "filtered:duplicate_key"]
    assert any("clips.csv:4" in r["message"] for r in rej)  # the line is named
    ok = [r for p in range(2) for r in pq.read_table(layout.part(INGEST, p)).to_pylist()]
    assert [r["caption"] for r in ok] == ["first", "fine"]
    assert ok[0]["caption_model"] == "metadata:local" and ok[1]["kind"] == "speech"


def test_missing_required_column_names_the_file(tmp_path):
    (tmp_path / "clips.csv").write_text("file,caption\na.wav,x\n")
    with pytest.raises(ConfigError, match=r"clips\.csv: missing required column"):
        read_corpora(cfg_for(tmp_path))


def test_missing_csv_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read metadata file .*nope.csv"):
        read_corpora(cfg_for(tmp_path, csv="nope.csv"))


def test_limit_and_splits_apply_to_the_local_adapter(tmp_path):
    rows = "".join(f"f{i}.wav,{'test' if i % 2 else 'train'}\n" for i in range(10))
    (tmp_path / "clips.csv").write_text("path,split\n" + rows)
    recs, summaries, _ = read_corpora(cfg_for(tmp_path, splits=["test"], limit=3))
    assert [r["split"] for r in recs] == ["test"] * 3
    assert summaries["local"].skipped == {"split_not_selected": 5, "over_limit": 2}
