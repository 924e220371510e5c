"""WebDataset shards (DESIGN §6): writing, indexing, and streaming them back.

The shard step runs after every partition has passed every stage. Clips are taken
per split in partition order, then row order, and cut into shards of exactly
`samples_per_shard` (the last one of a split may be shorter). A shard is written in
memory with sorted members and a fixed mtime, committed atomically, and recorded
in a marker; `index.json` is written last. Same rows → byte-identical tars.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import webdataset as wds

from .commit import atomic_write_bytes, atomic_write_json, read_marker
from .config import ShardSpec
from .layout import INGEST, RunLayout
from .media.frames import decode_frames
from .partition import load_input
from .record import RECORD_FIELDS

SHARD_MTIME = 0.0  # fixed member mtime: byte-identical shards on rerun
ARRAY_MEMBERS = {  # column → (member name, dtype)
    "latent": ("latent.npy", np.float16),
    "clip_features": ("clip.npy", np.float16),
    "sync_features": ("sync.npy", np.float16),
    "tokens": ("tokens.npy", np.int32),
}
FEATURE_MEMBERS = {  # modality → (array column, encoder identity column); shard json `features`
    "clip": ("clip_features", "clip_encoder"),
    "sync": ("sync_features", "sync_encoder"),
    "latent": ("latent", "latent_encoder"),
}


@dataclass
class ShardPlan:
    split: str
    index: int
    pieces: list[tuple[int, list[str]]]  # (partition, keys in order)
    inputs_sha: str = ""  # fingerprint of everything the shard is built from (see plan_shards)

    @property
    def nsamples(self) -> int:
        return sum(len(k) for _, k in self.pieces)

    @property
    def keys_sha(self) -> str:
        h = hashlib.sha256()
        for p, keys in self.pieces:
            h.update(f"{p}:{','.join(keys)};".encode())
        return h.hexdigest()


def plan_shards(layout: RunLayout, stage_names: list[str], nparts: int, spec: ShardSpec) -> list[ShardPlan]:
    per_split: dict[str, list[tuple[int, str]]] = {}
    for p in range(nparts):
        t = load_input(layout, stage_names, len(stage_names), p, ["key", "split"])
        for key, split in zip(t["key"].to_pylist(), t["split"].to_pylist() if "split" in t.column_names
                              else [None] * t.num_rows):
            per_split.setdefault(split or "train", []).append((p, key))
    part_sha = {p: _partition_fingerprint(layout, stage_names, p) for p in range(nparts)}
    spec_sha = hashlib.sha256(json.dumps([stage_names, spec.model_dump(mode="json")], sort_keys=True)
                              .encode()).hexdigest()
    plans = []
    for split in sorted(per_split):
        entries = per_split[split]
        n = spec.samples_per_shard
        for i in range(math.ceil(len(entries) / n)):
            pieces: list[tuple[int, list[str]]] = []
            for p, key in entries[i * n:(i + 1) * n]:
                if pieces and pieces[-1][0] == p:
                    pieces[-1][1].append(key)
                else:
                    pieces.append((p, [key]))
            h = hashlib.sha256(spec_sha.encode())
            for p in sorted({p for p, _ in pieces}):
                h.update(f"{p}:{part_sha[p]};".encode())
            plans.append(ShardPlan(split, i, pieces, h.hexdigest()))
    return plans


def _partition_fingerprint(layout: RunLayout, stage_names: list[str], p: int) -> str:
    """sha256 over the committed outputs (their sha256) of ingest and every stage for partition p:
    a shard drawing from p is rebuilt exactly when one of them changed (e.g. an appended stage)."""
    h = hashlib.sha256()
    for stage in [INGEST, *stage_names]:
        m = read_marker(layout.marker(stage, p)) or {}
        outs = m.get("outputs", {})
        h.update(f"{stage}:{','.join(outs[k]['sha256'] for k in sorted(outs))};".encode())
    return h.hexdigest()


def _json_safe(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_json_safe(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    return v


def sample_from_row(row: dict, spec: ShardSpec) -> dict:
    """One WebDataset sample: members sorted by the writer; absent modalities absent."""
    meta = {k: _json_safe(row.get(k)) for k in RECORD_FIELDS if k in row}
    for k in ("token_starts", "token_ends", "caption_settings", "transcript_settings", "sync_times"):
        if row.get(k) is not None:
            meta[k] = _json_safe(row[k])
    arrays = {col: _array_member(row[col], dtype) for col, (_, dtype) in ARRAY_MEMBERS.items()
              if row.get(col) is not None}
    features = {}
    for kind, (col, id_col) in FEATURE_MEMBERS.items():
        if col in arrays and row.get(id_col):
            shape = np.load(io.BytesIO(arrays[col]), allow_pickle=False, mmap_mode=None).shape
            width = shape[-1] // 2 if kind == "latent" else shape[-1]  # latent: [T, 2C] = mean ‖ std
            features[kind] = {"encoder": str(row[id_col]).split("@", 1)[0], "id": row[id_col], "dim": int(width)}
    if features:
        meta["features"] = features
    sample = {"__key__": row["key"],
              "json": json.dumps(meta, sort_keys=True, ensure_ascii=False).encode("utf-8")}
    if spec.include_flac and row.get("audio_44k"):
        sample["flac"] = row["audio_44k"]
    if spec.include_frames:
        for col in ("clip_frames", "sync_frames"):
            if row.get(col):
                sample[f"{col}.npy"] = _npy(decode_frames(row[col]))
    for col, (member, _) in ARRAY_MEMBERS.items():
        if col in arrays:
            sample[member] = arrays[col]
    return sample


def _array_member(value, dtype) -> bytes:
    """`.npy` bytes of a column: stored `.npy` bytes pass through unchanged (feature stages
    write them), nested lists (tokens) are converted to `dtype`."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return _npy(np.asarray(value, dtype=dtype))


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def shard_columns(spec: ShardSpec) -> list[str]:
    cols = list(RECORD_FIELDS) + ["token_starts", "token_ends", "caption_settings", "transcript_settings",
                                  "sync_times"]
    cols += list(ARRAY_MEMBERS) + [id_col for _, id_col in FEATURE_MEMBERS.values()]
    if spec.include_flac:
        cols.append("audio_44k")
    if spec.include_frames:
        cols += ["clip_frames", "sync_frames"]
    return cols


