"""Python API of `agomni generate`: audio from any subset of {video, caption, transcript, lyrics}.

    from model.generate import generate
    result = generate("runs/train/ckpt.pt", video="clip.mp4", caption="a dog barks", seed=0,
                      encoder_weights={"clip": "clip.bin", "sync": "synchformer.pth"})
    result.wave, result.sample_rate, result.metadata     # float32 [n] at 44.1 kHz, inputs/seed/timings

The pieces live in `model/generation/` (request preparation, sampler, generator, output writing);
`jobs/generate.py` writes the WAV / MP4 / JSON files.
"""
from __future__ import annotations

from pathlib import Path

from model.generation import GenerationError, GenerationRequest, GenerationResult, Generator

__all__ = ["GenerationError", "GenerationRequest", "GenerationResult", "Generator", "generate"]


def generate(checkpoint: str | Path | Generator, *, video: str | Path | None = None, caption: str | None = None,
             transcript: str | None = None, lyrics: str | Path | None = None, language: str | None = None,
             duration: float | None = None, seed: int = 0, steps: int = 25, cfg: float | None = 4.5,
             encoder_weights: dict | None = None, device: str = "cpu", use_ema: bool = True) -> GenerationResult:
    """One clip: the waveform (44.1 kHz mono float32) and its metadata. `checkpoint` may be a
    path (loaded here, EMA weights by default) or an already loaded `Generator`."""
    gen = checkpoint if isinstance(checkpoint, Generator) else Generator.load(
        checkpoint, encoder_weights=encoder_weights, device=device, use_ema=use_ema)
    request = GenerationRequest(video=video, caption=caption, transcript=transcript, lyrics=lyrics,
                                language=language, duration=duration, seed=seed)
    return gen.generate([request], steps=steps, cfg=cfg)[0]
