"""Small stages used only by the runner tests (addressed as "tests.stages_for_tests:Name")."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from pydantic import Field

from pipeline.errors import Filtered, PermanentError
from pipeline.media.audio import RATE_ASR, RATE_MODEL, encode_audio_blob
from pipeline.stage import ModelStage, ModelStageOptions, Stage, StageOptions


class ProbeOptions(StageOptions):
    sleep_s: float = Field(0.0, ge=0)
    min_bytes: int = 1


class ProbeStage(Stage):
    """Reads the media file: missing → failed, too small → filtered; writes its hash and audio blobs."""

    name = "probe"
    Options = ProbeOptions
    reads = ("key", "media_uri", "media_path")
    writes = ("file_sha", "audio_44k", "audio_16k", "true_duration_s")
    counters = ("files_read",)

    def process_row(self, row):
        time.sleep(self.options.sleep_s)
        path = Path(row.get("media_path") or row["media_uri"])
        if not path.exists():
            raise PermanentError("missing_file", str(path))
        data = path.read_bytes()
        if len(data) < self.options.min_bytes:
            raise Filtered("too_small", f"{len(data)} bytes")
        self.count("files_read")
        x, sr = sf.read(path, dtype="float32")
        x44 = np.interp(np.arange(int(len(x) * RATE_MODEL / sr)) * sr / RATE_MODEL, np.arange(len(x)), x)
        x16 = np.interp(np.arange(int(len(x) * RATE_ASR / sr)) * sr / RATE_ASR, np.arange(len(x)), x)
        return {"file_sha": hashlib.sha256(data).hexdigest(), "audio_44k": encode_audio_blob(x44, RATE_MODEL),
                "audio_16k": encode_audio_blob(x16, RATE_ASR), "true_duration_s": len(x) / sr}


class LoudnessModelOptions(ModelStageOptions):
    oom_above_items: int | None = None
    pid_file: str | None = None


class LoudnessModelStage(ModelStage):
    """A 'model' stage: counts setups (one per actor) and can fake out-of-memory on big batches."""

    name = "loudness_model"
    Options = LoudnessModelOptions
    reads = ("key", "file_sha", "duration_s", "true_duration_s")
    writes = ("rms_rank",)
    counters = ("batches",)

    def setup(self):
        if self.options.pid_file:
            with open(self.options.pid_file, "a") as f:
                f.write(f"{os.getpid()}\n")

    def process_batch(self, rows):
        import torch

        if self.options.oom_above_items and len(rows) > self.options.oom_above_items:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        self.count("batches")
        return [{"rms_rank": int(r["file_sha"][:4], 16) % 7} for r in rows]
