"""Small helpers shared by the media tests."""
from __future__ import annotations

from pathlib import Path

from pipeline.record import new_record
from pipeline.stage import run_stage_on_rows
from pipeline.stages.media import MediaStage


def row(source_id: str, path: Path | str, corpus: str = "t", **fields) -> dict:
    return new_record(corpus, source_id, str(path), **fields)


def run_media(rows: list[dict], tmp_path: Path, **options):
    return run_stage_on_rows(MediaStage, options, rows, tmp_path)


def only_record(outcome) -> dict:
    assert outcome.status == "ok", (outcome.status, outcome.message)
    assert len(outcome.rows) == 1
    return outcome.rows[0]
