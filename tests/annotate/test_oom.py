"""A model stage that runs out of memory halves its batch and retries (ModelStage._run_batch)."""
from __future__ import annotations

import gc
import weakref

import pytest
import torch

from pipeline.stage import ModelStage, ModelStageOptions, StageContext

SECONDS_PER_ROW = 2.0


class _Activations:
    """Stands in for the tensors a forward pass holds when it runs out of memory."""


class MemoryBoundStage(ModelStage):
    """Raises torch.OutOfMemoryError whenever a batch holds more than `limit_s` audio seconds."""

    name = "memory_bound"
    counters = ("oom_halvings", "rows_done")

    def __init__(self, options, ctx, limit_s: float):
        super().__init__(options, ctx)
        self.limit_s = limit_s
        self.batch_sizes: list[int] = []  # every batch process_batch saw, failed or not
        self.live_activations: list[weakref.ref] = []
        self.leaked_during_retry = 0

    def process_batch(self, rows):
        # memory held by an earlier failed attempt must be gone before the retry runs
        self.leaked_during_retry += sum(ref() is not None for ref in self.live_activations)
        activations = _Activations()  # referenced from this frame, as tensors would be
        self.live_activations.append(weakref.ref(activations))
        self.batch_sizes.append(len(rows))
        seconds = sum(r["duration_s"] for r in rows)
        if seconds > self.limit_s:
            raise torch.OutOfMemoryError(f"CUDA out of memory: batch of {seconds} s")
        self.count("rows_done", len(rows))
        return [{"doubled": r["value"] * 2} for r in rows]


def make_rows(n: int) -> list[dict]:
    return [{"key": f"k{i:03d}", "duration_s": SECONDS_PER_ROW, "value": i} for i in range(n)]


def run(n_rows: int, limit_s: float, batch_seconds: float = 32.0):
    opts = ModelStageOptions(batch_seconds=batch_seconds, max_batch_items=64)
    stage = MemoryBoundStage(opts, StageContext(run_dir=None, stage="memory_bound"), limit_s)  # type: ignore[arg-type]
    outcomes = stage.process_partition(make_rows(n_rows))
    return stage, outcomes


def test_oom_halves_the_batch_and_every_row_ends_ok():
    stage, outcomes = run(16, limit_s=9.0)  # 16 rows × 2 s = 32 s; at most 4 rows fit
    assert [o.status for o in outcomes] == ["ok"] * 16
    assert [o.rows[0]["doubled"] for o in outcomes] == [2 * i for i in range(16)]
    assert [o.key for o in outcomes] == [f"k{i:03d}" for i in range(16)]
    assert stage.batch_sizes[:3] == [16, 8, 4]  # halved until it fits
    assert stage.counts["rows_done"] == 16
    assert stage.counts["oom_halvings"] >= 2


def test_later_batches_start_at_the_size_that_fitted():
    stage, outcomes = run(48, limit_s=9.0, batch_seconds=32.0)  # three batches of 16 rows
    assert all(o.ok for o in outcomes)
    # the first batch learns the size (16 → 8 → 4); later ones do not OOM from full size again
    assert stage.batch_sizes.count(16) == 1
    assert max(stage.batch_sizes[3:]) <= 4


def test_memory_of_the_failed_attempt_is_released_before_the_retry():
    gc.collect()
    stage, outcomes = run(8, limit_s=5.0)
    assert all(o.ok for o in outcomes)
    assert stage.leaked_during_retry == 0


def test_a_single_row_that_never_fits_fails_with_out_of_memory():
    _stage, outcomes = run(3, limit_s=1.0)
    assert [o.status for o in outcomes] == ["failed:memory_bound:OutOfMemory"] * 3
    assert "out of memory" in outcomes[0].message


@pytest.mark.parametrize("exc", [MemoryError(), RuntimeError("CUDA error: out of memory")])
def test_other_out_of_memory_types_also_halve(exc):
    class Raises(MemoryBoundStage):
        def process_batch(self, rows):
            if len(rows) > 2:
                raise exc
            return [{"n": len(rows)} for _ in rows]

    stage = Raises(ModelStageOptions(batch_seconds=100.0), StageContext(None, "memory_bound"), 0)  # type: ignore[arg-type]
    outcomes = stage.process_partition(make_rows(8))
    assert all(o.ok and o.rows[0]["n"] <= 2 for o in outcomes)
