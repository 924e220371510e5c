"""Ingest: corpus adapters → clip records → partitions (the first committed stage).

Reads every configured corpus in config order, ends each record in a terminal state
(`filtered:duplicate_key` for a key seen before, or a status the adapter preset,
e.g. `failed:ingest:non_utf8_text`), and cuts the stream into partitions of
`partition_size` input rows. Deterministic: same metadata and config → same parts.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from .commit import atomic_write_json, atomic_write_parquet
from .config import RunConfig
from .errors import ConfigError
from .layout import INGEST, RunLayout
from .partition import REJECT_SCHEMA
from .record import records_to_table, row_seconds_known
from .registry import adapter_class


@dataclass
class CorpusSummary:
    corpus: str
    records: int = 0
    seconds: float = 0.0
    unknown_duration: int = 0
    splits: Counter = field(default_factory=Counter)
    needs_fetch: int = 0
    skipped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"records": self.records, "hours": round(self.seconds / 3600, 4),
                "unknown_duration": self.unknown_duration, "splits": dict(self.splits),
                "needs_fetch": self.needs_fetch, "skipped": dict(self.skipped)}


def needs_fetch(uri: str | None) -> bool:
    return bool(uri) and not Path(uri).is_absolute()


def read_corpora(cfg: RunConfig) -> tuple[list[dict], dict[str, CorpusSummary], dict[str, str]]:
    """All records in config order, a summary per corpus, and the input fingerprint."""
    records: list[dict] = []
    summaries: dict[str, CorpusSummary] = {}
    fingerprint: dict[str, str] = {}
    for i, spec in enumerate(cfg.corpora):
        adapter = adapter_class(spec.adapter)(spec.options)
        label = spec.adapter if spec.adapter not in summaries else f"{spec.adapter}#{i}"
        h = hashlib.sha256()
        for f in sorted(adapter.input_files()):
            h.update(str(f).encode())
            try:
                h.update(Path(f).read_bytes())
            except OSError as exc:
                raise ConfigError(f"corpora[{i}] ({spec.adapter}): cannot read metadata file {f}: "
                                  f"{exc.strerror or exc}") from None
        fingerprint[label] = h.hexdigest()
        s = CorpusSummary(label)
        for rec in adapter.records():
            records.append(rec)
            s.records += 1
            s.splits[rec.get("split") or "none"] += 1
            if rec.get("duration_s"):
                s.seconds += row_seconds_known(rec)
            else:
                s.unknown_duration += 1
            s.needs_fetch += needs_fetch(rec.get("media_uri"))
        s.skipped = adapter.skipped
        summaries[label] = s
    return records, summaries, fingerprint


def fingerprint_hash(fp: dict[str, str]) -> str:
    return hashlib.sha256(repr(sorted(fp.items())).encode()).hexdigest()


def commit_ingest(layout: RunLayout, records: list[dict], partition_size: int, config_hash: str,
                  only: set[int] | None = None) -> list[dict]:
    """Write ingest partitions (all, or those in `only`); returns their markers."""
    seen: set[str] = set()
    markers = []
    for p, lo in enumerate(range(0, max(len(records), 1), partition_size)):
        chunk = records[lo:lo + partition_size]
        ok, rejects = [], []
        for rec in chunk:
            status = rec.get("status")
            if status and status != "ok":  # the adapter already ended this row
                rejects.append({"key": rec["key"], "status": status,
                                "message": (rec.get("extra") or "")[:500], "attempts": 1})
            elif rec["key"] in seen:
                rejects.append({"key": rec["key"], "status": "filtered:duplicate_key",
                                "message": f"key already used by an earlier row ({rec.get('media_uri')})",
                                "attempts": 1})
            else:
                ok.append({**rec, "status": "ok"})
                seen.add(rec["key"])
        if only is not None and p not in only:
            continue
        ok_t = records_to_table(ok, extra_columns=False) if ok else records_to_table([{"key": None}]).slice(0, 0)
        rej_t = pa.Table.from_pylist(rejects, schema=REJECT_SCHEMA)
        outputs = {
            layout.rel(layout.part(INGEST, p)): atomic_write_parquet(layout.part(INGEST, p), ok_t),
            layout.rel(layout.rejects(INGEST, p)): atomic_write_parquet(layout.rejects(INGEST, p), rej_t),
        }
        reasons = Counter(r["status"] for r in rejects)
        marker = {
            "stage": INGEST, "partition": p, "config_hash": config_hash, "in": len(chunk), "ok": len(ok),
            "filtered": sum(v for k, v in reasons.items() if k.startswith("filtered:")),
            "failed": sum(v for k, v in reasons.items() if k.startswith("failed:")),
            "rows_out": len(ok), "seconds_in": round(sum(map(row_seconds_known, chunk)), 3),
            "seconds_out": round(sum(map(row_seconds_known, ok)), 3), "reasons": dict(sorted(reasons.items())),
            "counters": {}, "wall_s": 0.0, "outputs": outputs, "retried_failed": False,
        }
        atomic_write_json(layout.marker(INGEST, p), marker)
        markers.append(marker)
    return markers


def npartitions(nrecords: int, partition_size: int) -> int:
    return max(1, -(-nrecords // partition_size))
