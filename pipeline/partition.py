"""Run one stage on one partition and commit the result.

A stage's parquet holds `key` + the columns it writes, for the rows that ended `ok`;
its rejects parquet holds `key`, `status`, `message` for the others. The input of
stage k is the ingest partition joined (by key, keeping order) with the outputs of
stages 0..k-1; a fan-out stage's output replaces the base of that join. A null that a
stage writes leaves the upstream value in place (rows a model stage passes through).
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .commit import atomic_write_json, atomic_write_parquet, read_marker
from .layout import INGEST, RunLayout
from .record import records_to_table, row_seconds_known
from .registry import stage_class
from .stage import Outcome, Stage

REJECT_SCHEMA = pa.schema([("key", pa.string()), ("status", pa.string()), ("message", pa.string()),
                           ("attempts", pa.int32())])


def _read(path: Path, columns: list[str] | None) -> pa.Table:
    if columns is None:
        return pq.read_table(path)
    have = set(pq.read_schema(path).names)
    return pq.read_table(path, columns=[c for c in columns if c in have])


def load_input(layout: RunLayout, stage_names: list[str], k: int, p: int,
               columns: list[str] | None = None) -> pa.Table:
    """Rows ok in every stage before k, with their latest columns, in ingest order."""
    want = None if columns is None else sorted(set(columns) | {"key"})
    base_j = -1  # -1: ingest
    for j in range(k):
        if stage_class(stage_names[j]).fans_out:
            base_j = j
    base_name = INGEST if base_j < 0 else stage_names[base_j]
    table = _read(layout.part(base_name, p), want)
    for j in range(base_j + 1, k):
        out = _read(layout.part(stage_names[j], p), want)
        idx = pc.index_in(table["key"], value_set=out["key"])
        keep = pc.is_valid(idx)
        table = table.filter(keep)
        idx = idx.filter(keep)
        for name in out.column_names:
            if name == "key":
                continue
            col = out[name].take(idx)
            if name in table.column_names:
                # a null means "not written by this row" (a model stage passing a row through):
                # the upstream value stays
                old = table[name]
                if pa.types.is_null(col.type):
                    continue
                if not pa.types.is_null(old.type):
                    col = pc.coalesce(col, old.cast(col.type)) if col.type != old.type else pc.coalesce(col, old)
                table = table.set_column(table.column_names.index(name), name, col)
            else:
                table = table.append_column(name, col)
    return table


def outcomes_to_tables(stage: type[Stage], outcomes: list[Outcome]) -> tuple[pa.Table, pa.Table]:
    ok_rows = []
    for o in outcomes:
        if o.ok:
            for r in o.rows:
                ok_rows.append(r if stage.fans_out else {"key": o.key, **r})
    cols = ["key", *stage.writes]
    if ok_rows:
        ok = records_to_table(ok_rows if stage.fans_out else [{c: r.get(c) for c in cols} for r in ok_rows])
    else:  # nothing passed: an empty table that still has the columns a join needs
        ok = records_to_table([{c: None for c in cols}]).slice(0, 0)
    rej = pa.Table.from_pylist(
        [{"key": o.key, "status": o.status, "message": o.message, "attempts": o.attempts}
         for o in outcomes if not o.ok], schema=REJECT_SCHEMA)
    return ok, rej


def _source_prefix(key: str) -> str:
    """`corpus-source-` of a key (a window of a source shares it with the source row)."""
    return key.rsplit("-", 1)[0]


def _merge_retry(old_ok: pa.Table, new_ok: pa.Table, order: list[str]) -> pa.Table:
    """Old and retried ok rows in the order an uninterrupted run writes them: input order,
    then (windows of one source) by start."""
    starts: dict[str, list[tuple[str, int]]] = {}
    for i, k in enumerate(order):
        starts.setdefault(_source_prefix(k), []).append((k, i))

    def input_index(key: str) -> int:  # the input row a (window) key came from
        cands = [(k, i) for k, i in starts.get(_source_prefix(key), []) if k <= key]
        return max(cands)[1] if cands else len(order)

    merged = pa.concat_tables([old_ok, new_ok], promote_options="permissive")
    keys = merged["key"].to_pylist()
    idx = sorted(range(len(keys)), key=lambda i: (input_index(keys[i]), keys[i]))
    return merged.take(idx)


def run_partition(layout: RunLayout, stage_names: list[str], k: int, p: int, stage: Stage,
                  config_hash: str, retry_failed: bool = False) -> dict:
    """Process partition p with stage k and commit it; returns the marker."""
    cls = type(stage)
    name = stage_names[k]
    t0 = time.time()
    columns = None if cls.reads is None else list(cls.reads) + ["duration_s", "true_duration_s"]
    table = load_input(layout, stage_names, k, p, columns)
    old_rej = None
    durations = {r["key"]: row_seconds_known(r) for r in table.select(
        [c for c in ("key", "duration_s", "true_duration_s") if c in table.column_names]).to_pylist()}
    if retry_failed:
        old_marker = read_marker(layout.marker(name, p)) or {}
        old_rej = pq.read_table(layout.rejects(name, p))
        failed = {s for s, st in zip(old_rej["key"].to_pylist(), old_rej["status"].to_pylist())
                  if st.startswith("failed:")}
        order = table["key"].to_pylist()
        table = table.filter(pc.is_in(table["key"], value_set=pa.array(sorted(failed), pa.string())))
    rows = table.to_pylist()
    stage.counts = Counter()
    stage.ctx.partition = p
    outcomes = stage.process_partition(rows)
    if [o.key for o in outcomes] != [r["key"] for r in rows]:
        raise RuntimeError(f"stage {name}: outcomes do not match input rows in partition {p}")
    ok, rej = outcomes_to_tables(cls, outcomes)
    if retry_failed:
        ok = _merge_retry(pq.read_table(layout.part(name, p)), ok, order)
        kept = old_rej.filter(pc.invert(pc.starts_with(old_rej["status"], "failed:")))
        rej = pa.concat_tables([kept, rej]).cast(REJECT_SCHEMA)
        rows_all_in = old_marker.get("in", len(rows))
        seconds_in = old_marker.get("seconds_in", 0.0)
    else:
        rows_all_in = len(rows)
        seconds_in = sum(row_seconds_known(r) for r in rows)
    outputs = {
        layout.rel(layout.part(name, p)): atomic_write_parquet(layout.part(name, p), ok),
        layout.rel(layout.rejects(name, p)): atomic_write_parquet(layout.rejects(name, p), rej),
    }
    statuses = rej["status"].to_pylist()
    reasons = Counter(statuses)
    n_filtered = sum(1 for s in statuses if s.startswith("filtered:"))
    n_failed = sum(1 for s in statuses if s.startswith("failed:"))
    n_ok = rows_all_in - n_filtered - n_failed
    seconds_out = 0.0
    dur_cols = [c for c in ("true_duration_s", "duration_s") if c in ok.column_names]
    if dur_cols:
        seconds_out = sum(row_seconds_known(r) for r in ok.select(dur_cols).to_pylist())
    elif not cls.fans_out:
        seconds_out = sum(durations.get(kk, 0.0) for kk in ok["key"].to_pylist())
    marker = {
        "stage": name, "partition": p, "config_hash": config_hash,
        "in": rows_all_in, "ok": n_ok, "filtered": n_filtered, "failed": n_failed,
        "rows_out": ok.num_rows, "seconds_in": round(seconds_in, 3), "seconds_out": round(seconds_out, 3),
        "reasons": dict(sorted(reasons.items())), "counters": dict(sorted(stage.counts.items())),
        "wall_s": round(time.time() - t0, 3), "outputs": outputs, "retried_failed": retry_failed,
    }
    if marker["ok"] < 0:
        raise RuntimeError(f"stage {name} partition {p}: inconsistent counts {marker}")
    atomic_write_json(layout.marker(name, p), marker)
    return marker
