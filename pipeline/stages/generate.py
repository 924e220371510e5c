"""generate: batch generation as a pipeline stage (`agomni generate CHECKPOINT --csv requests.csv --out RUN`).

A model stage: a fixed Ray actor pool, one checkpoint load per actor (`setup`), `num_gpus` from
the stage's resources. Each partition's requests are sorted by duration and cut into batches by
audio seconds, so that a batch holds requests of similar length (little padding); every window
of every request in a batch is sampled as one batch.

Per request the outputs `RUN/work/generate/<key>.wav` (+ `.mp4` when a video was given, + `.json`)
are written under temporary names and renamed when complete (model.generation.output); the
partition's commit marker comes after. A kill -9 leaves at most temporary files of an
uncommitted partition: they are removed when that partition is redone, and the rename
overwrites any output of the earlier attempt, so each request has exactly one output.
Bad input (no video stream, corrupt file, bad LRC, unknown language, 0 s or too long) ends
the request as `failed:generate:<class>` with the message.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ..errors import PermanentError
from ..stage import ModelStage, ModelStageOptions, row_seconds

TMP_PREFIX = ".tmp-"


class GenerateOptions(ModelStageOptions):
    checkpoint: str = Field(..., description="trainer checkpoint (EMA weights are used unless use_ema is false)")
    steps: int = Field(25, ge=1, description="Euler steps")
    cfg: float | None = Field(4.5, ge=0, description="classifier-free guidance scale; null: conditional only")
    use_ema: bool = Field(True, description="generate with the EMA weights")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto: cuda when available")
    encoder_weights: dict[str, str] = Field(default_factory=dict,
                                            description="weights per encoder kind (clip, sync, latent)")
    expect_network: str | None = Field(None, description="refuse a checkpoint of another network config")
    compile: bool = Field(False, description="torch.compile the velocity function (with CUDA graphs on GPU)")
    batch_seconds: float = Field(40.0, gt=0, description="audio seconds per batch")


class GenerateStage(ModelStage):
    name = "generate"
    Options: ClassVar = GenerateOptions
    reads = ("key", "media_uri", "caption", "transcript", "lyrics", "language", "duration_s", "extra")
    writes = ("wav_path", "mp4_path", "json_path", "generated_s", "seed", "steps", "cfg", "timings")
    counters = ("requests_generated", "windows_generated", "seconds_generated", "batches")

    options: GenerateOptions

    def setup(self) -> None:
        import torch

        from model.generation import Generator

        o = self.options
        device = o.device if o.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        self.generator = Generator.load(o.checkpoint, encoder_weights=dict(o.encoder_weights), device=device,
                                        use_ema=o.use_ema, expect_network=o.expect_network, compile=o.compile,
                                        cuda_graphs=o.compile and device.startswith("cuda"))

    def model_id(self) -> str:
        gen = getattr(self, "generator", None)
        return f"{self.options.checkpoint}@step{getattr(gen.bundle, 'step', None) if gen else '?'}"

    def process_partition(self, rows: list[dict]) -> list:
        # requests of similar duration together: sort, batch by seconds, then restore the order
        by_key = {o.key: o for o in super().process_partition(sorted(rows, key=row_seconds))}
        return [by_key[r["key"]] for r in rows]

    @staticmethod
    def request_of(row: dict):
        from model.generation import GenerationRequest

        extra = json.loads(row.get("extra") or "{}")
        return GenerationRequest(video=row.get("media_uri"), caption=row.get("caption"),
                                 transcript=row.get("transcript"), lyrics=row.get("lyrics"),
                                 language=row.get("language"), duration=extra.get("duration"),
                                 seed=int(extra.get("seed") or 0), id=extra.get("request_id") or row["key"])

    def process_batch(self, rows: list[dict]) -> list:
        from model.generation import GenerationError
        from model.generation.output import write_outputs

        out_dir = self.ctx.work_dir
        results: list = [None] * len(rows)
        ready = []
        for i, row in enumerate(rows):
            for stale in out_dir.glob(f"{TMP_PREFIX}{row['key']}.*"):  # left by a killed attempt
                stale.unlink(missing_ok=True)
            try:
                ready.append((i, self.generator.prepare(self.request_of(row))))
            except GenerationError as exc:
                results[i] = PermanentError(exc.error_class, exc.message)
        if ready:
            o = self.options
            self.count("batches")
            generated = self.generator.generate([p for _, p in ready], steps=o.steps, cfg=o.cfg)
            for (i, prep), res in zip(ready, generated):
                row = rows[i]
                video = Path(row["media_uri"]) if row.get("media_uri") else None
                paths = write_outputs(out_dir, row["key"], res.wave, res.sample_rate, res.metadata, video,
                                      res.duration_s)
                self.count("requests_generated")
                self.count("windows_generated", len(prep.windows))
                self.count("seconds_generated", res.duration_s)
                results[i] = {
                    "wav_path": str(paths["wav"].relative_to(self.ctx.run_dir)),
                    "mp4_path": str(paths["mp4"].relative_to(self.ctx.run_dir)) if "mp4" in paths else None,
                    "json_path": str(paths["json"].relative_to(self.ctx.run_dir)),
                    "generated_s": float(res.duration_s),
                    "seed": int(res.request.seed), "steps": int(o.steps),
                    "cfg": None if o.cfg is None else float(o.cfg),
                    "timings": json.dumps(res.metadata["timings"], sort_keys=True),
                }
        return results
