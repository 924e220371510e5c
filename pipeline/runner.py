"""The stage runner: plan a run, execute every (stage, partition) on Ray, shard, report.

    plan  → ingest (committed partitions) → stages per partition (pipelined) → shards → stats

- `plan.json` is frozen at first start; a rerun with another config or other inputs is
  refused naming what changed, unless `new_run=True` (the old run is moved under
  `<run>/previous/<n>/`, so nothing is lost). One change is accepted: stages APPENDED at
  the end (e.g. feature stages added to a finished run). The plan records them under
  `appended`, every committed partition is kept, only the new stages run, and only the
  shards whose inputs changed are rewritten.
- On start, orphans of a killed run (temp files, parts without a valid marker) are
  deleted; committed partitions are skipped.
- CPU stages run as Ray tasks; model stages as fixed-size actor pools (one model load
  per actor) with the resources from config.
- After every commit the failure rate of that stage is checked; over the threshold the
  run aborts (`RunAborted`) and keeps what was committed.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .commit import TMP_MARK, atomic_write_json, part_name, read_marker, remove_orphans
from .config import RunConfig, adopt_finished_media_frames, changed_fields
from .errors import RunAborted, RunRefused
from .ingest import commit_ingest, fingerprint_hash, npartitions, read_corpora
from .layout import INGEST, SHARD, RunLayout
from .shards import committed_shard, plan_shards, remove_stale_shards, write_index
from .stats import compute_stats

PLAN_VERSION = 1


# -- plan -------------------------------------------------------------------------------------------

def make_plan(cfg: RunConfig, fingerprint: dict, nparts: int, summaries: dict) -> dict:
    return {
        "plan_version": PLAN_VERSION, "agomni_version": __version__, "name": cfg.name,
        "config": cfg.canonical(), "config_hash": cfg.hash(),
        "input_fingerprint": fingerprint, "fingerprint_hash": fingerprint_hash(fingerprint),
        "npartitions": nparts, "partition_size": cfg.partition_size,
        "stages": [s.name for s in cfg.stages],
        "ingest": {k: v.as_dict() for k, v in summaries.items()},
        "created_unix": int(time.time()),
    }


def load_plan(layout: RunLayout) -> dict | None:
    try:
        return json.loads(layout.plan.read_text())
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise RunRefused(f"{layout.plan}: unreadable plan ({exc}); rerun with --new-run to start over") from None


def appended_stages(plan: dict, cfg: RunConfig) -> list[str]:
    """Stages the config appends to the planned ones, when that is the ONLY difference
    (old stages' options/resources and everything else unchanged); else []."""
    old_names, new_names = list(plan["stages"]), [s.name for s in cfg.stages]
    if len(new_names) <= len(old_names) or new_names[:len(old_names)] != old_names:
        return []
    if set(new_names[len(old_names):]) & set(old_names):
        return []
    new = cfg.canonical()
    new["stages"] = new["stages"][:len(old_names)]
    same = json.dumps(new, sort_keys=True) == json.dumps(plan["config"], sort_keys=True)
    return new_names[len(old_names):] if same else []


def check_rerun(plan: dict, cfg: RunConfig, fingerprint: dict) -> list[str]:
    """Refuse a rerun with another config or other inputs, naming what changed; returns the
    stages the config appends (accepted: only they run; committed partitions are kept)."""
    problems = []
    appended: list[str] = []
    if plan["config_hash"] != cfg.hash():
        appended = appended_stages(plan, cfg)
        if not appended:
            fields = changed_fields(plan["config"], cfg.canonical())
            problems.append("config changed: " + ", ".join(fields[:20]) + (" ..." if len(fields) > 20 else "")
                            + " (only appending stages at the end is accepted)")
    if plan["fingerprint_hash"] != fingerprint_hash(fingerprint):
        old = plan["input_fingerprint"]
        changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        problems.append("input metadata changed for corpora: " + ", ".join(changed))
    if problems:
        raise RunRefused("refusing to reuse this run directory: " + "; ".join(problems)
                         + ". Use a new --out, or --new-run to move the old run aside and start over.")
    return appended


def append_to_plan(plan: dict, cfg: RunConfig, appended: list[str]) -> dict:
    """The plan with `appended` stages added (history kept under `appended`)."""
    new = dict(plan)
    new["appended"] = [*plan.get("appended", []), {
        "stages": appended, "previous_config_hash": plan["config_hash"], "config_hash": cfg.hash(),
        "unix": int(time.time())}]
    new["config"], new["config_hash"] = cfg.canonical(), cfg.hash()
    new["stages"] = [s.name for s in cfg.stages]
    return new


def archive_run(layout: RunLayout) -> Path | None:
    """Move a previous run's state under <run>/previous/<n>/ (kept, never deleted)."""
    names = ["plan.json", "stats.json", "stages", "rejects", "shards", "work", "audit"]
    present = [n for n in names if (layout.root / n).exists()]
    if not present:
        return None
    prev = layout.root / "previous"
    n = len(list(prev.iterdir())) if prev.exists() else 0
    dest = prev / f"{n:03d}"
    dest.mkdir(parents=True)
    for name in present:
        shutil.move(str(layout.root / name), str(dest / name))
    return dest


def clean_orphans(layout: RunLayout, stage_names: list[str], nparts: int) -> int:
    removed = 0
    for stage in [INGEST, *stage_names]:
        valid = {part_name(p) for p in range(nparts) if read_marker(layout.marker(stage, p))}
        removed += len(remove_orphans(layout.stage_dir(stage), valid))
        removed += len(remove_orphans(layout.rejects_dir(stage), valid))
    wdir = layout.root / "work"
    if wdir.exists():
        for f in wdir.rglob(f"*{TMP_MARK}*"):
            if f.is_file():
                f.unlink()
                removed += 1
    for f in (layout.root / "shards").rglob(f"*{TMP_MARK}*") if (layout.root / "shards").exists() else []:
        f.unlink()
        removed += 1
    return removed


def invalidate_downstream(layout: RunLayout, stage_names: list[str], k: int, p: int) -> None:
    """Forget stages after k for partition p (marker first), and the shard step."""
    for name in stage_names[k + 1:]:
        layout.marker(name, p).unlink(missing_ok=True)
        layout.part(name, p).unlink(missing_ok=True)
        layout.rejects(name, p).unlink(missing_ok=True)
    sdir = layout.stage_dir(SHARD)
    if sdir.exists():
        shutil.rmtree(sdir)


# -- the run ----------------------------------------------------------------------------------------

@dataclass
class RunResult:
    run_dir: Path
    stats: dict
    shard_markers: list[dict] = field(default_factory=list)
    skipped_partitions: int = 0
    orphans_removed: int = 0


ProgressFn = Callable[[str, int, int], None]  # (what, done, total)


def prepare(cfg: RunConfig, run_dir: Path, new_run: bool = False) -> tuple[RunLayout, dict, int]:
    """Freeze or check the plan, commit ingest partitions, clean orphans."""
    layout = RunLayout(Path(run_dir))
    layout.root.mkdir(parents=True, exist_ok=True)
    records, summaries, fingerprint = read_corpora(cfg)
    plan = load_plan(layout)
    if plan is not None and new_run:
        archive_run(layout)
        plan = None
    if plan is not None:
        adopt_finished_media_frames(cfg, plan["config"])
        appended = check_rerun(plan, cfg, fingerprint)
        if appended:  # committed partitions of the old stages are kept; only the new stages run
            plan = append_to_plan(plan, cfg, appended)
            atomic_write_json(layout.plan, plan)
    else:
        plan = make_plan(cfg, fingerprint, npartitions(len(records), cfg.partition_size), summaries)
        atomic_write_json(layout.plan, plan)
    nparts = plan["npartitions"]
    orphans = clean_orphans(layout, plan["stages"], nparts)
    missing = {p for p in range(nparts) if not read_marker(layout.marker(INGEST, p))}
    if missing:
        commit_ingest(layout, records, cfg.partition_size, plan["config_hash"], only=missing)
    return layout, plan, orphans


def check_failure_rate(cfg: RunConfig, stage: str, markers: list[dict]) -> None:
    n_in = sum(m["in"] for m in markers)
    n_failed = sum(m["failed"] for m in markers)
    if n_in >= cfg.min_rows_before_abort and n_failed / n_in > cfg.max_failure_rate:
        reasons: dict[str, int] = {}
        for m in markers:
            for r, c in m["reasons"].items():
                if r.startswith("failed:"):
                    reasons[r] = reasons.get(r, 0) + c
        top = ", ".join(f"{r} ×{c}" for r, c in sorted(reasons.items(), key=lambda x: -x[1])[:5])
        raise RunAborted(
            f"stage {stage!r}: {n_failed} of {n_in} rows failed ({n_failed / n_in:.0%}), over "
            f"max_failure_rate {cfg.max_failure_rate:.0%}; top reasons: {top}. Committed partitions are "
            f"kept: fix the cause and rerun (--retry-failed redoes only the failed rows).")


def run(cfg: RunConfig, run_dir: str | Path, *, address: str | None = None, retry_failed: bool = False,
        new_run: bool = False, progress: ProgressFn | None = None) -> RunResult:
    from .executor import RayExecutor

    layout, plan, orphans = prepare(cfg, Path(run_dir), new_run=new_run)
    stage_names = plan["stages"]
    nparts = plan["npartitions"]
    executor = RayExecutor(cfg, layout, plan, address=address or cfg.ray.address or os.environ.get("RAY_ADDRESS"))
    try:
        skipped = executor.run_stages(retry_failed=retry_failed, progress=progress)
        shard_plans = plan_shards(layout, stage_names, nparts, cfg.shards)
        remove_stale_shards(layout, shard_plans)
        todo = [sp for sp in shard_plans if committed_shard(layout, sp) is None]
        if todo:  # no index while shards change: a reader never sees an index of other tars
            for idx in (layout.root / "shards").glob("*/index.json"):
                idx.unlink()
        done = [m for sp in shard_plans if (m := committed_shard(layout, sp)) is not None]
        done += executor.write_shards(todo, progress=progress)
        write_index(layout, done)
    finally:
        executor.shutdown()
    stats = compute_stats(layout, plan)
    atomic_write_json(layout.stats, stats)
    return RunResult(layout.root, stats, done, skipped, orphans)
