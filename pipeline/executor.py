"""Ray execution (DESIGN §3).

Embedded default: `ray.init()` on this machine. With an address (or RAY_ADDRESS) the
same code runs on an existing cluster, with the run directory on shared storage.
CPU stages are Ray tasks; model stages are fixed-size actor pools (one model load per
actor, `num_gpus`/`num_cpus` from config). Partitions are pipelined: stage k+1 of a
partition starts as soon as its stage k is committed.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from .commit import read_marker
from .config import RunConfig, config_from_plan
from .errors import ConfigError, RunAborted
from .layout import INGEST, RunLayout
from .partition import run_partition
from .registry import stage_class
from .shards import ShardPlan, write_shard
from .stage import StageContext
from .stats import shard_summary, stats_from_markers

STATS_EVERY_S = 2.0
_WORKER_STAGES: dict[tuple, object] = {}  # per worker process: one stage instance per (run, stage)


def _build_stage(root: str, plan: dict, k: int, setup: bool = True):
    cfg = config_from_plan(plan)
    spec = cfg.stages[k]
    cls = stage_class(spec.name)
    stage = cls(spec.options, StageContext(Path(root), spec.name, 0, cfg.retry))
    if setup:
        stage.setup()
    return stage


def _cpu_partition(root: str, plan: dict, k: int, p: int, retry_failed: bool) -> dict:
    key = (root, plan["config_hash"], k)
    if key not in _WORKER_STAGES:
        _WORKER_STAGES[key] = _build_stage(root, plan, k)
    return run_partition(RunLayout(Path(root)), plan["stages"], k, p, _WORKER_STAGES[key], plan["config_hash"],
                         retry_failed)


class ModelStageActor:
    """Holds one loaded model for the life of the pool."""

    def __init__(self, root: str, plan: dict, k: int):
        self.root, self.plan, self.k = root, plan, k
        self.stage = _build_stage(root, plan, k)

    def run(self, p: int, retry_failed: bool) -> dict:
        return run_partition(RunLayout(Path(self.root)), self.plan["stages"], self.k, p, self.stage,
                             self.plan["config_hash"], retry_failed)


def _shard_task(root: str, plan: dict, sp: ShardPlan) -> dict:
    cfg = config_from_plan(plan)
    return write_shard(RunLayout(Path(root)), plan["stages"], sp, cfg.shards)


class RayExecutor:
    def __init__(self, cfg: RunConfig, layout: RunLayout, plan: dict, address: str | None = None):
        import ray

        self.ray = ray
        self.cfg, self.layout, self.plan = cfg, layout, plan
        self.owns_ray = False
        if not ray.is_initialized():
            kwargs = dict(include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True)
            if address:
                ray.init(address=address, **kwargs)
            else:
                ray.init(num_cpus=cfg.ray.num_cpus, **kwargs)
            self.owns_ray = True
        self._check_resources(ray.cluster_resources())
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = cfg.ray.max_tasks_in_flight or max(2, 2 * cpus)
        self._cpu_fn = ray.remote(_cpu_partition)
        self._shard_fn = ray.remote(_shard_task)
        self._actor_cls = ray.remote(ModelStageActor)
        self.root = str(layout.root)
        self.markers: dict[str, dict[int, dict]] = {}
        self._last_stats = 0.0

    def _check_resources(self, cluster: dict) -> None:
        """Fail fast when a stage asks for more than the whole cluster has (it would wait forever)."""
        for i, spec in enumerate(self.cfg.stages):
            for res, need in (("GPU", spec.resources.num_gpus), ("CPU", spec.resources.num_cpus)):
                have = cluster.get(res, 0)
                if need > have:
                    self.shutdown()
                    raise ConfigError(
                        f"stages[{i}] ({spec.name}): resources ask for {need} {res} per "
                        f"{'actor' if stage_class(spec.name).is_model_stage else 'task'} but the Ray cluster has "
                        f"{have}; lower it, e.g. --set stages.{i}.resources.num_{res.lower()}s=0")

    # -- stages ------------------------------------------------------------------------------------
    def _initial_state(self, retry_failed: bool) -> tuple[dict[int, int], set[tuple[int, int]], int]:
        from .runner import invalidate_downstream

        names = self.plan["stages"]
        nparts = self.plan["npartitions"]
        self.markers = {n: {} for n in [INGEST, *names]}
        for p in range(nparts):
            m = read_marker(self.layout.marker(INGEST, p))
            if m:
                self.markers[INGEST][p] = m
        next_k: dict[int, int] = {}
        retries: set[tuple[int, int]] = set()
        skipped = 0
        for p in range(nparts):
            k = 0
            while k < len(names):
                m = read_marker(self.layout.marker(names[k], p))
                if m is None:
                    break
                if retry_failed and m["failed"] > 0:
                    invalidate_downstream(self.layout, names, k, p)
                    retries.add((k, p))
                    break
                self.markers[names[k]][p] = m
                skipped += 1
                k += 1
            next_k[p] = k
        return next_k, retries, skipped

    def run_stages(self, retry_failed: bool = False, progress=None) -> int:
        ray = self.ray
        names = self.plan["stages"]
        nstages = len(names)
        nparts = self.plan["npartitions"]
        next_k, retries, skipped = self._initial_state(retry_failed)
        total = nparts * nstages
        done = sum(next_k.values())
        pools: dict[int, list] = {}
        idle: dict[int, list] = {}
        in_flight: dict = {}  # ref → (k, p, actor | None)
        running: set[int] = set()

        def report():
            if progress:
                progress("stages", done, total)

        report()
        try:
            while True:
                for p in range(nparts):
                    if p in running or next_k[p] >= nstages:
                        continue
                    k = next_k[p]
                    cls = stage_class(names[k])
                    retry = (k, p) in retries
                    if cls.is_model_stage:
                        if k not in pools:
                            pools[k] = self._start_pool(k)
                            idle[k] = list(pools[k])
                        if not idle[k]:
                            continue
                        actor = idle[k].pop()
                        ref = actor.run.remote(p, retry)
                    else:
                        if sum(1 for v in in_flight.values() if v[2] is None) >= self.max_in_flight:
                            continue
                        spec = self.cfg.stages[k]
                        actor = None
                        ref = self._cpu_fn.options(num_cpus=spec.resources.num_cpus,
                                                   num_gpus=spec.resources.num_gpus).remote(
                            self.root, self.plan, k, p, retry)
                    in_flight[ref] = (k, p, actor)
                    running.add(p)
                if not in_flight:
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                ref = ready[0]
                k, p, actor = in_flight.pop(ref)
                running.discard(p)
                if actor is not None:
                    idle[k].append(actor)
                try:
                    marker = ray.get(ref)
                except Exception as exc:
                    raise RuntimeError(f"stage {names[k]!r} crashed on partition {p}: {exc}") from exc
                retries.discard((k, p))
                self.markers[names[k]][p] = marker
                next_k[p] = k + 1
                done += 1
                report()
                self._write_stats()
                from .runner import check_failure_rate

                check_failure_rate(self.cfg, names[k], list(self.markers[names[k]].values()))
                for kk in list(pools):  # free a pool once no partition still needs it
                    if all(next_k[q] > kk for q in range(nparts)):
                        for a in pools.pop(kk):
                            ray.kill(a)
                        idle.pop(kk)
        except (RunAborted, RuntimeError, KeyboardInterrupt):
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise
        finally:
            for actors in pools.values():
                for a in actors:
                    ray.kill(a)
            self._write_stats(force=True)
        return skipped

    def _start_pool(self, k: int) -> list:
        spec = self.cfg.stages[k]
        r = spec.resources
        return [self._actor_cls.options(num_cpus=r.num_cpus, num_gpus=r.num_gpus).remote(self.root, self.plan, k)
                for _ in range(r.actors)]

    def _write_stats(self, force: bool = False) -> None:
        from .commit import atomic_write_json

        now = time.time()
        if force or now - self._last_stats >= STATS_EVERY_S:
            self._last_stats = now
            atomic_write_json(self.layout.stats, stats_from_markers(self.plan, self.markers,
                                                                    shard_summary(self.layout)))

    # -- shards ------------------------------------------------------------------------------------
    def write_shards(self, plans: list[ShardPlan], progress=None) -> list[dict]:
        ray = self.ray
        out: list[dict] = []
        pending = list(plans)
        in_flight = []
        while pending or in_flight:
            while pending and len(in_flight) < self.max_in_flight:
                in_flight.append(self._shard_fn.remote(self.root, self.plan, pending.pop(0)))
            ready, in_flight = ray.wait(in_flight, num_returns=1)
            out.append(ray.get(ready[0]))
            if progress:
                progress("shards", len(out), len(plans))
        return out

    def shutdown(self) -> None:
        if self.owns_ray:
            self.ray.shutdown()
