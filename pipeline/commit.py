"""The commit protocol (DESIGN §2): temporary name, fsync, rename; the marker last.

A partition exists only when its `.done.json` marker parses and every output it
lists is on disk with the recorded size. Anything else under a stage folder is an
orphan of a killed run and is deleted on start (`remove_orphans`).
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

TMP_MARK = ".tmp-"
MARKER_SUFFIX = ".done.json"


def part_name(partition: int) -> str:
    return f"part-{partition:05d}"


def fsync_dir(path: Path) -> None:
    """fsync a directory (its renames durable); a filesystem that cannot is left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> dict:
    """Write `data` to `path` atomically; returns {"sha256", "bytes"}."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}{TMP_MARK}{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def atomic_write_json(path: Path, obj: Any) -> dict:
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True, allow_nan=False) + "\n").encode())


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def atomic_write_parquet(path: Path, table: pa.Table) -> dict:
    return atomic_write_bytes(path, parquet_bytes(table))


def read_marker(marker: Path) -> dict | None:
    """The marker's content if it is valid and every output it lists is intact, else None."""
    try:
        data = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("outputs"), dict):
        return None
    for rel, meta in data["outputs"].items():
        p = marker.parent.parent.parent / rel  # outputs are relative to the run directory
        try:
            if p.stat().st_size != meta["bytes"]:
                return None
        except (OSError, KeyError, TypeError):
            return None
    return data


def verify_outputs(run_dir: Path, marker: dict) -> list[str]:
    """Outputs whose sha256 does not match the marker (slow: reads every byte)."""
    bad = []
    for rel, meta in marker["outputs"].items():
        data = (run_dir / rel).read_bytes() if (run_dir / rel).exists() else b""
        if hashlib.sha256(data).hexdigest() != meta["sha256"]:
            bad.append(rel)
    return bad


def remove_orphans(folder: Path, valid_stems: set[str]) -> list[Path]:
    """Delete temp files and files whose stem (part-NNNNN) has no valid marker."""
    removed = []
    if not folder.exists():
        return removed
    for p in sorted(folder.iterdir()):
        if not p.is_file():
            continue
        stem = p.name.split(".", 1)[0]
        if TMP_MARK in p.name or stem not in valid_stems:
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed
