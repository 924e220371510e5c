"""CorpusAdapter: reads one corpus's real metadata and yields clip records.

One module per corpus under `pipeline/corpora/`. An adapter declares its `Options`
(a pydantic model extending `AdapterOptions`), lists the metadata files it reads
(`input_files`, hashed into the run's input fingerprint) and implements
`iter_records`, yielding records built with `pipeline.record.new_record`. Rows it
cannot use are counted with `self.skip(reason)`, never dropped silently.

The common options (`limit`, `sample`, `splits`, `seed`) are applied by the base
class in `records()`, so every adapter has them.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import ClassVar, Iterator

from pydantic import BaseModel, ConfigDict, Field


class AdapterOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: Path = Field(..., description="folder holding the corpus metadata (and media, when local)")
    limit: int | None = Field(None, ge=1, description="stop after this many clips")
    sample: float | None = Field(None, gt=0, le=1, description="keep this fraction of clips (by key hash)")
    splits: list[str] | None = Field(None, description="keep only these splits")
    seed: int = Field(0, description="seed of the deterministic sampling")
    license: str | None = Field(None, description="license recorded on every clip (overrides the corpus default)")


class CorpusAdapter:
    name: ClassVar[str] = ""
    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    default_license: ClassVar[str] = "unknown"

    def __init__(self, options: AdapterOptions | dict):
        if not isinstance(options, AdapterOptions):
            options = self.Options.model_validate(options)
        self.options = options
        self.skipped: Counter = Counter()

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def input_files(self) -> list[Path]:
        """Metadata files this adapter reads (their content is fingerprinted)."""
        raise NotImplementedError

    def iter_records(self) -> Iterator[dict]:
        raise NotImplementedError

    def _keep_by_sample(self, key: str) -> bool:
        if self.options.sample is None:
            return True
        h = hashlib.sha256(f"{self.options.seed}:{key}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < self.options.sample

    def records(self) -> Iterator[dict]:
        """iter_records with split filter, sampling and limit applied (and counted)."""
        n = 0
        for rec in self.iter_records():
            if self.options.splits is not None and rec.get("split") not in self.options.splits:
                self.skip("split_not_selected")
                continue
            if not self._keep_by_sample(rec["key"]):
                self.skip("not_sampled")
                continue
            if self.options.limit is not None and n >= self.options.limit:
                self.skip("over_limit")
                continue
            if rec.get("license") is None:
                rec["license"] = self.options.license or self.default_license
            n += 1
            yield rec
