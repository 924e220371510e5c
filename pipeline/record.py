"""The clip record: one Arrow schema shared by every stage's parquet (DESIGN §4).

A stage's parquet holds `key` plus the columns the stage writes; the runner joins
them back into full records. Columns not in CLIP_SCHEMA are allowed (media blobs,
stage-specific fields) and are typed by Arrow inference.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterable

import pyarrow as pa

KEY_START_DIGITS = 9
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")

KINDS = ("audio", "speech", "song")

TIMED_TEXT = pa.list_(pa.struct([("text", pa.string()), ("start", pa.float64()), ("end", pa.float64())]))

CLIP_SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("corpus", pa.string()),
        ("source_id", pa.string()),
        ("media_uri", pa.string()),  # local path, http(s) URL or "youtube:<id>"
        ("media_path", pa.string()),  # local file after the fetch stage (None before)
        ("media_offset_s", pa.float64()),  # media_path starts this far into the source (clip-span downloads)
        ("start_s", pa.float64()),
        ("duration_s", pa.float64()),  # None when unknown until decoded
        ("split", pa.string()),
        ("license", pa.string()),
        ("kind", pa.string()),  # audio | speech | song
        ("has_video", pa.bool_()),
        ("has_audio", pa.bool_()),
        ("label", pa.string()),
        ("caption", pa.string()),
        ("caption_model", pa.string()),  # name@revision, "metadata:<corpus>" or "template:<corpus>"
        ("captions", pa.list_(pa.string())),  # all captions the corpus gives
        ("transcript", pa.string()),
        ("transcript_model", pa.string()),
        ("lyrics", pa.string()),
        ("lyrics_model", pa.string()),
        ("language", pa.string()),
        ("speaker", pa.string()),
        ("gender", pa.string()),
        ("words", TIMED_TEXT),  # word timings, seconds relative to the clip start
        ("lines", TIMED_TEXT),  # line timings, seconds relative to the clip start
        ("loudness_lufs", pa.float64()),
        ("peak_dbfs", pa.float64()),
        ("clipping_ratio", pa.float64()),
        ("silence_ratio", pa.float64()),
        ("speech_ratio", pa.float64()),
        ("true_duration_s", pa.float64()),
        ("status", pa.string()),
        ("extra", pa.string()),  # JSON object: corpus-specific fields (scores, tags, ...)
    ]
)
RECORD_FIELDS = tuple(CLIP_SCHEMA.names)

# Columns that hold bulk media, never copied into shard json members.
BLOB_COLUMNS = ("audio_44k", "audio_16k", "clip_frames", "sync_frames")


def make_key(corpus: str, source_id: str, start_s: float | None) -> str:
    """`<corpus>-<source id>-<start in ms, 9 digits>` with unsafe characters mapped to `_`.

    Dots become `_` too: WebDataset splits member names on dots.
    """
    start_ms = int(round((start_s or 0.0) * 1000))
    if start_ms < 0:
        raise ValueError(f"negative clip start {start_s!r} for {corpus}/{source_id}")
    safe = lambda s: _KEY_UNSAFE.sub("_", str(s))  # noqa: E731
    return f"{safe(corpus)}-{safe(source_id)}-{start_ms:0{KEY_START_DIGITS}d}"


def new_record(corpus: str, source_id: str, media_uri: str | None, *, start_s: float = 0.0, **fields: Any) -> dict:
    """A full clip record with every schema field present (None where unknown)."""
    unknown = set(fields) - set(RECORD_FIELDS)
    if unknown:
        raise KeyError(f"not clip record fields: {sorted(unknown)}")
    rec = {name: None for name in RECORD_FIELDS}
    rec.update(corpus=corpus, source_id=str(source_id), media_uri=media_uri, start_s=float(start_s))
    if isinstance(fields.get("extra"), dict):
        fields["extra"] = json.dumps(fields["extra"], sort_keys=True, ensure_ascii=False)
    rec.update(fields)
    if rec["kind"] is not None and rec["kind"] not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {rec['kind']!r}")
    rec["key"] = make_key(corpus, source_id, start_s)
    return rec


def records_to_table(rows: Iterable[dict], extra_columns: bool = True) -> pa.Table:
    """Rows → Arrow table; record fields get CLIP_SCHEMA types, other columns are inferred."""
    rows = list(rows)
    names: list[str] = []
    for r in rows:
        for k in r:
            if k not in names:
                names.append(k)
    if "key" in names:
        names.remove("key")
        names.insert(0, "key")
    arrays, fields = [], []
    for n in names:
        values = [r.get(n) for r in rows]
        if n in RECORD_FIELDS:
            typ = CLIP_SCHEMA.field(n).type
            arrays.append(pa.array(values, type=typ))
            fields.append(pa.field(n, typ))
        elif extra_columns:
            arr = pa.array(values)
            arrays.append(arr)
            fields.append(pa.field(n, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def extra(rec: dict) -> dict:
    """The record's `extra` JSON object as a dict."""
    raw = rec.get("extra")
    return json.loads(raw) if raw else {}


def row_seconds_known(row: dict) -> float:
    """Media seconds a row stands for (0 when not yet known)."""
    d = row.get("true_duration_s") or row.get("duration_s")
    return float(d) if d else 0.0
