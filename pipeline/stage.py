"""Stage: one small class per pipeline step (datatrove-style).

A stage maps the rows of one partition to outcomes. It declares:

- `reads`   the columns it needs from upstream (None: all); the runner loads only these
- `writes`  the columns it adds or overwrites (its parquet holds `key` + these)
- `counters` the names of the things it counts (`self.count("frames_decoded")`)
- `Options` a pydantic model of its options (validated before anything runs)
- `fans_out` True when one input row may yield several output rows (windowing);
  such a stage writes full rows (every input column, then its own) and becomes the
  base of later joins.

Rows come in as dicts; `process_row` returns the written columns (a dict, or a list
of dicts for a fan-out stage) or raises `Filtered`/`PermanentError`/`TransientError`.
Model stages subclass `ModelStage`, implement `setup` (load once per actor) and
`process_batch`; the runner batches by audio seconds and halves on out-of-memory.
"""
from __future__ import annotations

import gc
import random
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from .errors import Filtered, StageError, is_out_of_memory


class StageOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelStageOptions(StageOptions):
    batch_seconds: float = Field(120.0, gt=0, description="audio seconds per model batch")
    max_batch_items: int = Field(64, ge=1, description="upper bound on clips per batch")


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(4, ge=1, description="tries per row for transient errors")
    backoff_s: float = Field(1.0, ge=0, description="first backoff; doubles each retry")
    max_backoff_s: float = Field(30.0, ge=0)
    jitter: float = Field(0.5, ge=0, le=1, description="fraction of the backoff randomised")

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = min(self.max_backoff_s, self.backoff_s * (2 ** (attempt - 1)))
        return base * (1 - self.jitter + self.jitter * rng.random())


@dataclass
class StageContext:
    run_dir: Path
    stage: str
    partition: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def work_dir(self) -> Path:
        """A stage-owned folder inside the run (downloads, caches); created on demand."""
        d = self.run_dir / "work" / self.stage
        d.mkdir(parents=True, exist_ok=True)
        return d


@dataclass
class Outcome:
    """The terminal state of one input row at one stage."""

    key: str
    status: str  # "ok" | "filtered:<reason>" | "failed:<stage>:<error class>"
    rows: list[dict] = field(default_factory=list)  # written columns, only when ok
    message: str = ""
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Stage:
    name: ClassVar[str] = ""
    Options: ClassVar[type[StageOptions]] = StageOptions
    reads: ClassVar[tuple[str, ...] | None] = None
    writes: ClassVar[tuple[str, ...]] = ()
    counters: ClassVar[tuple[str, ...]] = ()
    fans_out: ClassVar[bool] = False
    is_model_stage: ClassVar[bool] = False

    def __init__(self, options: StageOptions | dict | None, ctx: StageContext):
        if not isinstance(options, StageOptions):
            options = self.Options.model_validate(options or {})
        self.options = options
        self.ctx = ctx
        self.counts: Counter = Counter()
        self._rng = random.Random(0)

    # -- hooks ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load models or open clients; called once per worker/actor before any partition."""

    def process_row(self, row: dict) -> dict | list[dict]:
        raise NotImplementedError(f"{type(self).__name__} must implement process_row or process_partition")

    # -- helpers -------------------------------------------------------------------------------
    def count(self, name: str, n: float = 1) -> None:
        if name not in self.counters:
            raise KeyError(f"stage {self.name!r} has no counter {name!r}; declare it in `counters`")
        self.counts[name] += n

    def model_id(self) -> str:
        """name@revision of the model a stage uses (recorded next to what it writes)."""
        return ""

    # -- driver --------------------------------------------------------------------------------
    def process_partition(self, rows: list[dict]) -> list[Outcome]:
        return [self._run_row(row) for row in rows]

    def _run_row(self, row: dict) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            try:
                out = self.process_row(row)
                return Outcome(row["key"], "ok", out if isinstance(out, list) else [out], attempts=attempt)
            except Exception as exc:  # noqa: BLE001 - every exception becomes a terminal state
                if isinstance(exc, StageError) and exc.transient and attempt < self.ctx.retry.max_attempts:
                    time.sleep(self.ctx.retry.delay(attempt, self._rng))
                    continue
                return self.outcome_for(row["key"], exc, attempt)

    def outcome_for(self, key: str, exc: BaseException, attempts: int = 1) -> Outcome:
        if isinstance(exc, Filtered):
            return Outcome(key, f"filtered:{exc.reason}", message=exc.message[:500], attempts=attempts)
        if isinstance(exc, StageError):
            return Outcome(key, f"failed:{self.name}:{exc.error_class}", message=exc.message[:500],
                           attempts=attempts)
        if is_out_of_memory(exc):
            return Outcome(key, f"failed:{self.name}:OutOfMemory", message=str(exc)[:500], attempts=attempts)
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return Outcome(key, f"failed:{self.name}:{type(exc).__name__}", message=tb[:500], attempts=attempts)


def row_seconds(row: dict) -> float:
    """Audio seconds a row costs a model: its duration, else 10 s."""
    d = row.get("true_duration_s") or row.get("duration_s")
    return float(d) if d else 10.0


class ModelStage(Stage):
    """A stage that runs a model on batches, as a fixed-size Ray actor pool.

    Subclasses implement `setup` (load the model, once per actor) and `process_batch`,
    returning one result per row: a dict of written columns, or an exception instance
    (`Filtered`, `PermanentError`, ...) for that row. Batches are cut by audio seconds
    (`batch_seconds`); an out-of-memory error halves the batch and retries.
    """

    Options: ClassVar[type[StageOptions]] = ModelStageOptions
    is_model_stage = True

    def process_batch(self, rows: list[dict]) -> list[dict | BaseException]:
        raise NotImplementedError(f"{type(self).__name__} must implement process_batch")

    def select(self, row: dict) -> bool:
        """Rows that return False pass through untouched (ok, nothing written)."""
        return True

    def batches(self, rows: list[dict], seconds: float) -> Iterator[list[dict]]:
        batch: list[dict] = []
        total = 0.0
        for row in rows:
            s = row_seconds(row)
            if batch and (total + s > seconds or len(batch) >= self.options.max_batch_items):
                yield batch
                batch, total = [], 0.0
            batch.append(row)
            total += s
        if batch:
            yield batch

    def process_partition(self, rows: list[dict]) -> list[Outcome]:
        outcomes: dict[str, Outcome] = {}
        chosen = []
        for row in rows:
            if self.select(row):
                chosen.append(row)
            else:
                outcomes[row["key"]] = Outcome(row["key"], "ok", [{}])
        # Batches are cut one at a time: after an out-of-memory, the rest of the partition
        # starts at the size that fitted instead of failing from full size again.
        if getattr(self, "_fitting_seconds", None) is None:
            self._fitting_seconds = self.options.batch_seconds
        for key, out in self._run_rows(chosen):
            outcomes[key] = out
        return [outcomes[r["key"]] for r in rows]

    def _run_rows(self, rows: list[dict]) -> list[tuple[str, Outcome]]:
        done: list[tuple[str, Outcome]] = []
        pos = 0
        while pos < len(rows):
            batch = next(self.batches(rows[pos:], self._fitting_seconds))
            pos += len(batch)
            done += self._run_batch(batch)
        return done

    def _run_batch(self, batch: list[dict]) -> list[tuple[str, Outcome]]:
        out_of_memory = False
        try:
            results = self.process_batch(batch)
        except Exception as exc:  # noqa: BLE001
            if not (is_out_of_memory(exc) and len(batch) > 1):
                return [(row["key"], self.outcome_for(row["key"], exc)) for row in batch]
            out_of_memory = True
        if out_of_memory:
            # Retried only here, after the except block: the exception's traceback keeps the
            # failed attempt's frames (and their tensors) alive while it is being handled.
            # The batch is halved (in seconds) and its rows re-cut at that size.
            self.on_out_of_memory()
            half = sum(row_seconds(r) for r in batch[: len(batch) // 2])
            self._fitting_seconds = min(self._fitting_seconds, half)
            return self._run_rows(batch)
        if len(results) != len(batch):
            raise RuntimeError(f"{self.name}: process_batch returned {len(results)} results for {len(batch)} rows")
        return [(row["key"], self.outcome_for(row["key"], res) if isinstance(res, BaseException)
                 else Outcome(row["key"], "ok", [res])) for row, res in zip(batch, results)]

    def on_out_of_memory(self) -> None:
        """Free what can be freed before the halved batch runs."""
        self.counts["oom_halvings"] += 1
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001
            pass


def run_stage_on_rows(stage_cls: type[Stage], options: dict | None, rows: list[dict], run_dir: Path,
                      retry: RetryPolicy | None = None) -> tuple[list[Outcome], Counter]:
    """Run a stage in-process on rows (tests and debugging; no Ray, no commit)."""
    ctx = StageContext(Path(run_dir), stage_cls.name, 0, retry or RetryPolicy(backoff_s=0.0))
    stage = stage_cls(options, ctx)
    stage.setup()
    return stage.process_partition(rows), stage.counts


def describe(stage_cls: type[Stage]) -> dict[str, Any]:
    return {
        "name": stage_cls.name,
        "reads": list(stage_cls.reads) if stage_cls.reads is not None else None,
        "writes": list(stage_cls.writes),
        "counters": list(stage_cls.counters),
        "model_stage": stage_cls.is_model_stage,
    }
