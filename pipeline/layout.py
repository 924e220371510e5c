"""The run directory (DESIGN §2): every path a run writes, in one place."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .commit import MARKER_SUFFIX, part_name

INGEST = "ingest"
SHARD = "shard"


@dataclass(frozen=True)
class RunLayout:
    root: Path

    @property
    def plan(self) -> Path:
        return self.root / "plan.json"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"

    def stage_dir(self, stage: str) -> Path:
        return self.root / "stages" / stage

    def rejects_dir(self, stage: str) -> Path:
        return self.root / "rejects" / stage

    def part(self, stage: str, p: int) -> Path:
        return self.stage_dir(stage) / f"{part_name(p)}.parquet"

    def rejects(self, stage: str, p: int) -> Path:
        return self.rejects_dir(stage) / f"{part_name(p)}.parquet"

    def marker(self, stage: str, p: int) -> Path:
        return self.stage_dir(stage) / f"{part_name(p)}{MARKER_SUFFIX}"

    def shard_dir(self, split: str) -> Path:
        return self.root / "shards" / split

    def shard(self, split: str, i: int) -> Path:
        return self.shard_dir(split) / f"{split}-{i:05d}.tar"

    def shard_marker(self, split: str, i: int) -> Path:
        return self.stage_dir(SHARD) / f"{split}-{i:05d}{MARKER_SUFFIX}"

    def shard_index(self, split: str) -> Path:
        return self.shard_dir(split) / "index.json"

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))
