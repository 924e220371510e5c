"""`agomni demo` end to end: real media, espeak-ng speech, every stage of the demo config."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from pipeline.shards import stream_shards

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[1]


def test_demo_builds_shards_with_audio_transcripts_tokens_and_features(tmp_path):
    out, data = tmp_path / "run", tmp_path / "data"
    cmd = [sys.executable, "-m", "jobs.cli", "demo", "--out", str(out), "--data", str(data), "--train-steps", "20"]
    r = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # the demo goes on to a trained model and a generated clip for the bunny video
    ckpt = Path(f"{out}-train") / "checkpoints" / "step-0000020"
    assert f"checkpoint: {ckpt}" in r.stdout and (ckpt / "meta.json").is_file()
    gen = Path(f"{out}-generated")
    assert f"wav: {gen / 'bigbuckbunny.wav'}" in r.stdout and f"mp4: {gen / 'bigbuckbunny.mp4'}" in r.stdout
    wav, rate = sf.read(gen / "bigbuckbunny.wav")
    assert rate == 44100 and abs(len(wav) / rate - 5.28) < 0.05 and np.isfinite(wav).all() and np.abs(wav).max() > 0
    with av.open(str(gen / "bigbuckbunny.mp4")) as c:
        assert {s.type for s in c.streams} == {"video", "audio"}
    assert f"shards:  {out / 'shards'}" in r.stdout and "rejects" in r.stdout
    stats = json.loads((out / "stats.json").read_text())
    media = stats["stages"]["media"]
    assert media["rejects_by_reason"] == {"failed:media:undecodable": 1, "filtered:no_audio": 3}
    assert media["rows_out"] == media["ok"] + 2  # the long recording became 3 windows
    samples = {s["__key__"]: s for split in ("train", "test") for s in stream_shards(out, split, verify=True)}
    bunny = [s for k, s in samples.items() if "bigbuckbunny" in k]
    assert len(bunny) == 3 and all(s["json"]["has_video"] and s["flac"][1] == 44100 for s in bunny)
    speech = [s for k, s in samples.items() if "speech" in k]
    assert len(speech) == 12 + 3  # 12 sentences, the long recording in 3 windows
    heard = [s for s in speech if (s["json"]["transcript_model"] or "").startswith("whisper-tiny.en")]
    assert len(heard) >= 6 and all("tokens.npy" in s for s in heard)
    # feature stages: latents for every clip with audio, CLIP and sync features for the videos
    assert all(s["latent.npy"].dtype == np.float16 and s["latent.npy"].shape[1] == 80 for s in samples.values())
    span = samples[next(k for k in samples if "bigbuckbunny" in k and samples[k]["json"]["duration_s"] == 2.5)]
    assert span["latent.npy"].shape == (math.ceil(2.5 * 44100 / 1024), 80)  # 108 frames, mean ‖ std
    assert span["clip.npy"].shape == (20, 64)  # 2.5 s at 8 fps, clip-tiny-random is 64-d
    frames = int(2.5 * 25)
    assert span["sync.npy"].shape == (8 * ((frames - 16) // 8 + 1), 64)  # 48 tokens
    assert len(span["json"]["sync_times"]) == 48
    feats = span["json"]["features"]
    assert {k: v["encoder"] for k, v in feats.items()} == {
        "clip": "clip-tiny-random", "sync": "synchformer-tiny-random", "latent": "logmel-codec"}
    assert all("clip.npy" not in s and "sync.npy" not in s and "clip" not in s["json"].get("features", {})
               for s in speech)
    # the same command again resumes: everything is skipped and the shards do not change
    before = {p.name: p.read_bytes() for p in (out / "shards").rglob("*.tar")}
    r = subprocess.run(cmd, check=False, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and before == {p.name: p.read_bytes() for p in (out / "shards").rglob("*.tar")}