def write_shard(layout: RunLayout, stage_names: list[str], plan: ShardPlan, spec: ShardSpec) -> dict:
    """Build one tar in memory, commit it, then its marker. Returns the marker."""
    buf = io.BytesIO()
    with wds.TarWriter(buf, mtime=SHARD_MTIME, user="agomni", group="agomni", encoder=False) as sink:
        for p, keys in plan.pieces:
            t = load_input(layout, stage_names, len(stage_names), p, shard_columns(spec))
            t = t.filter(pa.compute.is_in(t["key"], value_set=pa.array(keys, pa.string())))
            rows = {r["key"]: r for r in t.to_pylist()}
            for key in keys:
                sink.write(sample_from_row(rows[key], spec))
    data = buf.getvalue()
    path = layout.shard(plan.split, plan.index)
    meta = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if not (path.exists() and path.stat().st_size == len(data) and _file_sha256(path) == meta["sha256"]):
        atomic_write_bytes(path, data)  # rewritten only where its content changes
    marker = {"name": path.name, "split": plan.split, "nsamples": plan.nsamples, "keys_sha": plan.keys_sha,
              "inputs_sha": plan.inputs_sha,
              "sha256": meta["sha256"], "bytes": meta["bytes"], "outputs": {layout.rel(path): meta}}
    atomic_write_json(layout.shard_marker(plan.split, plan.index), marker)
    return marker


def committed_shard(layout: RunLayout, plan: ShardPlan) -> dict | None:
    m = read_marker(layout.shard_marker(plan.split, plan.index))
    return m if m and m.get("keys_sha") == plan.keys_sha and m.get("inputs_sha") == plan.inputs_sha else None


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_index(layout: RunLayout, markers: list[dict]) -> None:
    by_split: dict[str, list[dict]] = {}
    for m in markers:
        by_split.setdefault(m["split"], []).append(
            {"name": m["name"], "nsamples": m["nsamples"], "sha256": m["sha256"], "bytes": m["bytes"]})
    for split, shards in by_split.items():
        shards.sort(key=lambda s: s["name"])
        index = {"split": split, "nsamples": sum(s["nsamples"] for s in shards), "shards": shards}
        path = layout.shard_index(split)
        try:
            if json.loads(path.read_text()) == index:
                continue  # unchanged: not rewritten
        except (OSError, ValueError):
            pass
        atomic_write_json(path, index)
    root = layout.root / "shards"
    for path in root.glob("*/index.json") if root.exists() else []:
        if path.parent.name not in by_split:
            path.unlink()


def remove_stale_shards(layout: RunLayout, plans: list[ShardPlan]) -> None:
    """Drop shard files, markers and indexes that the current plan does not produce."""
    wanted = {layout.shard(pl.split, pl.index).name for pl in plans}
    root = layout.root / "shards"
    if root.exists():
        for f in root.rglob("*"):
            if f.is_file() and f.name != "index.json" and f.name not in wanted:
                f.unlink()
    mdir = layout.stage_dir("shard")
    if mdir.exists():
        for f in mdir.iterdir():
            if f.name.split(".", 1)[0] + ".tar" not in wanted:
                f.unlink()


# -- reading: pipeline/shard_reader.py (re-exported here for existing imports) ----------------------
from .shard_reader import ShardChecksumError, shard_urls, stream_shards  # noqa: F401
