"""Training config: YAML under datasets_cfg/train/, validated by pydantic before anything runs.

A bad config raises `ConfigError` naming the file, the field and the problem, e.g.
`datasets_cfg/train/demo.yaml: optim.lr: Input should be greater than 0`. `--set a.b=c`
overrides use the pipeline's rules (pipeline/config.py).

Batching with variable-length buckets: the loader packs up to `batch.batch_frames` latent frames
(at most `batch.max_batch` clips) into one micro-batch. One optimiser step accumulates a FIXED
number of micro-batches per process, `accumulation = effective_batch / (max_batch · world_size)`,
so an optimiser step sees at most `effective_batch` clips (exactly that when buckets are full).
Each micro-batch loss is the mean over its real latent frames, divided by `accumulation`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from model.config import FlowConfig
from model.text_encoder import TextEncoderConfig
from pipeline.config import _fmt_loc, apply_overrides, read_yaml
from pipeline.errors import ConfigError

NETWORKS = ("tiny", "small", "paper")
ENCODER_KINDS = ("clip", "sync", "latent")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceSpec(Strict):
    """One preprocessing run's shards (`<run>/shards/<split>/`) and its share of the mixture."""

    run: str = Field(..., min_length=1, description="run directory (relative paths: from the working directory)")
    split: str = Field("train", min_length=1)
    weight: float = Field(1.0, gt=0, description="share of this run in the mixture")
    corpora: dict[str, float] | None = Field(None, description="per-corpus mixture weights inside the run")

    @model_validator(mode="after")
    def _check(self) -> SourceSpec:
        for name, w in (self.corpora or {}).items():
            if w < 0:
                raise ValueError(f"corpora.{name}: weight must be >= 0, got {w}")
        return self


class DataSpec(Strict):
    sources: list[SourceSpec] = Field(..., min_length=1)
    val_split: str | None = Field("test", description="split read for the validation loss and samples (None: off)")
    shuffle_buffer: int = Field(256, ge=1)
    resampled: bool = Field(True, description="draw shards with replacement (endless); False: epochs of passes")
    num_workers: int = Field(0, ge=0, description="loader worker processes per trainer process")
    latent_stats_samples: int = Field(2000, ge=1, description="clips read to estimate the latent mean/std")
    val_batches: int = Field(4, ge=1, description="validation micro-batches per evaluation")


class OptimSpec(Strict):
    """AdamW as in the paper (§4): base lr 1e-5, weight decay 1e-3."""

    lr: float = Field(1e-5, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(1e-3, ge=0)
    text_encoder_lr_mult: float = Field(1.0, ge=0, description="the T5 caption encoder's lr = lr × this")
    grad_clip: float | None = Field(1.0, gt=0, description="max global grad norm (None: no clipping)")


class ScheduleSpec(Strict):
    """InverseLR with exponential warm-up: lr·(1 − warmup^(s+1))·(1 + s/inv_gamma)^(−power), ≥ min_lr."""

    inv_gamma: float = Field(1e6, gt=0)
    power: float = Field(0.5, ge=0)
    warmup: float = Field(0.99, ge=0, lt=1, description="0: no warm-up")
    min_lr: float = Field(0.0, ge=0)


class BatchSpec(Strict):
    batch_frames: int = Field(4096, ge=1, description="latent frames per micro-batch (bucketed by length)")
    max_batch: int = Field(16, ge=1, description="most clips in one micro-batch")
    max_duration_s: float = Field(10.0, gt=0)
    effective_batch: int = Field(128, ge=1, description="clips per optimiser step over all processes")

    def accumulation(self, world_size: int) -> int:
        per_step = self.max_batch * world_size
        if self.effective_batch % per_step:
            raise ConfigError(
                f"batch.effective_batch={self.effective_batch} is not a multiple of batch.max_batch "
                f"({self.max_batch}) × processes ({world_size})"
            )
        return self.effective_batch // per_step


class EmaSpec(Strict):
    decay: float = Field(0.999, ge=0, le=1)
    start_step: int = Field(0, ge=0, description="copy the weights (no averaging) before this step")


class SamplesSpec(Strict):
    """Audio logged every `sample_every` steps: the first validation clips, through the sampler and decoder."""

    count: int = Field(2, ge=0)
    num_steps: int = Field(10, ge=1, description="Euler steps")
    cfg_scale: float | None = Field(4.5, ge=0)
    seed: int = 0
    latent_weights: str | None = Field(None, description="weights of the latent decoder (None: its default)")


class RandomTextEncoder(Strict):
    """Build a random-weight T5 + word tokenizer (demo and tests; no download) at text_encoder.name_or_path."""

    width: int = Field(32, ge=8)
    layers: int = Field(2, ge=1)
    heads: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1, description="T5 dropout (flan-t5-base: 0.1)")
    seed: int = 0


