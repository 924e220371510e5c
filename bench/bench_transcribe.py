"""Batched vs sequential transcription of the same ~5 minutes of espeak-ng speech (tiny.en, CPU).

    .venv/bin/python bench/bench_transcribe.py [--minutes 5] [--threads 2] [--json out.json]

Sequential: one faster-whisper `WhisperModel.transcribe` call per clip (VAD on, beam 5).
Batched:    `WhisperTranscriber.transcribe` (BatchedInferencePipeline, clips of one stage
            batch decoded together), fed in batches of `--batch-seconds` audio seconds like
            the transcribe stage. Same model, beam size, VAD and threads.
Prints audio seconds, wall seconds, real-time factor, throughput ratio and WER of both.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jiwer
import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.annotate.whisper import SAMPLE_RATE, WhisperOptions, WhisperTranscriber

SUBJECTS = ["The old farmer", "My younger brother", "A tired nurse", "The new teacher", "Our neighbour",
            "The little girl", "A famous singer", "The bus driver"]
VERBS = ["painted", "cleaned", "visited", "repaired", "watched", "carried", "found", "opened"]
OBJECTS = ["the red barn", "a small boat", "the kitchen window", "an empty house", "the garden gate",
           "a heavy box", "the blue car", "the village church"]
TIMES = ["last summer", "on Monday morning", "before dinner", "after the storm", "in the evening"]
VOICES = [("en-us", "160"), ("en", "175"), ("en-us", "190")]


def sentences(n: int) -> list[str]:
    combos = itertools.product(SUBJECTS, VERBS, OBJECTS, TIMES)
    picked = list(itertools.islice(combos, 0, None, 7))  # a spread-out, deterministic subset
    return [f"{s} {v} {o} {t}." for s, v, o, t in picked[:n]]


def synthesize(text: str, voice: str, speed: str, path: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", voice, "-s", speed, "-w", str(path), text], check=True, capture_output=True)
    x, rate = sf.read(path, dtype="float32")
    return soxr.resample(x, rate, SAMPLE_RATE).astype(np.float32)


def make_corpus(minutes: float, workdir: Path) -> tuple[list[np.ndarray], list[str]]:
    clips, refs = [], []
    total = 0.0
    for i, text in enumerate(sentences(10_000)):
        voice, speed = VOICES[i % len(VOICES)]
        clip = synthesize(text, voice, speed, workdir / f"{i}.wav")
        clips.append(clip)
        refs.append(text)
        total += len(clip) / SAMPLE_RATE
        if total >= minutes * 60:
            break
    return clips, refs


def stage_batches(clips: list[np.ndarray], batch_seconds: float) -> list[list[int]]:
    batches, cur, secs = [], [], 0.0
    for i, c in enumerate(clips):
        s = len(c) / SAMPLE_RATE
        if cur and secs + s > batch_seconds:
            batches.append(cur)
            cur, secs = [], 0.0
        cur.append(i)
        secs += s
    if cur:
        batches.append(cur)
    return batches


def normalize(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).strip()


def wer(refs: list[str], hyps: list[str]) -> float:
    return jiwer.wer([normalize(r) for r in refs], [normalize(h) or "<empty>" for h in hyps])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads (both paths)")
    ap.add_argument("--batch-seconds", type=float, default=120.0, help="audio seconds per stage batch")
    ap.add_argument("--decode-batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed")

    with tempfile.TemporaryDirectory() as tmp:
        clips, refs = make_corpus(args.minutes, Path(tmp))
    audio_s = sum(len(c) for c in clips) / SAMPLE_RATE
    print(f"{len(clips)} clips, {audio_s:.1f} s of espeak-ng speech", flush=True)

    t = WhisperTranscriber(WhisperOptions(device=args.device, cpu_threads=args.threads,
                                          decode_batch_size=args.decode_batch_size))
    t.transcribe(clips[:2])  # warm up both paths (allocations, VAD session)
    t.transcribe_sequential(clips[:2])

    start = time.perf_counter()
    seq = t.transcribe_sequential(clips)
    seq_s = time.perf_counter() - start

    start = time.perf_counter()
    batched = [None] * len(clips)
    for idx in stage_batches(clips, args.batch_seconds):
        for i, res in zip(idx, t.transcribe([clips[i] for i in idx])):
            batched[i] = res
    bat_s = time.perf_counter() - start

    result = {
        "model": t.model_id(), "device": t.device, "compute_type": t.compute_type, "threads": args.threads,
        "clips": len(clips), "audio_s": round(audio_s, 1),
        "sequential": {"wall_s": round(seq_s, 2), "rtf": round(seq_s / audio_s, 4),
                       "wer": round(wer(refs, [r.text for r in seq]), 4)},
        "batched": {"wall_s": round(bat_s, 2), "rtf": round(bat_s / audio_s, 4),
                    "wer": round(wer(refs, [r.text for r in batched]), 4),
                    "batch_seconds": args.batch_seconds, "decode_batch_size": args.decode_batch_size},
        "throughput_ratio": round(seq_s / bat_s, 2),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
