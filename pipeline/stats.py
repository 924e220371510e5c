"""Rolling totals of a run (stats.json), merged from commit markers, so partial runs report too."""
from __future__ import annotations

import json
import time
from collections import Counter

from .commit import read_marker
from .layout import INGEST, RunLayout


def stage_totals(markers: list[dict], nparts: int) -> dict:
    reasons: Counter = Counter()
    counters: Counter = Counter()
    for m in markers:
        reasons.update(m.get("reasons", {}))
        counters.update(m.get("counters", {}))
    wall = sum(m.get("wall_s", 0.0) for m in markers)
    rows_in = sum(m["in"] for m in markers)
    done = len(markers)
    return {
        "partitions_done": done, "partitions_total": nparts,
        "in": rows_in, "ok": sum(m["ok"] for m in markers),
        "filtered": sum(m["filtered"] for m in markers), "failed": sum(m["failed"] for m in markers),
        "rows_out": sum(m.get("rows_out", 0) for m in markers),
        "hours_in": round(sum(m.get("seconds_in", 0.0) for m in markers) / 3600, 5),
        "hours_out": round(sum(m.get("seconds_out", 0.0) for m in markers) / 3600, 5),
        "worker_seconds": round(wall, 3),
        "rows_per_worker_s": round(rows_in / wall, 3) if wall > 0 else None,
        "eta_worker_s": round(wall / done * (nparts - done), 1) if done else None,
        "rejects_by_reason": dict(sorted(reasons.items())),
        "counters": {k: (round(v, 3) if isinstance(v, float) else v) for k, v in sorted(counters.items())},
    }


def stats_from_markers(plan: dict, markers: dict[str, dict[int, dict]], shards: dict | None = None) -> dict:
    nparts = plan["npartitions"]
    return {
        "run": plan["name"], "config_hash": plan["config_hash"], "updated_unix": int(time.time()),
        "ingest_corpora": plan.get("ingest", {}),
        "stages": {name: stage_totals(list(markers.get(name, {}).values()), nparts)
                   for name in [INGEST, *plan["stages"]]},
        "shards": shards or {},
    }


def read_markers(layout: RunLayout, plan: dict) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for name in [INGEST, *plan["stages"]]:
        out[name] = {}
        for p in range(plan["npartitions"]):
            m = read_marker(layout.marker(name, p))
            if m:
                out[name][p] = m
    return out


def shard_summary(layout: RunLayout) -> dict:
    out = {}
    sroot = layout.root / "shards"
    if sroot.exists():
        for idx in sorted(sroot.glob("*/index.json")):
            d = json.loads(idx.read_text())
            out[d["split"]] = {"shards": len(d["shards"]), "samples": d["nsamples"],
                               "bytes": sum(s["bytes"] for s in d["shards"])}
    return out


def compute_stats(layout: RunLayout, plan: dict) -> dict:
    return stats_from_markers(plan, read_markers(layout, plan), shard_summary(layout))