class TrainConfig(Strict):
    data: DataSpec
    network: Literal["tiny", "small", "paper"] = "tiny"
    network_overrides: dict[str, Any] = Field(default_factory=dict, description="MMDiTConfig fields replaced")
    encoders: dict[str, str] | None = Field(None, description="{clip, sync, latent} registry names the shards "
                                                              "were made with (default: model.config."
                                                              "DEFAULT_ENCODERS of the network)")
    text_encoder: TextEncoderConfig = Field(default_factory=TextEncoderConfig)
    random_text_encoder: RandomTextEncoder | None = None
    flow: FlowConfig = Field(default_factory=FlowConfig)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    batch: BatchSpec = Field(default_factory=BatchSpec)
    ema: EmaSpec = Field(default_factory=EmaSpec)
    samples: SamplesSpec = Field(default_factory=SamplesSpec)
    steps: int = Field(..., ge=1, description="optimiser steps")
    checkpoint_every: int = Field(1000, ge=1)
    save_final: bool = Field(True, description="also checkpoint at the last step")
    keep_checkpoints: int | None = Field(None, ge=1, description="keep only the newest N (None: all)")
    eval_every: int | None = Field(None, ge=1)
    sample_every: int | None = Field(None, ge=1)
    log_every: int = Field(10, ge=1, description="TensorBoard scalars every N steps")
    t_bins: int = Field(4, ge=1, description="loss logged per t-bin")
    val_t_grid: list[float] = Field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7, 0.9])
    seed: int = 0
    out: str = Field(..., min_length=1, description="output directory (checkpoints, logs, samples)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: Literal["auto", "no", "bf16"] = Field("auto", description="auto: bf16 on GPU, fp32 on CPU")
    cpu_threads: int | None = Field(None, ge=1, description="torch intra-op threads on CPU (None: torch's default)")
    deterministic: bool = Field(True, description="GPU: torch.use_deterministic_algorithms (CPU kernels are already)")
    tensorboard: bool = True
    progress: bool = True
    debug_rank_log: bool = Field(False, description="per-rank keys and parameter hashes per step (tests)")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.encoders is not None:
            unknown = sorted(set(self.encoders) - set(ENCODER_KINDS))
            if unknown:
                raise ValueError(f"encoders: unknown kind(s) {unknown}; known: {list(ENCODER_KINDS)}")
        if any(not 0 < t < 1 for t in self.val_t_grid):
            raise ValueError(f"val_t_grid: times must lie in (0, 1), got {self.val_t_grid}")
        return self

    def resolved_encoders(self) -> dict[str, str]:
        from model.config import DEFAULT_ENCODERS

        return {**DEFAULT_ENCODERS[self.network], **(self.encoders or {})}

    def canonical(self) -> dict:
        return self.model_dump(mode="json")

    def hash(self) -> str:
        return hashlib.sha256(json.dumps(self.canonical(), sort_keys=True).encode()).hexdigest()


def parse_train_config(data: Any, source: str = "<config>", overrides: list[str] | None = None) -> TrainConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    apply_overrides(data, overrides, source)
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"{source}: {_fmt_loc(e['loc']) or '<top>'}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid training config\n  " + "\n  ".join(lines)) from None


def load_train_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    path = Path(path)
    return parse_train_config(read_yaml(path, "training config"), str(path), overrides)
