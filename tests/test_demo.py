"""`agomni demo` end to end: real media, espeak-ng speech, every stage of the demo config."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.shards import stream_shards

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[1]


def test_demo_builds_shards_with_audio_transcripts_and_tokens(tmp_path):
    out, data = tmp_path / "run", tmp_path / "data"
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "demo", "--out", str(out), "--data", str(data)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
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
    # the same command again resumes: everything is skipped and the shards do not change
    before = {p.name: p.read_bytes() for p in (out / "shards").rglob("*.tar")}
    r = subprocess.run([sys.executable, "-m", "jobs.cli", "demo", "--out", str(out), "--data", str(data)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and before == {p.name: p.read_bytes() for p in (out / "shards").rglob("*.tar")}
