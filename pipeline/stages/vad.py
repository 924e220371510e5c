"""SpeechRatioStage: fraction of each clip that silero-vad marks as speech.

A model stage (fixed-size Ray actor pool, one model load per actor), batched by
audio seconds. Reads the 16 kHz clip audio written by the media stage; writes
`speech_ratio` (0..1). Optionally filters clips whose ratio falls outside a range.
"""
from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import numpy as np
from pydantic import Field

from ..errors import Filtered, PermanentError
from ..media.audio import RATE_ASR, decode_audio_blob
from ..stage import ModelStage, ModelStageOptions


class SpeechRatioOptions(ModelStageOptions):
    model_path: str | None = Field(None, description="TorchScript/ONNX silero-vad file; None: the one in the wheel")
    onnx: bool = Field(False, description="use the ONNX model with onnxruntime instead of TorchScript")
    threshold: float = Field(0.5, gt=0, lt=1, description="speech probability threshold")
    min_speech_ms: int = Field(250, ge=0)
    min_silence_ms: int = Field(100, ge=0)
    speech_pad_ms: int = Field(30, ge=0)
    min_speech_ratio: float | None = Field(None, ge=0, le=1, description="filter clips below (reason low_speech)")
    max_speech_ratio: float | None = Field(None, ge=0, le=1, description="filter clips above (reason too_much_speech)")


class SpeechRatioStage(ModelStage):
    name = "vad"
    Options = SpeechRatioOptions
    reads = ("key", "audio_16k", "has_audio", "duration_s", "true_duration_s")
    writes = ("speech_ratio",)
    counters = ("clips_scored", "audio_seconds_scored", "speech_seconds")

    def setup(self) -> None:
        import silero_vad
        from silero_vad.utils_vad import OnnxWrapper, init_jit_model

        o = self.options
        if o.model_path:
            path = Path(o.model_path)
            if not path.exists():
                raise FileNotFoundError(f"silero-vad model {path} not found (stage vad, option model_path)")
            self.model = OnnxWrapper(str(path), force_onnx_cpu=True) if o.onnx else init_jit_model(str(path))
        else:
            self.model = silero_vad.load_silero_vad(onnx=o.onnx)
        self._get_ts = silero_vad.get_speech_timestamps

    def model_id(self) -> str:
        return self.options.model_path or f"silero-vad@{version('silero-vad')}"

    def select(self, row: dict) -> bool:
        return bool(row.get("audio_16k"))

    def speech_ratio(self, audio: np.ndarray) -> tuple[float, float]:
        import torch

        o = self.options
        spans = self._get_ts(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), self.model,
                             threshold=o.threshold, sampling_rate=RATE_ASR, min_speech_duration_ms=o.min_speech_ms,
                             min_silence_duration_ms=o.min_silence_ms, speech_pad_ms=o.speech_pad_ms)
        speech = sum(s["end"] - s["start"] for s in spans) / RATE_ASR
        total = len(audio) / RATE_ASR
        return (min(1.0, speech / total) if total > 0 else 0.0), speech

    def process_batch(self, rows: list[dict]) -> list[dict | BaseException]:
        o = self.options
        out: list[dict | BaseException] = []
        for row in rows:
            audio, rate = decode_audio_blob(row["audio_16k"])
            if rate != RATE_ASR:
                out.append(PermanentError("bad_rate", f"audio_16k is at {rate} Hz"))
                continue
            ratio, speech = self.speech_ratio(audio)
            self.count("clips_scored")
            self.count("audio_seconds_scored", len(audio) / RATE_ASR)
            self.count("speech_seconds", speech)
            if o.min_speech_ratio is not None and ratio < o.min_speech_ratio:
                out.append(Filtered("low_speech", f"speech ratio {ratio:.2f} < {o.min_speech_ratio}"))
            elif o.max_speech_ratio is not None and ratio > o.max_speech_ratio:
                out.append(Filtered("too_much_speech", f"speech ratio {ratio:.2f} > {o.max_speech_ratio}"))
            else:
                out.append({"speech_ratio": round(ratio, 4)})
        return out
